"""W8A8 through CANN's int8 ops (issue 14 item 2): `compress, fuse-npu, atc` on an int8sym MLP
(per-token activations -> NPUDynamicQuant + QuantBatchMatMul) and on the digits CNN quantized
by onnxruntime's quantize_static (static per-tensor activations -> AMCT's AscendQuant / int8
Conv, Gemm / AscendDequant). No npuq node stays on the quantized layers, preflight finds a
parser for every node, the ATC form goes back to the portable one bit for bit, and each layer
is measured against the model before fuse-npu (layer_report)."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper as nh

from onnx_npuq import npu
from onnx_npuq.atc.layers import NATIVE, quantized_layers
from onnx_npuq.atc.preflight import preflight
from onnx_npuq.exporter import to_onnx
from onnx_npuq.nn import quantize_model
from onnx_npuq.passes import atc, run_passes
from onnx_npuq.passes.w8a8 import layer_report
from onnx_npuq.runtime import OrtSession


def _domains(model: onnx.ModelProto) -> set[str]:
    return {n.domain for n in model.graph.node}


def _init(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: nh.to_array(t) for t in model.graph.initializer}


@pytest.fixture(scope="module", params=[(4, 64), (2, 5, 64)], ids=["gemm", "matmul"])
def mlp(request):
    """A 2-layer int8sym MLP (per-token activations): a 2-D input exports its Linears as Gemm,
    a 3-D one as Transpose -> MatMul -> Add."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.ReLU(), torch.nn.Linear(96, 24))
    quantize_model(m, weights="int8sym", activations="int8sym")
    return to_onnx(m, (torch.randn(*request.param),), compress=False, dynamic=True), request.param  # fed 32 rows


def test_mlp_per_token_w8a8(mlp):
    mlp, shape = mlp
    out, reports = run_passes(mlp, ["compress", "fuse-npu", "atc"])
    assert "npuq" not in _domains(out) and _domains(out) == {""}
    ops = [n.op_type for n in out.graph.node]
    assert ops.count("NPUDynamicQuant") == 2 and ops.count("QuantBatchMatMul") == 2
    meta = {p.key: p.value for p in out.metadata_props}
    assert meta[atc.KEYS_KEY] == "ai.onnx::16::NPUDynamicQuant,ai.onnx::16::QuantBatchMatMul"
    report = preflight(out, "Ascend910B1")
    assert report.full, report.errors
    assert [(la.op, la.kind) for la in quantized_layers(out, "Ascend910B1")] == [("QuantBatchMatMul", NATIVE)] * 2
    qbmm = [n for n in out.graph.node if n.op_type == "QuantBatchMatMul"]
    init = _init(out)
    for n in qbmm:  # int8 (K, N) weights, float32 per-channel scale and bias, per-token scale last
        assert init[n.input[1]].dtype == np.int8 and init[n.input[2]].dtype == np.float32
        assert n.input[3] == "" and init[n.input[4]].dtype == np.float32 and n.input[5]
    # per layer: the activation codes move by one int8 step at most (DynamicQuant reads float16)
    feeds = [torch.randn(*shape[:-2], 32, 64)]
    rows = layer_report(mlp, out, feeds)
    assert [r["kind"] for r in rows] == ["per-token", "per-token"]
    for r in rows:
        assert r["code_step"] <= 1 and r["codes_off"] < 0.05, r
    # the fused layer is exactly npu_dynamic_quant + npu_quant_matmul (float16 output) on its input
    first = qbmm[0]
    w, s, b = (torch.from_numpy(init[i]) for i in first.input[1:5:1] if i)
    x = feeds[0]
    q, pt = npu.npu_dynamic_quant(x.reshape(-1, 64).half())
    want = npu.npu_quant_matmul(q, w, s, pertoken_scale=pt, bias=b, output_dtype=torch.float16).float()
    got = OrtSession(_expose(atc.to_portable(out), rows[0]["layer"])).run(x)[-1]
    assert torch.equal(got, want.reshape(got.shape))


def _expose(model: onnx.ModelProto, layer: str) -> onnx.ModelProto:
    """`model` with the float output of the fused layer `layer` (its Cast back) as a last output."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    cast = next(n for n in m.graph.node if n.name == f"{layer}.cast_out")
    m.graph.output.append(onnx.helper.make_empty_tensor_value_info(cast.output[0]))
    return m


# ------------------------------------------------------------------ the digits CNN, quantize_static


class _Reader:
    def __init__(self, feeds):
        self.it = iter(feeds)

    def get_next(self):
        return next(self.it, None)

    def rewind(self):
        pass


@pytest.fixture(scope="module")
def cnn_qdq(tmp_path_factory):
    """onnx_npuq.models.cnn's DigitsCNN (2 epochs), through onnxruntime's quantize_static:
    int8 per-channel weights, symmetric int8 per-tensor activations (QDQ)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from onnx_npuq.models.cnn import train_digits

    model, (xt, yt) = train_digits(epochs=2)
    d = tmp_path_factory.mktemp("w8a8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (xt[:2],), d / "cnn.onnx", dynamo=False, opset_version=17, input_names=["image"],
                          output_names=["logits"], dynamic_axes={"image": {0: "n"}})
    calib = [{"image": xt[i * 16:(i + 1) * 16].numpy()} for i in range(4)]
    quantize_static(d / "cnn.onnx", d / "cnn.q.onnx", _Reader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True})
    return d / "cnn.q.onnx", xt, yt


def test_cnn_static_w8a8_amct_form(cnn_qdq):
    path, xt, yt = cnn_qdq
    before, _ = run_passes(path, ["compress"])
    out, reports = run_passes(before, ["fuse-npu", "atc"])
    assert _domains(out) == {""}
    ops = [n.op_type for n in out.graph.node]
    assert "QuantizeLinear" not in ops and "DequantizeLinear" not in ops
    assert ops.count("AscendQuant") == ops.count("AscendAntiQuant") + 4 and ops.count("AscendDequant") == 4
    report = preflight(out, "Ascend910B1")
    assert report.full, report.errors
    assert {la.kind for la in quantized_layers(out, "Ascend910B1")} == {NATIVE}

    # msModelSlim's form: AscendQuant(scale = 1 / s, offset 0, INT8) -> Conv / Gemm on int8 weights and
    # an int32 bias -> AscendDequant(UINT64: float32 bits of s x s_w per channel)
    init, prod = _init(out), {o: n for n in out.graph.node for o in n.output}
    src = {n.name: n for n in onnx.load(path).graph.node}
    for deq in [n for n in out.graph.node if n.op_type == "AscendDequant"]:
        layer = prod[deq.input[0]]
        assert layer.op_type in ("Conv", "Gemm")
        quant = prod[layer.input[0]]
        assert quant.op_type == "AscendQuant"
        a = {x.name: onnx.helper.get_attribute_value(x) for x in quant.attribute}
        assert a["offset"] == 0.0 and a["dst_type"] == b"INT8" and a["round_mode"] == b"Round"
        w, b, d = init[layer.input[1]], init[layer.input[2]], init[deq.input[1]]
        assert w.dtype == np.int8 and b.dtype == np.int32 and d.dtype == np.uint64 and d.shape == (w.shape[
            0 if layer.op_type == "Conv" else 1],)
        assert not (d >> np.uint64(32)).any()  # shift_n and weight offset 0
        if layer.op_type == "Gemm":
            assert {x.name: x.i for x in layer.attribute} == {"transB": 0}

    # the first conv against the QDQ model's numbers: input scale s, weight scales s_w, float bias
    src = onnx.load(path)
    sinit, sprod = _init(src), {o: n for n in src.graph.node for o in n.output}
    conv = next(n for n in src.graph.node if n.op_type == "Conv")
    s_x = sinit[sprod[conv.input[0]].input[1]]
    wdq = sprod[conv.input[1]]
    s_w, b_f = sinit[wdq.input[1]], sinit[sprod[conv.input[2]].input[0]] * sinit[sprod[conv.input[2]].input[1]]
    quant = next(n for n in out.graph.node if n.op_type == "AscendQuant" and n.input[0] == "image")
    assert onnx.helper.get_attribute_value(quant.attribute[0]) == pytest.approx(float(np.float32(1 / s_x)), rel=1e-7)
    layer = next(n for n in out.graph.node if n.input and n.input[0] == quant.output[0])
    deq = next(n for n in out.graph.node if n.input and n.input[0] == layer.output[0])
    d = init[deq.input[1]]
    deq32 = (s_w * s_x).astype(np.float32)
    assert np.array_equal((d & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.float32), deq32)
    assert np.array_equal(init[layer.input[2]], np.round(b_f.astype(np.float32) / deq32).astype(np.int32))
    assert np.array_equal(init[layer.input[1]], sinit[wdq.input[0]])  # the QDQ model's int8 codes

    rows = layer_report(before, out, [xt[:64]])
    assert len(rows) == 4 and {r["kind"] for r in rows} == {"static"}
    for r in rows:  # the same int8 codes; the 19-bit deq_scale and int32 bias: about one float16 ulp
        assert r["code_step"] == 0 and r["ulp16"] <= 1.5, r
    a = OrtSession(before).run(xt)[0]
    b = OrtSession(atc.to_portable(out)).run(xt)[0]
    assert (a.argmax(1) == b.argmax(1)).float().mean() >= 0.99


def test_asymmetric_static_activations_are_kept_with_a_note(cnn_qdq, tmp_path):
    """onnxruntime's default (uint8 activations, asymmetric zero points): not AMCT's offset-0 form;
    the layers stay as they are and the notes say why."""
    from onnxruntime.quantization import QuantFormat, quantize_static

    path, xt, _ = cnn_qdq
    src = path.parent / "cnn.onnx"
    calib = [{"image": xt[i * 16:(i + 1) * 16].numpy()} for i in range(2)]
    quantize_static(src, tmp_path / "asym.onnx", _Reader(calib), quant_format=QuantFormat.QDQ, per_channel=True)
    out, (_, fused) = run_passes(tmp_path / "asym.onnx", ["compress", "fuse-npu"], verify=False)
    assert "AscendDequant" not in [n.op_type for n in out.graph.node]
    kept = [n for n in fused.notes if n.startswith("kept ") and "symmetric zero point" in n]
    assert len(kept) == 4, fused.notes
