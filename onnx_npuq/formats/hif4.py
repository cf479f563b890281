"""HiFloat4: groups of 64 viewed as [8][2][4], S1P2 elements (spec: formats.md).

`hif4` (alias `hifx4`) has a three-level scale: an E6M2 byte per 64, one bit per 8, one
bit per 4. `hifx4_v12` is the earlier power-of-two form. Both store 4 scale bytes per
group: [level-1 byte, level-2 bits (MSB = sub-group 0), level-3 bits 0-7, 8-15].

The kernels test elements against per-group thresholds and OR the results per sub-group on
int64 views of flag bytes: one code for eager torch and torch.compile.
"""
import torch

from .base import Format
from .bits import abs_max, exp2i_normal, or_sign_, pow2_floor, round_ta_, to_bf16
from .codecs import S1P2, e6m2_decode, e6m2_encode, e8m0_decode
from .packing import pack_bits, unpack_bits

R7 = 0.142578125  # bf16(1/7)
VARIANTS = ("quant_cy", "amct")


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


def _row_abs_max(xb: torch.Tensor) -> torch.Tensor:
    """(M, n) float32 -> max |x| per row (M, 1), NaN for a row holding NaN (bits.abs_max),
    reinterpreted so that compiled code computes it in its own loop."""
    return _reinterpret(abs_max(xb), torch.float32)


def _quad_flags(flag_bytes: torch.Tensor) -> torch.Tensor:
    """uint8 (M, 64) per-element flags -> int64 (M, 8): each 32-bit half's low byte is the OR
    of its sub-group's 4 flags (other bytes hold partial ORs). Shifts on the int64 view: an
    OR over an inner axis of 4 compiles to a scalar loop."""
    w = flag_bytes.view(torch.int64)
    w = w | (w >> 8)
    return w | (w >> 16)


class _Levels:
    """A chunk's scales: k per element (uint8 (M, 64), s8 * s4 in {1, 2, 4}), the per-group
    `into` numerator R and `back` factor S (M, 1) with into = R / k, back = k * S (S NaN for
    a group holding NaN or Inf), and for encode the bit8 (M, 8) / bit4 (M, 16) flags and the
    level-1 value (NaN for a non-finite group)."""

    def __init__(self, k, R, S, bit8, bit4, level1):
        self.k, self.R, self.S, self.bit8, self.bit4, self.level1 = k, R, S, bit8, bit4, level1


def _levels(flags: torch.Tensor, R, S, level1) -> _Levels:
    """Sub-group levels from two per-4 tests, both variants' rule in one place.

    flags int64 (M, 8): per pair of sub-groups, bits 0 / 1 of each 32-bit half say whether the
    sub-group's max reaches the level-1 step / twice it (higher bits are ignored). bit8 is set
    when either sub-group of the 8 reaches twice it; bit4 when the sub-group reaches the step
    after bit8 (its own test, or the higher one when bit8 is set). k = 2^(bit8 + bit4) is
    spread to the 4 elements by multiplying with 0x01010101: no strided access anywhere.
    R, S, level1: (M, 1) from _per_group.
    """
    bit8 = (flags & 0x200000002) != 0
    lo, hi = flags & 3, (flags >> 32) & 3
    b8 = bit8.to(torch.int64)
    b4lo, b4hi = (lo >> b8) & 1, (hi >> b8) & 1  # a shift, not torch.where (eager: scalar loop)
    k = ((1 << (b4lo + b8)) + ((1 << (b4hi + b8)) << 32)) * 0x01010101  # 2^(bit8 + bit4)
    bit4 = (b4lo + (b4hi << 32)).view(torch.int32)  # (M, 16), sub-groups in order
    return _Levels(k.view(torch.uint8), R, S, bit8, bit4, level1)


def _scale_bytes(level1: torch.Tensor, bit8: torch.Tensor, bit4: torch.Tensor):
    """(M,) byte, (M, 8) and (M, 16) flags -> (M, 4) bytes, as one little-endian int32 per
    group: compiled, a torch.cat of byte columns is an out-of-line ATen call plus a copy."""
    b4 = pack_bits(bit4).to(torch.int32)  # (M, 2)
    word = (level1.view(-1, 1).to(torch.int32) | (pack_bits(bit8).to(torch.int32) << 8)
            | (b4[:, :1] << 16) | (b4[:, 1:] << 24))
    return word.view(torch.uint8)


class _HiF4Base(Format):
    """Shared by both variants; `_group_levels` is what differs.

    Per 64: c = TA(|x| * into) clamped at 7, value = c * back, with into = R / k and
    back = k * S per sub-group of 4 (k = s8 * s4). Folding the power-of-two factors of the
    spec's `|x| / s8 / s4 * rec * 4` into one multiplier is exact: it moves where the
    exponent is added, not the single rounding. Per-4 tests are per-element flag bytes
    ORed on int64 views, every step is elementwise or a row reduction, so eager torch and
    torch.compile run the same code and inductor makes a few vectorized loops of it.
    """

    block = 64
    elem_bits = 4
    scale_bytes = 4
    variant = "quant_cy"

    def _group_levels(self, xb: torch.Tensor) -> _Levels:
        """(M, 64) float32 -> the chunk's _Levels."""
        raise NotImplementedError

    def _level1_byte(self, value: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _level1_value(self, level1: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _codes(self, xb):
        """-> (c as float (M, 64), k as float, levels): c = TA(|x| * into) clamped at 7."""
        lv = self._group_levels(xb)
        k = lv.k.to(torch.float32)
        k_inv = (0x7F000000 - k.view(torch.int32)).view(torch.float32)  # 1/k, k a power of two: no divide
        c = xb.abs() * (lv.R * k_inv)
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

    def _group_levels(self, xb):
        m64 = _row_abs_max(xb)
        sf = to_bf16(m64 * R7).clamp_(2.0**-48, 49152.0)
        step = pow2_floor(sf).mul_(0.25)  # E6M2: RNE on 2 mantissa bits
        sf = sf.div_(step).round_().mul_(step)
        rec = to_bf16(1.0 / sf)
        level1 = torch.where(torch.isfinite(m64), sf, float("nan"))
        R, S, level1 = _per_group(rec * 4, level1 * 0.25, level1)
        # s8 = 2: m8 * rec >= 4; s4 = 2: m4 * rec / s8 >= 2, as m * R >= 8 / 16 (R = 4 * rec:
        # the same roundings wherever the products are normal). Tested per element, since
        # rounding is monotone and NaN fails: a sub-group passes when one of its elements does.
        v = xb.abs() * R
        flags = (v >= 8).to(torch.int32) + (v >= 16).to(torch.int32) * 2  # a bool -> uint8 is scalar code
        return _levels(_quad_flags(flags.to(torch.uint8)), R, S, level1)

    def _level1_byte(self, value):
        return e6m2_encode(value)

    def _level1_value(self, level1):
        return e6m2_decode(level1)


class HiFX4V12(_HiF4Base):
    name = "hifx4_v12"
    elem_type = "S1P2"
    scale_type = "E8 + 1 bit/8 + 1 bit/4"

    def _group_levels(self, xb):
        # eg = floor_log2(m4 + 2^-45) per 4, a sub-group holding Inf/NaN counting as m4 = 0;
        # eb = max(eg) - 2; bit8 when an eg of the 8 reaches eb + 2, bit4 when eg reaches
        # eb + bit8 + 1. On exponent fields: e = 127 + eg is the max over the sub-group of
        # each |x| + 2^-45's field (rounding is monotone), 255 for Inf/NaN; m4 = 0 gives 82.
        e_bytes = ((xb.abs() + 2.0**-45).view(torch.int32) >> 23).to(torch.uint8)
        quad = e_bytes.view(torch.int32)  # (M, 16): a sub-group's 4 fields
        e = torch.maximum(torch.maximum(quad & 255, (quad >> 8) & 255),
                          torch.maximum((quad >> 16) & 255, (quad >> 24) & 255))
        e_finite = torch.where(e < 255, e, 82)
        # float reductions: inductor ends an int32 one with a slow scalar horizontal max
        eb = (e_finite.float().amax(1, keepdim=True).int() - 129).clamp_(-46, 16)
        flags = (e_finite >= eb + 128).to(torch.int32) + (e_finite >= eb + 129).to(torch.int32) * 2
        ok = e.float().amax(1, keepdim=True) < 255
        level1 = torch.where(ok, exp2i_normal(eb), float("nan"))
        R, S, level1 = _per_group(exp2i_normal(2 - eb), level1 * 0.25, level1)
        return _levels(flags.view(torch.int64), R, S, level1)

    def _level1_byte(self, value):
        byte = value.view(torch.int32) >> 23  # value = 2^eb, eb in [-46, 16]: normal
        return torch.where(torch.isnan(value), 0xFF, byte).to(torch.uint8)

    def _level1_value(self, level1):
        return e8m0_decode(level1)  # the byte is eb + 127, 0xFF for a NaN group: E8M0
