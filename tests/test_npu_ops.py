"""onnx_npuq.npu (CPU references of four torch_npu quantization APIs) against independent
numpy re-implementations written here from the documented formulas.

Integer outputs are compared exactly. Where the computation order is the same (everything but
a matmul or an exp), float outputs are compared bit for bit too. The SwiGLU's exp is not
correctly rounded in either library (numpy and torch differ by 1-2 ulp on ~40% of inputs), so
there an integer may differ by one only where the reference's unrounded value lies within
a hair of a rounding tie; random matmuls use the same rule and a float32 accumulation tolerance.
The exact checks of the matmul use x = identity (the product is then the dequantized weight,
exactly) or small integers and powers of two, where every sum is exact.
"""
from __future__ import annotations

import importlib
import inspect
import sys
import types
import zlib

import numpy as np
import pytest
import torch

from onnx_npuq import npu

RNG_SEED = 20240613

# ----------------------------------------------------------------------------- numpy helpers


def rng(*salt) -> np.random.Generator:
    """Deterministic per test case (crc32, not hash(): str hashing is salted per process)."""
    return np.random.default_rng([RNG_SEED, *[zlib.crc32(str(s).encode()) for s in salt]])


def f32(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().to(torch.float32).numpy()
    return np.asarray(t, dtype=np.float32)


def bf16_round(a) -> np.ndarray:
    """float32 -> nearest bfloat16 (ties to even), as float32; finite values."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


def round_to(a, dtype: torch.dtype) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    if dtype == torch.float16:
        return a.astype(np.float16).astype(np.float32)
    if dtype == torch.bfloat16:
        return bf16_round(a)
    return a


def np_pack_int4(vals) -> np.ndarray:
    """Integers in [-8, 7], last dim a multiple of 8 -> int32 words, element j in bits 4j.."""
    v = np.asarray(vals, dtype=np.int64)
    nib = (v & 0xF).astype(np.uint64).reshape(*v.shape[:-1], v.shape[-1] // 8, 8)
    words = np.zeros(nib.shape[:-1], dtype=np.uint64)
    for j in range(8):
        words |= nib[..., j] << np.uint64(4 * j)
    return words.astype(np.uint32).view(np.int32)


def np_unpack_int4(words) -> np.ndarray:
    w = np.asarray(words, dtype=np.int32).view(np.uint32).astype(np.int64)
    out = np.empty((*w.shape[:-1], w.shape[-1] * 8), dtype=np.int64)
    for j in range(8):
        nib = (w >> (4 * j)) & 0xF
        out[..., j::8] = np.where(nib >= 8, nib - 16, nib)
    return out


def rne_sat(v, lo, hi, np_dtype) -> np.ndarray:
    r = np.rint(np.asarray(v, dtype=np.float64))
    r = np.where(np.isnan(r), 0.0, r)
    return np.clip(r, lo, hi).astype(np_dtype)


def round_half_away(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return (np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))).astype(np.float32)


def trunc_fp19(a) -> np.ndarray:
    return (np.ascontiguousarray(a, dtype=np.float32).view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)


def pack_quant_param(scale, offset=None) -> np.ndarray:
    """npu_trans_quant_param: scale & 0xFFFFE000 in bits 0..31, bit 46, 9-bit offset in 37..45."""
    bits = np.ascontiguousarray(scale, dtype=np.float32).view(np.uint32).astype(np.uint64)
    out = (bits & np.uint64(0xFFFFE000)) | np.uint64(1 << 46)
    if offset is not None:
        o = np.clip(round_half_away(offset), -256, 255).astype(np.int64)
        out = (out & np.uint64(0x4000FFFFFFFF)) | ((o.astype(np.uint64) & np.uint64(0x1FF)) << np.uint64(37))
    return out.view(np.int64)


def assert_exact(got: torch.Tensor, want: np.ndarray, dtype: torch.dtype, msg=""):
    assert got.dtype == dtype, f"{msg} dtype {got.dtype} != {dtype}"
    assert tuple(got.shape) == tuple(want.shape), f"{msg} shape {tuple(got.shape)} != {want.shape}"
    g = got.to(torch.float64).numpy() if got.is_floating_point() else got.numpy()
    w = np.asarray(want, dtype=g.dtype)
    bad = np.argwhere(g != w)
    assert bad.size == 0, f"{msg} {len(bad)} differ, e.g. {[(tuple(i), g[tuple(i)], w[tuple(i)]) for i in bad[:5]]}"


def assert_int_near_ties(got: torch.Tensor, pre: np.ndarray, lo, hi, eps, msg=""):
    """got == rne_sat(pre) except within eps of a .5 tie, where it may differ by one."""
    want = rne_sat(pre, lo, hi, np.int64)
    g = got.numpy().astype(np.int64)
    assert g.shape == want.shape, msg
    near = np.abs(np.abs(pre - np.floor(pre)) - 0.5) < eps
    diff = np.abs(g - want)
    assert np.all(diff[~near] == 0), f"{msg} {np.count_nonzero(diff[~near])} differ away from ties"
    assert np.all(diff <= 1), msg
    assert np.count_nonzero(diff) <= max(2, diff.size // 50), f"{msg} too many tie flips"


def check_raises(exc, call, match=None):
    with pytest.raises(exc, match=match):
        call()


# ----------------------------------------------------------------------------- signatures

SIGNATURES = {
    "npu_quantize": "(input, scales, zero_points, dtype, axis=1, div_mode=True)",
    "npu_dynamic_quant": "(input, *, smooth_scales=None, group_index=None, dst_type=None)",
    "npu_weight_quant_batchmatmul": (
        "(x, weight, antiquant_scale, antiquant_offset=None, quant_scale=None, quant_offset=None, "
        "bias=None, antiquant_group_size=0, inner_precise=0, weight_dtype=None)"
    ),
    "npu_dequant_swiglu_quant": (
        "(x, *, weight_scale=None, activation_scale=None, bias=None, quant_scale=None, quant_offset=None, "
        "group_index=None, activate_left=False, quant_mode=0, swiglu_mode=0, clamp_limit=7.0, "
        "glu_alpha=1.702, glu_bias=1.0)"
    ),
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_signature_is_torch_npus(name):
    assert str(inspect.signature(getattr(npu, name))) == SIGNATURES[name]
    assert name in npu.__all__


# ----------------------------------------------------------------------------- npu_quantize

DIV_TRUE = {
    torch.qint8: (-128, 127, torch.int8, np.int8),
    torch.quint8: (0, 255, torch.uint8, np.uint8),
    torch.qint32: (-(2**31), 2**31 - 1, torch.int32, np.int32),
    torch.int32: (-(2**31), 2**31 - 1, torch.int32, np.int32),
}
X_DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def ref_quantize_div(x, s, zp, axis):
    x = f32(x)
    shape = [1] * x.ndim
    shape[axis % x.ndim] = -1
    v = x / f32(s).reshape(shape)
    if zp is not None:
        v = v + f32(zp).reshape(shape)
    return v


@pytest.mark.parametrize("dtype", list(DIV_TRUE), ids=str)
@pytest.mark.parametrize("x_dtype", X_DTYPES, ids=str)
@pytest.mark.parametrize("zp_dtype", [None, torch.int8, torch.uint8, torch.int32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_quantize_div_mode(dtype, x_dtype, zp_dtype, axis):
    g = rng("qdiv", dtype, x_dtype, zp_dtype, axis)
    shape = (3, 5, 8)
    x = torch.from_numpy(g.normal(0, 40, shape).astype(np.float32)).to(x_dtype)
    n = shape[axis]
    s_dtype = torch.bfloat16 if x_dtype == torch.bfloat16 else torch.float32
    s = torch.from_numpy(g.uniform(0.05, 0.6, n).astype(np.float32)).to(s_dtype)
    zp = None
    if zp_dtype is not None:
        lo = 0 if zp_dtype == torch.uint8 else -20
        zp = torch.from_numpy(g.integers(lo, 20, n)).to(zp_dtype)
    lo, hi, tdt, ndt = DIV_TRUE[dtype]
    got = npu.npu_quantize(x, s, zp, dtype, axis)
    assert_exact(got, rne_sat(ref_quantize_div(x, s, zp, axis), lo, hi, ndt), tdt)


def ref_quantize_mul(x, s, z, axis):
    x = f32(x)
    ax = x.ndim - 2 if axis == -2 else x.ndim - 1
    s = f32(s)
    if s.ndim == 1:
        shape = [1] * x.ndim
        shape[ax] = s.size
        s = s.reshape(shape)
        z = None if z is None else f32(z).reshape(shape)
    else:
        z = None if z is None else f32(z)
    v = x * s
    return v if z is None else v + z


SCALE_LAYOUTS = {
    # name: (axis, scale shape for x of shape (2, 4, 16))
    "tensor-1d": (1, (1,)),
    "channel-1d": (-1, (16,)),
    "channel-nd": (2, (1, 1, 16)),
    "tensor-nd": (0, (1, 1, 1)),
    "head-1d": (-2, (4,)),
    "head-nd": (-2, (1, 4, 1)),
}


@pytest.mark.parametrize("dtype", [torch.qint8, torch.int8, torch.quint4x2], ids=str)
@pytest.mark.parametrize("x_dtype", X_DTYPES, ids=str)
@pytest.mark.parametrize("layout", list(SCALE_LAYOUTS))
@pytest.mark.parametrize("with_zp", [False, True], ids=["no_zp", "zp"])
def test_quantize_mul_mode(dtype, x_dtype, layout, with_zp):
    g = rng("qmul", dtype, x_dtype, layout, with_zp)
    axis, sshape = SCALE_LAYOUTS[layout]
    x = torch.from_numpy(g.normal(0, 3, (2, 4, 16)).astype(np.float32)).to(x_dtype)
    big = 1.0 if dtype == torch.quint4x2 else 30.0  # reach saturation either way
    s = torch.from_numpy(g.uniform(0.2, big, sshape).astype(np.float32)).to(x_dtype)
    z = torch.from_numpy(g.uniform(-3, 3, sshape).astype(np.float32)).to(x_dtype) if with_zp else None
    got = npu.npu_quantize(x, s, z, dtype, axis, False)
    v = ref_quantize_mul(x, s, z, axis)
    if dtype == torch.quint4x2:
        want = np_pack_int4(rne_sat(v, -8, 7, np.int64))
        assert_exact(got, want, torch.int32)
        assert got.shape == (2, 4, 2)
    else:
        assert_exact(got, rne_sat(v, -128, 127, np.int8), torch.int8)


def test_quantize_ties_round_half_even():
    x = torch.tensor([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, 126.5])
    one = torch.ones(8)
    want = [0, 2, 2, 4, 0, -2, -2, 126]
    assert npu.npu_quantize(x, one, None, torch.qint8, 0).tolist() == want
    assert npu.npu_quantize(x, one, None, torch.qint8, -1, False).tolist() == want
    # the zero point is added before rounding: RNE(x + 1), not RNE(x) + 1
    zp = torch.ones(8, dtype=torch.int32)
    assert npu.npu_quantize(x, one, zp, torch.qint32, 0).tolist() == [2, 2, 4, 4, 0, 0, -2, 128]
    assert npu.npu_quantize(x, one, one, torch.int8, -1, False).tolist() == [2, 2, 4, 4, 0, 0, -2, 127]
    # scales divide (div_mode=True) or multiply (div_mode=False)
    two = torch.full((8,), 2.0)
    assert npu.npu_quantize(x, two, None, torch.qint8, 0).tolist() == [0, 1, 1, 2, 0, -1, -1, 63]
    assert npu.npu_quantize(x, two, None, torch.qint8, -1, False).tolist() == [1, 3, 5, 7, -1, -3, -5, 127]


def test_quantize_saturation_and_nan():
    x = torch.tensor([[1e9, -1e9, 3e9, -3e9, float("inf"), float("-inf"), float("nan"), 0.0]])
    one = torch.ones(8)
    assert npu.npu_quantize(x, one, None, torch.qint8, 1).tolist() == [[127, -128, 127, -128, 127, -128, 0, 0]]
    assert npu.npu_quantize(x, one, None, torch.quint8, 1).tolist() == [[255, 0, 255, 0, 255, 0, 0, 0]]
    i32 = [2**31 - 1, -(2**31)]
    assert npu.npu_quantize(x, one, None, torch.qint32, 1).tolist() == [[1000000000, -1000000000, *i32, *i32, 0, 0]]
    assert npu.npu_quantize(x, one, None, torch.int8, -1, False).tolist() == [[127, -128, 127, -128, 127, -128, 0, 0]]
    (word,) = npu.npu_quantize(x, one, None, torch.quint4x2, -1, False).reshape(-1).tolist()
    assert word == int(np_pack_int4([[7, -8, 7, -8, 7, -8, 0, 0]])[0, 0])


def test_quint4x2_layout_lowest_nibble_first():
    x = torch.tensor([[0.0, 1, 2, 3, 4, 5, 6, 7], [-1, -1, -1, -1, -1, -1, -1, -1], [-8, 7, 0, 0, 0, 0, 0, -8]])
    got = npu.npu_quantize(x, torch.ones(1), None, torch.quint4x2, -1, False)
    assert got.dtype == torch.int32 and got.shape == (3, 1)
    assert got.reshape(-1).tolist() == [0x76543210, -1, int(np.uint32(0x8000_0078).view(np.int32))]


def test_quantize_errors():
    x = torch.randn(2, 16)
    s16, s2 = torch.ones(16), torch.ones(2)
    cases = [
        (TypeError, lambda: npu.npu_quantize(x.to(torch.int32), s16, None, torch.qint8, 1)),
        (TypeError, lambda: npu.npu_quantize(x.numpy(), s16, None, torch.qint8, 1)),
        (TypeError, lambda: npu.npu_quantize(x, s16, None, torch.int8, 1)),  # not a div_mode=True dtype
        (TypeError, lambda: npu.npu_quantize(x, s16, None, torch.quint8, 1, False)),
        (TypeError, lambda: npu.npu_quantize(x, s16, None, "qint8", 1)),
        (TypeError, lambda: npu.npu_quantize(x, s16.half(), None, torch.qint8, 1)),  # div scales fp32/bf16
        (TypeError, lambda: npu.npu_quantize(x, s16, None, torch.qint8, 1.0)),
        (TypeError, lambda: npu.npu_quantize(x, s16, None, torch.qint8, 1, 1)),
        (ValueError, lambda: npu.npu_quantize(x, s2, None, torch.qint8, 1)),
        (ValueError, lambda: npu.npu_quantize(x, s16, None, torch.qint8, 2)),
        (ValueError, lambda: npu.npu_quantize(x, s16.reshape(1, 16), None, torch.qint8, 1)),
        (ValueError, lambda: npu.npu_quantize(x, s16, torch.zeros(2, dtype=torch.int8), torch.qint8, 1)),
        (TypeError, lambda: npu.npu_quantize(x, s16, torch.zeros(16), torch.qint8, 1)),  # fp32 zero points
        (ValueError, lambda: npu.npu_quantize(x, torch.ones(3), None, torch.qint8, -1, False)),
        (ValueError, lambda: npu.npu_quantize(x, torch.ones(2, 16), None, torch.qint8, -1, False)),
        (ValueError, lambda: npu.npu_quantize(x, s16, None, torch.qint8, -3, False)),
        (ValueError, lambda: npu.npu_quantize(x, s16, None, torch.qint8, 2, False)),
        (ValueError, lambda: npu.npu_quantize(x, s16, torch.ones(1), torch.qint8, -1, False)),
        (ValueError, lambda: npu.npu_quantize(x, s16, torch.ones(16).half(), torch.qint8, -1, False)),
        (ValueError, lambda: npu.npu_quantize(torch.randn(2, 12), torch.ones(12), None, torch.quint4x2, -1, False)),
        (ValueError, lambda: npu.npu_quantize(torch.tensor(1.0), torch.ones(1), None, torch.qint8, 0)),
    ]
    for i, (exc, call) in enumerate(cases):
        with pytest.raises(exc):
            call()
        # every message names the function
    with pytest.raises(ValueError, match="npu_quantize: .*scales"):
        npu.npu_quantize(x, s2, None, torch.qint8, 1)


# ----------------------------------------------------------------------------- npu_dynamic_quant


def ref_dynamic_quant(x, smooth=None, group_ends=None, int4=False):
    """(pre-round values, scale) per docs: t = x * smooth; scale = rowmax|t| / qmax; t / scale."""
    h = x.shape[-1]
    t = f32(x).reshape(-1, h)
    if smooth is not None:
        sm = f32(smooth)
        if group_ends is None:
            t = t * sm
        else:
            start = 0
            t = t.copy()
            for gi, end in enumerate(group_ends):
                t[start:end] = t[start:end] * sm[gi]
                start = end
    qmax = np.float32(7 if int4 else 127)
    scale = (np.max(np.abs(t), axis=-1, keepdims=True) / qmax).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))
    return (t / safe).reshape(x.shape), scale.reshape(x.shape[:-1])


@pytest.mark.parametrize("x_dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", [(4, 32), (2, 3, 16)], ids=str)
@pytest.mark.parametrize("smooth", [False, True], ids=["plain", "smooth"])
@pytest.mark.parametrize("dst_type", [None, torch.int8, torch.quint4x2], ids=str)
def test_dynamic_quant(x_dtype, shape, smooth, dst_type):
    g = rng("dq", x_dtype, shape, smooth, dst_type)
    x = torch.from_numpy(g.normal(0, 2, shape).astype(np.float32)).to(x_dtype)
    sm = torch.from_numpy(g.uniform(0.3, 2.0, shape[-1]).astype(np.float32)).to(x_dtype) if smooth else None
    int4 = dst_type == torch.quint4x2
    y, scale = npu.npu_dynamic_quant(x, smooth_scales=sm, dst_type=dst_type)
    pre, want_scale = ref_dynamic_quant(x, sm, int4=int4)
    assert_exact(scale, want_scale, torch.float32)
    if int4:
        q = rne_sat(pre, -8, 7, np.int64)
        assert np.abs(q).max() == 7
        assert_exact(y, np_pack_int4(q), torch.int32)
        assert y.shape == (*shape[:-1], shape[-1] // 8)
    else:
        q = rne_sat(pre, -128, 127, np.int8)
        assert np.abs(q.astype(int)).max() == 127
        assert_exact(y, q, torch.int8)


@pytest.mark.parametrize("x_dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("dst_type", [None, torch.quint4x2], ids=str)
def test_dynamic_quant_group_index(x_dtype, dst_type):
    g = rng("dqg", x_dtype, dst_type)
    x = torch.from_numpy(g.normal(0, 1, (2, 5, 16)).astype(np.float32)).to(x_dtype)
    sm = torch.from_numpy(g.uniform(0.1, 3.0, (4, 16)).astype(np.float32)).to(x_dtype)
    ends = [3, 3, 7, 10]  # cumulative row ends; group 1 is empty
    gi = torch.tensor(ends, dtype=torch.int32)
    y, scale = npu.npu_dynamic_quant(x, smooth_scales=sm, group_index=gi, dst_type=dst_type)
    int4 = dst_type == torch.quint4x2
    pre, want_scale = ref_dynamic_quant(x, sm, ends, int4=int4)
    assert_exact(scale, want_scale, torch.float32)
    if int4:
        assert_exact(y, np_pack_int4(rne_sat(pre, -8, 7, np.int64)), torch.int32)
    else:
        assert_exact(y, rne_sat(pre, -128, 127, np.int8), torch.int8)


def test_dynamic_quant_ties_zero_rows_and_scale():
    # amax 127 -> scale exactly 1: RNE of the values themselves
    row = [127.0, 0.5, 1.5, 2.5, -2.5, -0.5, 3.5, -127.0]
    x = torch.tensor([row, [0.0] * 8, [-254.0, 1, 3, 5, 7, 9, 11, 13]], dtype=torch.float16)
    y, scale = npu.npu_dynamic_quant(x)
    assert y.tolist() == [[127, 0, 2, 2, -2, 0, 4, -127], [0] * 8, [-127, 0, 2, 2, 4, 4, 6, 6]]
    assert scale.tolist() == [1.0, 0.0, 2.0]
    # int4: amax 7 -> scale 1
    x4 = torch.tensor([[7.0, 0.5, 1.5, 2.5, -2.5, -6.5, -7, 5.5]], dtype=torch.bfloat16)
    y4, s4 = npu.npu_dynamic_quant(x4, dst_type=torch.quint4x2)
    assert s4.tolist() == [1.0]
    assert y4.tolist() == [[int(np_pack_int4([[7, 0, 2, 2, -2, -6, -7, 6]])[0, 0])]]


def test_dynamic_quant_errors():
    x = torch.randn(4, 16, dtype=torch.float16)
    sm = torch.ones(16, dtype=torch.float16)
    gi = torch.tensor([2, 4], dtype=torch.int32)
    sm2 = torch.ones(2, 16, dtype=torch.float16)
    cases = [
        (TypeError, lambda: npu.npu_dynamic_quant(x.float())),
        (ValueError, lambda: npu.npu_dynamic_quant(torch.randn(16, dtype=torch.float16))),
        (TypeError, lambda: npu.npu_dynamic_quant(x, dst_type=torch.uint8)),
        (TypeError, lambda: npu.npu_dynamic_quant(x, dst_type=torch.qint8)),
        (ValueError, lambda: npu.npu_dynamic_quant(torch.randn(2, 12, dtype=torch.float16), dst_type=torch.quint4x2)),
        (TypeError, lambda: npu.npu_dynamic_quant(x, smooth_scales=sm.bfloat16())),
        (ValueError, lambda: npu.npu_dynamic_quant(x, smooth_scales=torch.ones(8, dtype=torch.float16))),
        (ValueError, lambda: npu.npu_dynamic_quant(x, group_index=gi)),
        (ValueError, lambda: npu.npu_dynamic_quant(x, smooth_scales=sm, group_index=gi)),
        (TypeError, lambda: npu.npu_dynamic_quant(x, smooth_scales=sm2, group_index=gi.long())),
        (ValueError, lambda: npu.npu_dynamic_quant(x, smooth_scales=sm2, group_index=torch.tensor([2, 3], dtype=torch.int32))),
        (ValueError, lambda: npu.npu_dynamic_quant(x, smooth_scales=sm2, group_index=torch.tensor([3, 2], dtype=torch.int32))),
        (ValueError, lambda: npu.npu_dynamic_quant(x, smooth_scales=sm2, group_index=torch.tensor([4], dtype=torch.int32))),
    ]
    for exc, call in cases:
        check_raises(exc, call, match="npu_dynamic_quant")
    with pytest.raises(TypeError):
        npu.npu_dynamic_quant(x, sm)  # smooth_scales is keyword-only


# ----------------------------------------------------------------------------- npu_weight_quant_batchmatmul


def make_weight(wvals: np.ndarray, kind: str) -> torch.Tensor:
    """(K, N) int values in [-8, 7] -> weight tensor of the kind torch_npu takes."""
    if kind == "int8":
        return torch.from_numpy(wvals.astype(np.int8))
    if kind == "int4":  # npu_convert_weight_to_int4pack of a (K, N) int32 tensor
        return torch.from_numpy(np_pack_int4(wvals))
    if kind == "int4-t":  # of a (N, K) tensor, then transposed
        return torch.from_numpy(np_pack_int4(wvals.T.copy())).t()
    raise AssertionError(kind)


def ref_wqbmm(x, wvals, dtype, scale, offset, gs, bias):
    """float32 accumulator per docs: x @ ((w + offset) * scale) + bias, weight math in x's dtype."""
    k, n = wvals.shape

    def expand(p):
        p = f32(p)
        if gs:
            return np.repeat(p, gs, axis=0)[:k]
        return p.reshape(1, 1) if p.size == 1 else p.reshape(1, n)

    w = wvals.astype(np.float32)
    if offset is not None:
        w = round_to(w + expand(offset), dtype)
    w = round_to(w * expand(scale), dtype)
    acc = (f32(x).astype(np.float64) @ w.astype(np.float64)).astype(np.float32)
    if bias is not None:
        acc = acc + f32(bias).reshape(1, n)
    return acc


MODES = {  # name: (antiquant_group_size, scale shape for K=96, N=16)
    "tensor-1d": (0, (1,)),
    "tensor-2d": (0, (1, 1)),
    "channel-1d": (0, (16,)),
    "channel-2d": (0, (1, 16)),
    "group32": (32, (3, 16)),
    "group64": (64, (2, 16)),  # K=96 is not a multiple: the last group is partial
}


def wq_inputs(g, dtype, kind, mode, with_offset, with_bias, k=96, n=16):
    gs, sshape = MODES[mode]
    wvals = g.integers(-8, 8, (k, n))
    weight = make_weight(wvals, kind)
    scale = torch.from_numpy(g.uniform(-0.3, 0.3, sshape).astype(np.float32)).to(dtype)
    offset = torch.from_numpy(g.uniform(-9, 9, sshape).astype(np.float32)).to(dtype) if with_offset else None
    bias = None
    if with_bias:
        bias = torch.from_numpy(g.uniform(-4, 4, n).astype(np.float32))
        bias = bias.half() if dtype == torch.float16 else bias
    return wvals, weight, scale, offset, gs, bias


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("kind", ["int8", "int4", "int4-t"])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("with_offset", [False, True], ids=["no_off", "off"])
@pytest.mark.parametrize("with_bias", [False, True], ids=["no_bias", "bias"])
def test_wqbmm_dequantized_weight_exact(dtype, kind, mode, with_offset, with_bias):
    """x = I: y is the dequantized weight (+ bias), so every rounding step shows, exactly."""
    g = rng("wq", dtype, kind, mode, with_offset, with_bias)
    wvals, weight, scale, offset, gs, bias = wq_inputs(g, dtype, kind, mode, with_offset, with_bias)
    x = torch.eye(96, dtype=dtype)
    got = npu.npu_weight_quant_batchmatmul(x, weight, scale, offset, None, None, bias, gs)
    want = round_to(ref_wqbmm(x, wvals, dtype, scale, offset, gs, bias), dtype)
    assert_exact(got, want, dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("kind", ["int8", "int4-t"])
@pytest.mark.parametrize("mode", ["channel-2d", "group32"])
def test_wqbmm_integer_inputs_exact(dtype, kind, mode):
    """Small-integer x, power-of-two scales, integer offsets: all sums exact, so y is exact."""
    g = rng("wqi", dtype, kind, mode)
    gs, sshape = MODES[mode]
    wvals = g.integers(-8, 8, (96, 16))
    x = torch.from_numpy(g.integers(-3, 4, (5, 96)).astype(np.float32)).to(dtype)
    scale = torch.from_numpy((2.0 ** g.integers(-4, 1, sshape)).astype(np.float32)).to(dtype)
    offset = torch.from_numpy(g.integers(-2, 3, sshape).astype(np.float32)).to(dtype)
    bias = torch.from_numpy((g.integers(-8, 8, 16) / 4).astype(np.float32))
    bias = bias.half() if dtype == torch.float16 else bias
    got = npu.npu_weight_quant_batchmatmul(x, make_weight(wvals, kind), scale, offset, bias=bias, antiquant_group_size=gs)
    assert_exact(got, round_to(ref_wqbmm(x, wvals, dtype, scale, offset, gs, bias), dtype), dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("mode", ["tensor-1d", "channel-1d", "group32"])
def test_wqbmm_random_within_accumulation_tolerance(dtype, mode):
    g = rng("wqr", dtype, mode)
    wvals, weight, scale, offset, gs, bias = wq_inputs(g, dtype, "int4", mode, True, True)
    x = torch.from_numpy(g.normal(0, 1, (7, 96)).astype(np.float32)).to(dtype)
    got = npu.npu_weight_quant_batchmatmul(x, weight, scale, offset, bias=bias, antiquant_group_size=gs)
    want = ref_wqbmm(x, wvals, dtype, scale, offset, gs, bias)
    assert got.dtype == dtype and got.shape == (7, 16)
    ulp = 2.0**-10 if dtype == torch.float16 else 2.0**-7
    np.testing.assert_allclose(f32(got), want, rtol=ulp, atol=1e-3 * np.abs(want).max())


def ref_quant_out(acc, qscale, qoffset):
    v = acc * trunc_fp19(f32(qscale).reshape(1, -1))
    if qoffset is not None:
        v = v + np.clip(round_half_away(f32(qoffset)), -256, 255).reshape(1, -1)
    return v


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("qshape", [(1,), (16,), (1, 16)], ids=str)
@pytest.mark.parametrize("with_qoffset", [False, True], ids=["no_qoff", "qoff"])
@pytest.mark.parametrize("packed", [False, True], ids=["fp32", "int64"])
def test_wqbmm_int8_output_exact(dtype, qshape, with_qoffset, packed):
    g = rng("wqq", dtype, qshape, with_qoffset, packed)
    wvals, weight, scale, offset, gs, bias = wq_inputs(g, dtype, "int8", "channel-2d", True, True)
    x = torch.eye(96, dtype=dtype)
    qs = (g.uniform(25, 250, qshape) * g.choice([-1, 1], qshape)).astype(np.float32)
    qo = g.uniform(-300, 300, qshape).astype(np.float32) if with_qoffset else None
    if qo is not None:
        qo.reshape(-1)[:2] = [2.5, -0.5][: qo.size]  # offsets round half away from zero
    if packed:
        quant_scale, quant_offset = torch.from_numpy(pack_quant_param(qs, qo)), None
    else:
        quant_scale = torch.from_numpy(qs)
        quant_offset = None if qo is None else torch.from_numpy(qo)
    got = npu.npu_weight_quant_batchmatmul(x, weight, scale, offset, quant_scale, quant_offset, bias)
    v = ref_quant_out(ref_wqbmm(x, wvals, dtype, scale, offset, gs, bias), qs, qo)
    want = rne_sat(v, -128, 127, np.int8)
    assert_exact(got, want, torch.int8)
    sat = (want == 127) | (want == -128)
    assert sat.any() and not sat.all()


def test_wqbmm_int8_output_ties_and_scale_truncation():
    x = torch.eye(64, dtype=torch.float16)
    w = torch.zeros(64, 8, dtype=torch.int8)
    w[:8, :] = torch.tensor([5, 7, -5, -7, 1, 3, 9, 100], dtype=torch.int8).reshape(8, 1).expand(8, 8)
    one = torch.ones(1, dtype=torch.float16)
    y = npu.npu_weight_quant_batchmatmul(x, w, one, quant_scale=torch.full((8,), 0.5))
    assert y[:8, 0].tolist() == [2, 4, -2, -4, 0, 2, 4, 50]  # 2.5 3.5 -2.5 -3.5 0.5 1.5 4.5 50
    # the float32 quant_scale keeps its top 19 bits only (npu_trans_quant_param): 1 + 2**-11 -> 1
    s = torch.full((8,), 1 + 2.0**-11)
    y = npu.npu_weight_quant_batchmatmul(x, w * 0 + 100, one, quant_scale=s * 1.2)  # 100 * ~1.2
    s19 = trunc_fp19(np.float32(1.2 * (1 + 2**-11))).item()
    assert s19 < np.float32(1.2 * (1 + 2**-11))
    assert y[:8].unique().tolist() == [int(np.rint(np.float32(100) * np.float32(s19)))]


def test_wqbmm_int64_antiquant_scale():
    """Per-channel fixpipe mode: y = (x @ fp16(w + offset)) * fp16(scale) + bias."""
    g = rng("wq64")
    k, n = 64, 16
    wvals = g.integers(-128, 128, (k, n))
    weight = torch.from_numpy(wvals.T.astype(np.int8).copy()).t()  # transposed input, as documented
    sc = g.uniform(0.001, 0.2, n).astype(np.float32)
    off = g.integers(-128, 127, (1, n)).astype(np.int32)
    packed = torch.from_numpy(pack_quant_param(sc)).reshape(1, n)
    bias = torch.from_numpy(g.uniform(-1, 1, n).astype(np.float16))
    x = torch.eye(k, dtype=torch.float16)
    got = npu.npu_weight_quant_batchmatmul(x, weight, packed, torch.from_numpy(off), bias=bias)
    w = round_to(wvals + off, torch.float16)
    acc = w * round_to(trunc_fp19(sc), torch.float16).reshape(1, n) + f32(bias).reshape(1, n)
    assert_exact(got, round_to(acc, torch.float16), torch.float16)


def test_wqbmm_output_shape_and_dtype():
    x = torch.randn(3, 64, dtype=torch.bfloat16)
    w8 = torch.randint(-8, 8, (64, 40), dtype=torch.int8)
    s = torch.ones(40, dtype=torch.bfloat16)
    assert npu.npu_weight_quant_batchmatmul(x, w8, s).shape == (3, 40)
    assert npu.npu_weight_quant_batchmatmul(x, w8, s).dtype == torch.bfloat16
    packed = make_weight(np.zeros((64, 40), dtype=np.int64), "int4")
    assert packed.shape == (64, 5)
    assert npu.npu_weight_quant_batchmatmul(x, packed, s).shape == (3, 40)
    packed_t = make_weight(np.zeros((64, 40), dtype=np.int64), "int4-t")
    assert packed_t.shape == (8, 40)
    assert npu.npu_weight_quant_batchmatmul(x, packed_t, s).shape == (3, 40)
    y = npu.npu_weight_quant_batchmatmul(x, w8, s, quant_scale=torch.ones(40))
    assert y.dtype == torch.int8 and y.shape == (3, 40)
    assert npu.npu_weight_quant_batchmatmul(x, w8, s, inner_precise=1).dtype == torch.bfloat16


def test_wqbmm_errors():
    x = torch.randn(3, 64, dtype=torch.float16)
    w = torch.randint(-8, 8, (64, 16), dtype=torch.int8)
    s = torch.ones(16, dtype=torch.float16)
    f = npu.npu_weight_quant_batchmatmul
    cases = [
        (TypeError, lambda: f(x.float(), w, s.float())),
        (TypeError, lambda: f(x, w.to(torch.uint8), s)),
        (TypeError, lambda: f(x, w, s.bfloat16())),
        (TypeError, lambda: f(x, w, s.float())),
        (ValueError, lambda: f(x[:, :32], w, s)),
        (ValueError, lambda: f(x.reshape(1, 3, 64), w, s)),
        (ValueError, lambda: f(x, w, torch.ones(8, dtype=torch.float16))),
        (ValueError, lambda: f(x, w, torch.ones(2, 16, dtype=torch.float16))),  # 2-row scale, no group size
        (ValueError, lambda: f(x, w, torch.ones(2, 16, dtype=torch.float16), antiquant_group_size=48)),
        (ValueError, lambda: f(x, w, torch.ones(1, 16, dtype=torch.float16), antiquant_group_size=64)),  # >= K
        (ValueError, lambda: f(x, w, torch.ones(3, 16, dtype=torch.float16), antiquant_group_size=32)),
        (ValueError, lambda: f(x, w, s, torch.ones(1, 16, dtype=torch.float16).t())),
        (TypeError, lambda: f(x, w, s, s.bfloat16())),
        (ValueError, lambda: f(x, w, s, quant_offset=torch.ones(16))),
        (ValueError, lambda: f(x, w, s, quant_scale=torch.ones(8))),
        (ValueError, lambda: f(x, w, s, quant_scale=torch.ones(16), quant_offset=torch.ones(1))),
        (ValueError, lambda: f(x, w, s, quant_scale=torch.ones(16, dtype=torch.int64), quant_offset=torch.ones(16))),
        (TypeError, lambda: f(x, w, s, quant_scale=torch.ones(16, dtype=torch.float16))),
        (TypeError, lambda: f(x, w, s, bias=torch.ones(16))),  # fp16 x needs an fp16 bias
        (TypeError, lambda: f(x.bfloat16(), w, s.bfloat16(), bias=torch.ones(16, dtype=torch.bfloat16))),
        (ValueError, lambda: f(x, w, s, bias=torch.ones(8, dtype=torch.float16))),
        (ValueError, lambda: f(x, w, s, inner_precise=2)),
        (TypeError, lambda: f(x, w, s, antiquant_group_size=32.0)),
        (ValueError, lambda: f(x, torch.zeros(64, 4, dtype=torch.int32)[:, ::2], s)),  # int32 neither layout
        (TypeError, lambda: f(x.bfloat16(), w, torch.ones(16, dtype=torch.int64))),
        (ValueError, lambda: f(x, w, torch.ones(16, dtype=torch.int64), antiquant_group_size=32)),
        (TypeError, lambda: f(x, w, torch.ones(16, dtype=torch.int64), torch.ones(16, dtype=torch.float16))),
        (ValueError, lambda: f(x, w, torch.ones(16, dtype=torch.int64), quant_scale=torch.ones(16))),
        (ValueError, lambda: f(x, w, s, weight_dtype=torch.float8_e4m3fn)),
    ]
    for exc, call in cases:
        check_raises(exc, call, match="npu_weight_quant_batchmatmul")


# ----------------------------------------------------------------------------- npu_dequant_swiglu_quant


def ref_dequant_swiglu(x, ws=None, act=None, bias=None, qs=None, qo=None, counts=None, left=False,
                       dynamic=False, swiglu_mode=0, limit=7.0, alpha=1.702, gbias=1.0):
    """(pre-round values (rows, H), scale (rows,), rows used) from the doc formulas, float32."""
    h2 = x.shape[-1]
    h = h2 // 2
    xr = x.reshape(-1, h2)
    tokens = xr.shape[0]
    counts = [tokens] if counts is None else counts
    pre = np.zeros((tokens, h), dtype=np.float32)
    scale = np.zeros(tokens, dtype=np.float32)
    start = 0
    for g, c in enumerate(counts):
        rows = slice(start, start + c)
        start += c
        if x.dtype == torch.int32:
            xi = xr[rows].numpy().astype(np.int32)
            if bias is not None and bias.dtype == torch.int32:
                xi = xi + bias.numpy().reshape(-1)
            v = xi.astype(np.float32)
            if ws is not None:
                v = v * f32(ws).reshape(len(counts), h2)[g]
            v = v * f32(act).reshape(-1)[rows, None]
            if bias is not None and bias.dtype != torch.int32:
                v = v + f32(bias).reshape(-1)
        else:
            v = f32(xr[rows])
        if swiglu_mode == 0:
            a, b = (v[:, :h], v[:, h:]) if left else (v[:, h:], v[:, :h])
            neg = np.float32(-1)
        else:
            a = np.minimum(v[:, 0::2], np.float32(limit))
            b = np.clip(v[:, 1::2], np.float32(-limit), np.float32(limit)) + np.float32(gbias)
            neg = np.float32(-alpha)
        out = a / (np.exp(a * neg) + np.float32(1)) * b
        if dynamic:
            if qs is not None:
                out = out * f32(qs).reshape(len(counts), h)[g]
            s = (np.max(np.abs(out), axis=-1, keepdims=True) / np.float32(127)).astype(np.float32)
            out = out / np.where(s > 0, s, np.float32(1))
            scale[rows] = s.reshape(-1)
        elif qs is not None:
            q = f32(qs)
            per_channel = q.size == len(counts) * h and not (q.size == len(counts) and h == 1)
            q = q.reshape(len(counts), h if per_channel else 1)[g]
            out = out / q
            if qo is not None:
                out = out + f32(qo).reshape(len(counts), h if per_channel else 1)[g]
        pre[rows] = out
    return pre, scale, start


SWIGLU_CASES = []
for _xdt in ["int32", "bf16"]:
    for _mode in [0, 1]:
        for _sw in [0, 1]:
            for _left in [False, True]:
                for _extra in ["plain", "bias-int", "bias-float", "qscale", "groups"]:
                    if _xdt == "bf16" and _extra.startswith("bias"):
                        continue
                    if _sw == 1 and _left:
                        continue  # activate_left has no effect in swiglu_mode 1 (checked separately)
                    SWIGLU_CASES.append((_xdt, _mode, _sw, _left, _extra))


@pytest.mark.parametrize("xdt,quant_mode,swiglu_mode,left,extra", SWIGLU_CASES)
def test_dequant_swiglu_quant(xdt, quant_mode, swiglu_mode, left, extra):
    g = rng("dsq", xdt, quant_mode, swiglu_mode, left, extra)
    tokens, h = 12, 32
    counts = [3, 0, 5, 2] if extra == "groups" else None  # 2 tokens past the sum
    ng = 1 if counts is None else len(counts)
    if xdt == "int32":
        x = torch.from_numpy(g.integers(-400, 400, (tokens, 2 * h)).astype(np.int32))
        ws = torch.from_numpy(g.uniform(0.001, 0.02, (ng, 2 * h)).astype(np.float32))
        act = torch.from_numpy(g.uniform(0.2, 1.5, (tokens, 1)).astype(np.float32))
    else:
        x = torch.from_numpy(g.normal(0, 3, (tokens, 2 * h)).astype(np.float32)).bfloat16()
        ws = act = None
    bias = None
    if extra == "bias-int":
        bias = torch.from_numpy(g.integers(-50, 50, 2 * h).astype(np.int32))
    elif extra == "bias-float":
        bias = torch.from_numpy(g.uniform(-1, 1, 2 * h).astype(np.float32))
    qs = qo = None
    if extra in ("qscale", "groups", "bias-float"):
        if quant_mode == 1:
            qs = torch.from_numpy(g.uniform(0.5, 2.0, (ng, h)).astype(np.float32))
        else:
            qs = torch.from_numpy(g.uniform(0.02, 0.1, (ng, h)).astype(np.float32))
            if counts is None:
                qo = torch.from_numpy(g.uniform(-5, 5, (ng, h)).astype(np.float32))
    y, scale = npu.npu_dequant_swiglu_quant(
        x, weight_scale=ws, activation_scale=act, bias=bias, quant_scale=qs, quant_offset=qo,
        group_index=None if counts is None else torch.tensor(counts), activate_left=left,
        quant_mode=quant_mode, swiglu_mode=swiglu_mode,
    )
    pre, want_scale, used = ref_dequant_swiglu(
        x, ws, act, bias, qs, qo, counts, left, quant_mode == 1, swiglu_mode
    )
    assert y.dtype == torch.int8 and y.shape == (tokens, h)
    assert scale.dtype == torch.float32 and scale.shape == (tokens,)
    np.testing.assert_allclose(scale.numpy(), want_scale, rtol=4e-6, atol=0)
    if quant_mode == 0:
        assert not scale.any()
    assert_int_near_ties(y, pre, -128, 127, eps=2e-3, msg=str((xdt, quant_mode, swiglu_mode, left, extra)))
    assert not y[used:].any() and not scale[used:].any()
    if quant_mode == 1:
        assert (y[:used].abs().amax(-1) == 127).all() or used == 0


def test_dequant_swiglu_activate_left_ignored_in_mode_1():
    x = torch.from_numpy(rng("left").normal(0, 2, (4, 16)).astype(np.float32)).bfloat16()
    a = npu.npu_dequant_swiglu_quant(x, quant_mode=1, swiglu_mode=1, activate_left=True)
    b = npu.npu_dequant_swiglu_quant(x, quant_mode=1, swiglu_mode=1, activate_left=False)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_dequant_swiglu_exact_ties_and_saturation():
    """A >= 32 makes swish(A) == A exactly in float32 (1 + exp(-A) == 1), so y is exact."""
    # int32 x: left half A = 32 (weight scale 1), right half B = 1 * weight_scale
    bvals = [127 / 32, 2.5 / 32, -3.5 / 32, 0.5 / 32, 1.5 / 32, -0.5 / 32, 200 / 32, -200 / 32]
    x = torch.tensor([[32] * 8 + [1] * 8], dtype=torch.int32)
    ws = torch.tensor([[1.0] * 8 + bvals])
    act = torch.ones(1)
    y, s = npu.npu_dequant_swiglu_quant(x, weight_scale=ws, activation_scale=act, activate_left=True, quant_mode=0)
    assert y.tolist() == [[127, 2, -4, 0, 2, 0, 127, -128]] and s.tolist() == [0.0]
    qs = torch.tensor([[2.0] * 8])
    qo = torch.tensor([[0.5] * 8])  # (v / 2) + 0.5
    y, _ = npu.npu_dequant_swiglu_quant(
        x, weight_scale=ws, activation_scale=act, quant_scale=qs, quant_offset=qo, activate_left=True
    )
    assert y.tolist() == [[64, 2, -1, 1, 1, 0, 100, -100]]  # 64 1.75 -1.25 .75 1.25 .25 100.5 -99.5
    # dynamic: amax 200 -> scale 200/127; rows of zeros -> scale 0, y 0
    x2 = torch.cat([x, torch.zeros_like(x)])
    y, s = npu.npu_dequant_swiglu_quant(
        x2, weight_scale=ws, activation_scale=torch.ones(2), activate_left=True, quant_mode=1
    )
    sc = np.float32(200) / np.float32(127)
    assert s.tolist() == [float(sc), 0.0]
    vals = np.array(bvals, dtype=np.float32) * np.float32(32)
    assert y[0].tolist() == rne_sat(vals / sc, -128, 127, np.int64).tolist() and not y[1].any()
    # activate_left=False: swish on the right half (B), times the left half (A = 32)
    xr = torch.tensor([[1] * 8 + [32] * 8], dtype=torch.int32)
    wr = torch.tensor([bvals + [1.0] * 8])
    y, _ = npu.npu_dequant_swiglu_quant(xr, weight_scale=wr, activation_scale=act, activate_left=False)
    pre, _, _ = ref_dequant_swiglu(xr, wr, act, left=False)
    assert_int_near_ties(y, pre, -128, 127, eps=2e-3)
    yl, _ = npu.npu_dequant_swiglu_quant(xr, weight_scale=wr, activation_scale=act, activate_left=True)
    assert not torch.equal(y, yl)


def test_dequant_swiglu_mode1_clamps():
    # even columns (glu) clamp to <= limit, odd (linear) to [-limit, limit] then + glu_bias
    x = torch.tensor([[100.0, 100.0, 100.0, -100.0]], dtype=torch.bfloat16)
    y, _ = npu.npu_dequant_swiglu_quant(x, swiglu_mode=1, clamp_limit=7.0, glu_alpha=1.702, glu_bias=1.0)
    a = np.float32(7)
    sw = a / (np.exp(a * np.float32(-1.702)) + np.float32(1))
    assert y.tolist() == [[int(np.rint(sw * 8)), int(np.rint(sw * -6))]]
    with pytest.raises(ValueError, match="clamp_limit"):
        npu.npu_dequant_swiglu_quant(x, swiglu_mode=1, clamp_limit=0.0)


def test_dequant_swiglu_nd_and_fp16_input():
    x = torch.from_numpy(rng("nd").normal(0, 2, (2, 3, 8)).astype(np.float32)).half()
    y, s = npu.npu_dequant_swiglu_quant(x, quant_mode=1)
    assert y.shape == (2, 3, 4) and s.shape == (2, 3)
    y2, s2 = npu.npu_dequant_swiglu_quant(x.reshape(6, 8), quant_mode=1)
    assert torch.equal(y.reshape(6, 4), y2) and torch.equal(s.reshape(6), s2)


def test_dequant_swiglu_errors():
    x = torch.randint(-5, 5, (4, 8), dtype=torch.int32)
    act = torch.ones(4)
    ws = torch.ones(8)
    gi = torch.tensor([2, 2])
    f = npu.npu_dequant_swiglu_quant
    cases = [
        (TypeError, lambda: f(x.float(), quant_mode=1)),
        (ValueError, lambda: f(torch.randint(0, 5, (4, 7), dtype=torch.int32), activation_scale=act)),
        (ValueError, lambda: f(torch.randint(0, 5, (8,), dtype=torch.int32), activation_scale=act)),
        (ValueError, lambda: f(x, weight_scale=ws)),  # activation_scale required for int32 x
        (ValueError, lambda: f(x, activation_scale=torch.ones(3))),
        (ValueError, lambda: f(x, activation_scale=torch.ones(4, 2))),
        (TypeError, lambda: f(x, activation_scale=act.half())),
        (ValueError, lambda: f(x, activation_scale=act, weight_scale=torch.ones(6))),
        (TypeError, lambda: f(x, activation_scale=act, weight_scale=ws.half())),
        (ValueError, lambda: f(x, activation_scale=act, bias=torch.ones(4, dtype=torch.int32))),
        (TypeError, lambda: f(x, activation_scale=act, bias=torch.ones(8, dtype=torch.int64))),
        (ValueError, lambda: f(x.bfloat16(), activation_scale=act)),
        (ValueError, lambda: f(x.bfloat16(), bias=torch.ones(8, dtype=torch.int32))),
        (ValueError, lambda: f(x, activation_scale=act, quant_mode=2)),
        (ValueError, lambda: f(x, activation_scale=act, swiglu_mode=2)),
        (TypeError, lambda: f(x, activation_scale=act, activate_left=1)),
        (TypeError, lambda: f(x, activation_scale=act, glu_alpha="1")),
        (ValueError, lambda: f(x, activation_scale=act, glu_bias=float("nan"))),
        (ValueError, lambda: f(x, activation_scale=act, quant_mode=1, quant_scale=torch.ones(3))),
        (ValueError, lambda: f(x, activation_scale=act, quant_mode=1, quant_scale=torch.ones(4), quant_offset=torch.ones(4))),
        (ValueError, lambda: f(x, activation_scale=act, quant_scale=torch.ones(3))),
        (TypeError, lambda: f(x, activation_scale=act, quant_scale=torch.ones(4).half())),  # static: fp32 only
        (ValueError, lambda: f(x, activation_scale=act, quant_scale=torch.ones(4), quant_offset=torch.ones(1, 4))),
        (ValueError, lambda: f(x, activation_scale=act, quant_offset=torch.ones(4))),
        (TypeError, lambda: f(x, activation_scale=act, group_index=gi.int())),
        (ValueError, lambda: f(x, activation_scale=act, group_index=torch.tensor([3, 2]))),
        (ValueError, lambda: f(x, activation_scale=act, group_index=torch.tensor([2, -1]))),
        (ValueError, lambda: f(x, activation_scale=act, group_index=gi, bias=torch.ones(8, dtype=torch.int32))),
        (ValueError, lambda: f(x, activation_scale=act, group_index=gi, quant_scale=torch.ones(2, 4), quant_offset=torch.ones(2, 4))),
        (ValueError, lambda: f(x, activation_scale=act, group_index=gi, weight_scale=ws)),  # needs (2, 8)
    ]
    for exc, call in cases:
        check_raises(exc, call, match="npu_dequant_swiglu_quant")
    with pytest.raises(TypeError):
        f(x, None, act)  # everything after x is keyword-only


# ----------------------------------------------------------------------------- torch_npu handling


def _all_four_on_cpu():
    x = torch.randn(2, 16)
    npu.npu_quantize(x, torch.ones(16), None, torch.qint8, -1, False)
    npu.npu_dynamic_quant(x.half())
    npu.npu_weight_quant_batchmatmul(x.half(), torch.ones(16, 8, dtype=torch.int8), torch.ones(8).half())
    npu.npu_dequant_swiglu_quant(torch.ones(2, 16, dtype=torch.int32), activation_scale=torch.ones(2))


@pytest.fixture
def fresh_cache(monkeypatch):
    monkeypatch.setattr(npu._common, "_TORCH_NPU", npu._UNSET)


def test_works_without_torch_npu_and_never_imports_it(monkeypatch, fresh_cache):
    attempts = []
    real_import = importlib.import_module

    def spy(name, *args, **kwargs):
        if name == "torch_npu":
            attempts.append(name)
            raise ImportError("No module named 'torch_npu'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", spy)
    monkeypatch.setitem(sys.modules, "torch_npu", None)  # a plain `import torch_npu` fails too
    _all_four_on_cpu()
    assert attempts == []  # CPU tensors never trigger the import
    assert npu._load_torch_npu() is None
    assert npu._load_torch_npu() is None
    assert attempts == ["torch_npu"]  # tried once, result cached
    _all_four_on_cpu()  # still fine with the failure cached


def test_broken_torch_npu_install_is_treated_as_absent(monkeypatch, fresh_cache):
    def broken(name, *args, **kwargs):
        raise RuntimeError("Failed to load the backend extension: torch_npu")

    monkeypatch.setattr(importlib, "import_module", broken)
    assert npu._load_torch_npu() is None


def test_npu_tensors_go_to_torch_npu(monkeypatch):
    calls = []

    def record(name):
        def fn(*args, **kwargs):
            calls.append((name, args, kwargs))
            return name

        return fn

    fake = types.SimpleNamespace(**{n: record(n) for n in SIGNATURES})
    monkeypatch.setattr(npu._common, "_TORCH_NPU", fake)
    monkeypatch.setattr(npu._common, "_is_npu", lambda t: isinstance(t, torch.Tensor))
    x = torch.ones(2, 16)
    s = torch.ones(16)
    assert npu.npu_quantize(x, s, None, torch.quint4x2, -2, False) == "npu_quantize"
    assert calls[-1] == ("npu_quantize", (x, s, None, torch.quint4x2, -2, False), {})
    assert npu.npu_dynamic_quant(x, smooth_scales=s) == "npu_dynamic_quant"
    assert calls[-1] == ("npu_dynamic_quant", (x,), {"smooth_scales": s})
    assert npu.npu_weight_quant_batchmatmul(x, x, s, bias=s, antiquant_group_size=32) == "npu_weight_quant_batchmatmul"
    assert calls[-1][1] == (x, x, s, None, None, None, s, 32, 0) and calls[-1][2] == {}
    npu.npu_weight_quant_batchmatmul(x, x, s, weight_dtype=7)
    assert calls[-1][2] == {"weight_dtype": 7}
    assert npu.npu_dequant_swiglu_quant(x, quant_scale=s, quant_mode=1) == "npu_dequant_swiglu_quant"
    _, args, kwargs = calls[-1]
    assert args == (x,) and kwargs["quant_scale"] is s and kwargs["quant_mode"] == 1 and "swiglu_mode" not in kwargs
    npu.npu_dequant_swiglu_quant(x, swiglu_mode=1, clamp_limit=5.0)
    assert calls[-1][2]["swiglu_mode"] == 1 and calls[-1][2]["clamp_limit"] == 5.0
    # without torch_npu, an NPU tensor is an error, not a silent CPU computation
    monkeypatch.setattr(npu._common, "_TORCH_NPU", None)
    with pytest.raises(RuntimeError, match="torch_npu"):
        npu.npu_quantize(x, s, None, torch.qint8)


def test_npu_check_reads_the_device():
    assert not npu._is_npu(torch.ones(1))
    assert not npu._is_npu(None)
    assert not npu._is_npu(np.ones(1))
