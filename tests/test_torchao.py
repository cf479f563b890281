"""torchao's quantized models in: exact codes and scales as packed npuq weights (nn/torchao.py).

torchao is a test requirement (`make test` installs the `torchao` extra): these tests do not
skip without it.
"""
from __future__ import annotations

import copy
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

import onnx_npuq
from onnx_npuq.atc import plan_command, preflight
from onnx_npuq.nn import QuantLinear, quantize_model
from onnx_npuq.nn.torchao import NOTES, TorchaoLinear, adopt_torchao, from_torchao, torchao_layers
from onnx_npuq.ops import defs as ops
from onnx_npuq.runtime.ort import OrtSession

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import torchao  # noqa: F401  (a requirement of the test suite, not a skip)
    from torchao.prototype.mx_formats import (
        MXDynamicActivationMXWeightConfig,
        NVFP4DynamicActivationNVFP4WeightConfig,
        NVFP4WeightOnlyConfig,
    )
    from torchao.prototype.mx_formats.config import ScaleCalculationMode
    from torchao.prototype.mx_formats.mx_tensor import MXTensor
    from torchao.prototype.mx_formats.nvfp4_tensor import NVFP4Tensor, per_tensor_amax_to_scale
    from torchao.quantization import (
        Float8WeightOnlyConfig,
        Int8DynamicActivationInt8WeightConfig,
        Int8DynamicActivationIntxWeightConfig,
        Int8WeightOnlyConfig,
        IntxWeightOnlyConfig,
        MappingType,
        PerGroup,
        PerRow,
        PerTensor,
        quantize_,
    )
    from torchao.quantization.qat import Float8FakeQuantizeConfig, IntxFakeQuantizeConfig, QATConfig
    from torchao.quantization.quantize_.common import KernelPreference

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(autouse=True)
def _inductor_config_kept():
    """torchao's quantize_ sets inductor options process-wide (coordinate-descent tuning, ...):
    the tests after these, in the same worker, compile as before."""
    import torch._inductor.config as inductor

    saved = inductor.save_config()
    yield
    inductor.load_config(saved)

SOC = "Ascend910B1"
EMULATED = KernelPreference.EMULATED
K = 256  # in_features: a row of 8 groups of 32 (zero points cost 32 bits a row: 0.125 bit here)


def _mlp(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(K, 128), nn.ReLU(), nn.Linear(128, 48, bias=False)).to(dtype).eval()


def _x(dtype=torch.float32, seed=1, rows=5):
    return torch.randn(3, rows, K, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _rel(got: torch.Tensor, ref: torch.Tensor) -> float:
    return ((got.float() - ref.float()).abs().max() / ref.float().abs().max()).item()


def _preflight(proto, args, tmp_path, name="m"):
    shapes = {i.name: list(a.shape) for i, a in zip(proto.graph.input, args)}
    cmd = plan_command(proto, SOC, tmp_path / name, input_shapes=shapes, layout="default")
    report = preflight(cmd.model, SOC)
    assert report.full, report.summary()
    return report


# -- quantize_ configs: each torchao weight type ------------------------------------------------
# (config, model dtype, onnx_npuq format, torchao's bits per weight, activation format or None,
#  note key or None: the activation quantization left out)

WEIGHTS = {
    "float8-e4m3-row": (lambda: Float8WeightOnlyConfig(), torch.float32, "fp8e4m3", 8 + 32 / K, None, None),
    "float8-e5m2-tensor": (lambda: Float8WeightOnlyConfig(weight_dtype=torch.float8_e5m2, granularity=PerTensor()),
                           torch.float32, "fp8e5m2", 8, None, None),
    "int8-row": (lambda: Int8WeightOnlyConfig(), torch.float32, "int8sym", 8 + 32 / K, None, None),
    "int8-group": (lambda: Int8WeightOnlyConfig(granularity=PerGroup(64)), torch.float32, "int8sym(group=64)",
                   8 + 32 / 64, None, None),
    "int8-dynamic": (lambda: Int8DynamicActivationInt8WeightConfig(), torch.float32, "int8sym", 8 + 32 / K,
                     None, "int8"),
    "int4-sym": (lambda: IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32)),
                 torch.float32, "int4sym(group=32)", 4 + 32 / 32, None, None),
    "int4-asym": (lambda: IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32),
                                               mapping_type=MappingType.ASYMMETRIC),
                  torch.float32, "int4sym", 4 + (32 + 8) / 32, None, None),
    "int4-asym-bf16": (lambda: IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32),
                                                    mapping_type=MappingType.ASYMMETRIC),
                       torch.bfloat16, "int4sym", 4 + (32 + 8) / 32, None, None),
    "int8-act-int4": (lambda: Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4),
                      torch.float32, "int4sym(group=32)", 4 + 32 / 32, None, "int8_asym"),
    "mxfp8": (lambda: MXDynamicActivationMXWeightConfig(kernel_preference=EMULATED), torch.bfloat16,
              "mxfp8e4m3(rounding=even,scale_rule=rceil)", 8 + 8 / 32, "mxfp8e4m3", None),
    "mxfp8e5m2-floor": (lambda: MXDynamicActivationMXWeightConfig(
        activation_dtype=torch.float8_e5m2, weight_dtype=torch.float8_e5m2, kernel_preference=EMULATED,
        scaling_mode=ScaleCalculationMode.FLOOR), torch.bfloat16, "mxfp8e5m2(rounding=even)", 8 + 8 / 32,
        "mxfp8e5m2", None),
    "mxfp4": (lambda: MXDynamicActivationMXWeightConfig(
        activation_dtype=torch.float4_e2m1fn_x2, weight_dtype=torch.float4_e2m1fn_x2, kernel_preference=EMULATED),
        torch.bfloat16, "mxfp4(rounding=even,scale_rule=rceil)", 4 + 8 / 32, "mxfp4", None),
    "nvfp4": (lambda: NVFP4WeightOnlyConfig(), torch.bfloat16, "nvfp4", 4 + 8 / 16, None, None),
    "nvf4": (lambda: NVFP4WeightOnlyConfig(use_dynamic_per_tensor_scale=False), torch.bfloat16, "nvf4",
             4 + 8 / 16, None, None),
}


def _model_weight(w: torch.Tensor) -> torch.Tensor:
    """The weight torchao's forward multiplies by: dequantized in the model's dtype."""
    if type(w).__name__ == "IntxUnpackedToInt8Tensor":
        return w.dequantize()
    return w.dequantize(w.dtype)


def _torchao_reference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the torchao model computes, in float32 from torchao's own parts: the weights its
    forward uses and, for MX, its own activation quantization (MXTensor.to_mx)."""
    y = x.float()
    for m in model:
        if not isinstance(m, nn.Linear):
            y = m(y)
            continue
        w = m.weight
        k = getattr(w, "act_quant_kwargs", None)
        if type(w).__name__ == "MXTensor" and k is not None:
            y = MXTensor.to_mx(y, k.elem_dtype, k.block_size, scaling_mode=k.scaling_mode).dequantize(torch.float32)
        y = nn.functional.linear(y, _model_weight(w).float(), None if m.bias is None else m.bias.float())
    return y


@pytest.mark.parametrize("case", list(WEIGHTS))
def test_torchao_weights_export_exactly(case, tmp_path):
    config, dtype, fmt, bits, act, note = WEIGHTS[case]
    model = _mlp(dtype)
    quantize_(model, config())
    original = [m.weight for m in model if isinstance(m, nn.Linear)]
    adopted = adopt_torchao(model)

    # the user's model is untouched; untouched modules are shared
    assert adopted is not model and adopted[1] is model[1]
    assert [m.weight for m in model if isinstance(m, nn.Linear)] == original
    assert all(type(m) is nn.Linear for m in model if isinstance(m, nn.Linear))

    for i in (0, 2):
        q, w = adopted[i], model[i].weight
        assert isinstance(q, TorchaoLinear) and isinstance(q, QuantLinear)
        # the exact codes and scales: float32 dequantization identical to torchao's
        if type(w).__name__ == "IntxUnpackedToInt8Tensor":  # its dequantize() is in its dtype only
            assert torch.equal(q.dequantized_weight(), w.dequantize())
        else:
            assert torch.equal(q.dequantized_weight(torch.float32), w.dequantize(torch.float32))
        assert torch.equal(q.dequantized_weight(), _model_weight(w))
        assert str(onnx_npuq.nn.spec.spec_str(q.weight_format)) == fmt
        assert (q.act_format is None) == (act is None)
        if act:
            assert q.act_format.name == act and q.act_format.options.get("rounding") == "even"
        # stored bits within 5% of torchao's (element + scale (+ zero point) bits)
        assert q.bits_per_weight <= 1.05 * bits, (q.bits_per_weight, bits)
    if case == "int8-row":
        assert (model[0].weight.qdata == -128).any()  # torchao's range, beyond int8sym's own encode
    if case == "int4-sym":
        assert (model[0].weight.qdata == -8).any()

    rows = adopted.npuq_report.layers
    assert [r["name"] for r in rows] == ["0", "2"] and not adopted.npuq_report.left_float
    assert all(r["source"].startswith("torchao ") and r["format"] == fmt for r in rows)
    assert ("note" in rows[0]) == (note is not None)
    if note:
        assert NOTES[note] in rows[0]["note"]

    x = _x(dtype)
    proto = onnx_npuq.export(adopted, (x,), tmp_path / "m.onnx")
    _preflight(proto, (x,), tmp_path)
    kinds = {n.op_type for n in proto.graph.node}
    assert "Dequantize" in kinds and ("QuantDequant" in kinds) == (act is not None)
    with torch.no_grad():
        y_torchao = model(x)
        y_ours = adopted(x)
    if dtype == torch.float32:
        (y_ort,) = OrtSession(proto).run(x)
        if note is None:
            assert _rel(y_ort, y_torchao) < 1e-5
        else:  # weight-only: what torchao computes without its activation quantization
            assert _rel(y_ort, _torchao_reference(model, x)) < 1e-5
            assert _rel(y_ort, y_torchao) > 1e-4
        assert _rel(y_ours, y_torchao if note is None else y_ort) < 1e-5
    else:
        # onnxruntime has no bfloat16 MatMul on CPU: the same model computing in float32 (its
        # weights still the bf16 values) in onnxruntime against torchao's parts in float32;
        # then torchao's bf16 model layer by layer (a bf16 rounding of the first layer's output
        # moves the second layer's activation codes): within bf16 rounding of each matmul
        xf = x.float()
        proto32 = onnx_npuq.export(copy.deepcopy(adopted).float(), (xf,), tmp_path / "m32.onnx")
        (y_ort,) = OrtSession(proto32).run(xf)
        assert _rel(y_ort, _torchao_reference(model, xf)) < 1e-5
        with torch.no_grad():
            h = model[1](model[0](x))
            assert y_ours.dtype == dtype and _rel(adopted[0](x), model[0](x)) < 2**-7
            assert _rel(adopted[2](h), model[2](h)) < 2**-7


def test_nvfp4_unswizzled_and_padded_scales(tmp_path):
    """NVFP4Tensor / MXTensor built directly: scales not swizzled, and swizzled with rows and
    scale columns that the 128x4 tiles pad."""
    torch.manual_seed(3)
    w = torch.randn(48, 96) * torch.logspace(-2, 2, 48)[:, None]
    lin = nn.Linear(96, 48).eval()
    ts = per_tensor_amax_to_scale(w.abs().max())
    for swizzled in (False, True):
        for t in (NVFP4Tensor.to_nvfp4(w, per_tensor_scale=ts, is_swizzled_scales=swizzled),
                  NVFP4Tensor.to_nvfp4(w, is_swizzled_scales=swizzled),
                  MXTensor.to_mx(w, torch.float4_e2m1fn_x2, 32, is_swizzled_scales=swizzled),
                  MXTensor.to_mx(w, torch.float8_e4m3fn, 32, is_swizzled_scales=swizzled)):
            m = copy.deepcopy(lin)
            m.weight = nn.Parameter(t, requires_grad=False)
            q = adopt_torchao(nn.Sequential(m))[0]
            assert isinstance(q, TorchaoLinear)
            assert torch.equal(q.dequantized_weight(torch.float32), t.dequantize(torch.float32))
    x = torch.randn(4, 96)
    m = copy.deepcopy(lin)
    m.weight = nn.Parameter(NVFP4Tensor.to_nvfp4(w, per_tensor_scale=ts, is_swizzled_scales=True),
                            requires_grad=False)
    model = nn.Sequential(m)
    adopted = adopt_torchao(model)
    proto = onnx_npuq.export(adopted, (x,), tmp_path / "n.onnx")
    with torch.no_grad():
        assert _rel(OrtSession(proto).run(x)[0], model(x)) < 1e-5


@pytest.mark.parametrize("granularity", [PerRow(), PerTensor()], ids=["row", "tensor"])
def test_float8_dynamic_activations(granularity, tmp_path):
    """Float8Tensor with float8 activations (Float8DynamicActivationFloat8WeightConfig's weight,
    which quantize_ makes only on a GPU; torchao's torch._scaled_mm path runs on CPU)."""
    from torchao.float8.inference import Float8MMConfig
    from torchao.quantization import Float8Tensor
    from torchao.quantization.quantize_.workflows.float8.float8_tensor import QuantizeTensorToFloat8Kwargs

    model = _mlp()
    for i in (0, 2):
        lin = model[i]
        lin.weight = nn.Parameter(Float8Tensor.from_hp(
            lin.weight.detach(), granularity=granularity, mm_config=Float8MMConfig(),
            kernel_preference=KernelPreference.TORCH,
            act_quant_kwargs=QuantizeTensorToFloat8Kwargs(granularity=granularity,
                                                          kernel_preference=KernelPreference.TORCH)),
            requires_grad=False)
    adopted = adopt_torchao(model)
    x = _x()
    q = adopted[0]
    assert q.act_format.name == "fp8e4m3" and q.act_per_tensor == isinstance(granularity, PerTensor)
    xq = Float8Tensor.from_hp(x.reshape(-1, K), granularity=granularity).dequantize(torch.float32)
    ours = ops.quant_dequant(x.reshape(1, -1) if q.act_per_tensor else x, q.act_format).reshape(x.shape)
    assert torch.equal(ours, xq.reshape(x.shape))  # npuq::QuantDequant == torchao's float8 activation
    proto = onnx_npuq.export(adopted, (x,), tmp_path / "f8.onnx")
    _preflight(proto, (x,), tmp_path)
    assert {"Dequantize", "QuantDequant"} <= {n.op_type for n in proto.graph.node}
    with torch.no_grad():
        assert _rel(OrtSession(proto).run(x)[0], model(x)) < 1e-5


# -- QAT: torchao's fake quantizers -------------------------------------------------------------

QAT = {
    "float8-row": (lambda: QATConfig(activation_config=Float8FakeQuantizeConfig(),
                                     weight_config=Float8FakeQuantizeConfig(), step="prepare"),
                   torch.float32, "fp8e4m3", "fp8e4m3", None),
    "float8-tensor-e5m2": (lambda: QATConfig(
        activation_config=Float8FakeQuantizeConfig(dtype=torch.float8_e5m2, granularity=PerTensor()),
        weight_config=Float8FakeQuantizeConfig(granularity=PerTensor()), step="prepare"),
        torch.float32, "fp8e4m3", "fp8e5m2", None),
    "float8-bf16": (lambda: QATConfig(activation_config=Float8FakeQuantizeConfig(),
                                      weight_config=Float8FakeQuantizeConfig(), step="prepare"),
                    torch.bfloat16, "fp8e4m3", None, "float8_bf16"),
    "intx": (lambda: QATConfig(activation_config=IntxFakeQuantizeConfig(torch.int8, "per_token", is_symmetric=False),
                               weight_config=IntxFakeQuantizeConfig(torch.int4, group_size=32), step="prepare"),
             torch.float32, "int4sym(group=32)", None, "int8_asym"),
    "intx-int8-channel": (lambda: QATConfig(weight_config=IntxFakeQuantizeConfig(torch.int8, "per_channel"),
                                            step="prepare"), torch.float32, "int8sym", None, None),
    "mxfp8": (lambda: QATConfig(MXDynamicActivationMXWeightConfig(kernel_preference=EMULATED), step="prepare"),
              torch.bfloat16, "mxfp8e4m3(rounding=even,scale_rule=rceil)", "mxfp8e4m3", None),
    "mxfp4-floor": (lambda: QATConfig(MXDynamicActivationMXWeightConfig(
        activation_dtype=torch.float4_e2m1fn_x2, weight_dtype=torch.float4_e2m1fn_x2, kernel_preference=EMULATED,
        scaling_mode=ScaleCalculationMode.FLOOR), step="prepare"),
        torch.bfloat16, "mxfp4(rounding=even)", "mxfp4", None),
    "nvfp4": (lambda: QATConfig(NVFP4DynamicActivationNVFP4WeightConfig(), step="prepare"),
              torch.bfloat16, "nvfp4", None, "nvfp4"),
}


def _fake_quant_refs(m: nn.Module, x: torch.Tensor):
    """torchao's own fake-quantized weight and input of a QAT linear (None: not fake-quantized)."""
    kind = type(m).__name__
    w = m.weight.detach()
    if kind == "FakeQuantizedLinear":
        afq = m.activation_fake_quantizer
        return m.weight_fake_quantizer(w), None if afq is None else afq(x)
    if kind == "MXFakeQuantizedLinear":
        wc, ac = m.weight_config, m.activation_config
        wq = MXTensor.to_mx(w, wc.dtype, wc.block_size, scaling_mode=wc.scaling_mode).dequantize(w.dtype)
        xq = MXTensor.to_mx(x.reshape(-1, x.shape[-1]), ac.dtype, ac.block_size, scaling_mode=ac.scaling_mode)
        return wq, xq.dequantize(x.dtype).reshape(x.shape)
    ts = per_tensor_amax_to_scale(w.abs().max())
    return NVFP4Tensor.to_nvfp4(w, per_tensor_scale=ts).dequantize(w.dtype), None


@pytest.mark.parametrize("case", list(QAT))
def test_torchao_qat_fake_quantizers(case, tmp_path):
    config, dtype, w_fmt, a_fmt, note = QAT[case]
    model = _mlp(dtype)
    quantize_(model, config())
    assert len(torchao_layers(model)) == 2
    adopted = adopt_torchao(model)
    x = _x(dtype)
    for i in (0, 2):
        q, m = adopted[i], model[i]
        assert isinstance(q, TorchaoLinear) and onnx_npuq.nn.spec.spec_str(q.weight_format) == w_fmt
        xi = x if i == 0 else torch.relu(adopted[0](x)).detach()
        w_ref, x_ref = _fake_quant_refs(m, xi)
        # the stored weight is the fake quantizer's output, bit for bit
        assert torch.equal(q.dequantized_weight(), w_ref)
        if a_fmt is None:
            assert q.act_format is None and (note is None) == (q.note is None)
            continue
        assert q.act_format.name == a_fmt
        got = (ops.quant_dequant(xi.reshape(1, -1), q.act_format).reshape(xi.shape) if q.act_per_tensor
               else ops.quant_dequant(xi, q.act_format))
        assert torch.equal(got, x_ref)  # npuq::QuantDequant == torchao's fake quantizer
    rows = adopted.npuq_report.layers
    assert ("note" in rows[0]) == (note is not None)
    if note:
        assert NOTES[note].split(":")[0].format(dtype="bfloat16") in rows[0]["note"]

    with torch.no_grad():
        y_ours = adopted(x)
        if case != "nvfp4":  # torchao's NVFP4 QAT matmul needs a Blackwell GPU
            y_torchao = model(x)
            assert _rel(y_ours, y_torchao) == 0.0 if note is None else _rel(y_ours, y_torchao) > 0
    if dtype == torch.float32:
        proto = onnx_npuq.export(adopted, (x,), tmp_path / "q.onnx")
        _preflight(proto, (x,), tmp_path)
        assert {"Dequantize", "QuantDequant"} <= {n.op_type for n in proto.graph.node} or a_fmt is None
        (y_ort,) = OrtSession(proto).run(x)
        assert _rel(y_ort, y_ours) < 1e-5


def test_qat_without_an_exact_format_is_left_as_it_is():
    """A fake quantizer onnx_npuq has no format for stays, reported with the reason."""
    from torchao.quantization.qat.fake_quantize_config import Int4WeightFakeQuantizeConfig

    model = _mlp()
    quantize_(model, QATConfig(weight_config=Int4WeightFakeQuantizeConfig(group_size=32,
                                                                         activation_dtype=torch.bfloat16),
                               step="prepare"))
    with pytest.warns(UserWarning, match="torchao layers not adopted exactly"):
        adopted = adopt_torchao(model)
    assert type(adopted[0]) is type(model[0])
    assert [r["name"] for r in adopted.npuq_report.left_float] == ["0", "2"]
    assert "Int4WeightFakeQuantizer" in adopted.npuq_report.left_float[0]["reason"]


# -- quantize_model, adopt_torchao, no torchao ---------------------------------------------------

def test_quantize_model_keeps_torchao_layers_and_reports_them():
    model = _mlp()
    quantize_(model, Int8WeightOnlyConfig(), filter_fn=lambda m, name: name == "0")
    w = model[0].weight
    with torch.no_grad():
        ref = nn.functional.linear(_x(), w.dequantize(), model[0].bias)
    out = quantize_model(model, weights="mxfp4")
    assert out is model and isinstance(model[0], TorchaoLinear) and isinstance(model[2], QuantLinear)
    assert type(model[2]) is QuantLinear and model[2].weight_format.name == "mxfp4"
    layers = {r["name"]: r for r in model.npuq_report.layers}
    assert layers["0"]["format"] == "int8sym" and layers["0"]["source"] == "torchao Int8Tensor"
    assert layers["2"]["format"] == "mxfp4" and "source" not in layers["2"]
    assert "from torchao Int8Tensor" in str(model.npuq_report)
    with torch.no_grad():
        assert torch.equal(model[0](_x()), ref)


def test_adopt_torchao_is_the_model_itself_without_torchao_layers():
    model = _mlp()
    assert adopt_torchao(model) is model
    assert from_torchao(model).layers == [] and torchao_layers(model) == []
    nested = nn.Sequential(nn.Sequential(_mlp()), _mlp(seed=2))
    quantize_(nested, Float8WeightOnlyConfig(), filter_fn=lambda m, name: name == "0.0.2")
    adopted = adopt_torchao(nested)
    assert adopted[1] is nested[1] and adopted[0][0][0] is nested[0][0][0]
    assert adopted[0] is not nested[0] and adopted[0][0] is not nested[0][0]
    assert isinstance(adopted[0][0][2], TorchaoLinear) and type(nested[0][0][2]) is nn.Linear
    lin = nn.Linear(64, 32)  # the model is one torchao Linear
    quantize_(lin, Int8WeightOnlyConfig())
    q = adopt_torchao(lin)
    assert isinstance(q, TorchaoLinear) and q.npuq_report.layers[0]["name"] == ""
    assert type(lin.weight).__name__ == "Int8Tensor"


def test_without_torchao_nothing_changes():
    """No torchao imported (so no torchao tensor can exist): nothing imports it, nothing changes."""
    code = (
        "import sys, torch\n"
        "from torch import nn\n"
        "from onnx_npuq.nn import quantize_model, adopt_torchao, from_torchao\n"
        "m = nn.Sequential(nn.Linear(64, 32))\n"
        "assert adopt_torchao(m) is m and from_torchao(m).layers == []\n"
        "quantize_model(m, weights='int4sym')\n"
        "assert 'source' not in m.npuq_report.layers[0]\n"
        "assert 'torchao' not in sys.modules, 'torchao imported'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.parametrize("config", [Float8WeightOnlyConfig, NVFP4WeightOnlyConfig], ids=["float8", "nvfp4"])
def test_export_takes_the_torchao_model_itself(config, tmp_path):
    """The symptom: torch's export wrote Float8 weights as FLOAT8 initializers + Cast (which ATC
    cannot parse) and failed on NVFP4. onnx_npuq.export adopts torchao's weights by itself."""
    dtype = torch.bfloat16 if config is NVFP4WeightOnlyConfig else torch.float32
    model = _mlp(dtype)
    quantize_(model, config())
    x = _x(dtype)
    proto = onnx_npuq.export(model, (x,), tmp_path / "m.onnx")
    assert not isinstance(model[0], QuantLinear)  # the user's model as it was
    types = {t.data_type for t in proto.graph.initializer}
    assert not types & {17, 18, 19, 20, 23}  # no FLOAT8 / FLOAT4 initializer
    assert [n.op_type for n in proto.graph.node].count("Dequantize") == 2
    _preflight(proto, (x,), tmp_path)
    if dtype == torch.float32:
        (y_ort,) = OrtSession(proto).run(x)
        with torch.no_grad():
            assert _rel(y_ort, model(x)) < 1e-5
