"""Bit packing: nibbles two per byte (element 2k low), bits MSB-first."""
import torch


def pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """(..., 2k) 4-bit codes in uint8 -> (..., k) bytes, element 2k in the low nibble."""
    c = codes.to(torch.uint8)
    # Byte pairs as one little-endian int16 (element 2k in the low byte): one elementwise
    # op; torch.compile turned strided pair loads into a scalar loop recomputing each code.
    if c.shape[-1] == 0:
        return c
    if c.shape[-1] % 4:
        v = c.contiguous().view(torch.int16)  # not flattened: inductor then indexes by division
        return (v | (v >> 4)).to(torch.uint8)
    # Four codes as one int32 (inductor has no int16 vectors): bytes 0 and 2 of v | v >> 4
    # are the two packed bytes; gathered into the low half, they are one int16.
    v = c.contiguous().view(torch.int32)
    v = v | (v >> 4)
    return ((v & 0xFF) | ((v >> 8) & 0xFF00)).to(torch.int16).view(torch.uint8)


def unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    lo = packed & 0x0F
    hi = packed >> 4
    return torch.stack((lo, hi), dim=-1).flatten(-2)


def pack_bits(flags: torch.Tensor) -> torch.Tensor:
    """(..., 8k) booleans/0-1 -> (..., k) bytes, first flag in the MSB."""
    # int32: inductor's uint8 vector reduction costs ~100x an int32 one
    f = flags.to(torch.int32).unflatten(-1, (-1, 8))
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.int32, device=f.device)
    return (f * weights).sum(-1).to(torch.uint8)


def unpack_bits(packed: torch.Tensor) -> torch.Tensor:
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=packed.device)
    return ((packed.unsqueeze(-1) >> shifts) & 1).flatten(-2)
