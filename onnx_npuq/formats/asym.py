"""Asymmetric integer formats: unsigned codes, a float32 scale and a zero point per block.

    value = float32(code - zero_point) * scale            (uint8asym: 8 bits, uint4asym: 4)

This is what ONNX DequantizeLinear computes for uint8 / uint4 data with a zero point, and,
with code and zero point both shifted by 128 / 8, for int8 / int4 data (the differences stay
the same): `import-qdq` (passes/qdq.py) stores such a weight in these formats losslessly
when its differences do not fit int8sym / int4sym. They are import formats: not in
`formats.names()` (no QuantDequant / Quantize body, no NPU kernel takes them), but
`get_format`, encode / decode and npuq::Dequantize (its onnxruntime body) do.

Encoding float data follows onnxruntime's asymmetric weight rule per block (the whole row,
or `group=N` elements): rmin = min(0, min x), rmax = max(0, max x), scale = (rmax - rmin) /
qmax in float32, zero point = clip(round(-rmin / scale), 0, qmax), code = clip(round(x /
scale) + zero point, 0, qmax), rounding half to even. An all-zero block has scale 0, zero
point 0 and codes 0. A block with NaN or Inf (or whose range overflows float32) has a NaN
or Inf scale, codes and zero point 0, and decodes to NaN.

Packed.scales holds 5 bytes per block: the scale as little-endian float32, then the zero
point (one byte, also for uint4asym).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Format
from .bits import abs_max
from .codecs import f32_encode


@dataclass(frozen=True)
class AsymElement:
    type: str  # Format.elem_type
    bits: int

    @property
    def qmax(self) -> int:
        return (1 << self.bits) - 1


ASYM_ELEMENTS = {"uint8asym": AsymElement("UINT8", 8), "uint4asym": AsymElement("UINT4", 4)}


class Asym(Format):
    """An ASYM_ELEMENTS format; `group=None` (per row) or a positive block length."""

    scale_bytes = 5  # float32 scale + zero point
    scale_type = "float32+zero_point"

    def __init__(self, name: str, group: int | None = None, **options):
        self.name = name
        super().__init__(**options)
        if group is not None and (not isinstance(group, int) or isinstance(group, bool) or group <= 0):
            raise ValueError(f"{name}: group must be a positive int or None, got {group!r}")
        self.el = ASYM_ELEMENTS[name]
        self.block = group
        self.elem_bits, self.elem_type = self.el.bits, self.el.type

    @property
    def options(self):
        return {"group": self.block} if self.block else {}

    def _levels(self, xb: torch.Tensor, q: torch.Tensor):
        """Codes into q (float, in [0, qmax]); -> (scale, zero point) per row (M, 1), float32."""
        qmax = float(self.el.qmax)
        rmin = xb.amin(-1, keepdim=True).clamp(max=0.0)
        rmax = xb.amax(-1, keepdim=True).clamp(min=0.0)
        # amin / amax may skip a NaN; the largest magnitude shows it (a per-row isnan, not a
        # per-element one: inductor tests isnan one element at a time)
        bad = torch.isnan(abs_max(xb))
        scale = torch.where(bad, float("nan"), (rmax - rmin) / qmax)
        ok = torch.isfinite(scale) & (scale > 0)
        div = torch.where(ok, scale, 1.0)
        zp = torch.where(ok, torch.round(-rmin / div).clamp_(0.0, qmax), 0.0)
        torch.div(xb, div, out=q)
        q.round_().add_(zp).clamp_(0.0, qmax)
        # zero codes where the scale is 0 or not finite (NaN codes -> 0 too)
        q.copy_(torch.where(ok, q, 0.0))
        return scale, zp

    def fake_blocks(self, xb, ts, out):
        scale, zp = self._levels(xb, out)
        out.sub_(zp).mul_(scale)

    def encode_blocks(self, xb, ts=None):
        q = torch.empty_like(xb)
        scale, zp = self._levels(xb, q)
        codes = q.to(torch.uint8)
        return codes, torch.cat((f32_encode(scale), zp.to(torch.uint8)), dim=1)

    def decode_blocks(self, codes, scales, ts=None):
        scale = scales[:, :4].flatten().view(torch.float32).reshape(-1, 1)  # (a copy unless one row)
        zp = scales[:, 4:5].to(torch.float32)
        return (codes.to(torch.float32) - zp) * scale

    @staticmethod
    def pack_scales(scale, zero_point) -> torch.Tensor:
        """(M, 1) float32 scales and integer zero points -> the (M, 5) scale bytes."""
        s = torch.as_tensor(scale, dtype=torch.float32).reshape(-1, 1).contiguous()
        z = torch.as_tensor(zero_point).reshape(-1, 1).to(torch.uint8)
        return torch.cat((s.view(torch.uint8), z), dim=1)
