"""Symmetric integer formats with a float32 scale per channel or per group.

int8sym is quant_cy's: scale = amax / 127, q = RNE(x / scale) clamped to [-127, 127].
int4sym is the same with 7. An all-zero row has scale 0 and quantizes to zeros.
"""
import torch

from .base import Format


class IntSym(Format):
    scale_bytes = 4
    scale_type = "float32"

    def __init__(self, name: str, bits: int, group: int | None = None, **options):
        self.name = name
        super().__init__(**options)
        if group is not None and (not isinstance(group, int) or group <= 0):
            raise ValueError(f"{name}: group must be a positive int or None, got {group!r}")
        self.name, self.elem_bits, self.block = name, bits, group
        self.qmax = float(2 ** (bits - 1) - 1)
        self.elem_type = f"INT{bits}"

    @property
    def options(self):
        return {"group": self.block} if self.block else {}

    def _levels(self, xb, q):
        """Integer levels into q (NaN rows: NaN); -> the float32 scale per row (M, 1)."""
        scale = torch.abs(xb, out=q).amax(-1, keepdim=True) / self.qmax
        torch.div(xb, torch.where(scale > 0, scale, 1.0), out=q)
        q.round_().clamp_(-self.qmax, self.qmax)
        q.mul_(torch.where(torch.isfinite(scale), 1.0, float("nan")))
        return scale

    def fake_blocks(self, xb, ts, out):
        out.mul_(self._levels(xb, out))

    def encode_blocks(self, xb, ts=None):
        q = torch.empty_like(xb)
        scale = self._levels(xb, q)
        codes = q.nan_to_num(0.0).to(torch.int8).view(torch.uint8)
        if self.elem_bits == 4:
            codes = codes & 0x0F
        return codes, scale.contiguous().view(torch.uint8)

    def decode_blocks(self, codes, scales, ts=None):
        c = codes.to(torch.int8)
        if self.elem_bits == 4:
            c = (c << 4) >> 4  # sign-extend the nibble
        scale = scales.contiguous().view(torch.float32)
        return c.to(torch.float32) * scale
