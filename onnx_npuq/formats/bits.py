"""Exact float32 bit helpers: exponents are read from bits, never from log2."""
import torch

EXP_MASK = 0x7F800000
SIGN_BIT = -(1 << 31)  # 0x80000000 as int32


def pow2_floor(v: torch.Tensor) -> torch.Tensor:
    """2**floor_log2(v) for normal |v|; 0 for zero/subnormal; inf for inf/NaN."""
    return (v.view(torch.int32) & EXP_MASK).view(torch.float32)


def ceil_log2(v: torch.Tensor) -> torch.Tensor:
    """Exact ceil(log2(v)) as int32 for v > 0."""
    mant, exp = torch.frexp(v)
    return exp - (mant == 0.5).to(torch.int32)


def exp2i(e: torch.Tensor) -> torch.Tensor:
    """Exactly 2**e as float32 for integer e in [-149, 127] (subnormals from bits)."""
    e = e.to(torch.int32)
    normal = (e + 127).clamp(min=1) << 23
    sub = torch.ones_like(e) << (e + 149).clamp(0, 22)
    return torch.where(e >= -126, normal, sub).view(torch.float32)


def exp2i_normal(e: torch.Tensor) -> torch.Tensor:
    """Exactly 2**e for integer e in [-126, 127] (no subnormal branch)."""
    return ((e.to(torch.int32) + 127) << 23).view(torch.float32)


def round_ta(v: torch.Tensor) -> torch.Tensor:
    """Ties away from zero on a non-negative float32 magnitude, as the spec writes it."""
    return torch.floor(v + 0.5)


def round_ta_(v: torch.Tensor) -> torch.Tensor:
    """round_ta in place."""
    return v.add_(0.5).floor_()


def abs_max(x: torch.Tensor) -> torch.Tensor:
    """max |x| over the last axis (keepdim); NaN for a row holding NaN, else Inf if Inf.

    Eager on the bits (`_abs_max_bits`): torch reduces an inner axis of 16 float32 ~3x
    slower than of int32 (NaN handling). Compiled on the floats: inductor's int32 max over
    an inner axis of 16 is a scalar loop, ~17x its float max. tests/test_codecs.py checks
    the two agree.
    """
    if torch.compiler.is_compiling():
        return x.abs().amax(-1, keepdim=True)
    return _abs_max_bits(x)


def _abs_max_bits(x: torch.Tensor) -> torch.Tensor:
    """|x|'s bits order as int32 as its values do; NaN's lie above Inf's."""
    return (x.view(torch.int32) & 0x7FFFFFFF).amax(-1, keepdim=True).view(torch.float32)


def or_sign_(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """copysign(y, x) in place for magnitudes y >= 0: sets y's sign bit from x's.

    torch.compile calls Sleef's copysign out of line, which cost ~1/3 of an MX kernel; the
    bit op is one vector instruction. Unlike copysign it keeps a NaN y's own sign bit (NaN
    payloads differ between backends anyway; codes do not depend on them).
    """
    y.view(torch.int32).bitwise_or_(x.view(torch.int32) & SIGN_BIT)
    return y


def to_bf16(v: torch.Tensor) -> torch.Tensor:
    """Round float32 to the nearest bfloat16 (RNE), kept in float32; NaN stays NaN.

    Eager: torch's cast and back, two vectorized passes (the bit form's isnan and
    torch.where are scalar loops there, ~7x). Compiled: the bits (`_to_bf16_bits`), as
    torch.compile may drop a .to(bfloat16).to(float32) round trip. tests/test_codecs.py
    checks the two agree.
    """
    if torch.compiler.is_compiling():
        return _to_bf16_bits(v)
    return v.to(torch.bfloat16).to(torch.float32)


def _to_bf16_bits(v: torch.Tensor) -> torch.Tensor:
    bits = v.view(torch.int32)
    lsb = (bits >> 16) & 1
    rounded = ((bits + 0x7FFF + lsb) & -65536).view(torch.float32)
    return torch.where(torch.isnan(v), v, rounded)
