"""Independent oracles.

1. MX elements with rounding="even" against ml_dtypes' RNE conversions, and both roundings
   against a nearest-grid-point search over the element grid (float64, no shared code).
2. HiF8 bytes against the `en_dtypes` package (`en_dtypes.hifloat8`).
3. Spec-literal numpy float32 re-implementations of every block format (written from
   formats.md, step by step, without the library's kernels) compared on random data.
"""
from __future__ import annotations


import en_dtypes
import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conftest import assert_same
from onnx_npuq import formats as F

f32 = np.float32

MX_ELEMENTS = {
    # name: (ml_dtypes type, emax, emin, mbits, max)
    "mxfp4": (ml_dtypes.float4_e2m1fn, 2, 0, 1, 6.0),
    "mxfp8e4m3": (ml_dtypes.float8_e4m3fn, 8, -6, 3, 448.0),
    "mxfp8e5m2": (ml_dtypes.float8_e5m2, 15, -14, 2, 57344.0),
}


def _grid(mldt) -> np.ndarray:
    """Sorted non-negative finite values of an ml_dtypes element type (index = code)."""
    nbits = 4 if mldt == ml_dtypes.float4_e2m1fn else 8
    vals = np.arange(1 << (nbits - 1), dtype=np.uint8).view(mldt).astype(np.float64)
    vals = vals[np.isfinite(vals)]
    assert np.all(np.diff(vals) > 0)
    return vals


def nearest_on_grid(y: np.ndarray, grid: np.ndarray, mode: str) -> np.ndarray:
    """|y| rounded to the nearest grid value (saturating); ties by `mode`, sign re-applied."""
    a = np.abs(y.astype(np.float64))
    a_c = np.minimum(a, grid[-1])
    i = np.clip(np.searchsorted(grid, a_c, side="left"), 1, len(grid) - 1)
    lo, hi = grid[i - 1], grid[i]
    dlo, dhi = a_c - lo, hi - a_c
    if mode == "away":
        tie_pick = hi
    else:  # even: the even code (grid index) of the two
        tie_pick = np.where((i % 2) == 0, hi, lo)
    q = np.where(dlo < dhi, lo, np.where(dlo > dhi, hi, tie_pick))
    q = np.where(a_c == lo, lo, q)
    return np.copysign(q, y)


def _mx_blocks(seed: int, nblocks: int, fmt: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Blocks of 32 (k in [-110, 100]: every value and result stays finite) whose amax is exactly max * 2^k (so the shared exponent is k for both
    scale rules); the other elements are random, grid points, or exact grid midpoints,
    all with |y| <= max. Returns (x float32 (nblocks, 32), y = x / 2^k)."""
    mldt, _, _, _, emax_val = MX_ELEMENTS[fmt]
    grid = _grid(mldt)
    rng = np.random.default_rng(seed)
    mids = (grid[:-1] + grid[1:]) / 2
    kind = rng.integers(0, 4, size=(nblocks, 32))
    rand_y = rng.uniform(0, emax_val, size=(nblocks, 32))
    log_y = emax_val * np.exp2(-rng.uniform(0, 30, size=(nblocks, 32)))
    y = np.where(kind == 0, rand_y, np.where(kind == 1, log_y, 0.0))
    y = np.where(kind == 2, rng.choice(mids, size=(nblocks, 32)), y)
    y = np.where(kind == 3, rng.choice(grid, size=(nblocks, 32)), y)
    y = y.astype(f32) * rng.choice([f32(-1), f32(1)], size=(nblocks, 32))
    amax_pos = rng.integers(0, 32, size=nblocks)
    y[np.arange(nblocks), amax_pos] = f32(emax_val) * rng.choice([f32(-1), f32(1)], size=nblocks)
    x = (y * f32(2.0**k)).astype(f32)
    # x may be an fp32 subnormal for very negative k: y is recomputed from x (exactly)
    return x, (x / f32(2.0**k)).astype(f32)


@pytest.mark.parametrize("fmt", sorted(MX_ELEMENTS))
@pytest.mark.parametrize("scale_rule", ["floor", "rceil"])
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(-110, 100))
def test_mx_even_matches_ml_dtypes(fmt, scale_rule, seed, k):
    mldt = MX_ELEMENTS[fmt][0]
    x, y = _mx_blocks(seed, 8, fmt, k)
    xt = torch.from_numpy(x)
    p = F.encode(xt, fmt, rounding="even", scale_rule=scale_rule)
    assert p.scales.reshape(-1).tolist() == [k + 127] * 8, "shared exponent"
    got = F.fake_quant(xt, fmt, rounding="even", scale_rule=scale_rule)
    # all |y| <= max, so ml_dtypes' conversion never saturates or produces NaN/Inf here
    ref_elem = y.astype(mldt).astype(f32)
    want = torch.from_numpy((ref_elem * f32(2.0**k)).astype(f32))
    assert_same(got, want, f"{fmt} k={k}")
    assert_same(F.decode(p), want)
    # the element codes are exactly ml_dtypes' codes (signed zeros included)
    ref_codes = torch.from_numpy(ref_elem.astype(mldt).view(np.uint8).copy())
    if fmt == "mxfp4":
        ref_codes = ref_codes[:, 0::2] | (ref_codes[:, 1::2] << 4)
    assert torch.equal(p.codes.reshape(8, -1), ref_codes)


@pytest.mark.parametrize("fmt", sorted(MX_ELEMENTS))
@pytest.mark.parametrize("rounding", ["away", "even"])
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(-110, 100))
def test_mx_matches_grid_search(fmt, rounding, seed, k):
    mldt = MX_ELEMENTS[fmt][0]
    x, y = _mx_blocks(seed, 8, fmt, k)
    got = F.fake_quant(torch.from_numpy(x), fmt, rounding=rounding)
    want = (nearest_on_grid(y, _grid(mldt), rounding) * 2.0**k).astype(f32)
    assert_same(got, torch.from_numpy(want), f"{fmt} {rounding} k={k}")


def test_nearest_on_grid_helper():
    g = _grid(ml_dtypes.float4_e2m1fn)
    y = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 7.0, -0.25, -5.0, 0.3])
    assert nearest_on_grid(y, g, "away").tolist() == [0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 6.0, -0.5, -6.0, 0.5]
    assert nearest_on_grid(y, g, "even").tolist() == [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 6.0, -0.0, -4.0, 0.5]


# ---------------------------------------------------------------- HiF8 vs en_dtypes
#
# en_dtypes.hifloat8 rounds ties away from zero, overflows to Inf from 40960 and flushes
# below 2^-23 like formats.md. A one-off exhaustive sweep of all 2^32 float32 bit patterns
# found no byte that differs from onnx_npuq's encode (default, non-saturating mode: en_dtypes
# has no saturating mode, so saturate=True is not compared). The tests below therefore
# compare over the whole float32 domain: random bit patterns (NaN, Inf, subnormals
# included), values concentrated in HiF8's range, and exact ties.


def _en_bytes(x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return x.astype(en_dtypes.hifloat8).view(np.uint8)


def test_en_dtypes_decode_matches():
    codes = np.arange(256, dtype=np.uint8)
    ref = torch.from_numpy(codes.view(en_dtypes.hifloat8).astype(np.float32))
    ours = F.decode(F.encode(ref, "hif8"))
    assert_same(ours, ref)


@given(seed=st.integers(0, 2**32 - 1))
def test_hif8_matches_en_dtypes_random_bits(seed):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, size=4096, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    got = F.encode(torch.from_numpy(x.copy()), "hif8").codes.reshape(-1).numpy()
    np.testing.assert_array_equal(got, _en_bytes(x))


@given(seed=st.integers(0, 2**32 - 1))
def test_hif8_matches_en_dtypes_in_range(seed):
    rng = np.random.default_rng(seed)
    mag = np.exp2(rng.uniform(-25, 16.5, size=4096))
    x = (mag * rng.choice([-1.0, 1.0], size=4096)).astype(np.float32)
    # exact ties: midpoints between adjacent positive HiF8 values
    vals = np.sort(np.unique(np.arange(128, dtype=np.uint8).view(en_dtypes.hifloat8).astype(np.float64)))
    vals = vals[np.isfinite(vals)]
    mids = ((vals[:-1] + vals[1:]) / 2).astype(np.float32)
    x = np.concatenate([x, mids, -mids, vals.astype(np.float32)])
    got = F.encode(torch.from_numpy(x), "hif8").codes.reshape(-1).numpy()
    np.testing.assert_array_equal(got, _en_bytes(x))


@pytest.mark.slow  # all 2^32 inputs, about 60 s: make test-slow
def test_hif8_matches_en_dtypes_exhaustive():
    """All 2^32 float32 bit patterns, in chunks of 2^24."""
    step = 1 << 24
    for start in range(0, 1 << 32, step):
        bits = np.arange(start, start + step, dtype=np.uint64).astype(np.uint32)
        x = bits.view(np.float32)
        got = F.encode(torch.from_numpy(x), "hif8").codes.reshape(-1).numpy()
        bad = np.nonzero(got != _en_bytes(x))[0]
        assert bad.size == 0, [(hex(bits[i]), hex(got[i]), hex(_en_bytes(x[i : i + 1])[0])) for i in bad[:5]]


# ---------------------------------------------------------------- spec-literal oracles


def floor_log2(v: np.ndarray) -> np.ndarray:
    """Exact binary exponent of v > 0 (frexp); 0 where v == 0 (callers mask it)."""
    return (np.frexp(v)[1] - 1).astype(np.int64)


def pow2(e) -> np.ndarray:
    return np.ldexp(np.float32(1), np.asarray(e, dtype=np.int64)).astype(f32)


def rne(v):
    return np.round(v).astype(f32)


def ta(v):
    return np.floor(v + f32(0.5)).astype(f32)


def bf16(v):
    return np.asarray(v, dtype=f32).astype(ml_dtypes.bfloat16).astype(f32)


@np.errstate(all="ignore")  # non-finite groups are masked to NaN at the end
def oracle_mx(xb: np.ndarray, fmt: str, rounding="away", scale_rule="floor") -> np.ndarray:
    """formats.md, MX section, steps 1-5, on (M, 32) float32."""
    _, emax, emin, mbits, emax_val = MX_ELEMENTS[fmt]
    a = np.abs(xb)
    amax = a.max(axis=1, keepdims=True)
    bad = ~np.isfinite(amax)
    safe = np.where(bad | (amax == 0), f32(1), amax).astype(f32)
    if scale_rule == "floor":
        se = floor_log2(safe) - emax
    else:
        r = (safe / f32(emax_val)).astype(f32)
        m, ex = np.frexp(r)
        # a quotient that underflows to 0 stands for ceil(log2) far below -127: the clamp
        se = np.where(r > 0, ex - (m == 0.5), -127).astype(np.int64)
    se = np.where(amax == 0, -127, np.clip(se, -127, 127))
    y = (a / pow2(se)).astype(f32)
    pe = np.maximum(floor_log2(np.where(y > 0, y, f32(1))), emin)
    step = pow2(pe - mbits)
    r = (y / step).astype(f32)
    q = ((ta(r) if rounding == "away" else rne(r)) * step).astype(f32)
    q = np.minimum(q, f32(emax_val))
    out = (np.copysign(q, xb) * pow2(se)).astype(f32)
    return np.where(bad, f32(np.nan), out).astype(f32)


@np.errstate(all="ignore")  # non-finite groups are masked to NaN at the end
def oracle_nvf4(xb: np.ndarray, ts=None) -> np.ndarray:
    """formats.md, NVF4 steps 1-4 on (M, 16); ts = nvfp4's per-tensor scale or None."""
    a = np.abs(xb)
    amax = a.max(axis=1, keepdims=True)
    bad = ~np.isfinite(amax)
    amax = np.where(bad, f32(0), amax)
    div = f32(6) if ts is None else (f32(6) * ts).astype(f32)
    sf = np.minimum((amax / div).astype(f32), f32(448))
    e = np.maximum(floor_log2(np.where(sf > 0, sf, f32(1))), -6)
    s = (rne((sf * pow2(3 - e)).astype(f32)) * pow2(e - 3)).astype(f32)
    mult = s if ts is None else (s * ts).astype(f32)
    # s == 0 (sf == 0, or sf below half the smallest E4M3 subnormal): the block is zeros
    v = (a / np.where(mult > 0, mult, f32(1))).astype(f32)
    e2 = np.maximum(floor_log2(np.where(v > 0, v, f32(1))), 0)
    q = np.minimum((rne((v * pow2(1 - e2)).astype(f32)) / f32(2) * pow2(e2)).astype(f32), f32(6))
    out = (np.copysign(q, xb) * mult).astype(f32)
    return np.where(bad, f32(np.nan), out).astype(f32)


@np.errstate(all="ignore")  # non-finite groups are masked to NaN at the end
def oracle_hif4(xb: np.ndarray, variant="quant_cy") -> np.ndarray:
    """formats.md, HiF4 steps 1-6 on (M, 64), all float32."""
    a = np.abs(xb).reshape(-1, 8, 2, 4)
    m4 = a.max(-1)
    m8 = m4.max(-1)
    m64 = m8.max(-1)
    bad = ~np.isfinite(m64)
    m64 = np.where(bad, f32(1), m64)
    sf = bf16((m64 * f32(0.142578125)).astype(f32))
    sf = np.clip(sf, f32(2.0**-48), f32(49152)).astype(f32)
    e = floor_log2(sf)
    sf = (rne((sf * pow2(2 - e)).astype(f32)) * pow2(e - 2)).astype(f32)
    rec = bf16((f32(1) / sf).astype(f32))
    s8 = np.where((m8 * rec[:, None]).astype(f32) >= 4, f32(2), f32(1))
    s4 = np.where(((m4 * rec[:, None, None]).astype(f32) / s8[..., None]) >= 2, f32(2), f32(1))
    v = ((a / s8[..., None, None]) / s4[..., None]).astype(f32)
    v = (v * rec[:, None, None, None]).astype(f32)
    if variant == "amct":
        v = bf16(v)
    c = ta((v * f32(4)).astype(f32))
    c = np.where(c >= 8, f32(7), c)
    mag = ((c / f32(4)) * s8[..., None, None] * s4[..., None] * sf[:, None, None, None]).astype(f32)
    out = np.copysign(mag.reshape(xb.shape), xb).astype(f32)
    return np.where(bad[:, None], f32(np.nan), out).astype(f32)


@np.errstate(all="ignore")  # non-finite groups are masked to NaN at the end
def oracle_hifx4_v12(xb: np.ndarray) -> np.ndarray:
    """formats.md, HiF4 v12 steps 1-4 on (M, 64)."""
    a = np.abs(xb).reshape(-1, 8, 2, 4)
    m4 = a.max(-1)
    bad = ~np.isfinite(m4.max(axis=(1, 2)))
    m4 = np.where(bad[:, None, None], f32(0), m4)
    eg = floor_log2((m4 + f32(2.0**-45)).astype(f32))
    em = eg.max(-1)
    ea = em.max(-1)
    eb = np.clip(ea - 2, -46, 16)
    b1 = np.clip(em - eb[:, None] - 1, 0, 1)
    b2 = np.clip(eg - eb[:, None, None] - b1[..., None], 0, 1)
    e = eb[:, None, None] + b1[..., None] + b2
    v = (a / pow2(e)[..., None]).astype(f32)
    c = ta((v * f32(4)).astype(f32))
    # the spec writes "if c == 8 then c = 7". c > 8 is only possible when eb is clamped
    # at 16 (group max >= 2^19); it has no 3-bit code, so it saturates at 7 as well.
    c = np.minimum(c, f32(7))
    mag = ((c / f32(4)) * pow2(e)[..., None]).astype(f32)
    out = np.copysign(mag.reshape(xb.shape), xb).astype(f32)
    return np.where(bad[:, None], f32(np.nan), out).astype(f32)


@np.errstate(all="ignore")  # non-finite groups are masked to NaN at the end
def oracle_int(xb: np.ndarray, qmax: int) -> np.ndarray:
    """formats.md int8sym: scale = amax / qmax, q = RNE(x / scale) clamped (finite rows)."""
    amax = np.abs(xb).max(axis=1, keepdims=True)
    scale = (amax / f32(qmax)).astype(f32)
    q = np.clip(rne((xb / np.where(scale > 0, scale, f32(1))).astype(f32)), -qmax, qmax)
    return (q * scale).astype(f32)


@st.composite
def block_data(draw, block: int, finite: bool = True, max_blocks: int = 12):
    """(M, block) float32 with a wide per-block dynamic range, zeros, ties and extremes."""
    seed = draw(st.integers(0, 2**32 - 1))
    m = draw(st.integers(1, max_blocks))
    rng = np.random.default_rng(seed)
    k = rng.integers(-60, 60, size=(m, 1)).astype(np.float64)
    x = rng.standard_normal((m, block)) * np.exp2(k + rng.uniform(-6, 6, size=(m, block)))
    kind = rng.integers(0, 12, size=(m, block))
    x = np.where(kind == 0, 0.0, x)
    # multiples of small powers of two hit exact ties of many grids
    x = np.where(kind == 1, np.round(x * 8) / 8, x)
    x = x.astype(f32)
    if draw(st.booleans()):  # an extreme block: tiny (subnormal) or huge magnitudes
        scale = draw(st.sampled_from([2.0**-140, 2.0**-120, 2.0**-100, 2.0**60, 2.0**100]))
        x[0] = (rng.standard_normal(block) * scale).astype(f32)
    if not finite and draw(st.booleans()):
        n = draw(st.integers(1, 3))
        r = rng.integers(0, m, size=n)
        c = rng.integers(0, block, size=n)
        x[r, c] = rng.choice([np.nan, np.inf, -np.inf], size=n).astype(f32)
    return x


@pytest.mark.parametrize("fmt", sorted(MX_ELEMENTS))
@pytest.mark.parametrize("rounding", ["away", "even"])
@pytest.mark.parametrize("scale_rule", ["floor", "rceil"])
@given(data=st.data())
def test_mx_spec_oracle(fmt, rounding, scale_rule, data):
    xb = data.draw(block_data(32, finite=False))
    got = F.fake_quant(torch.from_numpy(xb), fmt, rounding=rounding, scale_rule=scale_rule)
    assert_same(got, torch.from_numpy(oracle_mx(xb, fmt, rounding, scale_rule)))


@given(data=st.data())
def test_nvf4_spec_oracle(data):
    xb = data.draw(block_data(16, finite=False))
    got = F.fake_quant(torch.from_numpy(xb), "nvf4")
    assert_same(got, torch.from_numpy(oracle_nvf4(xb)))


@given(data=st.data())
def test_nvfp4_spec_oracle(data):
    """Two-level: s_g = amax_tensor / (6 * 448); block scale E4M3(amax_block / (6 * s_g));
    elements x / (s * s_g) rounded like NVF4 (finite data only)."""
    xb = data.draw(block_data(16, finite=True))
    amax = np.abs(xb).max()
    with np.errstate(under="ignore"):
        ts = (amax / f32(6 * 448)).astype(f32) if amax > 0 else f32(1)
    got = F.fake_quant(torch.from_numpy(xb), "nvfp4")
    assert_same(got, torch.from_numpy(oracle_nvf4(xb, ts)))
    p = F.encode(torch.from_numpy(xb), "nvfp4")
    assert p.tensor_scale is not None and p.tensor_scale.dtype == torch.float32
    assert p.tensor_scale.item() == float(ts)


@pytest.mark.parametrize("variant", ["quant_cy", "amct"])
@given(data=st.data())
def test_hif4_spec_oracle(variant, data):
    xb = data.draw(block_data(64, finite=False, max_blocks=8))
    got = F.fake_quant(torch.from_numpy(xb), "hif4", variant=variant)
    assert_same(got, torch.from_numpy(oracle_hif4(xb, variant)))


@given(data=st.data())
def test_hifx4_v12_spec_oracle(data):
    xb = data.draw(block_data(64, finite=False, max_blocks=8))
    got = F.fake_quant(torch.from_numpy(xb), "hifx4_v12")
    assert_same(got, torch.from_numpy(oracle_hifx4_v12(xb)))


@pytest.mark.parametrize("fmt,qmax", [("int8sym", 127), ("int4sym", 7)])
@pytest.mark.parametrize("group", [None, 8, 32])
@given(data=st.data())
def test_int_spec_oracle(fmt, qmax, group, data):
    xb = data.draw(block_data(32, finite=True))
    got = F.fake_quant(torch.from_numpy(xb), fmt, group=group)
    rows = xb if group is None else xb.reshape(-1, group)
    want = oracle_int(rows, qmax).reshape(xb.shape)
    assert_same(got, torch.from_numpy(want))


@pytest.mark.parametrize(
    "fmt,oracle",
    [
        ("mxfp4", lambda x: oracle_mx(x, "mxfp4")),
        ("mxfp8e4m3", lambda x: oracle_mx(x, "mxfp8e4m3")),
        ("mxfp8e5m2", lambda x: oracle_mx(x, "mxfp8e5m2")),
        ("nvf4", oracle_nvf4),
        ("hif4", oracle_hif4),
        ("hifx4_v12", oracle_hifx4_v12),
    ],
)
def test_oracles_on_stored_vectors(vectors, fmt, oracle):
    """The spec-literal oracles reproduce the stored vectors (so they are trustworthy)."""
    prefix = {"hif4": "hifx4"}.get(fmt, fmt)
    x, y = vectors[prefix]
    block = F.get_format(fmt).block
    want = oracle(x.numpy().reshape(-1, block)).reshape(x.shape)
    assert_same(torch.from_numpy(want), y)


# ---------------------------------------------------------------- hand-computed edge cases


@pytest.mark.parametrize(
    "fmt,x,want",
    [
        # amax subnormal in fp32 -> shared exponent clamped to -127; y = x * 2^127 is a
        # normal element value and rounds on its own binade's grid:
        # y = 1.3 * 2^-3 -> E5M2 step 2^-5: 5.2 -> 5 -> 1.25 * 2^-3
        ("mxfp8e5m2", 1.3 * 2.0**-130, 1.25 * 2.0**-130),
        # E4M3 step 2^-6 at 2^-3: 10.4 -> 10 -> 1.25 * 2^-3
        ("mxfp8e4m3", 1.3 * 2.0**-130, 1.25 * 2.0**-130),
        # E2M1: 0.1625 < 0.25 -> 0
        ("mxfp4", 1.3 * 2.0**-130, 0.0),
        # E2M1: y = 1.3 -> step 0.5 -> 1.5
        ("mxfp4", 1.3 * 2.0**-127, 1.5 * 2.0**-127),
        # y = 1e-40 * 2^127 = 0.0170 -> E5M2 binade 2^-6, step 2^-8: 4.35 -> 4 -> 2^-6
        ("mxfp8e5m2", 1e-40, 2.0**-133),
        # E4M3: 0.0170 is subnormal (below 2^-6), step 2^-9: 8.7 -> 9
        ("mxfp8e4m3", 1e-40, 9 * 2.0**-136),
    ],
    ids=["e5m2-1.3p-130", "e4m3-1.3p-130", "fp4-1.3p-130", "fp4-1.3p-127", "e5m2-1e-40", "e4m3-1e-40"],
)
def test_mx_fp32_subnormal_block(fmt, x, want):
    t = torch.zeros(32)
    t[0] = x
    t[5] = -x
    expect = torch.zeros(32)
    expect[0], expect[5] = want, -want
    assert_same(torch.from_numpy(oracle_mx(t.numpy()[None], fmt))[0], expect, "oracle")
    p = F.encode(t, fmt)
    assert p.scales.item() == 0  # shared exponent -127
    assert_same(F.fake_quant(t, fmt), expect, "fake_quant")
    assert_same(F.decode(p), expect, "decode(encode)")


@pytest.mark.parametrize("name", ["mxfp4", "mxfp8e4m3", "mxfp8e5m2"])
def test_rceil_scale_of_an_underflowing_quotient_is_the_minimum(name):
    """amax > 0 with amax / max below 2^-150 (it rounds to 0): ceil(log2(.)) is far below
    -127, so the clamp gives 2^-127 (E8M0 byte 0), not 2^0 (frexp(0)'s exponent)."""
    x = torch.zeros(2, 32)
    x[0, 3] = 2.0**-149
    p = F.encode(x, name, scale_rule="rceil")
    assert p.scales[0, 0].item() == 0 and p.scales[1, 0].item() == 0
    assert_same(F.decode(p), F.fake_quant(x, name, scale_rule="rceil"))
