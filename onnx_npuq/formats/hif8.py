"""HiF8: 8-bit tapered float, one value per byte (spec: formats.md), unscaled or scaled.

Unscaled (the default, the spec's `hif8`): no shared scale. Scaled (`scale="row"` or
`"tensor"`), as torchao's HiFloat8 workflow uses it on the NPU (`Float8Tensor.from_hp(x,
float8_dtype=torch_npu.hifloat8, granularity=PerRow() | PerTensor())`, the Float8 fake
quantizer): amax = max |x| per row of the quantization axis (or of the whole tensor),
scale = amax / 32768 in float32, q = hif8(x / scale) clamped to +-32768 (so saturating),
value = q * scale in float32. An all-zero row (scale 0) divides by 1 instead and gives
zeros (torchao divides 0 by 0: NaN); a row (tensor) holding NaN or Inf has a NaN or Inf
scale, NaN codes, and decodes to NaN (as torchao's result). Packed: the HiF8 codes plus one
float32 scale per row (4 scale bytes), for "tensor" the tensor's scale in every row, so one
Dequantize rule serves both: codes times the row's scale when there are scale bytes.

`quantize_reference` is the spec's encode rule written out. Because a rounded value here
always has a normalized mantissa of at most 3 bits, fp32 `floor(t + 0.5)` is exact ties-away
and the result depends only on the top 13 bits of the input (sign, exponent, 4 mantissa
bits). So the fast path rounds that prefix with exact bit arithmetic (`quantize`), and
encodes with one lookup in a table of the 8192 prefixes that the reference rule fills; the
tests check both against the reference.
"""
import torch

from .base import Format
from .bits import EXP_MASK, SIGN_BIT, round_ta
from .codecs import HIF8, f32_encode, on_device

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


# Every 13-bit prefix as a float32 (its low mantissa bits zero).
_PREFIXES = (torch.arange(1 << 13, dtype=torch.int32) << _PREFIX_SHIFT).view(torch.float32)


def _code_table(saturate: bool) -> torch.Tensor:
    """The code (uint8) of every 13-bit prefix, filled by the reference rule."""
    return HIF8.encode(quantize_reference(_PREFIXES, saturate))


# Built at import: building them inside a traced forward would put their ops in the graph.
# uint8, 8 KiB: stays in L1 next to the streamed data (as int32 it took half of it).
_CODES = {saturate: _code_table(saturate) for saturate in (False, True)}


def _prefix(x: torch.Tensor) -> torch.Tensor:
    # x + 0.0 quiets a signalling NaN, so every NaN keeps a non-zero top mantissa bit.
    bits = torch.add(x, 0.0).view(torch.int32)
    return bits.bitwise_right_shift_(_PREFIX_SHIFT).bitwise_and_(0x1FFF).view(-1)


def _quantize_arith(x: torch.Tensor, saturate: bool) -> torch.Tensor:
    """quantize_reference on the 13-bit prefix of x, with exact power-of-two arithmetic:
    vector ops only (compiled, a lookup in a table of the 8192 prefix values is a scalar
    gather per element). tests/test_compile.py checks it against the eager table."""
    bits = x.view(torch.int32)
    mag = bits & 0x7FFFFFFF
    a = (mag & -(1 << _PREFIX_SHIFT)).view(torch.float32)  # |prefix|
    e = ((mag >> 23) - 127).clamp_(min=-22)  # E = -23 rounds on the 2^-22 grid
    ae = e.abs()
    p = 3 - (ae > 3).int() - (ae > 7).int() - (ae > 15).int()
    # 2^(p - e) and 2^(e - p) from bits; an Inf/NaN a gets junk, replaced below
    inv = ((127 - e + p) << 23).view(torch.float32)
    step = ((127 + e - p).clamp_(0, 255) << 23).view(torch.float32)
    y = torch.floor(a * inv + 0.5) * step
    y = torch.where(a >= OVERFLOW, MAX if saturate else float("inf"), y)
    y = torch.where(a < TINY, 0.0, y)
    y = torch.where(mag > 0x7F800000, float("nan"), y)
    # the sign of x, but one zero only (not + 0.0: inductor compiles with -fno-signed-zeros)
    return torch.where(y == 0, 0, y.view(torch.int32) | (bits & SIGN_BIT)).view(torch.float32)


# The values of every 13-bit prefix, from the arithmetic itself (built at import, as _CODES).
_VALUES = {saturate: _quantize_arith(_PREFIXES, saturate) for saturate in (False, True)}


def quantize(x: torch.Tensor, saturate: bool) -> torch.Tensor:
    """quantize_reference on the 13-bit prefix of x: the arithmetic when compiled; eager, a
    lookup of the prefix's value, one op instead of the arithmetic's ~25 passes."""
    if torch.compiler.is_compiling():
        return _quantize_arith(x, saturate)
    table = on_device(_VALUES[saturate], x.device)
    return torch.index_select(table, 0, _prefix(x)).view(x.shape)

SCALES = (None, "row", "tensor")


class HiF8(Format):
    name = "hif8"
    idempotent = True
    block = 1
    elem_bits = 8
    scale_bytes = 0
    elem_type = "HiF8 (tapered, 1-3 mantissa bits)"
    scale_type = "none"

    def __init__(self, saturate: bool = False, scale: str | None = None, **options):
        super().__init__(**options)
        if scale not in SCALES:
            raise ValueError(f"hif8: scale must be None, 'row' or 'tensor', got {scale!r}")
        self.saturate = bool(saturate)
        self.scale = scale
        if scale is not None:
            if self.saturate:
                raise ValueError("hif8: saturate does not combine with scale: a scaled HiF8 value "
                                 "is clamped to +-32768 already")
            # one float32 per row (the whole axis is the block)
            self.block, self.scale_bytes, self.scale_type = None, 4, "float32"
            self.idempotent = False
        # scaled: x / scale is clamped to +-32768 (torchao's clamp), i.e. saturating
        self._saturating = self.saturate or scale is not None
        self._codes = _CODES[self._saturating]

    @property
    def options(self):
        opts = {"saturate": True} if self.saturate else {}
        if self.scale is not None:
            opts["scale"] = self.scale
        return opts

    def tensor_amax(self, x):
        """scale="tensor": max |x| over the tensor in float32 (NaN if any element is NaN)."""
        if self.scale != "tensor":
            return None
        lo, hi = torch.aminmax(x.detach())  # one pass, no full-size temporary
        return torch.maximum(lo.abs(), hi.abs()).to(torch.float32)

    def _codes_of(self, xb):
        table = on_device(self._codes, xb.device)
        return torch.index_select(table, 0, _prefix(xb)).view(xb.shape)

    def _scaled(self, xb, ts):
        """Scaled HiF8: (x / scale, NaN in rows whose scale is not finite; the float32
        scale (M, 1)). The NaN comes from the divisor: a per-row select on the codes
        compiles to a mask built byte by byte."""
        if self.scale == "row":
            amax = xb.abs().amax(-1, keepdim=True)
        else:  # "tensor": ts is the tensor's amax
            amax = ts.reshape(1, 1).expand(xb.shape[0], 1)
        scale = amax / MAX
        div = torch.where(torch.isfinite(scale), torch.where(scale > 0, scale, 1.0), float("nan"))
        return xb / div, scale

    def fake_blocks(self, xb, ts, out):
        if self.scale is None:
            out.copy_(quantize(xb, self.saturate))
        else:
            q, scale = self._scaled(xb, ts)
            out.copy_(quantize(q, True) * scale)

    def encode_blocks(self, xb, ts=None):
        if self.scale is None:
            return self._codes_of(xb), xb.new_empty((xb.shape[0], 0), dtype=torch.uint8)
        q, scale = self._scaled(xb, ts)
        return self._codes_of(q), f32_encode(scale)

    def decode_blocks(self, codes, scales, ts=None):
        """Option-free: codes times the row's float32 scale when there are scale bytes."""
        vals = HIF8.decode(codes)
        if scales.shape[-1] == 0:
            return vals
        return vals * scales.contiguous().view(torch.float32)
