"""npu-domain ops (onnx_npuq.ops.npu_ops): torch wrappers == onnx_npuq.npu, torch.onnx export
under the torch_npu ONNX names (shared/spec/ascend.md), and onnxruntime runs of the function
bodies against the torch outputs (integer outputs and scales bit-exact)."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper

from onnx_npuq import npu
from onnx_npuq.ops import npu_ops as N


class _Call(torch.nn.Module):
    def __init__(self, fn, kwargs=None):
        super().__init__()
        self.fn, self.kwargs = fn, kwargs or {}

    def forward(self, *args):
        return self.fn(*args, **self.kwargs)


def _export(fn, args: tuple, kwargs=None) -> onnx.ModelProto:
    """Export fn(*args, **kwargs); bfloat16 inputs become float32 graph inputs cast inside."""
    bf = [isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16 for a in args]

    def call(*xs):
        xs = [x.to(torch.bfloat16) if b else x for x, b in zip(xs, bf)]
        return fn(*xs, **(kwargs or {}))

    ins = tuple(a.float() if b else a for a, b in zip(args, bf))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(_Call(call).eval(), ins, dynamo=True, opset_version=21,
                                 custom_translation_table=N.TRANSLATIONS, verbose=False)
    model = prog.model_proto
    model.ir_version = 10
    return model


def _npu_node(model: onnx.ModelProto) -> onnx.NodeProto:
    nodes = [n for n in model.graph.node if n.domain == "npu"]
    assert len(nodes) == 1
    return nodes[0]


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _run(model: onnx.ModelProto, args: tuple):
    N.attach_functions(model)
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {}
    names = [i.name for i in sess.get_inputs()]
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    assert len(names) == len(tensors)
    for name, a in zip(names, tensors):
        feeds[name] = (a.float() if a.dtype == torch.bfloat16 else a).numpy()
    for node in model.graph.node:
        if node.domain == "npu":
            assert len(node.input) == len(N.OPS[node.op_type].inputs)
    outs = sess.run(None, feeds)
    return [torch.from_numpy(np.asarray(o)) for o in outs]


def _same(a: torch.Tensor, b: torch.Tensor):
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    if a.is_floating_point():
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    else:
        assert torch.equal(a, b)


def _cast_like(ort_out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return ort_out.to(ref.dtype) if ref.dtype == torch.bfloat16 else ort_out


# ------------------------------------------------------------------ NPUQuantize

QUANTIZE_CASES = {
    "div_qint8_axis1_zp": (True, torch.qint8, 1, "int8"),
    "div_quint8_axis0_zp": (True, torch.quint8, 0, "uint8"),
    "div_qint32_axis-1_nozp": (True, torch.qint32, -1, None),
    "mul_qint8_last_zp": (False, torch.qint8, -1, "float"),
    "mul_qint8_second_last_nozp": (False, torch.qint8, -2, None),
    "mul_int4_last_zp": (False, torch.quint4x2, -1, "float"),
}


def _quantize_args(div_mode, dtype, axis, zp_kind):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 8, 16, generator=g) * 40
    x[0, 0, :4] = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.5])
    x[1, 1, :4] = torch.tensor([1.5, 2.5, -0.5, -2.5])  # ties: RNE
    n = x.shape[axis]
    if div_mode:
        sc = torch.rand(n, generator=g) + 0.05
        if dtype == torch.qint32:
            sc = sc * 1e-9  # saturates at the int32 bounds
    else:
        sc = (torch.rand(n, generator=g) + 0.05).to(torch.bfloat16)
    zp = {
        None: None,
        "int8": torch.randint(-5, 5, (n,), generator=g, dtype=torch.int8),
        "uint8": torch.randint(0, 10, (n,), generator=g).to(torch.uint8),
        "float": (torch.randn(n, generator=g) * 3).to(torch.bfloat16),
    }[zp_kind]
    return x, sc, zp


@pytest.mark.parametrize("case", QUANTIZE_CASES)
def test_quantize(case):
    div_mode, dtype, axis, zp_kind = QUANTIZE_CASES[case]
    x, sc, zp = _quantize_args(div_mode, dtype, axis, zp_kind)
    ref = npu.npu_quantize(x, sc, zp, dtype, axis, div_mode)
    got = N.npu_quantize(x, sc, zp, dtype, axis, div_mode)
    _same(got, ref)

    args = (x, sc) if zp is None else (x, sc, zp)
    model = _export(lambda x, sc, zp=None: N.npu_quantize(x, sc, zp, dtype, axis, div_mode), args)
    node = _npu_node(model)
    assert node.op_type == "NPUQuantize"
    assert len(node.input) in (2, 3) and (zp is None or len(node.input) == 3)
    assert _attrs(node) == {"dtype": {torch.qint8: 2, torch.quint8: 4, torch.qint32: 3,
                                      torch.quint4x2: 29}[dtype],
                            "axis": axis, "div_mode": int(div_mode)}
    _same(_run(model, args)[0], ref)


# ------------------------------------------------------------------ NPUDynamicQuant

DYNAMIC_CASES = {
    "fp16": (torch.float16, False, False, None),
    "bf16_smooth": (torch.bfloat16, True, False, None),
    "fp16_smooth_groups": (torch.float16, True, True, None),
    "fp16_int4": (torch.float16, False, False, torch.quint4x2),
}


@pytest.mark.parametrize("case", DYNAMIC_CASES)
def test_dynamic_quant(case):
    dt, smooth, groups, dst = DYNAMIC_CASES[case]
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(2, 5, 32, generator=g) * 3).to(dt)
    x[0, 0] = 0  # all-zero row: scale 0, y 0
    x[0, 1, 3] = float("nan")  # NaN row: scale NaN
    x[0, 2, 5] = float("inf")
    kw = {}
    if smooth:
        kw["smooth_scales"] = ((torch.rand(3, 32, generator=g) + 0.5) if groups
                               else (torch.rand(32, generator=g) + 0.5)).to(dt)
    if groups:
        kw["group_index"] = torch.tensor([4, 4, 10], dtype=torch.int32)
    if dst is not None:
        kw["dst_type"] = dst
    ref = npu.npu_dynamic_quant(x, **kw)
    got = N.npu_dynamic_quant(x, **kw)
    for a, b in zip(got, ref):
        _same(a, b)

    names = [k for k in ("smooth_scales", "group_index") if k in kw]
    args = (x, *[kw[k] for k in names])

    def fn(x, *rest):
        return N.npu_dynamic_quant(x, **dict(zip(names, rest)), dst_type=dst)

    model = _export(fn, args)
    node = _npu_node(model)
    assert node.op_type == "NPUDynamicQuant" and len(node.output) == 2
    assert 1 <= len(node.input) <= 3 and (not groups or len(node.input) == 3)
    if smooth and not groups:
        assert len(node.input) < 3 or node.input[2] == ""
    assert _attrs(node) == {"dst_type": 29 if dst == torch.quint4x2 else 2}
    y, s = _run(model, args)
    _same(y, ref[0])
    _same(s, ref[1])


# ------------------------------------------------------------------ NPUWeightQuantBatchMatmulV2

WQBMM_CASES = {
    "fp16_channel_bias": (torch.float16, 0, "channel", True, True),
    "fp16_channel": (torch.float16, 0, "channel", False, False),
    "bf16_group64_offset_bias": (torch.bfloat16, 64, "group", True, True),
    "fp16_group32": (torch.float16, 32, "group", False, False),
    "bf16_tensor_offset": (torch.bfloat16, 0, "tensor", True, False),
}


@pytest.mark.parametrize("case", WQBMM_CASES)
def test_weight_quant_batchmatmul(case):
    dt, gs, mode, offset, bias = WQBMM_CASES[case]
    g = torch.Generator().manual_seed(3)
    m, k, n = 5, 128, 24
    x = torch.randn(m, k, generator=g).to(dt)
    w = torch.randint(-128, 128, (k, n), generator=g, dtype=torch.int8)
    shape = {"channel": (n,), "tensor": (1,), "group": (-(-k // max(gs, 1)), n)}[mode]
    asc = ((torch.rand(shape, generator=g) + 0.5) * 0.01).to(dt)
    aof = (torch.randn(shape, generator=g) * 4).to(dt) if offset else None
    b = torch.randn(n, generator=g).to(torch.float16 if dt == torch.float16 else torch.float32) if bias else None
    ref = npu.npu_weight_quant_batchmatmul(x, w, asc, aof, None, None, b, gs)
    got = N.npu_weight_quant_batchmatmul(x, w, asc, aof, None, None, b, gs)
    _same(got, ref)

    args = tuple(a for a in (x, w, asc, aof, b) if a is not None)

    def fn(x, w, asc, *rest):
        it = iter(rest)
        o = next(it) if offset else None
        bb = next(it) if bias else None
        y = N.npu_weight_quant_batchmatmul(x, w, asc, o, None, None, bb, antiquant_group_size=gs)
        return y.float() if y.dtype == torch.bfloat16 else y  # onnxruntime returns no bfloat16

    model = _export(fn, args)
    node = _npu_node(model)
    assert node.op_type == "NPUWeightQuantBatchMatmulV2"
    ins = list(node.input) + [""] * (7 - len(node.input))
    assert len(ins) == 7
    assert [bool(i) for i in ins] == [True, True, True, offset, False, False, bias]
    assert _attrs(node) == {"antiquant_group_size": gs, "dtype": 1}
    y = _cast_like(_run(model, args)[0], ref)
    assert y.dtype == ref.dtype and y.shape == ref.shape
    assert y.equal(y.to(dt).to(y.dtype))
    # float32 accumulation order differs (MLAS vs torch): within one ulp of the output dtype
    tol = {torch.float16: 1e-3, torch.bfloat16: 8e-3}[dt]
    torch.testing.assert_close(y.float(), ref.float(), rtol=tol, atol=tol)


# ------------------------------------------------------------------ NPUDequantSwigluQuant

DSQ_CASES = {
    "int32_dynamic_right": {"quant_mode": 1, "activate_left": False},
    "int32_dynamic_left_qscale_intbias": {"quant_mode": 1, "activate_left": True, "qscale": True, "bias": "int32"},
    "int32_dynamic_left_floatbias": {"quant_mode": 1, "activate_left": True, "bias": "float32", "wscale": False},
    "int32_static_channel_offset": {"quant_mode": 0, "activate_left": True, "qscale": True, "qoffset": True},
    "bf16_dynamic": {"quant_mode": 1, "activate_left": False, "xdtype": torch.bfloat16},
}


@pytest.mark.parametrize("case", DSQ_CASES)
def test_dequant_swiglu_quant(case):
    c = DSQ_CASES[case]
    g = torch.Generator().manual_seed(4)
    t, h = 6, 16
    xdt = c.get("xdtype", torch.int32)
    if xdt == torch.int32:
        x = torch.randint(-2000, 2000, (t, 2 * h), generator=g, dtype=torch.int32)
    else:
        x = (torch.randn(t, 2 * h, generator=g) * 2).to(xdt)
    kw = {}
    if xdt == torch.int32:
        if c.get("wscale", True):
            kw["weight_scale"] = torch.rand(2 * h, generator=g) * 0.01
        kw["activation_scale"] = torch.rand(t, 1, generator=g) * 0.5
        if c.get("bias") == "int32":
            kw["bias"] = torch.randint(-100, 100, (2 * h,), generator=g, dtype=torch.int32)
        elif c.get("bias") == "float32":
            kw["bias"] = torch.randn(2 * h, generator=g)
    if c.get("qscale"):
        kw["quant_scale"] = torch.rand(h, generator=g) + 0.5
        if c["quant_mode"] == 0:
            kw["quant_scale"] = kw["quant_scale"] * 0.05
    if c.get("qoffset"):
        kw["quant_offset"] = torch.randn(h, generator=g) * 3
    kw_attrs = {"activate_left": c["activate_left"], "quant_mode": c["quant_mode"]}
    ref = npu.npu_dequant_swiglu_quant(x, **kw, **kw_attrs)
    got = N.npu_dequant_swiglu_quant(x, **kw, **kw_attrs)
    for a, b in zip(got, ref):
        _same(a, b)

    names = list(kw)
    args = (x, *kw.values())

    def fn(x, *rest):
        return N.npu_dequant_swiglu_quant(x, **dict(zip(names, rest)), **kw_attrs)

    model = _export(fn, args)
    node = _npu_node(model)
    assert node.op_type == "NPUDequantSwigluQuant" and len(node.output) == 2
    order = ["x", "weight_scale", "activation_scale", "bias", "quant_scale", "quant_offset", "group_index"]
    ins = list(node.input) + [""] * (7 - len(node.input))
    assert len(ins) == 7
    assert [bool(i) for i in ins] == [n == "x" or n in kw for n in order]
    a = _attrs(node)
    assert a["activate_left"] == int(c["activate_left"]) and a["quant_mode"] == c["quant_mode"]
    assert a["swiglu_mode"] == 0
    y, s = _run(model, args)
    _same(y, ref[0])
    _same(s, ref[1])


# ------------------------------------------------------------------ schemas and bodies


def test_schemas_registered():
    for name, ninputs in [("NPUQuantize", 3), ("NPUDynamicQuant", 3),
                          ("NPUWeightQuantBatchMatmulV2", 7), ("NPUDequantSwigluQuant", 7)]:
        s = onnx.defs.get_schema(name, 1, "npu")
        assert len(s.inputs) == ninputs
    s = onnx.defs.get_schema("NPUQuantize", 1, "npu")
    assert [i.name for i in s.inputs] == ["input", "scales", "zero_points"]
    assert set(s.attributes) == {"dtype", "axis", "div_mode"}
    s = onnx.defs.get_schema("NPUWeightQuantBatchMatmulV2", 1, "npu")
    assert [i.name for i in s.inputs] == ["x", "weight", "antiquant_scale", "antiquant_offset",
                                          "quant_scale", "quant_offset", "bias"]
    assert set(s.attributes) == {"antiquant_group_size", "dtype"}


def test_function_body_overloads():
    k1, f1 = N.function_body("NPUQuantize", {"dtype": 2, "axis": 1, "div_mode": 1}, [1, 1, 1])
    k2, f2 = N.function_body("NPUQuantize", {"dtype": 2, "axis": 1, "div_mode": 0}, [1, 1, 0])
    assert k1 != k2 and f1.overload == k1 and f2.overload == k2
    assert f1.domain == "npu" and f1.name == "NPUQuantize"
    with pytest.raises(N.NotCovered):
        N.function_body("NPUWeightQuantBatchMatmulV2", {"antiquant_group_size": 0, "dtype": 2},
                        [10, 3, 10, 0, 1, 0, 0])
    with pytest.raises(N.NotCovered):
        N.function_body("NPUDequantSwigluQuant", {"quant_mode": 1}, [6, 1, 1, 0, 0, 0, 7])
