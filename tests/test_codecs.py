"""Exhaustive checks of the element and scale codecs and of bit packing."""
from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conftest import assert_same, f32_from_bits
from onnx_npuq import formats as F
from onnx_npuq.formats.codecs import (
    E2M1,
    E4M3,
    E5M2,
    HIF8,
    S1P2,
    e6m2_decode,
    e6m2_encode,
    e8m0_decode,
    e8m0_encode,
)
from onnx_npuq.formats.hif8 import quantize_reference
from onnx_npuq.formats.packing import pack_bits, pack_nibbles, unpack_bits, unpack_nibbles

ALL_BYTES = torch.arange(256, dtype=torch.int32).to(torch.uint8)


# ---------------------------------------------------------------- HiF8


def test_hif8_decode_table_matches_data(hif8_table):
    codes, values = hif8_table
    assert codes == list(range(256))
    assert_same(HIF8.decode(ALL_BYTES), values)
    assert_same(torch.tensor(HIF8.values, dtype=torch.float32), values)


def test_hif8_table_facts(hif8_table):
    _, v = hif8_table
    finite = torch.isfinite(v)
    assert finite.sum().item() == 253
    assert (v == 0).sum().item() == 1 and v[0].item() == 0.0 and not torch.signbit(v[0])
    assert torch.isnan(v[0x80]) and torch.isnan(v).sum().item() == 1
    assert v[0x6F].item() == math.inf and v[0xEF].item() == -math.inf
    assert v[0x6E].item() == 32768.0 and v[0x7E].item() == 2.0**-15 and v[0x01].item() == 2.0**-22
    assert v[finite].abs().max().item() == 32768.0
    # the sign bit negates every code but zero/NaN
    assert_same(v[0x81:], -v[0x01:0x80])


def test_hif8_encode_decode_roundtrip_every_code():
    vals = HIF8.decode(ALL_BYTES)
    back = HIF8.encode(vals)
    for c in range(256):
        if c == 0x80:
            continue
        assert back[c].item() == c, f"HIF8.encode(decode({c:#04x}) = {vals[c].item()!r}) = {back[c].item():#04x}"
    assert HIF8.encode(torch.tensor([math.nan])).item() == 0x80
    assert HIF8.encode(torch.tensor([-0.0])).item() == 0x00  # no -0 code


def test_hif8_format_encode_every_value():
    """F.encode through the format agrees with the code table on every grid value."""
    vals = HIF8.decode(ALL_BYTES)
    codes = F.encode(vals, "hif8").codes.reshape(-1)
    want = ALL_BYTES.clone()
    assert codes.tolist() == want.tolist()
    assert_same(F.fake_quant(vals, "hif8"), vals)


LOW_PATTERNS = [0, 1, 0x3FFFF, 0x40000, 0x40001, 0x7FFFF, 0x2AAAA, 0x55555, 0x12345, 0x6DB6D]


@pytest.mark.parametrize("saturate", [False, True])
def test_hif8_fast_path_equals_reference_every_prefix(saturate):
    """fake_quant (table lookup) == quantize_reference for every 13-bit prefix x low bits."""
    prefixes = np.arange(1 << 13, dtype=np.uint64) << 19
    rng = np.random.default_rng(1234)
    lows = np.array(LOW_PATTERNS + rng.integers(0, 1 << 19, size=6).tolist(), dtype=np.uint64)
    bits = (prefixes[:, None] | lows[None, :]).reshape(-1)
    x = f32_from_bits(bits)
    ref = quantize_reference(x, saturate=saturate)
    got = F.fake_quant(x, "hif8", saturate=saturate)
    assert_same(got, ref, f"saturate={saturate}")
    p = F.encode(x, "hif8", saturate=saturate)
    assert_same(HIF8.decode(p.codes.reshape(-1)), ref)
    assert_same(F.decode(p), ref)
    # a 2-D layout and the other axis give the same answer (no scale: elementwise)
    x2 = x.view(-1, len(lows))
    assert_same(F.fake_quant(x2, "hif8", axis=0, saturate=saturate), ref.view(-1, len(lows)))


def test_hif8_reference_never_signed_zero():
    x = f32_from_bits(np.arange(1 << 13, dtype=np.uint64) << 19)
    y = F.fake_quant(x, "hif8")
    zero = y == 0
    assert not torch.signbit(y[zero]).any()


def test_to_bf16_bit_form_equals_the_cast():
    """bits.to_bf16 casts eagerly and rounds the bits under torch.compile: the same RNE on
    random patterns (NaN, Inf, subnormals), exact ties either side and overflow to Inf."""
    from onnx_npuq.formats.bits import _to_bf16_bits, to_bf16

    g = torch.Generator().manual_seed(5)
    rand = torch.randint(-(2**31), 2**31 - 1, (200_000,), generator=g, dtype=torch.int64)
    hi = torch.randint(-(2**15), 2**15 - 1, (4096,), generator=g, dtype=torch.int64) << 16
    ties = torch.cat([hi | low for low in (0x8000, 0x7FFF, 0x8001, 0x0000, 0xFFFF)])
    edge = torch.tensor([0x7F7FFFFF, 0x7F7F8000, 0x7F7F7FFF, 0x7F800000, 0x7F800001, 0x7FFFFFFF,
                         0x00008000, 0x00018000, 0x007FFFFF], dtype=torch.int64)
    edge = torch.cat([edge, edge | -(2**31)])
    v = torch.cat([rand, ties, edge]).to(torch.int32).view(torch.float32)
    assert_same(_to_bf16_bits(v), to_bf16(v))
    finite = ~torch.isnan(v)
    assert torch.equal(_to_bf16_bits(v)[finite].view(torch.int32), to_bf16(v)[finite].view(torch.int32))


@pytest.mark.parametrize("width", [1, 5, 16, 32, 64])
def test_abs_max_bit_form_equals_the_float_max(width):
    """bits.abs_max reduces int32 bits eagerly and floats under torch.compile: the same
    maxima, NaN rows (a NaN anywhere) and Inf rows, on random bit patterns."""
    from onnx_npuq.formats.bits import _abs_max_bits

    g = torch.Generator().manual_seed(width)
    rand = torch.randint(-(2**31), 2**31 - 1, (4000, width), generator=g, dtype=torch.int64)
    x = rand.to(torch.int32).view(torch.float32)
    x[:2000] = torch.randn(2000, width, generator=g) * 2.0 ** torch.randint(-140, 120, (2000, 1), generator=g)
    x[:100, 0] = float("inf")
    x[50:150, -1] = -float("nan")
    x[200:300] = -0.0
    assert_same(_abs_max_bits(x), x.abs().amax(-1, keepdim=True))


# ---------------------------------------------------------------- minifloat element tables


@pytest.mark.parametrize(
    "table,mldt,nbits",
    [
        (E2M1, ml_dtypes.float4_e2m1fn, 4),
        (E4M3, ml_dtypes.float8_e4m3fn, 8),
        (E5M2, ml_dtypes.float8_e5m2, 8),
    ],
    ids=["e2m1", "e4m3fn", "e5m2"],
)
def test_element_table_matches_ml_dtypes(table, mldt, nbits):
    codes = np.arange(1 << nbits, dtype=np.uint8)
    ref = torch.from_numpy(codes.view(mldt).astype(np.float32))
    assert len(table.values) == 1 << nbits
    assert table.bits == nbits
    assert_same(torch.tensor(table.values, dtype=torch.float32), ref)
    assert_same(table.decode(torch.from_numpy(codes)), ref)
    # signed zeros decode with their sign
    assert torch.equal(torch.signbit(torch.tensor(table.values)), torch.signbit(ref))


@pytest.mark.parametrize("table", [E2M1, S1P2, E4M3, E5M2], ids=lambda t: t.name)
def test_element_table_encode_roundtrip(table):
    n = 1 << table.bits
    codes = torch.arange(n, dtype=torch.int32).to(torch.uint8)
    vals = table.decode(codes)
    back = table.encode(vals)
    for c in range(n):
        if math.isnan(table.values[c]):
            continue
        assert back[c].item() == c, f"{table.name}: encode(decode({c:#x})) = {back[c].item():#x}"
    if table.nan_code is not None:
        assert math.isnan(table.decode(table.encode(torch.tensor([math.nan]))).item())
    # NaN of either sign has one code (0 without a NaN code: the block scale carries NaN)
    nans = torch.tensor([0x7FC00000, -0x400000, 0x7FFFFFFF, -1], dtype=torch.int32).view(torch.float32)
    assert table.encode(nans).tolist() == [table.nan_code or 0] * 4


def test_s1p2_values():
    assert S1P2.values == tuple(c / 4 for c in range(8)) + tuple(-c / 4 for c in range(8))
    assert S1P2.nan_code is None and E2M1.nan_code is None


def test_e2m1_values():
    mags = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    assert list(E2M1.values[:8]) == mags and list(E2M1.values[8:]) == [-m for m in mags]


# ---------------------------------------------------------------- scale codecs


def test_e8m0_decode_every_byte():
    got = e8m0_decode(ALL_BYTES)
    want = torch.tensor([math.ldexp(1.0, b - 127) for b in range(255)] + [math.nan], dtype=torch.float32)
    assert_same(got, want)
    assert got[0].item() == 2.0**-127  # an fp32 subnormal, exactly
    ref = torch.from_numpy(np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e8m0fnu).astype(np.float32))
    assert_same(got, ref)


def test_e8m0_encode():
    e = torch.arange(-127, 128, dtype=torch.int32)
    nan = torch.zeros_like(e, dtype=torch.bool)
    assert e8m0_encode(e, nan).tolist() == list(range(255))
    assert e8m0_encode(e, ~nan).tolist() == [255] * 255
    assert_same(e8m0_decode(e8m0_encode(e, nan)), torch.ldexp(torch.ones(255), e.float()))


def test_e6m2_decode_every_byte():
    got = e6m2_decode(ALL_BYTES)
    want = [math.ldexp(1.0 + (b & 3) / 4, (b >> 2) - 48) for b in range(255)] + [math.nan]
    assert_same(got, torch.tensor(want, dtype=torch.float32))
    assert got[0].item() == 2.0**-48 and got[254].item() == 2.0**15 * 1.5


def test_e6m2_encode_roundtrip():
    b = ALL_BYTES[:255]
    assert e6m2_encode(e6m2_decode(b)).tolist() == list(range(255))
    assert e6m2_encode(torch.tensor([math.nan])).item() == 0xFF
    assert e6m2_encode(torch.tensor([1.0])).item() == 0xC0
    assert e6m2_encode(torch.tensor([49152.0])).item() == 0xFE


# ---------------------------------------------------------------- packing


@given(st.integers(0, 32).flatmap(lambda k: st.lists(st.integers(0, 15), min_size=2 * k, max_size=2 * k)),
       st.integers(1, 3))
def test_nibbles_roundtrip(codes, rows):
    c = torch.tensor(codes * rows, dtype=torch.uint8).view(rows, -1)
    p = pack_nibbles(c)
    assert p.dtype == torch.uint8 and p.shape == (rows, len(codes) // 2)
    assert torch.equal(unpack_nibbles(p), c)
    for k in range(len(codes) // 2):
        assert p[0, k].item() == codes[2 * k] | (codes[2 * k + 1] << 4)


@given(st.binary(min_size=0, max_size=64))
def test_unpack_pack_nibbles_bytes(data):
    b = torch.tensor(list(data), dtype=torch.uint8)
    assert torch.equal(pack_nibbles(unpack_nibbles(b)), b)


@given(st.integers(0, 5).flatmap(lambda k: st.lists(st.booleans(), min_size=8 * k, max_size=8 * k)))
def test_bits_roundtrip(flags):
    nbytes = len(flags) // 8
    f = torch.tensor(flags, dtype=torch.bool).view(1, -1)
    p = pack_bits(f)
    assert p.dtype == torch.uint8 and p.shape == (1, nbytes)
    assert torch.equal(unpack_bits(p), f.to(torch.uint8))
    for k in range(nbytes):
        want = sum(int(flags[8 * k + i]) << (7 - i) for i in range(8))  # first flag = MSB
        assert p[0, k].item() == want


@given(st.binary(min_size=1, max_size=32))
def test_pack_unpack_bits_bytes(data):
    b = torch.tensor(list(data), dtype=torch.uint8).view(1, -1)
    assert torch.equal(pack_bits(unpack_bits(b)), b)
