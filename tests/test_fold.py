"""fold-weights: packed weights -> plain constants, with no onnxruntime output bit changed, for
every format; what stays packed per SoC; external data; the rewrite / convert options."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_same
from onnx_npuq import formats as F
from onnx_npuq import io as npuq_io
from onnx_npuq.atc.soc import SOC_VERSIONS, native_weight
from onnx_npuq.cli import main
from onnx_npuq.exporter import save, to_onnx
from onnx_npuq.io import data_dir_of
from onnx_npuq.nn import quantize_model
from onnx_npuq.ops import defs, functions
from onnx_npuq.passes import PassError, pipeline, random_inputs, run_passes
from onnx_npuq.passes.fold import FOLDED_PREFIX, folded_from
from onnx_npuq.runtime import OrtSession
from small_models import quiet

FP16, FP32, BF16 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT, onnx.TensorProto.BFLOAT16


@pytest.fixture(scope="module")
def exported() -> onnx.ModelProto:
    """A small conv net and an MLP exported by torch as one model: a conv per format, then a
    Linear per format (formats.names()), hif8 activations on the first conv; compressed
    (packed) by the exporter. (One export: torch's is what costs here.)"""
    convs = [m for name in F.names() for m in (torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU())]
    linears = [m for i, _ in enumerate(F.names()) for m in (torch.nn.Linear(16 if i else 4, 16), torch.nn.ReLU())]
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Sequential(*convs), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Sequential(*linears))
    rules = [{"match": f"0.{2 * i}", "weights": name} for i, name in enumerate(F.names())]
    rules[0]["activations"] = "hif8"
    rules += [{"match": f"3.{2 * i}", "weights": name} for i, name in enumerate(F.names())]
    quantize_model(net, recipe={"rules": rules})
    return quiet(to_onnx, net, (torch.randn(2, 4, 3, 3),))  # (random_inputs' open dims are 3)


def _qd_model(layers, dtype=torch.float32, k: int = 32) -> onnx.ModelProto:
    """x (2, k) -> MatMul by QuantDequant(w) per layer, w (k, k) seeded: (format, options) per
    layer; the QuantDequant on constants `compress` packs (as the exporter's do)."""
    g = torch.Generator().manual_seed(0)
    kind = {torch.float32: FP32, torch.float16: FP16, torch.bfloat16: BF16}[dtype]
    inits, nodes, h = [], [], "x"
    for i, (name, opts) in enumerate(layers):
        w = (torch.randn(k, k, generator=g) / 8).to(dtype)
        raw = w.contiguous().view(torch.uint8 if dtype == torch.float32 else torch.int16).numpy().tobytes()
        inits.append(onnx.helper.make_tensor(f"w{i}", kind, [k, k], raw, raw=True))
        attrs = defs.format_attrs(F.get_format(name, **opts))
        nodes += [onnx.helper.make_node("QuantDequant", [f"w{i}"], [f"wq{i}"], name=f"qd{i}", domain="npuq", **attrs),
                  onnx.helper.make_node("MatMul", [h, f"wq{i}"], [f"h{i}"], name=f"mm{i}")]
        h = f"h{i}"
    return _compressed(nodes, inits, ("x", kind, [2, k]), (h, kind, [2, k]))


def _compressed(nodes, inits, x, y) -> onnx.ModelProto:
    """The model of `nodes` (input x, output y: (name, type, shape)) after `compress`."""
    graph = onnx.helper.make_graph(nodes, "g", [onnx.helper.make_tensor_value_info(*x)],
                                   [onnx.helper.make_tensor_value_info(*y)], inits)
    m = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 21),
                                                      onnx.helper.make_opsetid("npuq", 1)])
    m.ir_version = 10
    return run_passes(functions.attach(m), ["compress"], verify=False)[0]


def _outputs(model: onnx.ModelProto, feeds, data_dir=None) -> list[torch.Tensor]:
    return OrtSession(model, data_dir=data_dir).run(*feeds)


def _same_outputs(before, after, data_dir=None, after_dir=None) -> None:
    feeds = random_inputs(before, seed=3)
    for a, b in zip(_outputs(before, feeds, data_dir), _outputs(after, feeds, after_dir or data_dir), strict=True):
        assert_same(a, b)
        assert np.array_equal(a.float().numpy(), b.float().numpy(), equal_nan=True)


def _ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _decoded(model: onnx.ModelProto) -> dict[str, tuple[str, torch.Tensor]]:
    """Dequantize output -> (format, formats' decode of its packed constants: the test's own)."""
    inits = {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
    out = {}
    for n in model.graph.node:
        if n.op_type == "Dequantize":
            a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
            codes, scales = inits[n.input[0]], inits[n.input[1]]
            ts = inits[n.input[2]] if len(n.input) > 2 and n.input[2] else None
            fmt = a["format"].decode()
            p = F.Packed(format=fmt, codes=codes, scales=scales, shape=(codes.shape[0], a["length"]), axis=1,
                         dtype=torch.float32, block=a["block"], tensor_scale=ts)
            out[n.output[0]] = fmt, F.decode(p)
    return out


def _folded(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    return [t for t in model.graph.initializer if folded_from(t) is not None]


def _values(t: onnx.TensorProto) -> torch.Tensor:
    if t.data_type == BF16:
        return torch.frombuffer(bytearray(t.raw_data), dtype=torch.bfloat16).reshape(tuple(t.dims))
    return torch.from_numpy(onnx.numpy_helper.to_array(t).copy())


def test_fold_changes_no_output_bit_for_every_format(exported):
    """Every format (and configuration) of formats.names() in an exported conv net: no
    onnxruntime output bit changes; each folded constant is formats' decode, as float16
    exactly when every value is a float16 (then Cast back to float32), marked with its format."""
    before = exported
    decoded = _decoded(before)
    assert sorted({f for f, _ in decoded.values()}) == sorted(F.names())
    assert len(decoded) == 2 * len(F.names())
    after, (report,) = run_passes(before, ["fold-weights"], fold_native=True)  # verified exact as well
    assert "Dequantize" not in _ops(after) and report.mismatches == 0
    _same_outputs(before, after)
    folded = {t.name: t for t in _folded(after)}
    assert len(folded) == len(decoded)
    # each layer's weight: its Dequantize (through the Reshape of a conv weight) before, the
    # folded constant (through its Cast, when float16) after
    produced = {o: n for n in before.graph.node for o in n.output}
    cast = {n.output[0]: n.input[0] for n in after.graph.node if n.op_type == "Cast" and n.input[0] in folded}
    layers = [n for n in after.graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(layers) == len(decoded)
    notes = "\n".join(report.notes)
    for layer, old in zip(layers, [n for n in before.graph.node if n.op_type in ("Conv", "Gemm")], strict=True):
        src = old.input[1]
        while src not in decoded:
            assert produced[src].op_type == "Reshape"
            src = produced[src].input[0]
        fmt, value = decoded[src]
        t = folded[cast.get(layer.input[1], layer.input[1])]
        assert t.doc_string == FOLDED_PREFIX + fmt
        exact = torch.equal(value.half().float().nan_to_num(), value.nan_to_num())
        assert (t.data_type == FP16) == exact == (layer.input[1] in cast), layer.name
        assert_same(_values(t).float().reshape(-1), value.reshape(-1))
        assert f"{t.name} ({layer.name}): {fmt} -> {'float16 + Cast' if exact else 'float32'}" in notes
    assert "left 1 QuantDequant on activations" in "\n".join(report.notes)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fold_keeps_the_models_dtype(dtype):
    """A float16 / bfloat16 model's weights fold to its own dtype (the Cast the graph had goes
    into the constant)."""
    before = _qd_model([("mxfp4", {}), ("nvfp4", {}), ("hif8", {}), ("int4sym", {})], dtype)
    verify = dtype == torch.float16  # onnxruntime has no bfloat16 MatMul on CPU
    after, _ = run_passes(before, ["fold-weights"], fold_native=True, verify=verify)
    kind = FP16 if dtype == torch.float16 else BF16
    folded = _folded(after)
    assert [t.data_type for t in folded] == [kind] * 4
    assert "Cast" not in _ops(after) and "Dequantize" not in _ops(after)
    for t, (_, value) in zip(folded, _decoded(before).values(), strict=True):
        assert_same(_values(t), value.to(dtype))
    if verify:
        _same_outputs(before, after)


def test_fold_stores_float32_where_float16_cannot_hold_a_value():
    before = _qd_model([("nvfp4", {}), ("hif8", {})])  # nvfp4's two-level scale: values between float16's
    (_, nv), (_, h8) = _decoded(before).values()
    assert not torch.equal(nv.half().float(), nv) and torch.equal(h8.half().float(), h8)
    after, (report,) = run_passes(before, ["fold-weights"])
    assert [t.data_type for t in _folded(after)] == [FP32, FP16]
    text = "\n".join(report.notes)
    assert "nvfp4 -> float32" in text and "hif8 -> float16 + Cast to float32" in text
    _same_outputs(before, after)


@pytest.mark.parametrize("soc, fmt, group, folded", [
    ("Ascend910B1", "int8sym", None, False),
    ("Ascend910B1", "int4sym", 16, False),
    ("Ascend310P3", "int8sym", None, False),
    ("Ascend310P3", "int8sym", 16, True),  # 310P: weight-only matmul per channel only
    ("Ascend310P3", "int4sym", None, True),  # 310P: int8 weights only
    ("Ascend910A", "int8sym", None, True),
    ("Ascend910B1", "mxfp4", None, True),
    (None, "int4sym", None, False),
    (None, "hif4", None, True),
])
def test_fold_keeps_what_the_soc_computes_natively(soc, fmt, group, folded):
    before = _qd_model([(fmt, {"group": group} if group else {})] * 2)
    after, (report,) = run_passes(before, ["fold-weights"], soc=soc)
    text = "\n".join(report.notes)
    assert ("Dequantize" not in _ops(after)) == folded and bool(_folded(after)) == folded
    if not folded:
        assert _ops(after).count("Dequantize") == 2 and text.count(f"packed: {fmt}") == 2 and "native on" in text
    assert native_weight(SOC_VERSIONS[soc] if soc else None, fmt, bool(group)) != folded


def test_fold_says_why_an_unfolded_verification_can_differ(monkeypatch):
    """Past VERIFY_FOLDING_MAX_BYTES the pipeline verifies without onnxruntime's constant
    folding, where its CPU runs the before-model's Cast to float16 unrounded: the error says so."""
    monkeypatch.setattr(pipeline, "VERIFY_FOLDING_MAX_BYTES", 0)
    before = _qd_model([("mxfp4", {}), ("nvfp4", {}), ("hif8", {}), ("int4sym", {})], torch.float16)
    with pytest.raises(PassError, match="verified without constant folding"):
        run_passes(before, ["fold-weights"])
    after, _ = run_passes(before, ["fold-weights"], verify=False)
    monkeypatch.undo()
    _same_outputs(before, after)  # with folding (onnxruntime's default): the same bits


def test_fold_notes_quant_dequant_on_constants():
    """A QuantDequant on a constant (not compressed yet) is left, and said to need compress."""
    m = _qd_model([("hif8", {})])
    m.graph.initializer.append(onnx.numpy_helper.from_array(np.ones((4, 32), np.float32), "c"))
    m.graph.node.append(onnx.helper.make_node("QuantDequant", ["c"], ["cq"], domain="npuq",
                                              **defs.format_attrs(F.get_format("hif8"))))
    m.graph.output.append(onnx.helper.make_tensor_value_info("cq", FP32, [4, 32]))
    _, (report,) = run_passes(functions.attach(m), ["fold-weights"], verify=False)
    assert ("left 0 QuantDequant on activations (computed per input, not weights) and 1 on constants (run "
            "compress first)") in report.notes


def test_fold_refuses_an_atc_layout_model():
    model, _ = run_passes(_qd_model([("mxfp4", {})]), ["atc"], verify=False)
    with pytest.raises(PassError, match="ATC layout"):
        run_passes(model, ["fold-weights"])


@settings(max_examples=10, deadline=None)
@given(rows=st.integers(1, 6), k=st.integers(1, 80), seed=st.integers(0, 2**16), spread=st.integers(0, 24),
       name=st.sampled_from(["mxfp4", "hif8", "hif4", "nvfp4", "fp8e4m3", "int4sym"]))
def test_fold_property(rows, k, seed, spread, name):
    """Random weights (rows scaled 2^-spread..2^spread), shapes and formats: the folded
    constant is formats' decode bit for bit, and onnxruntime's outputs do not change."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.exp2(torch.randint(-spread, spread + 1, (rows, 1), generator=g).float())
    w = torch.randn(rows, k, generator=g) * scale
    attrs = defs.format_attrs(F.get_format(name))
    nodes = [onnx.helper.make_node("QuantDequant", ["w"], ["wq"], domain="npuq", **attrs),
             onnx.helper.make_node("Gemm", ["x", "wq"], ["y"], transB=1)]
    before = _compressed(nodes, [onnx.numpy_helper.from_array(w.numpy(), "w")], ("x", FP32, [3, k]),
                         ("y", FP32, [3, rows]))
    after, (report,) = run_passes(before, ["fold-weights"], fold_native=True)
    assert report.mismatches == 0 and "Dequantize" not in _ops(after)
    (t,) = _folded(after)
    ((_, value),) = _decoded(before).values()
    assert_same(_values(t).float().reshape(value.shape), value)
    _same_outputs(before, after)


def test_fold_with_external_data(tmp_path, monkeypatch):
    """A model with external data: fold reads each packed weight from the file once (nothing
    else), the folded constants go to the output's data file with their mark, and onnxruntime's
    outputs do not change."""
    (tmp_path / "a").mkdir()
    src, dst = tmp_path / "a" / "m.onnx", tmp_path / "m.fold.onnx"
    save(_qd_model([("hif8", {}), ("mxfp4", {})], k=256), src, external_data=True)
    disk = onnx.load(src, load_external_data=False)
    external = {t.name: npuq_io.tensor_nbytes(t) for t in disk.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL}
    assert external["wq0.codes"] == 256 * 256  # hif8: a byte per element, past LARGE_TENSOR_BYTES
    seen = []
    original = npuq_io.external_data.read_external_range
    monkeypatch.setattr(npuq_io.external_data, "read_external_range", lambda real, o, n: seen.append(n) or original(real, o, n))
    out, _ = run_passes(src, ["fold-weights"], verify=False)
    large = sorted(n for n in external.values() if n >= npuq_io.LARGE_TENSOR_BYTES)
    assert sorted(seen) == sorted(external.values()) and large == [256 * 256]  # each once
    save(out, dst, external_data=True, data_dir=data_dir_of(src))
    back = onnx.load(dst, load_external_data=False)
    big = {t.name: t for t in back.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL}
    assert {folded_from(t) for t in big.values()} == {"hif8", "mxfp4"} and len(big) == 2
    assert all(t.data_type == FP16 for t in big.values())
    _same_outputs(disk, back, data_dir_of(src), data_dir_of(dst))


def test_cli_rewrite_fold(tmp_path):
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(_qd_model([("int4sym", {}), ("int8sym", {})]), src)
    res = CliRunner().invoke(main, ["rewrite", str(src), "-o", str(dst), "-p", "fold-weights", "--soc", "Ascend310P3"])
    assert res.exit_code == 0, res.output
    assert "0 mismatches" in res.output and "(mm0): int4sym -> float" in res.output
    assert "kept" in res.output and "int8sym is native on Ascend310P3" in res.output
    assert [folded_from(t) for t in _folded(onnx.load(dst))] == ["int4sym"]
    res = CliRunner().invoke(main, ["rewrite", str(src), "-o", str(dst), "-p", "compress,fold-weights",
                                    "--soc", "Ascend910X"])
    assert res.exit_code == 2 and "soc_version 'Ascend910X'" in res.output


@pytest.mark.parametrize("mode, folded", [("auto", 2), ("packed", 0), ("fold", 4)])
def test_cli_convert_weights(tmp_path, mode, folded):
    """--weights: auto folds the MX layers and keeps the int8 ones packed (native on 910B once
    fused); fold folds all; packed none. It says per layer which."""
    src, stem = tmp_path / "m.onnx", tmp_path / "out" / "m"
    onnx.save(_qd_model([("int8sym", {}), ("mxfp4", {}), ("int8sym", {}), ("hif4", {})]), src)
    res = CliRunner().invoke(main, ["convert", str(src), "--soc", "Ascend910B1", "-o", str(stem),
                                    "--weights", mode, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["weights"]["mode"] == mode
    notes = data["weights"]["notes"]
    laid = onnx.load(f"{stem}.atc.onnx")
    assert len(_folded(laid)) == folded
    assert _ops(laid).count("Dequantize") == 4 - folded
    if mode == "packed":
        assert len(notes) == 4 and all("packed, onnx_npuq's Dequantize kernel decodes it" in n for n in notes)
    else:
        assert sum(" -> float" in n for n in notes) == folded
        assert sum(n.startswith("kept") for n in notes) == 4 - folded
    if mode == "auto":
        assert {folded_from(t) for t in _folded(laid)} == {"mxfp4", "hif4"}


def test_cli_convert_folds_an_atc_layout_model(tmp_path):
    src, stem = tmp_path / "m.atc.onnx", tmp_path / "out" / "m"
    laid, _ = run_passes(_qd_model([("hif8", {})]), ["atc"], verify=False, layout="domain", opset=17)
    onnx.save(laid, src)
    res = CliRunner().invoke(main, ["convert", str(src), "--soc", "Ascend310P3", "-o", str(stem)])
    assert res.exit_code == 0, res.output
    again = onnx.load(f"{stem}.atc.onnx")
    meta = {p.key: p.value for p in again.metadata_props}
    assert meta["onnx_npuq.layout"] == "domain" and meta["onnx_npuq.opset"] == "17"
    assert [folded_from(t) for t in _folded(again)] == ["hif8"] and "Dequantize" not in _ops(again)
