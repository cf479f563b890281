"""Lookup tables the Dequantize bodies Gather from, decoded by the reference codecs
(onnx_npuq.formats) so the bodies cannot disagree with them.
"""
from __future__ import annotations

import numpy as np
import torch

from ...formats import codecs
from ...formats.packing import unpack_bits

# ------------------------------------------------------------------ tables (from the reference)

def _f32(t: torch.Tensor) -> np.ndarray:
    return t.to(torch.float32).numpy().astype(np.float32)


def _bytes() -> torch.Tensor:
    return torch.arange(256, dtype=torch.int32).to(torch.uint8)


def _code_table(table: codecs.CodeTable) -> np.ndarray:
    """byte -> value (8-bit codes) or byte -> (low nibble value, high nibble value)."""
    if table.bits == 8:
        return _f32(table.decode(_bytes()))
    lo = table.decode(_bytes() & 0x0F)
    hi = table.decode(_bytes() >> 4)
    return _f32(torch.stack((lo, hi), dim=1))


def _int4_table() -> np.ndarray:
    """byte -> (low nibble, high nibble) as sign-extended int4 values."""
    lo = (_bytes().to(torch.int8) << 4) >> 4
    hi = ((_bytes() >> 4).to(torch.int8) << 4) >> 4
    return _f32(torch.stack((lo, hi), dim=1))


def _bit_table() -> np.ndarray:
    """byte -> its 8 bits MSB first, plus one (the HiF4 level-2/3 factors 1 or 2)."""
    return _f32(unpack_bits(_bytes().view(-1, 1)).to(torch.float32) + 1)
