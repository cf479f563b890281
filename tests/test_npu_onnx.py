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

# dtype, group size, scale mode, antiquant offset, bias, weight, output quantization, exact
# ("exact": small integer x and power-of-two scales, so that every float32 sum is exact and
# the accumulation order does not matter: bit-exact; otherwise within an ulp / one step)
WQBMM_CASES = {
    "fp16_channel_bias": (torch.float16, 0, "channel", True, True, "int8", None, False),
    "fp16_channel": (torch.float16, 0, "channel", False, False, "int8", None, False),
    "bf16_group64_offset_bias": (torch.bfloat16, 64, "group", True, True, "int8", None, False),
    "fp16_group32": (torch.float16, 32, "group", False, False, "int8", None, False),
    "bf16_tensor_offset": (torch.bfloat16, 0, "tensor", True, False, "int8", None, False),
    "fp16_channel_exact": (torch.float16, 0, "channel", True, True, "int8", None, True),
    "bf16_int4n_group32_exact": (torch.bfloat16, 32, "group", True, False, "int4n", None, True),
    "fp16_int4k_channel_exact": (torch.float16, 0, "channel", False, True, "int4k", None, True),
    "bf16_int4k_group64": (torch.bfloat16, 64, "group", True, True, "int4k", None, False),
    "fp16_int8out_exact": (torch.float16, 0, "channel", True, True, "int8", "float", True),
    "bf16_int8out_offset_exact": (torch.bfloat16, 32, "group", False, False, "int8", "float_offset", True),
    "fp16_int8out_packed_exact": (torch.float16, 0, "tensor", False, True, "int4n", "int64", True),
    "fp16_int8out_offset": (torch.float16, 0, "channel", True, False, "int8", "float_offset", False),
    "fp16_fixpipe_offset_exact": (torch.float16, 0, "fixpipe", True, True, "int8", None, True),
    "fp16_fixpipe": (torch.float16, 0, "fixpipe", False, False, "int8", None, False),
}


def _wqbmm_args(dt, gs, mode, offset, bias, weight, quant, exact):
    """(x, weight as passed to the op, antiquant_scale, antiquant_offset, quant_scale,
    quant_offset, bias) for a WQBMM_CASES row."""
    from test_npu_ops import pack_quant_param

    g = torch.Generator().manual_seed(3)
    m, k, n = 5, 128, 24
    if exact:
        x = torch.randint(-4, 5, (m, k), generator=g).to(dt)
    else:
        x = torch.randn(m, k, generator=g).to(dt)
    lo, hi = (-8, 8) if weight != "int8" else (-128, 128)
    w = torch.randint(lo, hi, (k, n), generator=g, dtype=torch.int8)
    if weight == "int4n":
        w = npu._pack_int4(w)  # (K, N/8)
    elif weight == "int4k":
        w = npu._pack_int4(w.t().contiguous()).t()  # (K/8, N) view of (N, K/8)
    shape = {"channel": (n,), "tensor": (1,), "fixpipe": (n,), "group": (-(-k // max(gs, 1)), n)}[mode]

    def scales():
        if exact:
            return torch.pow(2.0, torch.randint(-7, -3, shape, generator=g).float())
        return (torch.rand(shape, generator=g) + 0.5) * 0.01

    if mode == "fixpipe":
        asc = torch.from_numpy(pack_quant_param(scales().numpy()))
        aof = torch.randint(-8, 8, shape, generator=g, dtype=torch.int32) if offset else None
    else:
        asc = scales().to(dt)
        aof = None
        if offset:
            aof = torch.randint(-4, 5, shape, generator=g).float() if exact else torch.randn(shape, generator=g) * 4
            aof = aof.to(dt)
    b = None
    if bias:
        b = torch.randint(-8, 9, (n,), generator=g).float() if exact else torch.randn(n, generator=g)
        b = b.to(torch.float16 if dt == torch.float16 else torch.float32)
    qs = qo = None
    if quant is not None:
        qs = torch.rand(n, generator=g) * 4 + 0.5
        if quant == "float_offset":
            qo = torch.randn(n, generator=g) * 300  # past the [-256, 255] clamp too
        elif quant == "int64":
            qs = torch.from_numpy(pack_quant_param(qs.numpy(), (torch.randn(n, generator=g) * 20).numpy()))
    return x, w, asc, aof, qs, qo, b


@pytest.mark.parametrize("case", WQBMM_CASES)
def test_weight_quant_batchmatmul(case):
    dt, gs, _, _, _, weight, quant, exact = WQBMM_CASES[case]
    x, w, asc, aof, qs, qo, b = _wqbmm_args(*WQBMM_CASES[case])
    ref = npu.npu_weight_quant_batchmatmul(x, w, asc, aof, qs, qo, b, gs)
    got = N.npu_weight_quant_batchmatmul(x, w, asc, aof, qs, qo, b, gs)
    _same(got, ref)

    present = [t is not None for t in (x, w, asc, aof, qs, qo, b)]
    # the (K/8, N) int4 weight is a transposed view: export its (N, K/8) storage, transpose inside
    args = tuple(t.t() if i == 1 and weight == "int4k" else t
                 for i, t in enumerate((x, w, asc, aof, qs, qo, b)) if t is not None)

    def fn(*xs):
        it = iter(xs)
        full = [next(it) if p else None for p in present]
        if weight == "int4k":
            full[1] = full[1].t()
        y = N.npu_weight_quant_batchmatmul(*full, antiquant_group_size=gs)
        return y.float() if y.dtype == torch.bfloat16 else y  # onnxruntime returns no bfloat16

    model = _export(fn, args)
    node = _npu_node(model)
    assert node.op_type == "NPUWeightQuantBatchMatmulV2"
    ins = list(node.input) + [""] * (7 - len(node.input))
    assert [bool(i) for i in ins] == present
    assert _attrs(node) == {"antiquant_group_size": gs, "dtype": 1 if quant is None else 2}
    y = _cast_like(_run(model, args)[0], ref)
    assert y.dtype == ref.dtype and y.shape == ref.shape
    if exact:
        _same(y, ref)
        assert ref.unique().numel() > 10  # not a degenerate (saturated / zero) output
    elif quant is None:
        # float32 accumulation order differs (MLAS vs torch): within one ulp of the output dtype
        tol = {torch.float16: 1e-3, torch.bfloat16: 8e-3}[dt]
        torch.testing.assert_close(y.float(), ref.float(), rtol=tol, atol=tol)
    else:  # a sum one float32 ulp apart can round to the neighbouring integer
        diff = (y.int() - ref.int()).abs()
        assert diff.max() <= 1 and (diff == 0).float().mean() > 0.95


# ------------------------------------------------------------------ NPUDequantSwigluQuant

DSQ_CASES = {
    "int32_dynamic_right": {"quant_mode": 1, "activate_left": False},
    "int32_dynamic_left_qscale_intbias": {"quant_mode": 1, "activate_left": True, "qscale": True, "bias": "int32"},
    "int32_dynamic_left_floatbias": {"quant_mode": 1, "activate_left": True, "bias": "float32", "wscale": False},
    "int32_static_channel_offset": {"quant_mode": 0, "activate_left": True, "qscale": True, "qoffset": True},
    "bf16_dynamic": {"quant_mode": 1, "activate_left": False, "xdtype": torch.bfloat16},
    # group_index: token counts per group; tokens past their sum give zeros
    "int32_groups_static_channel": {"quant_mode": 0, "activate_left": True, "qscale": True, "groups": [2, 0, 3]},
    "int32_groups_static_scalar": {"quant_mode": 0, "activate_left": False, "qscale": "scalar", "groups": [4, 2]},
    "int32_groups_dynamic_qscale": {"quant_mode": 1, "activate_left": True, "qscale": True, "groups": [1, 3, 1]},
    "bf16_groups_dynamic": {"quant_mode": 1, "activate_left": False, "xdtype": torch.bfloat16, "groups": [3, 3]},
    # swiglu_mode 1: even / odd columns, clamped, glu_alpha and glu_bias
    "int32_mode1_dynamic": {"quant_mode": 1, "activate_left": False, "swiglu_mode": 1},
    "bf16_mode1_static_attrs": {"quant_mode": 0, "activate_left": False, "qscale": True, "swiglu_mode": 1,
                                "xdtype": torch.bfloat16, "clamp_limit": 1.5, "glu_alpha": 0.75, "glu_bias": -0.25},
    "int32_mode1_groups": {"quant_mode": 1, "activate_left": False, "swiglu_mode": 1, "groups": [5]},
}
SWIGLU_DEFAULTS = {"swiglu_mode": 0, "clamp_limit": 7.0, "glu_alpha": 1.702, "glu_bias": 1.0}


def _dsq_kwargs(c: dict, g: torch.Generator, t: int, h: int):
    """(x, optional inputs by name) for a DSQ_CASES row."""
    groups = c.get("groups")
    lead = (len(groups),) if groups else ()
    xdt = c.get("xdtype", torch.int32)
    kw = {}
    if xdt == torch.int32:
        x = torch.randint(-2000, 2000, (t, 2 * h), generator=g, dtype=torch.int32)
        if c.get("wscale", True):
            kw["weight_scale"] = torch.rand(*lead, 2 * h, generator=g) * 0.01
        kw["activation_scale"] = torch.rand(t, 1, generator=g) * 0.5
        if c.get("bias") == "int32":
            kw["bias"] = torch.randint(-100, 100, (2 * h,), generator=g, dtype=torch.int32)
        elif c.get("bias") == "float32":
            kw["bias"] = torch.randn(2 * h, generator=g)
    else:
        x = (torch.randn(t, 2 * h, generator=g) * 2).to(xdt)
        x[0, 1] = float("nan")
    if c.get("qscale"):
        shape = (len(groups) if groups else 1,) if c["qscale"] == "scalar" else (*lead, h)
        kw["quant_scale"] = torch.rand(shape, generator=g) + 0.5
        if c["quant_mode"] == 0:
            kw["quant_scale"] = kw["quant_scale"] * 0.05
    if c.get("qoffset"):
        kw["quant_offset"] = torch.randn(h, generator=g) * 3
    if groups:
        kw["group_index"] = torch.tensor(groups, dtype=torch.int64)
    return x, kw


@pytest.mark.parametrize("case", DSQ_CASES)
def test_dequant_swiglu_quant(case):
    c = DSQ_CASES[case]
    t, h = 6, 16
    x, kw = _dsq_kwargs(c, torch.Generator().manual_seed(4), t, h)
    kw_attrs = {"activate_left": c["activate_left"], "quant_mode": c["quant_mode"]}
    kw_attrs.update({k: c[k] for k in SWIGLU_DEFAULTS if k in c})
    ref = npu.npu_dequant_swiglu_quant(x, **kw, **kw_attrs)
    got = N.npu_dequant_swiglu_quant(x, **kw, **kw_attrs)
    for a, b in zip(got, ref):
        _same(a, b)
    assert ref[0].unique().numel() > 10  # not degenerate
    used = sum(c.get("groups", [t]))
    assert used == t or (not ref[0][used:].any() and not ref[1][used:].any())

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
    for k, default in SWIGLU_DEFAULTS.items():
        assert a[k] == pytest.approx(c.get(k, default))
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
    # the element types that change a body change the key: int4 weight, int64 scales, int32 bias
    attrs = {"antiquant_group_size": 0, "dtype": 2}
    keys = {N.function_body("NPUWeightQuantBatchMatmulV2", attrs, t)[0]
            for t in ([10, 3, 10, 0, 1, 0, 0], [10, 6, 10, 0, 1, 0, 0], [10, 3, 7, 0, 1, 0, 0],
                      [10, 3, 10, 0, 7, 0, 0], [16, 3, 16, 0, 1, 0, 0])}
    assert len(keys) == 4  # float16 and bfloat16 share a body
    k3, _ = N.function_body("NPUDequantSwigluQuant", {}, [6, 1, 1, 6, 0, 0, 0])
    k4, _ = N.function_body("NPUDequantSwigluQuant", {}, [6, 1, 1, 1, 0, 0, 0])
    assert k3 != k4
    # float attributes are keyed as float32: values that are one float32 differ
    k5, _ = N.function_body("NPUDequantSwigluQuant", {"glu_alpha": 1.702}, [16])
    k6, _ = N.function_body("NPUDequantSwigluQuant", {"glu_alpha": float(np.nextafter(np.float32(1.702), 2))}, [16])
    assert k5 != k6
    with pytest.raises(ValueError, match="dtype 3 is not 2 or 29"):
        N.function_body("NPUQuantize", {"dtype": 3, "div_mode": 0}, [1, 1])
    with pytest.raises(ValueError, match="group_index requires smooth_scales"):
        N.function_body("NPUDynamicQuant", {}, [10, 0, 6])
    with pytest.raises(ValueError, match="required input weight"):
        N.function_body("NPUWeightQuantBatchMatmulV2", attrs, [10, 0, 10])


# ------------------------------------------------------------------ integer steps of the bodies


def _helper_model(build, inputs: dict[str, tuple[int, int]], outputs: dict[str, tuple[int, int]]
                  ) -> ort.InferenceSession:
    """A model of _G steps; inputs and outputs: name -> (element type, rank)."""
    g = N._G()
    for name, value in zip(outputs, build(g)):
        g.output(name, value)
    def info(io):
        return [helper.make_tensor_value_info(n, t, [f"{n}{i}" for i in range(r)]) for n, (t, r) in io.items()]

    graph = helper.make_graph(g.nodes, "h", info(inputs), info(outputs))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _bit_patterns(n: int, seed: int) -> torch.Tensor:
    """Random float32 bit patterns (every class: zeros, subnormals, normals, Inf, NaN)."""
    g = torch.Generator().manual_seed(seed)
    bits = torch.randint(-(2**31), 2**31, (n,), generator=g, dtype=torch.int64).to(torch.int32)
    special = torch.tensor([0, -(2**31), 1, 0x1FFF, 0x2000, 0x007FFFFF, 0x00800000, 0x7F7FFFFF,
                            0x7F800000, -8388608, 0x7FC00000, 0x3F800000, 0x3F801FFF], dtype=torch.int64)
    bits[: len(special)] = special.to(torch.int32)
    # a quarter subnormal / tiny
    bits[len(special):: 4] &= 0x80FFFFFF
    return bits.view(torch.float32)


def test_trunc_fp19_body_matches_reference():
    s = _bit_patterns(1 << 16, 5)
    sess = _helper_model(lambda g: [g.trunc_fp19("s")], {"s": (onnx.TensorProto.FLOAT, 1)}, {"t": (onnx.TensorProto.FLOAT, 1)})
    got = torch.from_numpy(sess.run(None, {"s": s.numpy()})[0])
    want = npu._trunc_fp19(s)
    finite = torch.isfinite(want)
    assert torch.equal(got[finite].view(torch.int32), want[finite].view(torch.int32))
    # NaN stays NaN; the mask turns a NaN whose payload sits in the low 13 bits into Inf,
    # and standard ops cannot see payloads
    nan = torch.isnan(s)
    assert torch.isnan(got[nan]).all() and torch.isnan(want[nan]).sum() > 0
    inf = torch.isinf(s)
    assert inf.sum() >= 2 and torch.equal(got[inf], want[inf])


def test_packed_scale_body_matches_reference():
    from test_npu_ops import pack_quant_param

    g = torch.Generator().manual_seed(6)
    scale = _bit_patterns(4096, 7)
    scale = scale[torch.isfinite(scale)]
    offset = (torch.randn(scale.shape, generator=g) * 200).numpy()
    p = torch.from_numpy(pack_quant_param(scale.numpy(), offset))
    p = torch.cat([p, torch.from_numpy(pack_quant_param(scale.numpy()))])
    sess = _helper_model(lambda g: g.packed_scale("p"), {"p": (onnx.TensorProto.INT64, 1)},
                         {"s": (onnx.TensorProto.FLOAT, 1), "o": (onnx.TensorProto.FLOAT, 1)})
    s, o = (torch.from_numpy(a) for a in sess.run(None, {"p": p.numpy()}))
    ws, wo = npu._decode_packed_scale(p)
    assert torch.equal(s.view(torch.int32), ws.view(torch.int32))
    assert torch.equal(o, wo)
    assert int(o.min()) < -200 and int(o.max()) > 200  # both signs of the 9-bit offset


@pytest.mark.parametrize("axis", [0, 1])
def test_unpack_int4_body_matches_reference(axis):
    g = torch.Generator().manual_seed(8)
    w = torch.randint(-(2**31), 2**31, (6, 5), generator=g, dtype=torch.int64).to(torch.int32)
    sess = _helper_model(lambda g: [g.unpack_int4("w", axis)], {"w": (onnx.TensorProto.INT32, 2)},
                         {"v": (onnx.TensorProto.FLOAT, 3)})
    got = torch.from_numpy(sess.run(None, {"w": w.numpy()})[0])
    if axis == 1:
        want = npu._unpack_int4(w).reshape(6, 5, 8)
    else:  # nibble j of word (r, c) is element (8r + j, c)
        want = npu._unpack_int4(w.t()).reshape(5, 6, 8).permute(1, 2, 0)
    assert torch.equal(got, want.float())
