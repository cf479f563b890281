"""Bit packing: nibbles two per byte (element 2k low), bits MSB-first."""
import torch


def pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """(..., 2k) 4-bit codes in uint8 -> (..., k) bytes, element 2k in the low nibble."""
    c = codes.to(torch.uint8)
    # Byte pairs as one little-endian int16 (element 2k in the low byte): one elementwise
    # op; torch.compile turned strided pair loads into a scalar loop recomputing each code.
    if c.shape[-1] == 0:
        return c
    c = c.contiguous()  # not flattened: inductor then indexes by division
    if c.shape[-1] % 8 == 0:
        # 8 codes per int64, the 4 packed bytes gathered into an int32: inductor vectorizes
        # this; the int16 form below it compiles to a scalar loop (~2.5x slower)
        v = c.view(torch.int64)
        p = v | (v >> 4)
        q = (p & 0xFF) | ((p >> 8) & 0xFF00) | ((p >> 16) & 0xFF0000) | ((p >> 24) & 0xFF000000)
        return q.to(torch.int32).view(torch.uint8)
    v = c.view(torch.int16)
    return (v | (v >> 4)).to(torch.uint8)


def unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    lo = packed & 0x0F
    hi = packed >> 4
    return torch.stack((lo, hi), dim=-1).flatten(-2)


# 2^63 + 2^54 + ... + 2^0 as int64: byte i of a word (flag i, 0/1) times 2^(63 - 9i) lands on
# bit 63 - i; every other product lands on its own bit below 56 or above 63, so no carries.
_GATHER_BITS = 0x8040201008040201 - (1 << 64)


def pack_bits(flags: torch.Tensor) -> torch.Tensor:
    """(..., 8k) booleans/0-1 -> (..., k) bytes, first flag in the MSB.

    The 8 flags of a byte as one little-endian int64 word, gathered by one multiply:
    elementwise, where a sum over an inner axis of 8 compiles to a per-row horizontal
    reduction (~1/6 of hif4's compiled encode). int32 first: inductor converts a bool
    vector to uint8 in scalar code."""
    f = flags.to(torch.int32).to(torch.uint8).contiguous()
    w = f.view(*f.shape[:-1], -1, 8).view(torch.int64).squeeze(-1)
    return ((w * _GATHER_BITS) >> 56).to(torch.uint8)


def unpack_bits(packed: torch.Tensor) -> torch.Tensor:
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=packed.device)
    return ((packed.unsqueeze(-1) >> shifts) & 1).flatten(-2)
