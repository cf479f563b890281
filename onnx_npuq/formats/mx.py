"""OCP Microscaling formats: E8M0 shared exponent per block of 32 (spec: formats.md)."""
from dataclasses import dataclass

import torch

from .base import Format
from .bits import EXP_MASK, abs_max, ceil_log2, exp2i_normal, or_sign_, round_ta_
from .codecs import E2M1, E4M3, E5M2, CodeTable, e8m0_decode, e8m0_encode


@dataclass(frozen=True)
class Element:
    """A minifloat element grid, microxcaling style: a row of numbers."""

    table: CodeTable
    mbits: int
    emax: int
    emin: int
    max: float


ELEMENTS = {
    "mxfp4": Element(E2M1, 1, 2, 0, 6.0),
    "mxfp8e4m3": Element(E4M3, 3, 8, -6, 448.0),
    "mxfp8e5m2": Element(E5M2, 2, 15, -14, 57344.0),
}
ROUNDINGS = ("away", "even")
SCALE_RULES = ("floor", "rceil")


def round_element_(y: torch.Tensor, el: Element, rounding: str) -> torch.Tensor:
    """Values y rounded in place onto el's grid, saturating at +-el.max; y >= 0 unless
    rounding is "even" (RNE is odd-symmetric, so the sign may ride along).

    Steps of 2^(max(floor_log2 |y|, emin) - mbits) (y / step is exact), ties away from zero
    ("away") or to even ("even"). NaN stays NaN. Every minifloat element rounds here.
    """
    # 1/step from the exponent bits: XOR with the exponent mask negates the exponent
    # (2^E -> 2^(1-E)), and Inf/NaN become 0, so Inf gives NaN as Inf / Inf did. Only
    # elementwise bit ops and multiplies: eager torch runs a compare or torch.where as a
    # scalar loop (4-40x an add), inductor vectorizes either.
    inv = (y.view(torch.int32) & EXP_MASK).clamp_(min=(el.emin + 127) << 23)
    inv = inv.bitwise_xor_(EXP_MASK).view(torch.float32)
    if el.mbits != 1:
        inv.mul_(2.0 ** (el.mbits - 1))
    y.mul_(inv)
    round_ta_(y) if rounding == "away" else y.round_()
    # y / (1/step) is y * step exactly (a power of two); Inf/NaN: NaN / 0 stays NaN
    return y.div_(inv).clamp_(-el.max, el.max)


class MX(Format):
    block = 32
    scale_bytes = 1
    scale_type = "E8M0"
    idempotent = True

    def __init__(self, name: str, rounding: str = "away", scale_rule: str = "floor", **options):
        self.name = name
        super().__init__(**options)
        if rounding not in ROUNDINGS:
            raise ValueError(f"{name}: rounding must be one of {ROUNDINGS}, got {rounding!r}")
        if scale_rule not in SCALE_RULES:
            raise ValueError(f"{name}: scale_rule must be one of {SCALE_RULES}, got {scale_rule!r}")
        self.name, self.rounding, self.scale_rule = name, rounding, scale_rule
        self.el = ELEMENTS[name]
        self.elem_bits = self.el.table.bits
        self.elem_type = self.el.table.name.upper()

    @property
    def options(self):
        opts = {}
        if self.rounding != "away":
            opts["rounding"] = self.rounding
        if self.scale_rule != "floor":
            opts["scale_rule"] = self.scale_rule
        return opts

    def shared_exp(self, amax: torch.Tensor) -> torch.Tensor:
        """E8M0 exponent per block from the block's amax (finite, >= 0), in [-127, 127]."""
        if self.scale_rule == "floor":
            # Exponent field of amax: a subnormal or zero amax gives -127 after the clamp.
            e = (amax.view(torch.int32) >> 23) - (127 + self.el.emax)
        else:  # NVIDIA's RCEIL: smallest power of two with amax / 2^e <= max
            q = amax / self.el.max
            # zero amax, or a quotient that underflows to 0 (amax < max * 2^-150): e <= -127
            e = torch.where(q > 0, ceil_log2(torch.where(q > 0, q, 1.0)), -127)
        return e.clamp_(-127, 127)

    def block_stats(self, xb, ts):
        """-> (2^-se, 2^se or NaN, E8M0 byte), (M, 1) each, from the shared exponent se.
        OCP: a block with NaN or Inf decodes to NaN."""
        bits = abs_max(xb).view(torch.int32)
        # 1 for a block holding NaN/Inf (|x|'s exponent field 255), else 0: integer ops, not
        # isfinite and torch.where (scalar loops in eager). Such a block scales as amax 0.
        # The field is masked: inductor's max gives NaN as 0xFFFFFFFF.
        bad = ((bits >> 23) & 0xFF).add_(1).bitwise_right_shift_(8)
        se = self.shared_exp((bits * (1 - bad)).view(torch.float32))
        byte = e8m0_encode(se, bad)
        return exp2i_normal(-se), e8m0_decode(byte), byte  # -se <= 127 - emax: normal

    def _elements(self, xb, inv_scale, out=None):
        """Signed element values (before the shared scale), into `out` if given. The spec's
        steps in its order: y = |x| / 2^se (exact), rounded on steps of
        2^(max(floor_log2 y, emin) - mbits); RNE keeps the sign along (odd-symmetric)."""
        y = torch.mul(xb, inv_scale, out=out)
        if self.rounding == "even":
            return round_element_(y, self.el, "even")
        return or_sign_(round_element_(y.abs_(), self.el, self.rounding), xb)

    def fake_blocks(self, xb, stats, out):
        inv_scale, scale, _ = stats
        self._elements(xb, inv_scale, out).mul_(scale)

    def encode_blocks(self, xb, stats):
        inv_scale, _, byte = stats
        return self.el.table.encode(self._elements(xb, inv_scale)), byte

    def decode_blocks(self, codes, scales, ts=None):
        return self.el.table.decode(codes) * e8m0_decode(scales)
