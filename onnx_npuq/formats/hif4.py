"""HiFloat4: groups of 64 viewed as [8][2][4], S1P2 elements (spec: formats.md).

`hif4` (alias `hifx4`) has a three-level scale: an E6M2 byte per 64, one bit per 8, one
bit per 4. `hifx4_v12` is the earlier power-of-two form. Both store 4 scale bytes per
group: [level-1 byte, level-2 bits (MSB = sub-group 0), level-3 bits 0-7, 8-15].

The kernels work on the bits of the maxima (`_quad_max_bits`), one code for eager torch and
torch.compile.
"""
import torch

from .base import Format
from .bits import exp2i_normal, or_sign_, pow2_floor, round_ta_, to_bf16
from .codecs import S1P2, e6m2_decode, e6m2_encode, e8m0_decode
from .packing import pack_bits, unpack_bits

R7 = 0.142578125  # bf16(1/7)
VARIANTS = ("quant_cy", "amct")


LO32 = 0xFFFFFFFF
ABS_BITS = 0x7FFFFFFF
INF_BITS = 0x7F800000


def _reinterpret(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """t's bits as dtype (same element size), by way of uint8: under torch.compile a view
    between element sizes reinterprets a computed buffer for free, while a same-size view
    becomes a bit cast per lane through a stack buffer inside the consuming loop."""
    return t.view(torch.uint8).view(dtype)


def _per_group(*values: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(M, 1) float32 values computed once per group: under torch.compile a view between
    element sizes cannot be fused through, so the scale arithmetic runs in its own loop
    instead of being redone inside the element loop for every 16 elements."""
    rows = torch.cat(values + values[-1:] * (len(values) % 2), 1)  # an even count
    rows = rows.view(torch.int64).view(torch.int32).view(torch.float32)
    return tuple(rows[:, i : i + 1] for i in range(len(values)))


def _pair_max(bits: torch.Tensor) -> torch.Tensor:
    """int32 (M, 2n) of non-negative values -> (M, n), the max of each adjacent pair.

    On the pair as one int64 word: elementwise, so it vectorizes along memory; a max over an
    inner axis of 2 or 4 becomes a scalar loop (inductor) or a slow reduction (eager).
    Symmetric in the two halves, so byte order does not matter.
    """
    w = bits.view(torch.int64)
    return torch.maximum(w & LO32, w >> 32).to(torch.int32)


def _quad_max_bits(xb: torch.Tensor) -> torch.Tensor:
    """(M, 64) float32 -> the bits of max |x| per 4, int32 (M, 16). |x|'s bits order as its
    values do; NaN's lie above Inf's (0x7F800000), so a quad holding NaN has NaN as max."""
    w = xb.view(torch.int64)
    pairs = torch.maximum(w & ABS_BITS, (w >> 32) & ABS_BITS).to(torch.int32)
    return _pair_max(pairs)


def _row_max_bits(bits16: torch.Tensor) -> torch.Tensor:
    """(M, 16) int32 -> (M, 1): four pair levels, so the per-group scale arithmetic that
    follows is elementwise over groups (vectorized) rather than a reduction's scalar tail."""
    return _pair_max(_pair_max(_pair_max(_pair_max(bits16))))


class _Levels:
    """A chunk's scales: k per element (uint8 (M, 64), s8 * s4 in {1, 2, 4}), the per-group
    `into` numerator R and `back` factor S (M, 1) with into = R / k, back = k * S (S NaN for
    a group holding NaN or Inf), and for encode the bit8 (M, 8) / bit4 (M, 16) flags and the
    level-1 value (NaN for a non-finite group)."""

    def __init__(self, k, R, S, bit8, bit4, level1):
        self.k, self.R, self.S, self.bit8, self.bit4, self.level1 = k, R, S, bit8, bit4, level1


def _levels(over1, over2, R, S, level1) -> _Levels:
    """Sub-group levels from two per-4 tests, both variants' rule in one place.

    over1 / over2 (M, 16): the sub-group's max reaches the level-1 step / twice it. bit8 is set
    when either sub-group of the 8 reaches twice it; bit4 when the sub-group reaches the step
    after bit8 (its own test, or the higher one when bit8 is set). k = 2^(bit8 + bit4).
    Per-4 flags are paired as int64 words and k is spread to the 4 elements by multiplying
    with 0x01010101: no strided access anywhere.
    """
    flags = (over1.to(torch.int32) + over2.to(torch.int32) * 2).view(torch.int64)  # (M, 8)
    bit8 = (flags & 0x200000002) != 0
    lo, hi = flags & 3, (flags >> 32) & 3
    b8 = bit8.to(torch.int64)
    b4lo, b4hi = (lo >> b8) & 1, (hi >> b8) & 1  # a shift, not torch.where (eager: scalar loop)
    k = ((1 << (b4lo + b8)) + ((1 << (b4hi + b8)) << 32)) * 0x01010101  # 2^(bit8 + bit4)
    bit4 = (b4lo + (b4hi << 32)).view(torch.int32)  # (M, 16), sub-groups in order
    R, S, level1 = _per_group(R, S, level1)
    return _Levels(k.view(torch.uint8), R, S, bit8, bit4, level1)


def _scale_bytes(level1: torch.Tensor, bit8: torch.Tensor, bit4: torch.Tensor):
    """(M,) byte, (M, 8) and (M, 16) flags -> (M, 4) bytes."""
    return torch.cat((level1.view(-1, 1), pack_bits(bit8), pack_bits(bit4)), dim=1)


class _HiF4Base(Format):
    """Shared by both variants; `_group_levels` is what differs.

    Per 64: c = TA(|x| * into) clamped at 7, value = c * back, with into = R / k and
    back = k * S per sub-group of 4 (k = s8 * s4). Folding the power-of-two factors of the
    spec's `|x| / s8 / s4 * rec * 4` into one multiplier is exact: it moves where the
    exponent is added, not the single rounding. The maxima per 4 and per 64 come from the
    bits (`_quad_max_bits`), every step is elementwise on int32/int64 views, so eager torch
    and torch.compile run the same code and inductor makes a few vectorized loops of it.
    """

    block = 64
    elem_bits = 4
    scale_bytes = 4
    variant = "quant_cy"

    def _group_levels(self, m4: torch.Tensor) -> _Levels:
        """m4: bits of max |x| per 4, int32 (M, 16) -> the chunk's _Levels."""
        raise NotImplementedError

    def _level1_byte(self, value: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _level1_value(self, level1: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _codes(self, xb):
        """-> (c as float (M, 64), k as float, levels): c = TA(|x| * into) clamped at 7."""
        lv = self._group_levels(_quad_max_bits(xb))
        k = lv.k.to(torch.float32)
        c = xb.abs() * (lv.R / k)
        if self.variant == "amct":
            c = to_bf16(c)  # bf16(v) * 4 == bf16(4 * v)
        return round_ta_(c).clamp_(max=7), k, lv

    def fake_blocks(self, xb, ts, out):
        c, k, lv = self._codes(xb)
        or_sign_(torch.mul(c, k.mul_(lv.S), out=out), xb)

    def encode_blocks(self, xb, ts=None):
        c, _, lv = self._codes(xb)
        # A group holding NaN has NaN multipliers: its codes are 0 but the sign. The sign
        # bit (-0.0 and NaN's too) is code bit 3, from the bits: compiled, isnan and signbit
        # are per-element scalar loops and copysign an out-of-line call; c == c and shifts
        # stay vectorized. Eager, torch.where is the scalar loop (~6x nan_to_num).
        c = torch.where(c == c, c, 0.0) if torch.compiler.is_compiling() else c.nan_to_num_(0.0)
        codes = (c.to(torch.int32) | ((xb.view(torch.int32) >> 28) & 8)).to(torch.uint8)
        return codes, _scale_bytes(self._level1_byte(lv.level1.view(-1)), lv.bit8, lv.bit4)

    def decode_blocks(self, codes, scales, ts=None):
        b8 = unpack_bits(scales[:, 1:2]).to(torch.float32) + 1  # (M, 8)
        b4 = unpack_bits(scales[:, 2:4]).to(torch.float32) + 1  # (M, 16)
        s84 = b8.repeat_interleave(2, dim=1) * b4
        back = s84 * self._level1_value(scales[:, 0]).view(-1, 1)  # S1P2 values are c/4
        return (S1P2.decode(codes).view(-1, 16, 4) * back.unsqueeze(-1)).view(codes.shape)


class HiF4(_HiF4Base):
    name = "hif4"
    elem_type = "S1P2"
    scale_type = "E6M2 + 1 bit/8 + 1 bit/4"

    def __init__(self, variant: str = "quant_cy", **options):
        super().__init__(**options)
        if variant not in VARIANTS:
            raise ValueError(f"hif4: variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant

    @property
    def options(self):
        return {"variant": self.variant} if self.variant != "quant_cy" else {}

    def _group_levels(self, m4):
        m64 = _reinterpret(_row_max_bits(m4), torch.float32)
        sf = to_bf16(m64 * R7).clamp_(2.0**-48, 49152.0)
        step = pow2_floor(sf).mul_(0.25)  # E6M2: RNE on 2 mantissa bits
        sf = sf.div_(step).round_().mul_(step)
        rec = to_bf16(1.0 / sf)
        v = _reinterpret(m4, torch.float32) * rec  # s8 = 2: m8 * rec >= 4; s4 = 2: m4 * rec / s8 >= 2
        level1 = torch.where(torch.isfinite(m64), sf, float("nan"))
        return _levels(v >= 2, v >= 4, rec * 4, level1 * 0.25, level1)

    def _level1_byte(self, value):
        return e6m2_encode(value)

    def _level1_value(self, level1):
        return e6m2_decode(level1)


class HiFX4V12(_HiF4Base):
    name = "hifx4_v12"
    elem_type = "S1P2"
    scale_type = "E8 + 1 bit/8 + 1 bit/4"

    def _group_levels(self, m4):
        # eg = floor_log2(m4 + 2^-45) per 4, a non-finite m4 counting as 0 (the sum is normal);
        # eb = max(eg) - 2; bit8 when an eg of the 8 reaches eb + 2, bit4 when eg reaches
        # eb + bit8 + 1: the tests are m4 + 2^-45 >= 2^(eb + 1) and >= 2^(eb + 2).
        finite = torch.where(m4 < INF_BITS, m4, 0)
        v = _reinterpret(finite, torch.float32) + 2.0**-45
        top = _reinterpret(_row_max_bits(finite), torch.float32) + 2.0**-45
        eb = ((_reinterpret(top, torch.int32) >> 23) - 129).clamp_(-46, 16)
        step = exp2i_normal(eb + 1)
        ok = _row_max_bits(m4) < INF_BITS
        level1 = torch.where(ok, exp2i_normal(eb), float("nan"))
        return _levels(v >= step, v >= step * 2, exp2i_normal(2 - eb), level1 * 0.25, level1)

    def _level1_byte(self, value):
        byte = value.view(torch.int32) >> 23  # value = 2^eb, eb in [-46, 16]: normal
        return torch.where(torch.isnan(value), 0xFF, byte).to(torch.uint8)

    def _level1_value(self, level1):
        return e8m0_decode(level1)  # the byte is eb + 127, 0xFF for a NaN group: E8M0
