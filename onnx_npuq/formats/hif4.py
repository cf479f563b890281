"""HiFloat4: groups of 64 viewed as [8][2][4], S1P2 elements (spec: formats.md).

`hif4` (alias `hifx4`) has a three-level scale: an E6M2 byte per 64, one bit per 8, one
bit per 4. `hifx4_v12` is the earlier power-of-two form. Both store 4 scale bytes per
group: [level-1 byte, level-2 bits (MSB = sub-group 0), level-3 bits 0-7, 8-15].

Kernel layouts (eager vs torch.compile) are described in `_HiF4Base._codes`.
"""
import torch

from .base import Format
from .bits import exp2i_normal, pow2_floor, round_ta_, to_bf16
from .codecs import S1P2, e6m2_decode, e6m2_encode, e8m0_decode
from .packing import pack_bits, unpack_bits

R7 = 0.142578125  # bf16(1/7)
VARIANTS = ("quant_cy", "amct")


def _scale_bytes(level1: torch.Tensor, bit8: torch.Tensor, bit4: torch.Tensor):
    """(M,) byte, (M, 8) and (M, 16) flags -> (M, 4) bytes."""
    return torch.cat((level1.view(-1, 1), pack_bits(bit8), pack_bits(bit4)), dim=1)


class _HiF4Base(Format):
    """Shared by both variants; `_scales` is what differs.

    `_scales(m4, m8, m64)` takes the maxima of |x| per 4 (M, 16), per 8 (M, 8) and per 64
    (M, 1) and returns (into, back, level1 value (M, 1), bit8 (M, 8), bit4 (M, 16)):
    c = TA(|x| * into) and value = c * back, per sub-group. `_level1_byte` and
    `_level1_value` convert the level-1 scale to its stored byte and back.
    Folding the power-of-two factors of the spec's `|x| / s8 / s4 * rec * 4` into one
    multiplier is exact: it moves where the exponent is added, not the single rounding.
    """

    block = 64
    elem_bits = 4
    scale_bytes = 4
    variant = "quant_cy"
    chunk_elements = 1 << 20  # ~55 small per-group ops per chunk: amortize them
    # inductor's encode kernel (codes gathered back from the (16, 4, M) layout) measured no
    # faster than eager for hif4 and 1.5x slower for hifx4_v12 (1 thread, 4096x4096)
    compile_encode = False

    def _scales(self, m4: torch.Tensor, m8: torch.Tensor, m64: torch.Tensor):
        raise NotImplementedError

    def _level1_byte(self, value: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _level1_value(self, level1: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _codes(self, xb):
        """-> (c as float, back, level1, bit8, bit4, rows): c = TA(|x| * into), clamped at 7,
        in the kernel's layout, `back` broadcastable to it, rows(t) = t in xb's element order.

        Per-sub-group factors must broadcast along a long axis. Eager holds |x| as (4, K),
        K = sub-groups of 4 (an inner axis of 4 is ~6x slower in eager torch). Under
        torch.compile, which vectorizes along the innermost axis of memory, the kernel is
        written on (16, 4, M) views of xb's transpose: inductor then loads each factor once
        per 4 elements instead of gathering it per element (about 2x faster than (M, 64)).
        """
        compiling = torch.compiler.is_compiling()
        if compiling:
            c = xb.t().abs().view(16, 4, -1)
            m4 = c.amax(1).t()
        else:
            c = torch.abs(xb.view(-1, 4).t(), out=xb.new_empty(4, xb.numel() // 4))
            m4 = c.amax(0).view(-1, 16)
        m8 = torch.maximum(m4[:, 0::2], m4[:, 1::2])
        m64 = m8.amax(1, keepdim=True)
        into, back, l1, b8, b4 = self._scales(m4, m8, m64)
        bad = ~torch.isfinite(m64)  # NaN/Inf: the group decodes to NaN
        back = torch.where(bad, float("nan"), back)
        l1 = torch.where(bad, float("nan"), l1)
        if compiling:
            into, back = into.t().unsqueeze(1), back.t().unsqueeze(1)  # (16, 1, M)
            rows = lambda t: t.reshape(64, -1).t()  # noqa: E731  (M, 64): xb's order
        else:
            into, back = into.view(1, -1), back.view(1, -1)
            rows = lambda t: t.t()  # noqa: E731  (K, 4): xb's order
        c = c.mul_(into)
        if self.variant == "amct":
            c.copy_(to_bf16(c))  # bf16(v) * 4 == bf16(4 * v)
        round_ta_(c).clamp_(max=7)
        return c, back, l1, b8, b4, rows

    def fake_blocks(self, xb, ts, out):
        c, back, *_, rows = self._codes(xb)
        y = rows(c.mul_(back))
        torch.copysign(y, xb.view(y.shape), out=out.view(y.shape))

    def encode_blocks(self, xb, ts=None):
        c, _, l1, b8, b4, rows = self._codes(xb)
        codes = rows(c).to(torch.uint8).reshape(xb.shape) | (torch.signbit(xb).to(torch.uint8) << 3)
        return codes, _scale_bytes(self._level1_byte(l1.view(-1)), b8, b4)

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

    def _scales(self, m4, m8, m64):
        sf = to_bf16(m64 * R7).clamp_(2.0**-48, 49152.0)
        step = pow2_floor(sf).mul_(0.25)  # E6M2: RNE on 2 mantissa bits
        sf = sf.div_(step).round_().mul_(step)
        rec = to_bf16(1.0 / sf)
        s8 = (m8 * rec >= 4).float().add_(1).repeat_interleave(2, dim=1)  # (M, 16)
        s84 = ((m4 * rec / s8) >= 2).float().add_(1).mul_(s8)
        bit8, bit4 = s8[:, ::2] > 1, s84 > s8
        into = (rec * 4) / s84  # |x| / s8 / s4 * rec * 4
        back = s84 * sf * 0.25
        return into, back, sf, bit8, bit4

    def _level1_byte(self, value):
        return e6m2_encode(value)

    def _level1_value(self, level1):
        return e6m2_decode(level1)


class HiFX4V12(_HiF4Base):
    name = "hifx4_v12"
    elem_type = "S1P2"
    scale_type = "E8 + 1 bit/8 + 1 bit/4"

    def _scales(self, m4, m8, m64):
        finite = torch.where(torch.isfinite(m4), m4, 0.0)
        # floor_log2(m4 + 2^-45), the epsilon part of the definition; the sum is normal.
        eg = ((finite + 2.0**-45).view(torch.int32) >> 23) - 127
        em = torch.maximum(eg[:, 0::2], eg[:, 1::2])
        eb = (em.amax(1, keepdim=True) - 2).clamp_(-46, 16)
        b1 = (em - eb - 1).clamp_(0, 1).repeat_interleave(2, dim=1)
        b2 = (eg - eb - b1).clamp_(0, 1)
        e = eb + b1 + b2
        # c = TA(|x| / 2^e * 4), saturated at 7 (the spec's c == 8 -> 7; c > 8 needs |x| > 2^18).
        return exp2i_normal(2 - e), exp2i_normal(e - 2), exp2i_normal(eb), b1[:, ::2] > 0, b2 > 0

    def _level1_byte(self, value):
        byte = value.view(torch.int32) >> 23  # value = 2^eb, eb in [-46, 16]: normal
        return torch.where(torch.isnan(value), 0xFF, byte).to(torch.uint8)

    def _level1_value(self, level1):
        return e8m0_decode(level1)  # the byte is eb + 127, 0xFF for a NaN group: E8M0
