"""The import-qdq pass: standard Q/DQ weights -> npuq::Dequantize, bit-exact in onnxruntime.

Models are built by hand (opset 21, IR 10) the way exporters lay them out. Every rewrite
is checked three ways: run_passes(verify=True) (the pipeline's bit-exact check), our own
onnxruntime run of both models on other inputs, and the packed initializers decoded by
onnx_npuq.formats against the DequantizeLinear's own result.

onnxruntime's default optimizer fuses a constant int8/int4 DequantizeLinear -> MatMul into
MatMulNBits with accuracy_level 4, which quantizes the activations to int8: the original
model then does not compute what it says. OrtSession, ours and the pipeline's, runs with
`session.disable_quant_qdq=1`.
"""
from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto as TP
from onnx import helper
from onnx import numpy_helper as nh

from onnx_npuq import formats as F
from onnx_npuq.passes import pipeline, qdq, run_passes
from onnx_npuq.runtime import OrtSession

from conftest import assert_same

FP8 = {"fp8e4m3": (ml_dtypes.float8_e4m3fn, TP.FLOAT8E4M3FN), "fp8e5m2": (ml_dtypes.float8_e5m2, TP.FLOAT8E5M2)}
needs_fp8 = pytest.mark.skipif(not set(FP8) <= set(F.names()), reason="fp8 formats not registered")


# ------------------------------------------------------------------ model building


def make_model(nodes, inits, inputs=(("x", (3, 64)),), outputs=(("y", (3, 24)),), out_type=TP.FLOAT):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, TP.FLOAT, list(s)) for n, s in inputs],
        [helper.make_tensor_value_info(n, out_type, list(s)) for n, s in outputs],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def dq(data="w", scale="s", out="wf", zp=None, **attrs):
    return helper.make_node("DequantizeLinear", [data, scale] + ([zp] if zp else []), [out], name=f"dq_{out}", **attrs)


def int_codes(shape, bits, seed=0) -> np.ndarray:
    """Random integer codes with the edge values: a zero row, the most negative code."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    c = np.random.default_rng(seed).integers(lo, hi + 1, shape).astype(np.int8)
    c.reshape(shape[0], -1)[0] = 0
    c.flat[1::7] = lo
    c.flat[2::11] = hi
    return c.astype(ml_dtypes.int4) if bits == 4 else c


def scales(shape, seed=1) -> np.ndarray:
    s = np.random.default_rng(seed).random(shape).astype(np.float32) * 0.02 + 1e-4
    sign = np.where(np.arange(s.size) % 2, -1, 1).astype(np.float32).reshape(s.shape)
    return s * sign  # negative scales too


def init(name, arr):
    return nh.from_array(np.asarray(arr), name)


# ------------------------------------------------------------------ checks


def run_exact(model, feeds):
    return OrtSession(model).run(*feeds)


def convert(model, formats_expected: list[str], count: int | None = None):
    """import-qdq with the pipeline's check, our own check, node types and idempotence."""
    out, (report,) = run_passes(model, ["import-qdq"], verify=True)
    assert report.mismatches == 0
    feeds = pipeline.random_inputs(model, seed=7)
    for want, got in zip(run_exact(model, feeds), OrtSession(out).run(*feeds), strict=True):
        assert_same(got, want)  # torch.equal, NaN where NaN
    ops = [(n.domain, n.op_type) for n in out.graph.node]
    assert ("", "DequantizeLinear") not in ops and ("", "QuantizeLinear") not in ops
    got = [helper.get_attribute_value(next(a for a in n.attribute if a.name == "format")).decode()
           for n in out.graph.node if n.domain == "npuq"]
    assert got == formats_expected, got
    assert not any(t.data_type in qdq.FORMATS for t in out.graph.initializer)  # the weights left
    again, _ = run_passes(out, ["import-qdq"], verify=False)
    assert again.SerializeToString() == out.SerializeToString()
    return out, report


def packed_bytes(model) -> dict[str, int]:
    """codes and scales bytes of the npuq::Dequantize initializers."""
    names = {i for n in model.graph.node if n.domain == "npuq" for i in n.input}
    sizes = {"codes": 0, "scales": 0}
    for t in model.graph.initializer:
        if t.name in names:
            assert t.data_type == TP.UINT8
            sizes["codes" if t.name.endswith("codes") else "scales"] += math.prod(t.dims)
    return sizes


def decoded_rows(model) -> list[torch.Tensor]:
    """Each npuq::Dequantize's initializers decoded by onnx_npuq.formats: (rows, length)."""
    inits = {t.name: torch.from_numpy(nh.to_array(t).copy()) for t in model.graph.initializer}
    out = []
    for n in model.graph.node:
        if n.domain != "npuq":
            continue
        a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        codes, scales_ = inits[n.input[0]], inits[n.input[1]]
        p = F.Packed(a["format"].decode(), codes, scales_, (codes.shape[0], a["length"]), 1,
                     torch.float32, a["block"])
        out.append(F.decode(p))
    return out


def left_notes(report) -> str:
    return "\n".join(report.notes)


# ------------------------------------------------------------------ exporter layouts


@pytest.mark.parametrize("per", ["axis", "tensor"])
def test_onnxruntime_quantizer_style_dq_matmul(per):
    K, N = 64, 24
    w = int_codes((K, N), 8)
    s = scales((N,)) if per == "axis" else scales(())
    m = make_model([dq(axis=1), helper.make_node("MatMul", ["x", "wf"], ["y"])], [init("w", w), init("s", s)])
    out, _ = convert(m, ["int8sym"])
    rows = N if per == "axis" else K  # per axis 1: rows along K, transposed back
    assert packed_bytes(out) == {"codes": K * N, "scales": rows * 4}
    ops = [n.op_type for n in out.graph.node]
    assert ops == (["Dequantize", "Transpose", "MatMul"] if per == "axis" else ["Dequantize", "MatMul"])
    ref = torch.from_numpy(w.astype(np.float32) * s)
    (rows_,) = decoded_rows(out)
    assert_same(rows_, ref.T if per == "axis" else ref)


def test_torch_style_dq_transpose_matmul():
    N, K = 24, 64
    w, s = int_codes((N, K), 8), scales((N,))
    m = make_model([dq(axis=0), helper.make_node("Transpose", ["wf"], ["wt"], perm=[1, 0]),
                    helper.make_node("MatMul", ["x", "wt"], ["y"])], [init("w", w), init("s", s)])
    out, _ = convert(m, ["int8sym"])
    assert [n.op_type for n in out.graph.node] == ["Dequantize", "Transpose", "MatMul"]  # no Transpose added
    assert packed_bytes(out) == {"codes": N * K, "scales": N * 4}
    assert_same(decoded_rows(out)[0], torch.from_numpy(w.astype(np.float32) * s[:, None]))


def test_dq_gemm_trans_b():
    N, K = 24, 64
    w, s = int_codes((N, K), 4), scales((N,))
    bias = np.linspace(-1, 1, N, dtype=np.float32)
    m = make_model([dq(axis=0), helper.make_node("Gemm", ["x", "wf", "b"], ["y"], transB=1)],
                   [init("w", w), init("s", s), init("b", bias)])
    out, _ = convert(m, ["int4sym"])
    assert packed_bytes(out) == {"codes": N * K // 2, "scales": N * 4}


@pytest.mark.parametrize("block", [32, 64])
def test_blocked_int4_along_k(block):
    K, N = 128, 24
    w, s = int_codes((K, N), 4), scales((K // block, N))
    m = make_model([dq(axis=0, block_size=block), helper.make_node("MatMul", ["x", "wf"], ["y"])],
                   [init("w", w), init("s", s)], inputs=(("x", (3, K)),))
    out, _ = convert(m, ["int4sym"])
    dq_node = next(n for n in out.graph.node if n.domain == "npuq")
    assert {a.name: helper.get_attribute_value(a) for a in dq_node.attribute}["block"] == block
    assert packed_bytes(out) == {"codes": K * N // 2, "scales": N * (K // block) * 4}


def test_ragged_blocks_and_odd_int4_block():
    K, N, block = 80, 6, 33  # 3 blocks along K, the last one 14 long; odd: a pad nibble per block
    w, s = int_codes((K, N), 4), scales((3, N))
    m = make_model([dq(axis=0, block_size=block), helper.make_node("MatMul", ["x", "wf"], ["y"])],
                   [init("w", w), init("s", s)], inputs=(("x", (3, K)),), outputs=(("y", (3, N)),))
    out, _ = convert(m, ["int4sym"])
    assert packed_bytes(out) == {"codes": N * 3 * 17, "scales": N * 3 * 4}


def test_three_d_activation_and_graph_output_weight():
    K, N = 64, 24
    w, s = int_codes((K, N), 8), scales((N,))
    m = make_model([dq(axis=1), helper.make_node("MatMul", ["x", "wf"], ["y"])], [init("w", w), init("s", s)],
                   inputs=(("x", (2, 5, K)),), outputs=(("y", (2, 5, N)), ("wf", (K, N))))
    out, _ = convert(m, ["int8sym"])
    assert [o.name for o in out.graph.output] == ["y", "wf"]


def _shared_fp16_weight_model():
    K, N = 32, 8
    w, s = int_codes((K, N), 8), scales((N,)).astype(np.float16)
    nodes = [helper.make_node("Constant", [], ["w"], value=init("wv", w)),
             dq(axis=1, out="w1"), dq(axis=1, out="w2"),
             helper.make_node("Cast", ["x"], ["xh"], to=TP.FLOAT16),
             helper.make_node("MatMul", ["xh", "w1"], ["y1"]), helper.make_node("MatMul", ["xh", "w2"], ["y2"]),
             helper.make_node("Add", ["y1", "y2"], ["yh"]), helper.make_node("Cast", ["yh"], ["y"], to=TP.FLOAT)]
    return make_model(nodes, [init("s", s)], inputs=(("x", (3, K)),), outputs=(("y", (3, N)),))


def test_constant_node_data_shared_weight_and_fp16_scale():
    K, N = 32, 8
    out, _ = convert(_shared_fp16_weight_model(), ["int8sym", "int8sym"])
    assert packed_bytes(out) == {"codes": K * N, "scales": N * 4}  # one copy of the shared weight
    assert [n.op_type for n in out.graph.node].count("Cast") == 4  # each DQ gives back float16


def test_unfolded_onnxruntime_drops_a_float16_cast():
    """Why the pipeline verifies with constant folding (up to VERIFY_FOLDING_MAX_BYTES): on
    CPU onnxruntime runs float16 MatMul in float32 and removes the Cast to float16 before it
    ("InsertedPrecisionFreeCast"). Folded, the rewrite's Dequantize -> Cast is a float16
    constant and keeps its rounding; unfolded it is lost, where the original's
    DequantizeLinear rounds to float16 itself."""
    m = _shared_fp16_weight_model()
    out, _ = run_passes(m, ["import-qdq"], verify=False)
    feeds = pipeline.random_inputs(m, seed=7)
    for fold, mismatches in ((True, 0), (False, 24)):
        want = OrtSession(m, constant_folding=fold).run(*feeds)[0]
        got = OrtSession(out, constant_folding=fold).run(*feeds)[0]
        assert int((want != got).sum()) == mismatches, fold


def test_bfloat16_scale_per_tensor():
    """onnxruntime has no bfloat16 DequantizeLinear: onnx's reference evaluator runs the
    original; the rewrite (float32 product, then Cast) runs in onnxruntime."""
    from onnx.reference import ReferenceEvaluator

    w = int_codes((16, 8), 8)
    s = np.array(0.0123, ml_dtypes.bfloat16)
    m = make_model([dq(), helper.make_node("Cast", ["wf"], ["y"], to=TP.FLOAT)], [init("w", w), init("s", s)],
                   inputs=(("x", (2,)),), outputs=(("y", (16, 8)),))
    m.graph.node.append(helper.make_node("Identity", ["x"], ["xo"]))
    m.graph.output.append(helper.make_tensor_value_info("xo", TP.FLOAT, [2]))
    out, _ = run_passes(m, ["import-qdq"], verify=False)
    assert [n.op_type for n in out.graph.node if n.op_type != "Identity"] == ["Dequantize", "Cast", "Cast"]
    want = ReferenceEvaluator(m).run(None, {"x": np.zeros(2, np.float32)})[0]
    assert_same(OrtSession(out).run(torch.zeros(2))[0], torch.from_numpy(want))


# ------------------------------------------------------------------ FP8


@needs_fp8
@pytest.mark.parametrize("fmt", sorted(FP8))
@pytest.mark.parametrize("per", ["tensor", "axis"])
def test_fp8_dq_matmul(fmt, per):
    np_type, onnx_type = FP8[fmt]
    K, N = 64, 24
    w = (np.random.default_rng(3).standard_normal((K, N)) * 40).astype(np_type)
    w[0] = 0
    w[1, :4] = [np_type(ml_dtypes.finfo(np_type).max), -ml_dtypes.finfo(np_type).max,
                ml_dtypes.finfo(np_type).smallest_subnormal, -0.0]
    s = scales((N,)) if per == "axis" else scales(())
    m = make_model([dq(axis=1), helper.make_node("MatMul", ["x", "wf"], ["y"])], [init("w", w), init("s", s)])
    assert m.graph.initializer[0].data_type == onnx_type
    out, _ = convert(m, [fmt])
    assert packed_bytes(out) == {"codes": K * N, "scales": (N if per == "axis" else K) * 4}


@needs_fp8
@pytest.mark.parametrize("fmt", sorted(FP8))
def test_fp8_every_code_per_channel(fmt):
    """All 256 bytes (NaN and Inf codes included) decode as DequantizeLinear does."""
    np_type, _ = FP8[fmt]
    w = np.arange(256, dtype=np.uint8).view(np_type).reshape(8, 32)
    s = scales((8,))
    m = make_model([dq(axis=0, out="y")], [init("w", w), init("s", s)], outputs=(("y", (8, 32)),))
    out, _ = convert(m, [fmt])
    assert [n.op_type for n in out.graph.node] == ["Dequantize"]
    assert_same(decoded_rows(out)[0], torch.from_numpy(w.astype(np.float32) * s[:, None]))


def test_every_int_code():
    for bits, fmt in ((8, "int8sym"), (4, "int4sym")):
        lo = -(1 << (bits - 1))
        w = np.arange(lo, -lo, dtype=np.int8).reshape(-1, 16)
        w = w.astype(ml_dtypes.int4) if bits == 4 else w
        m = make_model([dq(axis=1, block_size=16, out="y")], [init("w", w), init("s", scales((w.shape[0], 1)))],
                       outputs=(("y", w.shape),))
        out, _ = convert(m, [fmt])
        assert [n.op_type for n in out.graph.node] == ["Dequantize"]


# ------------------------------------------------------------------ Q -> DQ folding


def qdq_model(w, s, q_attrs, dq_attrs, zp=None, x_shape=(3, 64), n=24):
    inits = [init("wq", w), init("s", s)] + ([zp] if zp is not None else [])
    zin = ["zp"] if zp is not None else []
    nodes = [helper.make_node("QuantizeLinear", ["wq", "s"] + zin, ["w"], name="q", **q_attrs),
             helper.make_node("DequantizeLinear", ["w", "s"] + zin, ["wf"], name="dq", **dq_attrs),
             helper.make_node("MatMul", ["x", "wf"], ["y"])]
    return make_model(nodes, inits, inputs=(("x", x_shape),), outputs=(("y", (x_shape[0], n)),))


def float_weight(shape, seed=5) -> np.ndarray:
    w = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    w[0] = 0
    w.flat[3::13] *= 50  # beyond the range: saturates
    odd = (2 * (np.arange(w.size) % 8) - 7).astype(np.float32)  # ties: x / scale lands on k + 1/2
    w.flat[5::17] = (0.125 * odd)[5::17]  # for scale 0.25
    w.flat[6::17] = (0.0625 * odd)[6::17]  # for scale 0.125
    return w


@pytest.mark.parametrize("case", ["int8-axis", "int8-tensor", "int4-block", "int4-output_dtype"])
def test_fold_q_dq_integer(case):
    K, N = 64, 24
    w = float_weight((K, N))
    if case == "int8-axis":
        m = qdq_model(w, scales((N,)) * 0 + np.float32(0.25), {"axis": 1}, {"axis": 1},
                      zp=init("zp", np.zeros(N, np.int8)))
        fmt = "int8sym"
    elif case == "int8-tensor":
        m = qdq_model(w, np.float32(0.0123), {}, {}, zp=init("zp", np.int8(0)))
        fmt = "int8sym"
    elif case == "int4-block":
        m = qdq_model(w, np.abs(scales((K // 32, N))) * 20, {"axis": 0, "block_size": 32},
                      {"axis": 0, "block_size": 32}, zp=init("zp", np.zeros((K // 32, N), ml_dtypes.int4)))
        fmt = "int4sym"
    else:
        m = qdq_model(w, np.float32(0.125), {"output_dtype": TP.INT4}, {})
        fmt = "int4sym"
    out, report = convert(m, [fmt])
    assert "folded 1 QuantizeLinear" in left_notes(report)


@needs_fp8
@pytest.mark.parametrize("fmt", sorted(FP8))
@pytest.mark.parametrize("saturate", [1, 0])
def test_fold_q_dq_fp8(fmt, saturate):
    np_type, onnx_type = FP8[fmt]
    K, N = 64, 24
    w = float_weight((K, N)) * (1.0 if saturate else 0.01)  # no overflow unless saturating
    s = np.abs(scales((N,)))
    s[0] = 1.0  # column 0: the midpoints between neighbouring FP8 values, rounded to even
    grid = np.arange(0x38, 0x48, dtype=np.uint8).view(np_type).astype(np.float32)
    mids = (grid[:-1] + grid[1:]) / 2
    w[2:2 + mids.size, 0] = mids * np.where(np.arange(mids.size) % 2, -1, 1)
    m = qdq_model(w, s, {"axis": 1, "saturate": saturate}, {"axis": 1},
                  zp=init("zp", np.zeros(N, np_type)))
    convert(m, [fmt])


def test_fold_uint8_default_imports_as_asymmetric():
    """No zero point: uint8 codes 0..255, which int8sym cannot hold: uint8asym (zero point 0)."""
    w = float_weight((64, 24))
    m = qdq_model(w, np.float32(0.05), {}, {})  # no zero point: uint8
    out, report = convert(m, ["uint8asym"])
    assert "folded 1 QuantizeLinear" in left_notes(report)
    assert packed_bytes(out) == {"codes": 64 * 24, "scales": 5}  # per tensor: one row, one scale and zero point


# ------------------------------------------------------------------ left as they are


def test_nonzero_zero_point_imported_and_activation_dq_left_with_notes():
    K, N = 64, 24
    w, s = int_codes((K, N), 8), scales((N,))
    zp = np.zeros(N, np.int8)
    zp[3] = 1  # column 3 holds -128: -129 does not fit int8sym
    nodes = [dq(axis=1, zp="zp"), helper.make_node("MatMul", ["xd", "wf"], ["y"]),
             helper.make_node("QuantizeLinear", ["x", "sx"], ["xq"], name="qx"),
             helper.make_node("DequantizeLinear", ["xq", "sx"], ["xd"], name="dqx")]
    m = make_model(nodes, [init("w", w), init("s", s), init("zp", zp), init("sx", np.float32(0.1))])
    assert (w[:, 3] == -128).any()
    out, (report,) = run_passes(m, ["import-qdq"], verify=True)
    assert sorted((n.domain, n.op_type) for n in out.graph.node) == sorted([
        ("", "QuantizeLinear"), ("", "DequantizeLinear"), ("npuq", "Dequantize"), ("", "Transpose"), ("", "MatMul")])
    assert next(n for n in out.graph.node if n.domain == "npuq").attribute[0].s == b"uint8asym"
    notes = left_notes(report)
    assert "DequantizeLinear left as is: data is not a constant: dqx" in notes
    assert "qx" not in notes.replace("dqx", "")  # an activation Q is no weight: not noted
    again, _ = run_passes(out, ["import-qdq"], verify=False)
    assert again.SerializeToString() == out.SerializeToString()


@pytest.mark.parametrize("nonzero", [False, True])
def test_int4_constant_nodes_with_zero_point(nonzero):
    """INT4 data and zero point from Constant nodes: int4sym with zero point 0, uint4asym
    with a zero point under which a difference leaves int4's range."""
    K, N = 64, 24
    zp = np.zeros(N, ml_dtypes.int4)
    zp[2] = int(nonzero)
    nodes = [helper.make_node("Constant", [], ["w"], value=init("wv", int_codes((K, N), 4))),
             helper.make_node("Constant", [], ["zp"], value=init("zpv", zp)),
             dq(axis=1, zp="zp"), helper.make_node("MatMul", ["x", "wf"], ["y"])]
    m = make_model(nodes, [init("s", scales((N,)))])
    w = int_codes((K, N), 4).astype(np.int8)
    fits = (w - zp.astype(np.int8) >= -8).all()  # a zero point 1 under code -8 does not
    convert(m, ["int4sym" if fits else "uint4asym"])
    assert fits != nonzero


# ------------------------------------------------------------------ property test


@st.composite
def dq_cases(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=rank, max_size=rank)))
    bits = draw(st.sampled_from([8, 4]))
    kind = draw(st.sampled_from(["tensor", "axis", "block"]))
    axis = draw(st.integers(-rank, rank - 1))
    a = axis % rank
    if kind == "tensor":
        sshape = draw(st.sampled_from([(), (1,)]))
        attrs = {}
    elif kind == "axis":
        sshape, attrs = (shape[a],), {"axis": axis}
    else:
        block = draw(st.integers(1, 10))
        sshape = shape[:a] + (-(-shape[a] // block),) + shape[a + 1:]
        attrs = {"axis": axis, "block_size": block}
    return shape, bits, sshape, attrs, draw(st.integers(0, 2**16))


@settings(max_examples=12, deadline=None)
@given(dq_cases())
def test_property_int_dq_shapes_axes_blocks(case):
    shape, bits, sshape, attrs, seed = case
    w = int_codes(shape, bits, seed) if len(shape) > 1 else int_codes(shape + (1,), bits, seed).reshape(shape)
    s = scales(sshape, seed + 1)
    m = make_model([dq(out="y", **attrs), helper.make_node("Identity", ["x"], ["xo"])],
                   [init("w", w), init("s", s)], inputs=(("x", (2,)),), outputs=(("y", shape), ("xo", (2,))))
    out, _ = convert(m, ["int8sym" if bits == 8 else "int4sym"])
    kind, a, full = qdq.expand_scale(s, shape, attrs.get("axis", 1), attrs.get("block_size", 0))
    lay = qdq.layout(kind, shape, a, attrs.get("block_size", 0))
    ref = lay.to_rows(w.astype(np.float32) * full)
    assert_same(decoded_rows(out)[0], torch.from_numpy(np.ascontiguousarray(ref)))
    nb = -(-lay.length // lay.block)
    assert packed_bytes(out) == {"codes": lay.rows * nb * ((lay.block * bits + 7) // 8), "scales": lay.rows * nb * 4}
