"""fp8e4m3 / fp8e5m2: FP8 elements (OCP E4M3FN / E5M2 bytes) with a float32 scale per
channel or per group, against independent numpy / ml_dtypes re-derivations.

Decoding must be ONNX DequantizeLinear's float32(fp8) * float32 scale (one multiply), so
a standard FP8 DequantizeLinear weight imports as npuq::Dequantize without loss. Values
are compared on their bits here (-0.0 != +0.0), NaN positions separately.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_same
from onnx_npuq import formats as F
from onnx_npuq.formats import codecs

f32 = np.float32
NAMES = ["fp8e4m3", "fp8e5m2"]
# name: (ml_dtypes type, largest finite value, ONNX element type, code table)
FP8 = {
    "fp8e4m3": (ml_dtypes.float8_e4m3fn, 448.0, TensorProto.FLOAT8E4M3FN, codecs.E4M3),
    "fp8e5m2": (ml_dtypes.float8_e5m2, 57344.0, TensorProto.FLOAT8E5M2, codecs.E5M2),
}
GROUPS = [None, 8, 32]


def assert_bits(got, want, msg: str = "") -> None:
    """float32 arrays equal bit for bit (NaN positions compared, payloads not)."""
    got, want = np.asarray(got, f32), np.asarray(want, f32)
    assert got.shape == want.shape, f"{msg}: shape {got.shape} != {want.shape}"
    ng, nw = np.isnan(got), np.isnan(want)
    assert (ng == nw).all(), f"{msg}: NaN positions differ at {np.argwhere(ng != nw)[:5].tolist()}"
    bg, bw = got.view(np.uint32), want.view(np.uint32)
    bad = (bg != bw) & ~ng
    if bad.any():
        idx = np.argwhere(bad)[:5]
        pairs = [(tuple(i), float(got[tuple(i)]), float(want[tuple(i)])) for i in idx]
        raise AssertionError(f"{msg}: {int(bad.sum())} value(s) differ (index, got, want): {pairs}")


def fp8_values(name: str, codes: np.ndarray) -> np.ndarray:
    """float32 value of each FP8 byte, by ml_dtypes."""
    return np.asarray(codes, np.uint8).view(FP8[name][0]).astype(f32)


def grid(name: str) -> np.ndarray:
    """Finite positive values of the element, ascending (0 included)."""
    v = fp8_values(name, np.arange(128, dtype=np.uint8))
    return np.unique(v[np.isfinite(v)])


def blocks_of(x: np.ndarray, group: int | None) -> tuple[np.ndarray, int]:
    """(M, n) -> (M * nb, block) zero-padded blocks, and the padded length."""
    m, n = x.shape
    block = group or n
    padded = -(-n // block) * block
    xp = np.zeros((m, padded), f32)
    xp[:, :n] = x
    return xp.reshape(-1, block), padded


@np.errstate(all="ignore")  # non-finite rows are masked to NaN at the end
def oracle(x: np.ndarray, name: str, group: int | None = None):
    """The rule written out in numpy: per block scale = amax / max (float32), elements
    x / where(scale > 0, scale, 1) cast to FP8 by ml_dtypes (RNE; clipped to +-max first:
    ml_dtypes turns E4M3FN overflow into NaN and E5M2 overflow into Inf), y = q * scale.
    A block with NaN/Inf is NaN. -> (y, codes, scales): y (M, n), codes (M, padded) uint8
    and scales (M, nb) float32, codes of non-finite blocks left as ml_dtypes casts them."""
    mldt, emax, _, _ = FP8[name]
    m, n = x.shape
    xb, padded = blocks_of(x, group)
    amax = np.abs(xb).max(axis=1, keepdims=True)  # numpy's max propagates NaN
    scale = (amax / f32(emax)).astype(f32)
    v = (xb / np.where(scale > 0, scale, f32(1))).astype(f32)
    q8 = np.clip(v, -emax, emax).astype(mldt)
    y = (q8.astype(f32) * scale).astype(f32)
    y = np.where(np.isfinite(amax), y, f32(np.nan))
    y = y.reshape(m, padded)[:, :n]
    return y, q8.view(np.uint8).reshape(m, padded), scale.reshape(m, -1)


def torch_fq(x: np.ndarray, name: str, group: int | None) -> np.ndarray:
    return F.fake_quant(torch.from_numpy(x), name, group=group).numpy()


# ---------------------------------------------------------------- data


@st.composite
def fp8_rows(draw, name: str, finite: bool = False):
    """(M, n) float32 rows: randn at a per-row scale 2^-150..2^120 (subnormal amax, scales
    that underflow to 0 or are coarse subnormals, huge rows) with a per-element spread,
    zeros and -0.0, rows of exact RNE ties, and (unless `finite`) NaN / +-Inf."""
    seed = draw(st.integers(0, 2**32 - 1))
    m = draw(st.integers(1, 8))
    n = draw(st.integers(1, 80))
    rng = np.random.default_rng(seed)
    k = rng.integers(-150, 121, size=(m, 1))
    spread = draw(st.sampled_from([0.0, 3.0, 12.0]))
    x = rng.standard_normal((m, n)) * np.exp2(k + rng.uniform(-spread, spread, size=(m, n)))
    kind = rng.integers(0, 16, size=(m, n))
    x = np.where(kind == 0, 0.0, x)
    x = np.where(kind == 1, -0.0, x)
    with np.errstate(over="ignore"):  # a few huge rows overflow to Inf: non-finite rows
        x = x.astype(f32)
    g = grid(name)
    for r in range(m):
        if rng.random() < 0.3:  # exact ties: amax = max * 2^j makes the scale 2^j
            j = int(rng.integers(-100, 100))
            mid = (g[:-1] + g[1:]) / 2  # one more bit than the grid: exact in float32
            pick = np.where(rng.random(n) < 0.7, rng.choice(mid, n), rng.choice(g, n))
            row = pick * rng.choice([-1.0, 1.0], n) * 2.0**j
            row[rng.integers(0, n)] = FP8[name][1] * 2.0**j
            x[r] = row.astype(f32)
    if not finite and draw(st.integers(0, 3)) == 0:
        cnt = draw(st.integers(1, 3))
        x[rng.integers(0, m, cnt), rng.integers(0, n, cnt)] = rng.choice([np.nan, np.inf, -np.inf], cnt)
    return x


# ---------------------------------------------------------------- decode: every code


@pytest.mark.parametrize("name", NAMES)
def test_code_table_is_the_ocp_byte(name):
    """The element codec is ml_dtypes' byte layout: all 256 codes."""
    table = FP8[name][3]
    assert_bits(np.array(table.values, f32), fp8_values(name, np.arange(256)), name)
    fmt = F.get_format(name)
    assert (fmt.elem_bits, fmt.scale_bytes, fmt.scale_type) == (8, 4, "float32")
    assert fmt.elem_type == {"fp8e4m3": "FP8E4M3", "fp8e5m2": "FP8E5M2"}[name]
    assert fmt.block is None and F.get_format(name, group=64).bits_per_element() == 8.5


SCALES = [1.0, 0.375, -2.5, 2.0**-140, 3e30, 2.0**-126, 0.0, -0.0, np.inf, np.nan]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("group", [None, 64])
def test_decode_every_code_is_dequantize_linear(name, group):
    """decode of all 256 codes under scales of every kind (negative, subnormal product,
    overflowing product, zero, Inf, NaN) == ml_dtypes value * float32 scale, one multiply."""
    rows = len(SCALES)
    codes = np.tile(np.arange(256, dtype=np.uint8), (rows, 1))
    nb = 256 // (group or 256)
    scales = np.repeat(np.array(SCALES, f32)[:, None], nb, axis=1)
    scales[:, 1:] *= f32(3)  # different scales per group
    p = F.Packed(name, torch.from_numpy(codes), torch.from_numpy(scales.copy()).view(torch.uint8),
                 (rows, 256), 1, torch.float32, group or 256, None, {"group": group} if group else {})
    got = F.decode(p).numpy()
    with np.errstate(all="ignore"):
        want = fp8_values(name, codes) * np.repeat(scales, group or 256, axis=1)
    assert_bits(got, want, f"{name} group {group}")


# ---------------------------------------------------------------- fake_quant vs the oracle


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("group", GROUPS)
@given(data=st.data())
def test_fake_quant_matches_numpy_oracle(name, group, data):
    x = data.draw(fp8_rows(name))
    want, _, _ = oracle(x, name, group)
    assert_bits(torch_fq(x, name, group), want, f"{name} group {group}")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("group", GROUPS)
@given(data=st.data())
def test_encode_is_standard_fp8_and_float32(name, group, data):
    """Codes are the FP8 bytes of the rounded elements and scales the float32 bytes of the
    scale (finite blocks); non-finite blocks have the NaN code and a NaN/Inf scale.
    decode(encode(x)) == fake_quant(x), and decode is fp8 value * scale."""
    x = data.draw(fp8_rows(name))
    t = torch.from_numpy(x)
    p = F.encode(t, name, group=group)
    y = F.fake_quant(t, name, group=group)
    assert torch.equal(torch.nan_to_num(F.decode(p), 7.0), torch.nan_to_num(y, 7.0))
    assert_bits(F.decode(p).numpy(), y.numpy(), "decode(encode) bits")

    _, codes, scales = oracle(x, name, group)
    got_codes, got_scales = p.codes.numpy(), p.scales.view(torch.float32).numpy()
    fin = np.isfinite(scales)  # (M, nb)
    block = codes.shape[1] // scales.shape[1]
    fin_el = np.repeat(fin, block, axis=1)
    assert (got_codes[fin_el] == codes[fin_el]).all()
    assert (got_codes[~fin_el] == FP8[name][3].nan_code).all()
    assert_bits(got_scales[fin], scales[fin], "scales")
    assert not np.isfinite(got_scales[~fin]).any()
    # DequantizeLinear semantics on the stored bytes
    with np.errstate(all="ignore"):
        dql = fp8_values(name, got_codes) * np.repeat(got_scales, block, axis=1)
    assert_bits(F.decode(p).numpy(), dql[:, : x.shape[1]], "fp8 * scale")


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_any_axis_and_dtype(name, data):
    """The oracle along another axis, from bf16/fp16 inputs (computed in float32)."""
    x = data.draw(fp8_rows(name, finite=True))
    dtype = data.draw(st.sampled_from([torch.float32, torch.bfloat16, torch.float16]))
    t = torch.from_numpy(x).to(dtype)
    want, _, _ = oracle(t.float().numpy(), name)
    got = F.fake_quant(t.t().contiguous(), name, axis=0).t()
    assert got.dtype == dtype
    assert_same(got, torch.from_numpy(want).to(dtype))


# ---------------------------------------------------------------- hand-computed rows


def _row(values, n=8):
    x = np.zeros((1, max(n, len(values))), f32)
    x[0, : len(values)] = values
    return x


E4M3_CASES = {
    # amax 448: scale 1. RNE ties: 1.0625 between 1 and 1.125 -> 1 (even mantissa);
    # 1.1875 -> 1.25; 248 between 240 and 256 -> 256; subnormal ties on 2^-9 steps
    "ties": ([448, 1.0625, 1.1875, -1.0625, 248, 0.5 * 2**-9, 1.5 * 2**-9, -2.5 * 2**-9],
             [448, 1.0, 1.25, -1.0, 256, 0.0, 2 * 2**-9, -2 * 2**-9]),
    # scale 2^-4 (amax 28): elements on the grid times 2^-4, ties even
    "scaled": ([28, 28 * 2**-8, 1.0625 * 2**-4, 12.5 * 2**-4, 13.5 * 2**-4, -0.0],
               [28, 28 * 2**-8, 2**-4, 12.0 * 2**-4, 14.0 * 2**-4, -0.0]),
    # subnormal amax 627 * 2^-149: scale 1.4 * 2^-149 rounds to 2^-149, x / scale = 627
    # saturates at 448
    "saturate": ([627 * 2.0**-149, -627 * 2.0**-149, 2.0**-149],
                 [448 * 2.0**-149, -448 * 2.0**-149, 2.0**-149]),
    # amax / 448 underflows to 0: divide by 1, tiny values round to (signed) zero
    "scale 0": ([100 * 2.0**-149, -(2.0**-149)], [0.0, -0.0]),
    "zeros": ([0.0, -0.0], [0.0, -0.0]),
}
E5M2_CASES = {
    # scale 1: 1.125 between 1 and 1.25 -> 1; 1.375 -> 1.5; 53248 (between 49152 and
    # 57344) -> 49152 (even mantissa); subnormal 2^-16 steps
    "ties": ([57344, 1.125, 1.375, -1.125, 53248, 0.5 * 2**-16, 1.5 * 2**-16, 2.5 * 2**-16],
             [57344, 1.0, 1.5, -1.0, 49152, 0.0, 2 * 2**-16, 2 * 2**-16]),
    "saturate": ([80000 * 2.0**-149, -80000 * 2.0**-149], [57344 * 2.0**-149, -57344 * 2.0**-149]),
    "scale 0": ([20000 * 2.0**-149, -(2.0**-149)], [0.0, -0.0]),
    "zeros": ([0.0, -0.0], [0.0, -0.0]),
}
EDGE = [("fp8e4m3", k, *v) for k, v in E4M3_CASES.items()] + [("fp8e5m2", k, *v) for k, v in E5M2_CASES.items()]


@pytest.mark.parametrize("name,label,x,want", EDGE, ids=[f"{n}-{k}" for n, k, _, _ in EDGE])
def test_edge_rows(name, label, x, want):
    x, want = _row(x), _row(want)
    assert_bits(oracle(x, name)[0], want, "oracle")
    assert_bits(torch_fq(x, name, None), want, "fake_quant")
    assert_bits(F.decode(F.encode(torch.from_numpy(x), name)).numpy(), want, "decode(encode)")


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_rows_like_int8sym(name):
    """A row (or group) with NaN or +-Inf is NaN throughout, as int8sym's; the others
    are untouched by it; an all-zero row is zeros."""
    x = np.array([[1.0, np.nan, 3.0, 4.0], [1.0, 2.0, np.inf, 4.0], [-np.inf, 2.0, 3.0, 4.0],
                  [0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]], f32)
    t = torch.from_numpy(x)
    for group in (None, 2):
        y = F.fake_quant(t, name, group=group)
        ref = F.fake_quant(t, "int8sym", group=group)
        assert torch.equal(torch.isnan(y), torch.isnan(ref))
        assert_same(y, torch.from_numpy(oracle(x, name, group)[0]))
    assert torch.isnan(F.fake_quant(t, name)[:3]).all()
    assert torch.equal(F.fake_quant(t, name, group=2)[0, 2:], F.fake_quant(t[:1, 2:], name)[0])
    assert torch.equal(F.fake_quant(t, name)[3], torch.zeros(4))


# ---------------------------------------------------------------- onnxruntime DequantizeLinear


def _dequantize_linear(name: str, codes: np.ndarray, scales: np.ndarray, block: int) -> np.ndarray:
    """Standard ONNX DequantizeLinear (opset 21) in onnxruntime: FP8 codes, float32 scales
    per row (axis 0) or per block along axis 1 (block_size)."""
    elem = FP8[name][2]
    x = helper.make_tensor("x", elem, codes.shape, codes.tobytes(), raw=True)
    if scales.shape[1] == 1:
        s, attrs = scales[:, 0].copy(), {"axis": 0}
    else:
        s, attrs = scales, {"axis": 1, "block_size": block}
    node = helper.make_node("DequantizeLinear", ["x", "s"], ["y"], **attrs)
    graph = helper.make_graph([node], "dql", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, codes.shape)],
                              initializer=[x, numpy_helper.from_array(s, "s")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {})[0]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("group", [None, 16])
def test_onnxruntime_dequantize_linear_equals_decode(name, group):
    """onnxruntime's own FP8 DequantizeLinear of our codes and scales == formats.decode,
    bit for bit: such a node imports as npuq::Dequantize losslessly (and back)."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(12, 72, generator=gen) * torch.exp2(torch.randint(-140, 100, (12, 1), generator=gen).float())
    x[0] = 0.0
    x[1, 5] = float("nan")
    x[2, 7] = -float("inf")
    p = F.encode(x, name, group=group)
    scales = p.scales.view(torch.float32).numpy()
    got = _dequantize_linear(name, p.codes.numpy(), scales, p.block)
    assert_bits(got[:, : x.shape[1]], F.decode(p).numpy(), f"{name} group {group}")


def test_function_names_and_registry():
    from onnx_npuq.ops import bodies as B

    assert F.names()[-2:] == NAMES
    assert B.function_name("QuantDequant", "fp8e4m3", group=32) == "QuantDequant_fp8e4m3_group_32"
    assert {"fp8e4m3", "fp8e5m2"} <= set(B.QUANTIZE_FORMATS)
    for name in NAMES:
        attrs = {a.name for a in B.dequantize_function(name).attribute_proto}
        assert attrs == {"length", "block"}
        assert F.get_format(name, group=32).options == {"group": 32}
