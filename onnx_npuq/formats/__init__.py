"""Every quantization format, bit-exact to spec/formats.md: a registry and three verbs.

    y = fake_quant(x, "mxfp4", axis=-1)
    p = encode(x, "mxfp4")            # Packed: uint8 codes + scale bytes
    assert torch.equal(decode(p), y)
"""
from __future__ import annotations

from typing import Callable

import torch

from .asym import Asym
from .base import BACKENDS, Format, Packed, get_backend, set_backend
from .buffers import release_buffers
from .hif4 import HiF4, HiFX4V12
from .hif8 import HiF8
from .integer import Sym
from .mx import MX
from .nvfp4 import NVF4, NVFP4

_FACTORIES: dict[str, Callable[..., Format]] = {
    "hif8": HiF8,
    "hif4": HiF4,
    "hifx4_v12": HiFX4V12,
    "mxfp4": lambda **o: MX("mxfp4", **o),
    "mxfp8e4m3": lambda **o: MX("mxfp8e4m3", **o),
    "mxfp8e5m2": lambda **o: MX("mxfp8e5m2", **o),
    "nvf4": NVF4,
    "nvfp4": NVFP4,
    "int8sym": lambda **o: Sym("int8sym", **o),
    "int4sym": lambda **o: Sym("int4sym", **o),
    "fp8e4m3": lambda **o: Sym("fp8e4m3", **o),
    "fp8e5m2": lambda **o: Sym("fp8e5m2", **o),
}
ALIASES = {"hifx4": "hif4", "int8": "int8sym", "int4": "int4sym"}
# Formats only the import of foreign quantized models writes (passes/qdq.py: a
# DequantizeLinear with a zero point, exactly): get_format / canonical take them, names()
# does not list them (no QuantDequant / Quantize body or NPU kernel has them).
IMPORT_FORMATS: dict[str, Callable[..., Format]] = {
    "uint8asym": lambda **o: Asym("uint8asym", **o),
    "uint4asym": lambda **o: Asym("uint4asym", **o),
}


def names() -> list[str]:
    """Canonical format names."""
    return list(_FACTORIES)


def canonical(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"format name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in _FACTORIES and key not in IMPORT_FORMATS:
        known = ", ".join(names() + sorted(ALIASES))
        raise ValueError(f"unknown format {name!r}; known formats: {known}")
    return key


def get_format(name: str | Format, **options) -> Format:
    """A configured format, e.g. get_format("mxfp4", rounding="even")."""
    if isinstance(name, Format):
        if options:
            raise ValueError("options cannot be combined with a Format instance")
        return name
    key = canonical(name)
    return (_FACTORIES.get(key) or IMPORT_FORMATS[key])(**options)


_MX_OPTIONS = "rounding='even' (OCP/torchao), scale_rule='rceil' (NVIDIA)"
_SYM_OPTIONS = "group=N (a float32 scale per N elements)"
# The options each format takes besides its defaults (get_format keyword arguments).
OPTIONS = {
    "hif8": "saturate=True (32768 instead of Inf); scale='row' | 'tensor' (torchao's HiFloat8: "
            "float32 scale amax/32768 per row or per tensor, + 32 bits per row)",
    "hif4": "variant='amct'",
    "hifx4_v12": "",
    "mxfp4": _MX_OPTIONS,
    "mxfp8e4m3": _MX_OPTIONS,
    "mxfp8e5m2": _MX_OPTIONS,
    "nvf4": "",
    "nvfp4": "",
    "int8sym": _SYM_OPTIONS,
    "int4sym": _SYM_OPTIONS,
    "fp8e4m3": _SYM_OPTIONS,
    "fp8e5m2": _SYM_OPTIONS,
}


def describe() -> list[dict]:
    """One row per format: name, aliases, element, block, scale, bits per element, options."""
    rows = []
    for name in names():
        f = get_format(name)
        rows.append({
            "format": name,
            "aliases": [a for a, n in ALIASES.items() if n == name],
            "element": f.elem_type,
            "block": f.block or "axis",
            "scale": f.scale_type,
            "bits_per_element": f.bits_per_element() if f.block else f"{f.elem_bits} + 32/axis",
            "options": OPTIONS.get(name, ""),
        })
    return rows


def fake_quant(x: torch.Tensor, fmt: str | Format, axis: int = -1, **options) -> torch.Tensor:
    """Quantize and dequantize x along `axis`; same shape and dtype as x."""
    return get_format(fmt, **options).fake_quant(x, axis)


def encode(x: torch.Tensor, fmt: str | Format, axis: int = -1, **options) -> Packed:
    return get_format(fmt, **options).encode(x, axis)


def decode(p: Packed) -> torch.Tensor:
    return p.decode()


__all__ = [
    "Format", "Packed", "names", "canonical", "describe", "get_format",
    "fake_quant", "encode", "decode", "set_backend", "get_backend", "BACKENDS", "release_buffers",
]
