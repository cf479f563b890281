"""What the torch_npu CPU references share: the lazy torch_npu dispatch (state kept here, and
only here), the routing to ops.npu_ops while exporting, argument checks and integer / int4 /
packed-scale helpers."""

from __future__ import annotations

import contextvars
import importlib
import math
from typing import Any

import torch


_UNSET: Any = object()
_TORCH_NPU: Any = _UNSET  # the torch_npu module, None when it cannot be imported, or _UNSET


def _load_torch_npu():
    """The torch_npu module, or None when it does not import cleanly; imported once, cached."""
    global _TORCH_NPU
    if _TORCH_NPU is _UNSET:
        try:
            module = importlib.import_module("torch_npu")
        except Exception:  # noqa: BLE001 - ImportError, or e.g. RuntimeError from an install without CANN
            module = None
        _TORCH_NPU = module
    return _TORCH_NPU


def _is_npu(t) -> bool:
    return isinstance(t, torch.Tensor) and t.device.type == "npu"


def _npu_op(name: str, t):
    """torch_npu.<name> when t is on an NPU device (importing torch_npu then), else None."""
    if not _is_npu(t):
        return None
    module = _load_torch_npu()
    if module is None:
        raise RuntimeError(f"{name}: the input is on an NPU device but torch_npu cannot be imported")
    return getattr(module, name)


# ------------------------------------------------------------------ helpers

_FLOAT_TYPES = (torch.float32, torch.float16, torch.bfloat16)
_HALF_TYPES = (torch.float16, torch.bfloat16)
_INT8_RANGE = (-128, 127)
_INT4_RANGE = (-8, 7)


# Inside an ONNX export, the public functions go through their npuq_npu custom ops, which
# export as the `npu` domain nodes; the custom ops compute with these same functions, with
# _IN_CUSTOM_OP set so that they do not route again.
_IN_CUSTOM_OP = contextvars.ContextVar("onnx_npuq_npu_in_custom_op", default=False)


def _exporting() -> bool:
    return torch.onnx.is_in_onnx_export() and not _IN_CUSTOM_OP.get()


# ops.npu_torch (the custom ops wrapping these references) installs itself here when imported:
# npu sits below ops and never imports it. Exporting needs that module anyway (its TRANSLATIONS
# lower the custom ops to ONNX), and onnx_npuq.export imports it.
_EXPORT_OPS: Any = None


def _npu_ops():
    if _EXPORT_OPS is None:
        raise RuntimeError("exporting a call of onnx_npuq.npu needs onnx_npuq.ops.npu_ops imported "
                           "(onnx_npuq.export does; torch.onnx.export needs its TRANSLATIONS too)")
    return _EXPORT_OPS


def _names(dtypes) -> str:
    return ", ".join(str(d) for d in dtypes)


def _tensor(fn: str, arg: str, t, dtypes=None) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{fn}: {arg} must be a torch.Tensor, got {type(t).__name__}")
    if dtypes is not None and t.dtype not in dtypes:
        raise TypeError(f"{fn}: {arg} must have dtype in ({_names(dtypes)}), got {t.dtype}")
    return t


def _opt_tensor(fn: str, arg: str, t, dtypes=None):
    return None if t is None else _tensor(fn, arg, t, dtypes)


def _int_arg(fn: str, arg: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{fn}: {arg} must be an int, got {type(v).__name__}")
    return v


def _bool_arg(fn: str, arg: str, v) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"{fn}: {arg} must be a bool, got {type(v).__name__}")
    return v


def _float_arg(fn: str, arg: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{fn}: {arg} must be a float, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{fn}: {arg} must be finite, got {v}")
    return v


def _round_saturate(v: torch.Tensor, lo: int, hi: int, dtype: torch.dtype) -> torch.Tensor:
    """RNE of a float32 tensor, NaN -> 0, clamped to [lo, hi], as an integer dtype."""
    r = torch.round(v)
    r = torch.where(torch.isnan(r), torch.zeros_like(r), r)
    # float64 so that the int32 bounds are exact (2**31 - 1 is not a float32)
    return r.to(torch.float64).clamp_(lo, hi).to(dtype)


def _pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Integers in [-8, 7] (last dim a multiple of 8) -> int32, 8 per word, lowest nibble first."""
    nib = (q.to(torch.int64) & 0xF).reshape(*q.shape[:-1], q.shape[-1] // 8, 8)
    shifts = torch.arange(0, 32, 4, dtype=torch.int64, device=q.device)
    word = (nib << shifts).sum(-1)
    word = torch.where(word >= 2**31, word - 2**32, word)
    return word.to(torch.int32)


def _unpack_int4(w: torch.Tensor) -> torch.Tensor:
    """int32 words (..., n) -> int8 values (..., 8n) in [-8, 7], lowest nibble first."""
    shifts = torch.arange(0, 32, 4, dtype=torch.int64, device=w.device)
    nib = (w.to(torch.int64).unsqueeze(-1) >> shifts) & 0xF
    nib = torch.where(nib >= 8, nib - 16, nib)
    return nib.reshape(*w.shape[:-1], w.shape[-1] * 8).to(torch.int8)


def _trunc_fp19(s: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 keeping the top 19 bits (bits & 0xFFFFE000), as TransQuantParam does."""
    bits = s.to(torch.float32).contiguous().view(torch.int32)
    return (bits & -8192).view(torch.float32)  # -8192 == 0xFFFFE000 as int32


def _decode_packed_scale(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int64 from npu_trans_quant_param -> (float32 scale, float32 offset).

    Layout (hicann/ops-nn quant/trans_quant_param_v2/README.md): bits 0..31 the float32 scale
    (& 0xFFFFE000), bits 37..45 a 9-bit two's-complement offset, bit 46 a flag.
    """
    p = p.to(torch.int64)
    low = p & 0xFFFFFFFF
    low = torch.where(low >= 2**31, low - 2**32, low).to(torch.int32)
    scale = (low & -8192).view(torch.float32)
    off = (p >> 37) & 0x1FF
    off = torch.where(off >= 256, off - 512, off)
    return scale, off.to(torch.float32)


def _round_half_away(v: torch.Tensor) -> torch.Tensor:
    return torch.sign(v) * torch.floor(v.abs() + 0.5)


def _group_counts(fn: str, group_index: torch.Tensor) -> list[int]:
    return [int(v) for v in group_index.reshape(-1).tolist()]
