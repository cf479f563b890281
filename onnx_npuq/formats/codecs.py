"""Element and scale codecs: a code table is data, one routine encodes and decodes them all.

Every element value this package produces has at most 3 mantissa bits, so the code of a
grid value is a function of the top 12 bits of its float32 pattern (sign, exponent, 3
mantissa bits). Encoding is one table lookup; decoding is another.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

from .bits import exp2i

_TOP12_SHIFT = 20


def on_device(table: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A lookup table on the device of the data it indexes."""
    return table if table.device == device else table.to(device)


def _top12(v: torch.Tensor) -> torch.Tensor:
    return (v.contiguous().view(torch.int32) >> _TOP12_SHIFT).bitwise_and_(0xFFF)


@dataclass(frozen=True)
class CodeTable:
    """A <= 8-bit code: `values[c]` is the float32 value of code c (NaN where it is NaN)."""

    name: str
    bits: int
    values: tuple[float, ...]
    nan_code: int | None  # NaN's code; None: no NaN code, the block's scale carries NaN
    # (mantissa bits, exponent bias) of an IEEE-style minifloat: encode from the fields
    minifloat: tuple[int, int] | None = None

    @cached_property
    def _decode_table(self) -> torch.Tensor:
        return torch.tensor(self.values, dtype=torch.float32)

    @cached_property
    def _encode_table(self) -> torch.Tensor:
        lut = torch.full((4096,), -1, dtype=torch.int32)
        vals = self._decode_table
        keys = _top12(vals)
        # Lowest code wins for duplicates (hif8 has one zero; -0.0 maps to it).
        for code in reversed(range(len(self.values))):
            if not torch.isnan(vals[code]):
                lut[keys[code]] = code
        if not any(v == 0.0 and math.copysign(1.0, v) < 0 for v in self.values):
            lut[_top12(torch.tensor([-0.0]))] = self.values.index(0.0)  # one zero: -0.0 is it
        # NaN: exponent all ones, mantissa prefix non-zero. Arithmetic yields quiet NaNs,
        # whose top mantissa bit is set, so the prefix always is.
        nan = self.nan_code or 0  # no NaN code: the block's scale carries the NaN
        for sign in (0, 0x800):
            lut[sign + 0x7F9 : sign + 0x800] = nan
        return lut

    def encode(self, v: torch.Tensor) -> torch.Tensor:
        """Codes (uint8) of float32 values that lie exactly on this grid (or are NaN)."""
        if self.minifloat is not None and torch.compiler.is_compiling():
            return self._encode_fields(v)  # eager: the lookup is one op, the fields ~10
        lut = on_device(self._encode_table, v.device)
        idx = _top12(v).reshape(-1)
        return torch.index_select(lut, 0, idx).view(v.shape).to(torch.uint8)

    def _encode_fields(self, v: torch.Tensor) -> torch.Tensor:
        """encode for a minifloat, from the float32 fields: a few vector ops, where the
        table lookup is a scalar gather per element in compiled code (~2x a copy)."""
        mbits, bias = self.minifloat
        bits = v.contiguous().view(torch.int32)
        mag = bits & 0x7FFFFFFF
        # normal: exponent and top mantissa bits, rebiased; subnormal: v / its step
        normal = (mag >> (23 - mbits)) - ((127 - bias) << mbits)
        sub = (mag.view(torch.float32) * 2.0 ** (mbits + bias - 1)).to(torch.int32)
        code = torch.where(mag < (128 - bias) << 23, sub, normal)
        if math.inf in self.values:
            code = torch.where(mag == 0x7F800000, self.values.index(math.inf), code)
        code = code | ((bits >> (32 - self.bits)) & (1 << (self.bits - 1)))  # the sign
        return torch.where(mag > 0x7F800000, self.nan_code or 0, code).to(torch.uint8)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        table = on_device(self._decode_table, codes.device)
        idx = codes.reshape(-1).to(torch.int32) & ((1 << self.bits) - 1)
        return torch.index_select(table, 0, idx).view(codes.shape)


def _torch_fp8_values(dtype: torch.dtype) -> tuple[float, ...]:
    return tuple(torch.arange(256, dtype=torch.uint8).view(dtype).float().tolist())


def _e2m1_values() -> tuple[float, ...]:
    mags = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
    return mags + tuple(-m for m in mags)


def _s1p2_values() -> tuple[float, ...]:
    """HiF4 element nibble `s c2 c1 c0`: (-1)^s * c/4."""
    mags = tuple(c / 4 for c in range(8))
    return mags + tuple(-m for m in mags)


def hif8_value(code: int) -> float:
    """The spec's HiF8 byte decoding, written out field by field."""
    if code == 0x80:
        return float("nan")
    if code & 0x7F == 0x6F:
        return float("-inf") if code & 0x80 else float("inf")
    s = -1.0 if code & 0x80 else 1.0
    b = code & 0x7F
    if b >= 0x60:
        e, m, mb = 8 + ((b >> 1) & 7), b & 1, 1
        esign = (b >> 4) & 1
    elif b >= 0x40:
        e, m, mb = 4 + ((b >> 2) & 3), b & 3, 2
        esign = (b >> 4) & 1
    elif b >= 0x20:
        e, m, mb = 2 + ((b >> 3) & 1), b & 7, 3
        esign = (b >> 4) & 1
    elif b >= 0x10:
        e, m, mb = 1, b & 7, 3
        esign = (b >> 3) & 1
    elif b >= 0x08:
        e, m, mb, esign = 0, b & 7, 3, 0
    else:
        return 0.0 if b == 0 else s * 2.0 ** (b - 23)
    e = -e if esign else e
    return s * 2.0**e * (1 + m / 2**mb)


E2M1 = CodeTable("e2m1", 4, _e2m1_values(), None, (1, 1))
S1P2 = CodeTable("s1p2", 4, _s1p2_values(), None)
E4M3 = CodeTable("e4m3fn", 8, _torch_fp8_values(torch.float8_e4m3fn), 0x7F, (3, 7))
E5M2 = CodeTable("e5m2", 8, _torch_fp8_values(torch.float8_e5m2), 0x7F, (2, 15))
HIF8 = CodeTable("hif8", 8, tuple(hif8_value(c) for c in range(256)), 0x80)
# Built at import: built inside a traced (compiled) kernel, their loops would be traced too.
for _table in (E2M1, S1P2, E4M3, E5M2, HIF8):
    _table._encode_table, _table._decode_table  # noqa: B018


# ---- scale codecs (one byte per block unless stated) ----

def f32_encode(scale: torch.Tensor) -> torch.Tensor:
    """float32 scales (M, 1) -> their 4 little-endian bytes (M, 4); NaN as 0x7FC00000.

    One NaN pattern: a NaN's payload depends on the code path (a vectorized max gives
    0xFFFFFFFF), and stored bytes must not.
    """
    return torch.where(torch.isnan(scale), float("nan"), scale).contiguous().view(torch.uint8)


def e8m0_encode(exp: torch.Tensor, nan: torch.Tensor) -> torch.Tensor:
    """Shared exponent in [-127, 127] -> E8M0 byte; 0xFF marks a NaN block (nan: bool or
    0/1). Bit ops, no torch.where: eager runs that as a scalar loop."""
    return ((exp + 127) | (nan.to(torch.int32) * 0xFF)).to(torch.uint8)


def e8m0_decode(byte: torch.Tensor) -> torch.Tensor:
    """2^(byte - 127) from the exponent field; byte 0 is the subnormal 2^-127 and 0xFF NaN:
    both set mantissa bit 22 (((b + 1) & 254) == 0 exactly for them)."""
    b = byte.to(torch.int32)
    edge = (((b + 1) & 254) - 1) >> 31  # -1 for bytes 0 and 0xFF, else 0
    return ((b << 23) | (edge & (1 << 22))).view(torch.float32)


def e6m2_encode(sf: torch.Tensor) -> torch.Tensor:
    """HiF4 level-1 scale (an E6M2 value in [2^-48, 49152]) -> byte; NaN -> 0xFF."""
    bits = sf.contiguous().view(torch.int32)
    byte = (((bits >> 23) - 127 + 48) << 2) | ((bits >> 21) & 3)
    return torch.where(torch.isnan(sf), 0xFF, byte).to(torch.uint8)


def e6m2_decode(byte: torch.Tensor) -> torch.Tensor:
    b = byte.to(torch.int32)
    val = exp2i((b >> 2) - 48) * (1 + (b & 3).to(torch.float32) / 4)
    return torch.where(b == 0xFF, float("nan"), val)
