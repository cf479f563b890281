"""HiF8: 8-bit tapered float, one value per byte, no shared scale (spec: formats.md).

`quantize_reference` is the spec's encode rule written out. Because a rounded value here
always has a normalized mantissa of at most 3 bits, fp32 `floor(t + 0.5)` is exact ties-away
and the result depends only on the top 13 bits of the input (sign, exponent, 4 mantissa
bits). So the fast path is one lookup in a table that the reference rule itself fills; the
tests check the two against each other.
"""
import torch

from .base import Format
from .bits import EXP_MASK, round_ta
from .codecs import HIF8, on_device

OVERFLOW = 40960.0  # 1.25 * 2^15: from here on a value encodes as +-Inf
MAX = 32768.0
TINY = 2.0**-23  # below this a value encodes as zero
_PREFIX_SHIFT = 19  # keep sign + exponent + 4 mantissa bits


def quantize_reference(x: torch.Tensor, saturate: bool = False) -> torch.Tensor:
    """The spec's rule, element by element, in float32."""
    a = x.abs()
    e = ((a.view(torch.int32) & EXP_MASK) >> 23) - 127
    e = e.clamp(min=-22)  # E = -23 rounds on the 2^-22 grid
    ae = e.abs()
    p = 3 - (ae > 3).int() - (ae > 7).int() - (ae > 15).int()
    step = ((e - p + 127).clamp(0, 255) << 23).view(torch.float32)
    y = round_ta(a / step) * step
    y = torch.where(a >= OVERFLOW, MAX if saturate else float("inf"), y)
    y = torch.where(a < TINY, 0.0, y)
    return torch.copysign(y, x) + 0.0  # one zero only: -0.0 + 0.0 is +0.0


def _tables(saturate: bool):
    """Values and codes for every 13-bit prefix, filled by the reference rule."""
    prefixes = torch.arange(1 << 13, dtype=torch.int32) << _PREFIX_SHIFT
    values = quantize_reference(prefixes.view(torch.float32), saturate)
    return values, HIF8.encode(values).to(torch.int32)


# Built at import: building them inside a traced forward would put their ops in the graph.
_TABLES = {saturate: _tables(saturate) for saturate in (False, True)}


def _prefix(x: torch.Tensor) -> torch.Tensor:
    # x + 0.0 quiets a signalling NaN, so every NaN keeps a non-zero top mantissa bit.
    bits = torch.add(x, 0.0).view(torch.int32)
    return bits.bitwise_right_shift_(_PREFIX_SHIFT).bitwise_and_(0x1FFF).view(-1)


class HiF8(Format):
    name = "hif8"
    idempotent = True
    block = 1
    elem_bits = 8
    scale_bytes = 0
    elem_type = "HiF8 (tapered, 1-3 mantissa bits)"
    scale_type = "none"

    def __init__(self, saturate: bool = False, **options):
        super().__init__(**options)
        self.saturate = bool(saturate)
        self._values, self._codes = _TABLES[self.saturate]

    @property
    def options(self):
        return {"saturate": True} if self.saturate else {}

    @staticmethod
    def _lookup(table, xb, out=None):
        out = None if out is None else out.view(-1)
        table = on_device(table, xb.device)
        return torch.index_select(table, 0, _prefix(xb), out=out).view(xb.shape)

    def fake_blocks(self, xb, ts, out):
        self._lookup(self._values, xb, out)

    def encode_blocks(self, xb, ts=None):
        codes = self._lookup(self._codes, xb).to(torch.uint8)
        return codes, xb.new_empty((xb.shape[0], 0), dtype=torch.uint8)

    def decode_blocks(self, codes, scales, ts=None):
        return HIF8.decode(codes)
