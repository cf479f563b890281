"""Models other tools quantized, at any opset and in either Q/DQ domain, through `import-qdq`
and `compress` (issue 13 item 3).

- Function bodies at the model's opset: every npuq body runs at every opset 13..MAX_OPSET
  in onnxruntime bit for bit as at 21 (QuantDequant / Quantize from 15: CastLike); an older
  model is lifted (onnx.version_converter, noted), IR versions below 10 raised (noted).
- Real models quantized by onnxruntime's own tools: a BERT (transformers, from a small
  config) exported by torch.onnx.export at opsets 13 / 17 / 20 (and lifted to 21), then
  quantize_static (QDQ: int8 per channel / per tensor, int4 in com.microsoft below opset 21
  and standard at 21, uint8 asymmetric), quantize_dynamic (MatMulInteger: listed; gathered
  embeddings: imported) and matmul_nbits_quantizer (QDQ, blocked int4, symmetric and
  asymmetric); a digits CNN through quantize_static with a CalibrationDataReader. Every
  constant DequantizeLinear is imported, what stays is noted with its reason, and the
  outputs are bit-identical in onnxruntime (the pipeline's check and ours on real inputs).
  The same on all-MiniLM-L6-v2's real weights (dynamo export, opset 20) is marked slow.
- Hand-built graphs: com.microsoft Q/DQ (int8 / uint8 / int4 / uint4, any axis), zero
  points (int8sym / int4sym when x - zero point fits, uint8asym / uint4asym otherwise),
  INT32 biases folded, FP8 / FP4 / NVIDIA's two-level NVFP4 / FLOAT8E8M0 scales (checked
  against onnx's reference evaluator: onnxruntime cannot run those DequantizeLinear).
- The asymmetric import formats: decode(encode(x)) == fake_quant(x), the onnxruntime body
  equals formats.decode, and both equal DequantizeLinear's (code - zero point) * scale.
"""
from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto as TP
from onnx import helper
from onnx import numpy_helper as nh

from onnx_npuq import formats as F
from onnx_npuq import npu
from onnx_npuq.ops import bodies, functions
from onnx_npuq.passes import pipeline, qdq, run_passes
from onnx_npuq.runtime import OrtSession

from conftest import assert_same

logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)


# ------------------------------------------------------------------ helpers


def ort_run(model: onnx.ModelProto, feeds: dict, level=None) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.add_session_config_entry("session.disable_quant_qdq", "1")
    so.intra_op_num_threads = 1
    if level is not None:
        so.graph_optimization_level = level
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def constant_names(model: onnx.ModelProto) -> set[str]:
    names = {t.name for t in model.graph.initializer}
    return names | {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}


def constant_dqs(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """DequantizeLinear nodes (either domain) whose data is a constant."""
    consts = constant_names(model)
    return [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in consts]


def weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the values of every initializer and Constant node."""
    tensors = list(model.graph.initializer) + [a.t for n in model.graph.node if n.op_type == "Constant"
                                               for a in n.attribute if a.name == "value"]
    return sum(nh.to_array(t).nbytes if t.data_type not in (TP.INT4, TP.UINT4) else math.ceil(math.prod(t.dims) / 2)
               for t in tensors)


def import_and_compress(path, feeds: dict, tmp_path: Path, expect_formats=None):
    """import-qdq + compress, verified by the pipeline; every constant DQ gone; our own
    run on `feeds` bit-identical; the result saved. -> (model, reports, saved path)."""
    src = onnx.load(path)
    out, reports = run_passes(path, ["import-qdq", "compress"], verify=True)
    assert [r.mismatches for r in reports] == [0, 0], [r.line() for r in reports]
    assert constant_dqs(out) == [], [n.name for n in constant_dqs(out)]
    for want, got in zip(ort_run(src, feeds), ort_run(out, feeds), strict=True):
        assert same_bits(got, want)
    if expect_formats is not None:
        got = {helper.get_attribute_value(a).decode() for n in out.graph.node if n.domain == "npuq"
               for a in n.attribute if a.name == "format"}
        assert got == set(expect_formats), got
    saved = tmp_path / (Path(path).stem + ".npuq.onnx")
    onnx.save(out, saved)
    return out, reports, saved


def left_reasons(report) -> list[str]:
    """The reasons of the 'left as is' notes."""
    return [n.split(": ")[1] for n in report.notes if " left as is: " in n]


# ------------------------------------------------------------------ bodies at every opset


def _retarget(model: onnx.ModelProto, version: int) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for o in out.opset_import:
        if o.domain == "":
            o.version = version
    fns = [functions.at_opset(f, version) for f in out.functions]
    del out.functions[:]
    out.functions.extend(fns)
    return out


def _bits(outs):
    return [o.view(np.uint8) for o in outs]


def _decode_models():
    x = torch.randn(5, 70) * 3
    x[0, 0], x[1] = float("nan"), 0.0
    names = F.names() + sorted(F.IMPORT_FORMATS)
    return [(n, bodies.model_for_decode(F.encode(x, n, axis=0))) for n in names]


@pytest.mark.parametrize("version", range(functions.MIN_OPSET, functions.MAX_OPSET + 1))
def test_every_dequantize_body_at_every_opset(version):
    """Every Dequantize body (import formats too) written for opset `version` decodes bit
    for bit as at opset 21, and passes onnx's full check."""
    for name, model in _decode_models():
        want = ort_run(model, {})
        m = _retarget(model, version)
        onnx.checker.check_model(m, full_check=True)
        assert functions.body_opset(m.functions[0]) == version
        got = ort_run(m, {})
        assert all(np.array_equal(a, b) for a, b in zip(_bits(want), _bits(got))), (name, version)


@pytest.mark.parametrize("version", [15, 16, 17, 18, 20, 23, 25])
def test_quant_dequant_and_quantize_bodies_at_opsets(version):
    """QuantDequant (float32 and bfloat16 X) and Quantize bodies use CastLike / ReduceMax /
    Shape: from opset 15 on they run as at 21."""
    x = torch.randn(4, 96) * 4
    x[0, 3] = float("nan")
    for name in F.names():
        for dtype in (torch.float32, torch.bfloat16):
            model = bodies.model_for_fake_quant(name, (4, 96), dtype=dtype)
            want = OrtSession(model).run(x.to(dtype))[0]
            assert_same(OrtSession(_retarget(model, version)).run(x.to(dtype))[0], want, f"{name} {dtype} {version}")
    for name in ("int8sym", "mxfp4", "hif8", "hif4"):
        fn = bodies.quantize_function(name)
        node = helper.make_node(fn.name, ["X"], ["c", "s"], domain="npuq")
        g = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TP.FLOAT, [4, 96])],
                              [helper.make_tensor_value_info("c", TP.UINT8, None),
                               helper.make_tensor_value_info("s", TP.UINT8, None)])
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("npuq", 1)],
                                  ir_version=10, functions=[fn])
        want, got = ort_run(model, {"X": x.numpy()}), ort_run(_retarget(model, version), {"X": x.numpy()})
        assert all(np.array_equal(a, b) for a, b in zip(want, got)), (name, version)


def test_bodies_below_their_opset_are_refused():
    fn = bodies.quant_dequant_function("int8sym")
    assert functions.function_min_opset(fn) == 15
    with pytest.raises(functions.OpsetError, match="opset 14"):
        functions.at_opset(fn, 14)
    with pytest.raises(functions.OpsetError, match="opset 12"):
        functions.at_opset(bodies.dequantize_function("int8sym"), 12)
    lowered = functions.at_opset(bodies.dequantize_function("hif4"), 13)
    assert {n.op_type for n in lowered.node} <= {n.op_type for n in bodies.dequantize_function("hif4").node}


def _npu_model(version: int) -> onnx.ModelProto:
    """One npu::NPUDynamicQuant node (its body uses ReduceMax and Shape(start, end))."""
    node = helper.make_node("NPUDynamicQuant", ["x"], ["y", "s"], domain="npu")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TP.FLOAT16, [3, 64])],
                          [helper.make_tensor_value_info("y", TP.INT8, [3, 64]),
                           helper.make_tensor_value_info("s", TP.FLOAT, [3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", version), helper.make_opsetid("npu", 1)],
                          ir_version=10)
    return functions.attach(m)


def test_npu_bodies_follow_the_model_opset():
    x = (np.random.default_rng(0).standard_normal((3, 64)) * 3).astype(np.float16)
    want = ort_run(_npu_model(21), {"x": x})
    for version in (13, 17, 20, 24):
        m = _npu_model(version)
        assert {functions.body_opset(f) for f in m.functions} == {version}
        onnx.checker.check_model(m, full_check=True)
        got = ort_run(m, {"x": x})
        assert all(np.array_equal(a, b) for a, b in zip(want, got)), version


def test_attach_refuses_and_pipeline_lifts_an_old_opset():
    """A QuantDequant (CastLike: opset 15) in an opset-13 model: attach refuses, leaving the
    functions as they were; a pass's finish() lifts the model to 15 and says so."""
    node = helper.make_node("QuantDequant", ["x"], ["q"], domain="npuq", format="int8sym")
    relu = helper.make_node("Relu", ["q"], ["y"])
    g = helper.make_graph([node, relu], "g", [helper.make_tensor_value_info("x", TP.FLOAT, [2, 32])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, [2, 32])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("npuq", 1)], ir_version=7)
    with pytest.raises(functions.OpsetError, match="need opset 15"):
        functions.attach(m)
    assert len(m.functions) == 0
    assert functions.required_opset(m) == 15
    out, (report,) = run_passes(m, ["import-qdq"], verify=False)
    assert functions.model_opset(out) == 15 and out.ir_version == 10
    assert any("standard opset lifted from 13 to 15" in n for n in report.notes)
    assert any("IR version raised from 7 to 10" in n for n in report.notes)
    x = torch.randn(2, 32)
    assert_same(OrtSession(out).run(x)[0], F.fake_quant(x, "int8sym").relu())


# ------------------------------------------------------------------ a real transformer, onnxruntime-quantized

VOCAB, SEQ = 96, 8


class _Encoder(torch.nn.Module):
    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, ids, mask):
        return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state


def _token_feeds(seed: int, batch: int = 2, seq: int = SEQ) -> dict:
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), np.int64)
    mask[0, seq - 2:] = 0  # padding
    return {"input_ids": rng.integers(0, VOCAB, (batch, seq)).astype(np.int64), "attention_mask": mask}


class _Reader:
    """An onnxruntime CalibrationDataReader over a list of feeds."""

    def __init__(self, feeds: list[dict]):
        self.it = iter(feeds)

    def get_next(self):
        return next(self.it, None)

    def rewind(self):  # some onnxruntime versions call it
        pass


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    """A transformers BERT from a small config (2 layers, hidden 32), exported by
    torch.onnx.export (TorchScript exporter: 0.3 s) at opsets 13, 17 and 20, and the opset-20
    export lifted to 21 by onnx.version_converter."""
    import transformers
    folder = tmp_path_factory.mktemp("bert")
    cfg = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=32, attn_implementation="eager")
    torch.manual_seed(0)
    model = _Encoder(transformers.BertModel(cfg).eval())
    ids, mask = (torch.from_numpy(v) for v in _token_feeds(0).values())
    for opset in (13, 17, 20):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (ids, mask), folder / f"bert{opset}.onnx", dynamo=False, opset_version=opset,
                              input_names=["input_ids", "attention_mask"], output_names=["hidden"],
                              dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}})
    lifted = onnx.version_converter.convert_version(onnx.load(folder / "bert20.onnx"), 21)
    onnx.save(lifted, folder / "bert21.onnx")
    return folder


def _quantize(src: Path, kind: str, out: Path, reader_feeds: list[dict]) -> Path:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization import matmul_nbits_quantizer as mnq

    static = {
        "int8-channel": dict(per_channel=True),
        "int8-tensor": dict(per_channel=False),
        "int4-channel": dict(per_channel=True, weight_type=QuantType.QInt4, activation_type=QuantType.QUInt8),
        "uint8-asymmetric": dict(per_channel=True, weight_type=QuantType.QUInt8, activation_type=QuantType.QUInt8,
                                 extra_options={"WeightSymmetric": False}),
    }
    if kind in static:
        quantize_static(src, out, _Reader(reader_feeds), quant_format=QuantFormat.QDQ, **static[kind])
    elif kind == "dynamic":
        quantize_dynamic(src, out)
    else:  # matmul_nbits_quantizer in QDQ form: blocked int4 weight-only
        cfg = mnq.DefaultWeightOnlyQuantConfig(block_size=16, is_symmetric=kind == "nbits-symmetric",
                                               quant_format=QuantFormat.QDQ)
        q = mnq.MatMulNBitsQuantizer(onnx.load(src), algo_config=cfg)
        q.process()
        q.model.save_model_to_file(str(out), use_external_data_format=False)
    return out


def _dq_summary(model: onnx.ModelProto) -> dict:
    """{(domain, data type): count} of the constant DequantizeLinear nodes."""
    types = {t.name: t.data_type for t in model.graph.initializer}
    out = {}
    for n in constant_dqs(model):
        key = (n.domain or "", onnx.helper.tensor_dtype_to_string(types.get(n.input[0], 0)).split(".")[-1])
        out[key] = out.get(key, 0) + 1
    return out


# (opset of the export, quantizer, the source's weight DQs (domain, type), formats it may write)
BERT_CASES = [
    (20, "int8-channel", ("", "INT8"), {"int8sym", "uint8asym"}),
    (20, "int8-tensor", ("", "INT8"), {"int8sym", "uint8asym"}),
    (20, "int4-channel", ("com.microsoft", "INT4"), {"int4sym", "int8sym", "uint8asym"}),
    (21, "int4-channel", ("", "INT4"), {"int4sym", "int8sym", "uint8asym"}),
    (20, "uint8-asymmetric", ("", "UINT8"), {"int8sym", "uint8asym"}),
    (13, "int8-channel", ("", "INT8"), {"int8sym", "uint8asym"}),
    (17, "int4-channel", ("com.microsoft", "INT4"), {"int4sym", "int8sym", "uint8asym"}),
    (20, "nbits-asymmetric", ("", "UINT4"), {"uint4asym"}),
    (20, "nbits-symmetric", ("", "INT4"), {"int4sym"}),
]


def _rewrote(report) -> int:
    note = next(n for n in report.notes if "DequantizeLinear as npuq::Dequantize" in n)
    return int(note.split("rewrote ")[1].split()[0])


@pytest.mark.parametrize("opset,kind,weights,fmts", BERT_CASES, ids=[f"opset{c[0]}-{c[1]}" for c in BERT_CASES])
def test_onnxruntime_quantized_bert(bert_dir, tmp_path, opset, kind, weights, fmts):
    src = _quantize(bert_dir / f"bert{opset}.onnx", kind, tmp_path / f"{kind}.onnx",
                    [_token_feeds(s) for s in range(4)])
    source = onnx.load(src)
    assert weights in _dq_summary(source)
    out, (imported, compressed), saved = import_and_compress(src, _token_feeds(11, batch=3, seq=6), tmp_path)
    got = {helper.get_attribute_value(a).decode() for n in out.graph.node if n.domain == "npuq"
           for a in n.attribute if a.name == "format"}
    assert got and got <= fmts, got
    assert _rewrote(imported) >= len(constant_dqs(source))  # and constant_dqs(out) == [] (import_and_compress)
    assert compressed.nodes_before == compressed.nodes_after  # nothing left for compress
    # what stays: activation Q -> DQ pairs, runnable as before
    assert set(left_reasons(imported)) <= {"data is not a constant"}
    assert functions.model_opset(out) == functions.model_opset(source)
    assert {functions.body_opset(f) for f in out.functions} == {functions.model_opset(source)}
    # weights: the zero points go; a scale a row for per tensor, a zero-point byte a block where the
    # source packs a nibble, and a copy per consumer of what the exporter shared (the zero biases of
    # this random-init model, re-quantized per use: a folded Q each)
    # this model's rows are 32 long: a float32 scale a row is 1/8 more per tensor (1% on MiniLM)
    assert weight_bytes(out) < (1.15 if kind == "int8-tensor" else 1.1) * weight_bytes(source)


def test_onnxruntime_dynamic_quantization_bert(bert_dir, tmp_path):
    """quantize_dynamic: MatMulInteger on int8 weights stays (listed: integer arithmetic);
    the gathered uint8 embeddings (Gather -> DequantizeLinear) are imported."""
    src = _quantize(bert_dir / "bert20.onnx", "dynamic", tmp_path / "dynamic.onnx", [])
    out, (imported, _), _ = import_and_compress(src, _token_feeds(5), tmp_path, {"uint8asym"})
    notes = "\n".join(imported.notes)
    assert "12 MatMulInteger left as is: integer arithmetic on constant quantized weights" in notes
    assert "3 DequantizeLinear moved before the Gather" in notes
    assert not any(n.op_type == "DequantizeLinear" for n in out.graph.node)


def test_reproduces_the_opset20_symptom_without_per_opset_bodies(bert_dir, tmp_path):
    """The measured failure: bodies at opset 21 in an opset-20 model fail onnx's checker."""
    src = _quantize(bert_dir / "bert20.onnx", "int8-channel", tmp_path / "q.onnx", [_token_feeds(1)])
    out, _ = run_passes(src, ["import-qdq"], verify=False)
    for f in out.functions:
        del f.opset_import[:]
        f.opset_import.append(helper.make_opsetid("", 21))
    with pytest.raises(onnx.checker.ValidationError, match="FunctionOp imports version 21 whereas model imports"):
        onnx.checker.check_model(out, full_check=True)


# ------------------------------------------------------------------ a CNN, quantize_static with calibration


class DigitsCNN(torch.nn.Module):
    """A torchvision-like stem for 8x8 digits: conv-bn-relu, depthwise + pointwise, strided
    conv, global pooling, linear."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.stem = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.ReLU(), nn.Conv2d(32, 64, 1), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        return self.fc(self.down(self.dw(self.stem(x))).mean((2, 3)))


def _digits(n: int, start: int = 0) -> np.ndarray:
    from sklearn.datasets import load_digits

    x = load_digits().images[start:start + n].astype(np.float32) / 16.0
    return x[:, None]


@pytest.fixture(scope="module")
def cnn_path(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    model = DigitsCNN().eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        model.stem[1].running_mean.uniform_(-0.2, 0.2)
        model.stem[1].running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("cnn") / "cnn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(_digits(2)),), path, dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["logits"], dynamic_axes={"image": {0: "n"}})
    return path


@pytest.mark.parametrize("per_channel", [True, False])
def test_onnxruntime_quantized_cnn(cnn_path, tmp_path, per_channel):
    from onnxruntime.quantization import QuantFormat, quantize_static

    src = tmp_path / "cnn.q.onnx"
    calib = [{"image": _digits(16, i * 16)} for i in range(4)]
    quantize_static(cnn_path, src, _Reader(calib), quant_format=QuantFormat.QDQ, per_channel=per_channel)
    source = onnx.load(src)
    assert set(_dq_summary(source)) == {("", "INT8"), ("", "INT32")}
    out, (imported, _), saved = import_and_compress(src, {"image": _digits(32, 100)}, tmp_path, {"int8sym"})
    assert _rewrote(imported) == len(constant_dqs(source))
    assert any("INT32 DequantizeLinear (biases) folded" in n for n in imported.notes)
    assert set(left_reasons(imported)) <= {"data is not a constant"}
    # per channel the zero points go; per tensor the scale is stored a row (an output channel)
    assert weight_bytes(out) < (1.0 if per_channel else 1.02) * weight_bytes(source)
    # the file: what grows is the function body of each format (int8sym: 3.5 KB) and the Reshape
    # back to 4-D per conv weight: ~1% on this 80k-parameter net, less on a real one
    bodies_bytes = sum(f.ByteSize() for f in out.functions)
    assert os.path.getsize(saved) < os.path.getsize(src) + bodies_bytes + (0 if per_channel else 4096)


def test_old_opset_cnn_is_lifted(tmp_path):
    """A CNN exported at opset 11, quantized per tensor (onnxruntime keeps 11): the bodies
    need 13, so the model is lifted by onnx.version_converter (verified exact) and noted."""
    from onnxruntime.quantization import QuantFormat, quantize_static

    torch.manual_seed(2)
    model = DigitsCNN().eval()
    path, src = tmp_path / "cnn11.onnx", tmp_path / "cnn11.q.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(_digits(2)),), path, dynamo=False, opset_version=11,
                          input_names=["image"], output_names=["logits"])
    quantize_static(path, src, _Reader([{"image": _digits(2, 2 * i)} for i in range(3)]), quant_format=QuantFormat.QDQ)
    assert functions.model_opset(onnx.load(src)) == 11
    out, (imported, _), _ = import_and_compress(src, {"image": _digits(2, 40)}, tmp_path)
    assert functions.model_opset(out) == 13
    assert any("standard opset lifted from 11 to 13" in n for n in imported.notes)


# ------------------------------------------------------------------ hand-built graphs


def _model(nodes, inits, out_shape, opset=21, ir=10, extra_imports=(), out_type=TP.FLOAT):
    g = helper.make_graph(nodes + [helper.make_node("Identity", ["x"], ["xo"])], "g",
                          [helper.make_tensor_value_info("x", TP.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", out_type, list(out_shape)),
                           helper.make_tensor_value_info("xo", TP.FLOAT, [2])], inits)
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_imports]
    return helper.make_model(g, opset_imports=imports, ir_version=ir)


def _reference(model) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model).run(None, {"x": np.zeros(2, np.float32)})[0]


def _imported(model, verify=True):
    out, (report,) = run_passes(model, ["import-qdq"], verify=verify)
    fmts = [helper.get_attribute_value(a).decode() for n in out.graph.node if n.domain == "npuq"
            for a in n.attribute if a.name == "format"]
    return out, report, fmts


INT_TYPES = {"int8": (np.int8, TP.INT8, -128, 127), "uint8": (np.uint8, TP.UINT8, 0, 255),
             "int4": (ml_dtypes.int4, TP.INT4, -8, 7), "uint4": (ml_dtypes.uint4, TP.UINT4, 0, 15)}


@st.composite
def int_dq_cases(draw):
    kind = draw(st.sampled_from(sorted(INT_TYPES)))
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=rank, max_size=rank)))
    per = draw(st.sampled_from(["tensor", "axis", "block"]))
    domain = draw(st.sampled_from(["", "com.microsoft"])) if per != "block" else ""
    axis = draw(st.integers(-rank, rank - 1))
    a = axis % rank
    block = draw(st.integers(1, 5))
    sshape = {"tensor": (), "axis": (shape[a],), "block": shape[:a] + (-(-shape[a] // block),) + shape[a + 1:]}[per]
    zp_mode = draw(st.sampled_from(["none", "zero", "small", "any"]))
    return kind, shape, per, domain, axis, block, sshape, zp_mode, draw(st.integers(0, 2**16))


@settings(max_examples=40, deadline=None)
@given(int_dq_cases())
def test_property_integer_dq_any_domain_axis_zero_point(case):
    """Integer DequantizeLinear of either domain, any axis, per tensor / axis / block, with
    no, zero, small or any zero point: imported, and decoded by onnxruntime bit for bit as
    the DequantizeLinear computes (checked against onnx's reference too)."""
    kind, shape, per, domain, axis, block, sshape, zp_mode, seed = case
    np_type, onnx_type, lo, hi = INT_TYPES[kind]
    rng = np.random.default_rng(seed)
    w = rng.integers(lo, hi + 1, shape).astype(np_type)
    s = (rng.random(sshape) * 0.02 + 1e-3).astype(np.float32) * np.where(rng.random(sshape) < 0.3, -1, 1)
    inits = [nh.from_array(w, "w"), nh.from_array(s.astype(np.float32), "s")]
    inputs = ["w", "s"]
    if zp_mode != "none":
        zp = {"zero": np.zeros(sshape), "small": rng.integers(-1, 2, sshape).clip(lo, hi),
              "any": rng.integers(lo, hi + 1, sshape)}[zp_mode]
        inits.append(nh.from_array(np.asarray(zp).astype(np_type), "zp"))
        inputs.append("zp")
    attrs = {"axis": axis} if per != "tensor" else {}
    if per == "block":
        attrs["block_size"] = block
    imports = [("com.microsoft", 1)] if domain else []
    m = _model([helper.make_node("DequantizeLinear", inputs, ["y"], domain=domain, **attrs)], inits, shape,
               extra_imports=imports)
    out, report, fmts = _imported(m)
    assert report.mismatches == 0 and len(fmts) == 1
    want = ort_run(m, {"x": np.zeros(2, np.float32)})[0]
    if not domain:
        assert same_bits(_reference(m), want)
    assert same_bits(ort_run(out, {"x": np.zeros(2, np.float32)})[0], want)
    bits = 8 if "8" in kind else 4
    if zp_mode in ("none", "zero") and kind.startswith("int"):
        assert fmts == [f"int{bits}sym"]
    assert fmts[0] in (f"int{bits}sym", f"uint{bits}asym")


@pytest.mark.parametrize("kind", sorted(INT_TYPES))
def test_zero_point_picks_symmetric_when_the_differences_fit(kind):
    """x - zero point inside the signed range of the same width: the symmetric format (no
    zero point stored); one difference outside: the asymmetric one."""
    np_type, onnx_type, lo, hi = INT_TYPES[kind]
    bits = 8 if "8" in kind else 4
    half = 1 << (bits - 1)
    w = np.arange(lo, hi + 1).reshape(-1, 1 << bits // 2 if bits == 8 else 4)
    zp_fit = np.array(half if kind.startswith("u") else 0).astype(np_type)  # uint: zero point 2^(bits-1)
    zp_off = np.array(lo + 1).astype(np_type)
    for zp, want in ((zp_fit, f"int{bits}sym"), (zp_off, f"uint{bits}asym")):
        m = _model([helper.make_node("DequantizeLinear", ["w", "s", "zp"], ["y"])],
                   [nh.from_array(w.astype(np_type), "w"), nh.from_array(np.float32(0.37), "s"),
                    nh.from_array(zp, "zp")], w.shape)
        out, report, fmts = _imported(m)
        assert fmts == [want] and report.mismatches == 0
        assert same_bits(ort_run(out, {"x": np.zeros(2, np.float32)})[0], _reference(m))


def test_com_microsoft_quantize_linear_on_a_constant_is_folded():
    w = np.random.default_rng(3).standard_normal((16, 12)).astype(np.float32)
    s, zp = np.full(12, 0.05, np.float32), np.full(12, 3, ml_dtypes.uint4)
    nodes = [helper.make_node("QuantizeLinear", ["wf", "s", "zp"], ["wq"], domain="com.microsoft", axis=1),
             helper.make_node("DequantizeLinear", ["wq", "s", "zp"], ["y"], domain="com.microsoft", axis=1)]
    m = _model(nodes, [nh.from_array(w, "wf"), nh.from_array(s, "s"), nh.from_array(zp, "zp")], w.shape,
               extra_imports=[("com.microsoft", 1)])
    out, report, fmts = _imported(m)
    assert fmts == ["uint4asym"] and report.mismatches == 0
    assert "folded 1 QuantizeLinear" in "\n".join(report.notes)


def test_compress_takes_com_microsoft_dequantize_linear_too():
    """compress (and export's has_work, which decides whether it runs) sees com.microsoft
    Q/DQ as import-qdq does, folding again while a fold makes new constants."""
    from onnx_npuq.passes import run_pass
    from onnx_npuq.passes.compress import has_work

    w = np.random.default_rng(5).integers(-8, 8, (16, 32)).astype(ml_dtypes.int4)
    s = np.full(16, 0.05, np.float32)
    nodes = [helper.make_node("DequantizeLinear", ["w", "s"], ["y"], domain="com.microsoft", axis=0)]
    m = _model(nodes, [nh.from_array(w, "w"), nh.from_array(s, "s")], w.shape, opset=20,
               extra_imports=[("com.microsoft", 1)])
    assert has_work(m)
    out, report = run_pass(m, "compress")
    assert report.mismatches == 0 and not constant_dqs(out)
    assert [n.op_type for n in out.graph.node if n.domain == "npuq"] == ["Dequantize"]
    feeds = {"x": np.zeros(2, np.float32)}
    assert same_bits(ort_run(out, feeds)[0], ort_run(m, feeds)[0])


def test_int32_bias_is_folded_exactly_and_a_graph_output_keeps_its_name():
    rng = np.random.default_rng(4)
    b = rng.integers(-(2**30), 2**30, 24).astype(np.int32)
    b[:3] = [2**31 - 1, -(2**31), 16777217]  # rounding in float32(x)
    s = np.float32(3.3e-5)
    nodes = [helper.make_node("DequantizeLinear", ["b", "s"], ["y"])]
    m = _model(nodes, [nh.from_array(b, "b"), nh.from_array(s, "s")], (24,))
    out, report, fmts = _imported(m)
    assert fmts == [] and report.mismatches == 0
    assert [n.op_type for n in out.graph.node] == ["Identity", "Identity"]
    assert same_bits(ort_run(out, {"x": np.zeros(2, np.float32)})[0], ort_run(m, {"x": np.zeros(2, np.float32)})[0])
    assert any("1 INT32 DequantizeLinear (biases) folded" in n for n in report.notes)


def test_int16_and_fp16_output_of_int32_are_left_with_reasons():
    nodes = [helper.make_node("DequantizeLinear", ["w", "s"], ["a"], name="dq16"),
             helper.make_node("DequantizeLinear", ["b", "h"], ["c"], name="dq32h"),
             helper.make_node("Cast", ["c"], ["cf"], to=TP.FLOAT),
             helper.make_node("Add", ["a", "cf"], ["y"])]
    m = _model(nodes, [nh.from_array(np.arange(8, dtype=np.int16), "w"), nh.from_array(np.float32(0.5), "s"),
                       nh.from_array(np.arange(8, dtype=np.int32), "b"), nh.from_array(np.float16(0.25), "h")], (8,))
    out, report, fmts = _imported(m)
    assert fmts == []
    notes = "\n".join(report.notes)
    assert "INT16 data: no format holds it: dq16" in notes
    assert "INT32 data with a FLOAT16 scale: dq32h" in notes


# ---- FP8, FP4, NVFP4, E8M0 (onnxruntime cannot run FP4 / E8M0 DequantizeLinear: onnx's reference can)


def _fp4(shape, seed):
    return np.random.default_rng(seed).integers(0, 16, shape).astype(np.uint8).view(ml_dtypes.float4_e2m1fn)


def _check_reference(m, want_fmt):
    out, report, fmts = _imported(m, verify=False)
    assert fmts == [want_fmt], fmts
    assert constant_dqs(out) == []
    got = OrtSession(out).run(torch.zeros(2))[0].numpy()
    want = _reference(m)
    assert got.dtype == want.dtype and np.array_equal(np.isnan(got), np.isnan(want))
    assert same_bits(np.nan_to_num(got), np.nan_to_num(want))


@pytest.mark.parametrize("axis", [0, 1])
def test_nvidia_two_level_nvfp4(axis):
    """DequantizeLinear(FP8 E4M3 block scales, float32 scale) feeding DequantizeLinear(FP4,
    block 16): nvfp4 with that tensor scale; the scale DQ goes with it."""
    N, K = 24, 80  # K: 5 blocks of 16
    shape = (N, K) if axis == 1 else (K, N)
    sshape = (N, K // 16) if axis == 1 else (K // 16, N)
    sc = (np.random.default_rng(5).random(sshape) * 400).astype(ml_dtypes.float8_e4m3fn)
    sc.flat[0] = -sc.flat[0]
    nodes = [helper.make_node("DequantizeLinear", ["sc", "ts"], ["scf"]),
             helper.make_node("DequantizeLinear", ["w", "scf"], ["y"], axis=axis, block_size=16)]
    m = _model(nodes, [nh.from_array(_fp4(shape, 6), "w"), nh.from_array(sc, "sc"),
                       nh.from_array(np.array(0.0123, np.float32), "ts")], shape, opset=23, ir=11)
    _check_reference(m, "nvfp4")


def test_fp4_with_e4m3_valued_float_scales_is_nvf4_and_power_of_two_scales_mxfp4():
    N, K = 8, 64
    e4m3 = (np.random.default_rng(7).random((N, K // 16)) * 100).astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
    m = _model([helper.make_node("DequantizeLinear", ["w", "s"], ["y"], axis=1, block_size=16)],
               [nh.from_array(_fp4((N, K), 8), "w"), nh.from_array(e4m3, "s")], (N, K), opset=23, ir=11)
    _check_reference(m, "nvf4")
    pow2 = np.exp2(np.random.default_rng(9).integers(-20, 20, (N, K // 32))).astype(np.float32)
    m = _model([helper.make_node("DequantizeLinear", ["w", "s"], ["y"], axis=1, block_size=32)],
               [nh.from_array(_fp4((N, K), 10), "w"), nh.from_array(pow2, "s")], (N, K), opset=23, ir=11)
    _check_reference(m, "mxfp4")
    other = pow2 * np.float32(1.1)
    m = _model([helper.make_node("DequantizeLinear", ["w", "s"], ["y"], axis=1, block_size=32)],
               [nh.from_array(_fp4((N, K), 10), "w"), nh.from_array(other, "s")], (N, K), opset=23, ir=11)
    _, report, fmts = _imported(m, verify=False)
    assert fmts == [] and "FLOAT4E2M1 with scales that are neither" in "\n".join(report.notes)


@pytest.mark.parametrize("element", ["fp4", "e4m3", "e5m2"])
def test_e8m0_scales_are_mx(element):
    N, K = 6, 96
    e = np.random.default_rng(11).integers(100, 150, (N, K // 32)).astype(np.uint8).view(ml_dtypes.float8_e8m0fnu)
    if element == "fp4":
        w, fmt = _fp4((N, K), 12), "mxfp4"
    else:
        t = ml_dtypes.float8_e4m3fn if element == "e4m3" else ml_dtypes.float8_e5m2
        w = np.arange(N * K, dtype=np.uint32).astype(np.uint8).view(t).reshape(N, K)  # every code, NaN too
        fmt = "mxfp8" + element
    m = _model([helper.make_node("DequantizeLinear", ["w", "s"], ["y"], axis=1, block_size=32, output_dtype=TP.FLOAT)],
               [nh.from_array(w, "w"), nh.from_array(e, "s")], (N, K), opset=24, ir=11)
    _check_reference(m, fmt)


# ---- Gather before DequantizeLinear (onnxruntime's quantize_dynamic embeddings)


def test_gather_of_a_quantized_table_is_hoisted():
    table = np.random.default_rng(13).integers(0, 256, (50, 16)).astype(np.uint8)
    ids = np.array([[1, 4, 49], [0, 0, 7]], np.int64)
    nodes = [helper.make_node("Gather", ["t", "ids"], ["g"]),
             helper.make_node("DequantizeLinear", ["g", "s", "zp"], ["y"])]
    m = _model(nodes, [nh.from_array(table, "t"), nh.from_array(ids, "ids"), nh.from_array(np.float32(0.02), "s"),
                       nh.from_array(np.uint8(131), "zp")], (2, 3, 16))
    out, report, fmts = _imported(m)
    assert fmts == ["uint8asym"] and report.mismatches == 0
    # per tensor: one row of 800, one scale and zero point; reshaped to the table
    assert [n.op_type for n in out.graph.node if n.op_type != "Identity"] == ["Dequantize", "Reshape", "Gather"]
    assert {tuple(t.dims) for t in out.graph.initializer if t.name.endswith("npuq_scales")} == {(1, 5)}


# ---- AMCT / msModelSlim deploy ops (default domain; shared/spec/ascend.md)


@pytest.mark.parametrize("offset,dtype", [(0.0, 0), (3.0, 1), (-7.0, 0), (100.0, 1)])
def test_amct_antiquant_on_constant_weights_is_imported(offset, dtype):
    """AscendAntiQuant(int8 W) = (W - offset) * scale cast to `dtype` (its ONNX node; the plugin
    negates the offset for GE): int8sym (offset 0) or uint8asym with zero point offset, equal
    to the op's own reference npu.ascend_anti_quant."""
    w = np.random.default_rng(14).integers(-128, 128, (16, 8)).astype(np.int8)
    out_type = {0: TP.FLOAT, 1: TP.FLOAT16}[dtype]
    nodes = [helper.make_node("AscendAntiQuant", ["w"], ["y"], scale=0.0123, offset=offset, dtype=dtype, sqrt_mode=0)]
    m = _model(nodes, [nh.from_array(w, "w")], w.shape, opset=11, ir=7, out_type=out_type)
    out, report, fmts = _imported(m, verify=False)
    assert fmts == ["int8sym" if offset == 0 else "uint8asym"]
    assert functions.model_opset(out) == 13  # lifted: the bodies need 13
    want = npu.ascend_anti_quant(torch.from_numpy(w), 0.0123, offset, dtype=dtype)
    assert_same(OrtSession(out).run(torch.zeros(2))[0], want)


def test_amct_antiquant_that_cannot_be_imported_is_an_error():
    w = np.zeros((4, 4), np.int8)
    m = _model([helper.make_node("AscendAntiQuant", ["w"], ["y"], scale=0.5, offset=0.5, name="aq")],
               [nh.from_array(w, "w")], w.shape, opset=17)
    with pytest.raises(pipeline.PassError, match="offset 0.5 is not an integer.*: aq"):
        run_passes(m, ["import-qdq"], verify=False)
    m = _model([helper.make_node("AscendAntiQuant", ["w"], ["y"], scale=0.5, offset=0.0, dtype=27, name="aq")],
               [nh.from_array(w, "w")], w.shape, opset=17)
    with pytest.raises(pipeline.PassError, match=r"dtype 27 is not float32 \(0\) or float16 \(1\).*: aq"):
        run_passes(m, ["import-qdq"], verify=False)


def test_amct_int8_pipeline_is_refused_with_its_deq_scale_read():
    w = np.random.default_rng(15).integers(-127, 128, (8, 4, 3, 3)).astype(np.int8)
    scales = (np.arange(1, 9, dtype=np.float32) * 1e-4)
    deq = scales.view(np.uint32).astype(np.uint64) | (np.uint64(3) << np.uint64(40))
    got_scale, got_offset = qdq.deq_scale_parts(deq)
    assert same_bits(got_scale, scales) and (got_offset == 3).all()
    nodes = [helper.make_node("AscendQuant", ["x"], ["xq"], scale=10.0, offset=0.0, dst_type="INT8", name="q1"),
             helper.make_node("Conv", ["xq", "w"], ["acc"], pads=[1, 1, 1, 1]),
             helper.make_node("AscendDequant", ["acc", "deq"], ["y"], dtype=0, name="dq1")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TP.FLOAT, [1, 4, 8, 8])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, [1, 8, 8, 8])],
                          [nh.from_array(w, "w"), nh.from_array(deq, "deq")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)], ir_version=7)
    with pytest.raises(pipeline.PassError) as err:
        run_passes(m, ["import-qdq"], verify=False)
    text = str(err.value)
    assert "onnxruntime has no kernels for them" in text and "AscendQuant q1 (scale 10.0, offset 0.0)" in text
    assert "AscendDequant dq1 (deq_scale: 8 channels, float32 scales 0.0001..0.0008, weight offsets 3..3)" in text


# ------------------------------------------------------------------ the asymmetric import formats


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(F.IMPORT_FORMATS)), st.integers(1, 6), st.integers(1, 70),
       st.sampled_from([None, 1, 5, 16, 32]), st.integers(0, 2**16), st.sampled_from(["normal", "positive", "tiny"]))
def test_property_asym_encode_decode_fake_quant(name, rows, n, group, seed, kind):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, n, generator=g) * 3
    if kind == "positive":
        x = x.abs()
    elif kind == "tiny":
        x = x * 1e-40  # subnormal range: scales underflow
    if rows > 1:
        x[1] = 0.0
    fmt = F.get_format(name, group=group) if group else F.get_format(name)
    p = fmt.encode(x)
    y = fmt.fake_quant(x)
    assert_same(F.decode(p), y)
    el = fmt.el
    blk = group or n
    assert p.codes.shape == (rows, -(-n // blk) * math.ceil(blk * el.bits / 8))
    assert p.scales.shape == (rows, -(-n // blk) * 5)
    # the onnxruntime body decodes the same
    got = ort_run(bodies.model_for_decode(p), {})[0]
    assert_same(torch.from_numpy(got), y)
    # and it is DequantizeLinear's arithmetic: (code - zero point) * scale
    sb = p.scales.reshape(rows, -1, 5)
    scale = sb[..., :4].flatten().view(torch.float32).reshape(rows, -1).numpy()
    zp = sb[..., 4].numpy().astype(np.int32)
    if el.bits == 4:
        c = torch.stack((p.codes & 15, p.codes >> 4), -1).reshape(rows, -1, blk + blk % 2)[..., :blk]
    else:
        c = p.codes.reshape(rows, -1, blk)
    d = (c.numpy().astype(np.int32) - zp[..., None]).astype(np.float32) * scale[..., None]
    assert_same(torch.from_numpy(d.reshape(rows, -1)[:, :n].copy()), y)
    if kind == "tiny":
        return  # subnormal scales are not exact: no error bound
    # the error: half a step at most, inside the range
    finite = torch.isfinite(y)
    step = torch.from_numpy(scale).repeat_interleave(blk, 1)[:, :n]
    assert bool(((y - x).abs() <= step / 2 * (1 + 1e-6) + 1e-45)[finite].all())


def test_asym_special_blocks():
    fmt = F.get_format("uint8asym")
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, float("nan"), 2.0], [1.0, float("inf"), 2.0], [3e38, -3e38, 0.0]])
    y = fmt.fake_quant(x)
    assert torch.equal(y[0], torch.zeros(3))
    assert torch.isnan(y[1:]).all()  # NaN, Inf, a range past float32: the block is NaN
    assert_same(F.decode(fmt.encode(x)), y)
    with pytest.raises(ValueError, match="group"):
        F.get_format("uint4asym", group=0)
    assert "uint8asym" not in F.names() and F.canonical("UINT4ASYM") == "uint4asym"
    assert fmt.bits_per_element(64) == 8 + 40 / 64


# ------------------------------------------------------------------ slow: all-MiniLM-L6-v2, real weights

MINILM_CASES = ["int8-channel", "int8-tensor", "int4-channel", "uint8-asymmetric", "dynamic", "nbits-asymmetric",
                "nbits-symmetric"]


@pytest.fixture(scope="module")
def minilm_path(tmp_path_factory) -> Path:
    from onnx_npuq.models import minilm

    encoder, tokenizer = minilm.load()  # make install puts it in (a test requirement)
    ids, mask = minilm.tokenize(tokenizer)
    path = tmp_path_factory.mktemp("minilm") / "minilm.onnx"
    b, s = torch.export.Dim("b"), torch.export.Dim("s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(encoder, (ids, mask), path, dynamo=True, input_names=["input_ids", "attention_mask"],
                          output_names=["sentence_embedding"], dynamic_shapes=({0: b, 1: s}, {0: b, 1: s}))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("kind", MINILM_CASES)
def test_minilm_real_weights(minilm_path, tmp_path, kind):
    """all-MiniLM-L6-v2 (dynamo export, opset 20, weights in external data) through each
    onnxruntime quantizer, then import-qdq + compress: every constant DQ imported, outputs
    bit-identical on real sentences, and a smaller file than the quantizer's."""
    from onnx_npuq.models import minilm

    _, tokenizer = minilm.load()
    ids, mask = minilm.tokenize(tokenizer)
    feeds = [{"input_ids": ids[i:i + 2].numpy(), "attention_mask": mask[i:i + 2].numpy()} for i in range(0, 8, 2)]
    src = _quantize(minilm_path, kind, tmp_path / f"{kind}.onnx", feeds)
    source = onnx.load(src)
    out, (imported, _), saved = import_and_compress(src, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()},
                                                    tmp_path)
    assert set(left_reasons(imported)) <= {"data is not a constant",
                                           "integer arithmetic on constant quantized weights, not a DequantizeLinear "
                                           "(rewritten in float it would not compute the same)"}
    assert functions.model_opset(out) == functions.model_opset(source)
    assert os.path.getsize(saved) < os.path.getsize(src)


@pytest.mark.slow
def test_cnn_dynamo_export(tmp_path):
    from onnxruntime.quantization import QuantFormat, quantize_static

    torch.manual_seed(3)
    path, src = tmp_path / "cnn.onnx", tmp_path / "cnn.q.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(DigitsCNN().eval(), (torch.from_numpy(_digits(2)),), path, dynamo=True,
                          input_names=["image"], output_names=["logits"], dynamic_shapes=({0: torch.export.Dim("n")},),
                          external_data=False)
    quantize_static(path, src, _Reader([{"image": _digits(16, 16 * i)} for i in range(4)]),
                    quant_format=QuantFormat.QDQ, per_channel=True)
    _, (imported, _), saved = import_and_compress(src, {"image": _digits(8, 500)}, tmp_path, {"int8sym"})
    assert set(left_reasons(imported)) <= {"data is not a constant"}
