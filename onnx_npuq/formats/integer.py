"""Symmetric formats with a float32 scale per channel or per group: integer and FP8 elements.

One rule, parameterised by the element (a row of SYM_ELEMENTS): per block (the whole axis,
or `group=N` elements), scale = amax / max in float32, q = x / where(scale > 0, scale, 1)
rounded to the element grid and saturated at +-max, y = q * scale.

int8sym is quant_cy's: max 127, q = RNE(x / scale) clamped to [-127, 127]; int4sym is the
same with 7. fp8e4m3 / fp8e5m2 round x / scale to E4M3FN / E5M2 (RNE, saturating at 448 /
57344, the MX element rounding) and store the standard OCP byte: decoding is ONNX
DequantizeLinear's float32(fp8) * float32 scale, so such a DequantizeLinear is lossless here.
An all-zero row has scale 0 and quantizes to zeros; a row with NaN or Inf has a NaN or Inf
scale and decodes to NaN (its codes: 0 for the integers, the FP8 NaN code).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Format
from .bits import abs_max
from .codecs import f32_encode
from .mx import ELEMENTS as MX_ELEMENTS
from .mx import Element, round_element_


@dataclass(frozen=True)
class SymElement:
    """The element of a float32-scaled symmetric format: a row of data."""

    type: str  # Format.elem_type
    bits: int
    max: float  # the scale maps amax to this
    grid: Element | None = None  # a minifloat grid (rounded RNE), or None: integers


SYM_ELEMENTS = {
    "int8sym": SymElement("INT8", 8, 127.0),
    "int4sym": SymElement("INT4", 4, 7.0),
    "fp8e4m3": SymElement("FP8E4M3", 8, 448.0, MX_ELEMENTS["mxfp8e4m3"]),
    "fp8e5m2": SymElement("FP8E5M2", 8, 57344.0, MX_ELEMENTS["mxfp8e5m2"]),
}


class Sym(Format):
    """A SYM_ELEMENTS format; `group=None` (per channel) or a positive block length."""

    scale_bytes = 4
    scale_type = "float32"

    def __init__(self, name: str, group: int | None = None, **options):
        self.name = name
        super().__init__(**options)
        if group is not None and (not isinstance(group, int) or group <= 0):
            raise ValueError(f"{name}: group must be a positive int or None, got {group!r}")
        self.el = SYM_ELEMENTS[name]
        self.block = group
        self.elem_bits, self.elem_type = self.el.bits, self.el.type

    @property
    def options(self):
        return {"group": self.block} if self.block else {}

    def block_stats(self, xb, ts):
        """Groups: (scale, divisor), (M, 1) each, as a graph of their own. Per channel:
        None, the row's work is amortized over the whole axis."""
        return None if self.block is None else self._scales(xb)

    def _scales(self, xb):
        """The float32 scale per row and the divisor: NaN where the scale is not finite,
        so such rows quantize to NaN."""
        scale = abs_max(xb) / self.el.max
        div = torch.where(scale > 0, scale, 1.0)
        return scale, torch.where(torch.isfinite(scale), div, float("nan"))

    def _levels(self, xb, stats, out=None):
        """Signed element values (NaN rows: NaN), into `out` if given; -> (values, the
        scale (M, 1)). Both roundings are RNE, so the sign rides along."""
        el = self.el
        scale, div = stats if stats is not None else self._scales(xb)
        q = torch.div(xb, div, out=out)
        if el.grid is None:
            q.round_().clamp_(-el.max, el.max)
        else:
            round_element_(q, el.grid, "even")
        return q, scale

    def fake_blocks(self, xb, stats, out):
        q, scale = self._levels(xb, stats, out)
        q.mul_(scale)

    def encode_blocks(self, xb, stats=None):
        q, scale = self._levels(xb, stats)
        if self.el.grid is not None:
            codes = self.el.grid.table.encode(q)
        else:
            # NaN (the rows of a non-finite scale) -> 0. Compiled by the row's flag: inductor
            # tests isnan one element at a time; eager torch.where is a scalar loop (4x).
            if torch.compiler.is_compiling():
                q = torch.where(torch.isfinite(scale), q, 0.0)
            else:
                q = q.nan_to_num_(0.0)
            codes = q.to(torch.int8).view(torch.uint8)
            if self.elem_bits == 4:
                codes = codes & 0x0F
        return codes, f32_encode(scale)

    def decode_blocks(self, codes, scales, ts=None):
        if self.el.grid is not None:
            vals = self.el.grid.table.decode(codes)
        else:
            c = codes.to(torch.int8)
            if self.elem_bits == 4:
                c = (c << 4) >> 4  # sign-extend the nibble
            vals = c.to(torch.float32)
        return vals * scales.contiguous().view(torch.float32)
