"""CPU reference implementations of five torch_npu quantization APIs.

``npu_quantize``, ``npu_dynamic_quant``, ``npu_weight_quant_batchmatmul``,
``npu_dequant_swiglu_quant`` and ``npu_quant_matmul`` (int8 x int8) have the Python signatures, output dtypes, output shapes and
semantics of the ``torch_npu`` functions of the same names, computed with plain torch in
float32 (with the float16/bfloat16 rounding steps the NPU kernels perform, where the sources
say so). When the input tensor is on an NPU device (``tensor.device.type == "npu"``), the real
``torch_npu.<name>`` is called instead; ``torch_npu`` is imported lazily, only then, and the
result of that import is cached. On CPU tensors torch_npu is never imported: installing it
without CANN breaks ``import torch`` (shared/spec/ascend.md).

Conventions shared by the five functions (shared/spec/formats.md, "Integer formats"):
- RNE is round-half-to-even (``torch.round``); "saturate" clamps to the output integer range.
- NaN becomes 0 when converted to an integer (the CANN Quantize golden's rule for int32,
  applied to every integer output so the result never depends on an undefined cast).
- int4 results in an int32 (``torch.quint4x2`` outputs, and int4 weights passed as int32)
  hold 8 values per int32, element j in bits 4j..4j+3 (lowest nibble first).

Sources are repositories as indexed for this project (repo: path); each function's comment
names the ones it follows.
"""
from __future__ import annotations

import contextvars
import importlib
import math
from typing import Any

import torch

__all__ = [
    "npu_dequant_swiglu_quant",
    "npu_dynamic_quant",
    "npu_quant_matmul",
    "npu_quantize",
    "npu_weight_quant_batchmatmul",
]

# ------------------------------------------------------------------ lazy torch_npu dispatch

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


# ops.npu_ops (the custom ops wrapping these references) installs itself here when imported:
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


# ------------------------------------------------------------------ npu_quantize


def npu_quantize(input, scales, zero_points, dtype, axis=1, div_mode=True):
    """torch_npu.npu_quantize: quantize ``input`` with static scales and zero points.

    div_mode=True:  y = saturate(RNE(input / scales + zero_points)) -> int8 / uint8 / int32;
    scales and zero_points are 1-D, one value per index of dimension ``axis``.
    div_mode=False: y = saturate(RNE(input * scales + zero_points)) -> int8, or int4 packed
    8 per int32 (dtype=torch.quint4x2, last dim / 8); scales per tensor, or per index of the
    last dimension (axis > -2) or of the second-to-last one (axis == -2).
    """
    # Sources: Ascend/op-plugin docs/context/torch_npu-npu_quantize.md (signature, dtypes,
    # shapes); Ascend/op-plugin op_plugin/ops/aclops/QuantizeKernelNpu.cpp (div_mode=True:
    # 1-D scales of length input.size(axis), 1-D zero_points of the same length, output dtypes)
    # and op_plugin/ops/opapi/QuantizeKernelNpuOpApi.cpp (div_mode=False: aclnnAscendQuantV3
    # with round_mode "round", axis = axis if axis < -1 else -1, qint8/int8 or quint4x2 -> int32);
    # op_plugin/python/meta/_meta_registrations.py (output dtype/shape); hicann/ops-nn
    # quant/quantize/tests/assets/golden.py (float32 x / scale + zero_point, np.round = RNE,
    # clip, NaN -> 0) and quant/ascend_quant_v2/tests/assets/golden.py (float32 x * scale +
    # offset, np.round, clip to int8 / int4); shared/spec/formats.md.
    fn = "npu_quantize"
    op = _npu_op(fn, input)
    if op is not None:
        return op(input, scales, zero_points, dtype, axis, div_mode)
    if _exporting():
        return _npu_ops().npu_quantize(input, scales, zero_points, dtype, axis, div_mode)

    _tensor(fn, "input", input, _FLOAT_TYPES)
    _int_arg(fn, "axis", axis)
    _bool_arg(fn, "div_mode", div_mode)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{fn}: dtype must be a torch.dtype, got {type(dtype).__name__}")
    ndim = input.dim()
    if not 1 <= ndim <= 8:
        raise ValueError(f"{fn}: input must have 1 to 8 dimensions, got {ndim}")
    x = input.to(torch.float32)

    if div_mode:
        ranges = {
            torch.qint8: (-128, 127, torch.int8),
            torch.quint8: (0, 255, torch.uint8),
            torch.qint32: (-(2**31), 2**31 - 1, torch.int32),
            torch.int32: (-(2**31), 2**31 - 1, torch.int32),
        }
        if dtype not in ranges:
            raise TypeError(f"{fn}: with div_mode=True dtype must be one of ({_names(ranges)}), got {dtype}")
        lo, hi, out_dtype = ranges[dtype]
        _tensor(fn, "scales", scales, (torch.float32, torch.bfloat16))
        if not -ndim <= axis < ndim:
            raise ValueError(f"{fn}: axis {axis} is out of range for an input with {ndim} dimensions")
        ax = axis % ndim
        if scales.dim() != 1 or scales.numel() != input.shape[ax]:
            raise ValueError(
                f"{fn}: with div_mode=True scales must be 1-D of length input.size({axis}) = "
                f"{input.shape[ax]}, got shape {tuple(scales.shape)}"
            )
        shape = [1] * ndim
        shape[ax] = -1
        v = x / scales.to(torch.float32).reshape(shape)
        if zero_points is not None:
            _tensor(fn, "zero_points", zero_points, (torch.int8, torch.uint8, torch.int32, torch.bfloat16))
            if zero_points.dim() != 1 or zero_points.numel() != scales.numel():
                raise ValueError(
                    f"{fn}: zero_points must be 1-D with the length of scales ({scales.numel()}), "
                    f"got shape {tuple(zero_points.shape)}"
                )
            v = v + zero_points.to(torch.float32).reshape(shape)
        return _round_saturate(v, lo, hi, out_dtype)

    # div_mode=False (AscendQuantV2 / V3)
    if dtype in (torch.qint8, torch.int8):
        lo, hi = _INT8_RANGE
        pack = False
    elif dtype == torch.quint4x2:
        lo, hi = _INT4_RANGE
        pack = True
        if input.shape[-1] % 8:
            raise ValueError(
                f"{fn}: with dtype=torch.quint4x2 the last dimension of input must be a multiple "
                f"of 8, got {input.shape[-1]}"
            )
    else:
        raise TypeError(
            f"{fn}: with div_mode=False dtype must be torch.qint8 (or torch.int8) or "
            f"torch.quint4x2, got {dtype}"
        )
    if axis < -2 or axis >= ndim or (axis == -2 and ndim < 2):
        raise ValueError(
            f"{fn}: with div_mode=False axis must be -2 (second-to-last axis) or in [-1, input.dim()) "
            f"(last axis), got {axis} for an input with {ndim} dimensions"
        )
    ax = ndim - 2 if axis == -2 else ndim - 1
    _tensor(fn, "scales", scales, _FLOAT_TYPES)
    s = _quant_v2_param(fn, "scales", scales, input.shape, ax)
    v = x * s
    if zero_points is not None:
        _tensor(fn, "zero_points", zero_points, _FLOAT_TYPES)
        if zero_points.dtype != scales.dtype or zero_points.shape != scales.shape:
            raise ValueError(
                f"{fn}: with div_mode=False zero_points must have the shape and dtype of scales "
                f"({tuple(scales.shape)}, {scales.dtype}), got ({tuple(zero_points.shape)}, {zero_points.dtype})"
            )
        v = v + _quant_v2_param(fn, "zero_points", zero_points, input.shape, ax)
    q = _round_saturate(v, lo, hi, torch.int8)
    return _pack_int4(q) if pack else q


def _quant_v2_param(fn: str, arg: str, p: torch.Tensor, xshape, ax: int) -> torch.Tensor:
    """scales / zero_points of AscendQuantV2 -> a float32 tensor broadcastable to the input."""
    ndim = len(xshape)
    n = xshape[ax]
    if p.dim() == 1:
        if p.numel() not in (1, n):
            raise ValueError(f"{fn}: 1-D {arg} must have length 1 or {n} (input.size({ax})), got {p.numel()}")
        shape = [1] * ndim
        shape[ax] = p.numel()
        return p.to(torch.float32).reshape(shape)
    ok = p.dim() == ndim and all(
        (d == ax and p.shape[d] in (1, n)) or (d != ax and p.shape[d] == 1) for d in range(ndim)
    )
    if not ok:
        raise ValueError(
            f"{fn}: a multi-dimensional {arg} must have input's number of dimensions, size 1 "
            f"everywhere except dimension {ax} (1 or {n}); got shape {tuple(p.shape)}"
        )
    return p.to(torch.float32)


# ------------------------------------------------------------------ npu_dynamic_quant


def npu_dynamic_quant(input, *, smooth_scales=None, group_index=None, dst_type=None):
    """torch_npu.npu_dynamic_quant: per-token symmetric dynamic quantization.

    t = input * smooth_scales (the row's smooth vector with group_index);
    scale = rowmax(|t|) / DTYPE_MAX (127 for int8, 7 for int4); y = saturate(RNE(t / scale)).
    Returns (y, scale): y int8 of input's shape, or for dst_type=torch.quint4x2 int32 with
    the last dim / 8; scale float32 of input.shape[:-1]. An all-zero row has scale 0, y 0.
    """
    # Sources: Ascend/op-plugin docs/context/torch_npu-npu_dynamic_quant.md (formula, dtypes,
    # smooth_scales / group_index rules: group_index holds cumulative row ends, last == rows);
    # Ascend/op-plugin op_plugin/config/op_plugin_functions.yaml (schema: input, *,
    # smooth_scales=None, group_index=None, dst_type=None) and
    # op_plugin/python/meta/_meta_registrations.py (output shapes / dtypes); hicann/ops-nn
    # quant/dynamic_quant/README.md (scaleOut = row_max(abs(x)) / dtypeMax, yOut = round(x /
    # scaleOut)) and quant/dynamic_quant/tests/assets/golden.py (float32, np.round = RNE,
    # cumulative group_index); shared/spec/formats.md.
    fn = "npu_dynamic_quant"
    op = _npu_op(fn, input)
    if op is not None:
        kwargs = {}
        if smooth_scales is not None:
            kwargs["smooth_scales"] = smooth_scales
        if group_index is not None:
            kwargs["group_index"] = group_index
        if dst_type is not None:
            kwargs["dst_type"] = dst_type
        return op(input, **kwargs)
    if _exporting():
        return _npu_ops().npu_dynamic_quant(input, smooth_scales=smooth_scales,
                                            group_index=group_index, dst_type=dst_type)

    _tensor(fn, "input", input, _HALF_TYPES)
    if input.dim() < 2:
        raise ValueError(f"{fn}: input must have more than 1 dimension, got {input.dim()}")
    h = input.shape[-1]
    if h == 0:
        raise ValueError(f"{fn}: the last dimension of input must not be empty")
    if dst_type is None or dst_type == torch.int8:
        qmax, pack = 127, False
    elif dst_type == torch.quint4x2:
        qmax, pack = 7, True
        if h % 8:
            raise ValueError(
                f"{fn}: with dst_type=torch.quint4x2 the last dimension of input must be a multiple of 8, got {h}"
            )
    else:
        raise TypeError(f"{fn}: dst_type must be None, torch.int8 or torch.quint4x2, got {dst_type!r}")

    x = input.reshape(-1, h).to(torch.float32)
    rows = x.shape[0]
    if smooth_scales is not None:
        _tensor(fn, "smooth_scales", smooth_scales, _HALF_TYPES)
        if smooth_scales.dtype != input.dtype:
            raise TypeError(
                f"{fn}: smooth_scales must have input's dtype {input.dtype}, got {smooth_scales.dtype}"
            )
        smooth = smooth_scales.to(torch.float32)
        if group_index is None:
            if smooth_scales.shape != (h,):
                raise ValueError(
                    f"{fn}: smooth_scales must be 1-D of length {h} (the last dimension of input), "
                    f"got shape {tuple(smooth_scales.shape)}"
                )
            t = x * smooth
        else:
            _tensor(fn, "group_index", group_index, (torch.int32,))
            if smooth_scales.dim() != 2 or smooth_scales.shape[1] != h:
                raise ValueError(
                    f"{fn}: with group_index, smooth_scales must be 2-D (E, {h}), got shape "
                    f"{tuple(smooth_scales.shape)}"
                )
            e = smooth_scales.shape[0]
            if group_index.shape != (e,):
                raise ValueError(
                    f"{fn}: group_index must be 1-D with smooth_scales.size(0) = {e} elements, got "
                    f"shape {tuple(group_index.shape)}"
                )
            ends = _group_counts(fn, group_index)
            prev = 0
            for end in ends:
                if end < prev:
                    raise ValueError(f"{fn}: group_index must be non-negative and non-decreasing, got {ends}")
                prev = end
            if ends[-1] != rows:
                raise ValueError(
                    f"{fn}: the last element of group_index must equal the number of rows of input "
                    f"({rows}), got {ends[-1]}"
                )
            counts = torch.tensor([b - a for a, b in zip([0] + ends[:-1], ends)], device=x.device)
            row_group = torch.repeat_interleave(torch.arange(e, device=x.device), counts)
            t = x * smooth[row_group]
    else:
        if group_index is not None:
            raise ValueError(f"{fn}: group_index selects rows of smooth_scales and requires smooth_scales")
        t = x

    scale = t.abs().amax(-1, keepdim=True) / qmax
    q = t / torch.where(scale > 0, scale, torch.ones_like(scale))
    y = _round_saturate(q, -qmax - 1, qmax, torch.int8).reshape(input.shape)
    if pack:
        y = _pack_int4(y)
    return y, scale.reshape(input.shape[:-1])


# ------------------------------------------------------------------ npu_weight_quant_batchmatmul


def npu_weight_quant_batchmatmul(
    x,
    weight,
    antiquant_scale,
    antiquant_offset=None,
    quant_scale=None,
    quant_offset=None,
    bias=None,
    antiquant_group_size=0,
    inner_precise=0,
    weight_dtype=None,
):
    """torch_npu.npu_weight_quant_batchmatmul: y = x @ ((weight + antiquant_offset) *
    antiquant_scale) + bias, optionally quantized to int8: y = (...) * quant_scale + quant_offset.

    x (M, K) float16/bfloat16; weight (K, N) int8, or int4 packed 8 per int32 along the
    storage's last dimension: a contiguous (K, N/8) tensor, or the transpose of a contiguous
    (N, K/8) tensor (shape (K/8, N)), as npu_convert_weight_to_int4pack produces them.
    Modes by antiquant_scale's shape: per-tensor (1,)/(1, 1), per-channel (N,)/(1, N),
    per-group (ceil(K / antiquant_group_size), N). The dequantized weight is computed in x's
    dtype (each add and multiply rounded to it), the product accumulates in float32, bias is
    added in float32 and the result is cast to x.dtype, or quantized to int8 (RNE, saturate)
    when quant_scale is given. antiquant_scale int64 (npu_trans_quant_param) is the
    per-channel fixpipe mode: y = (x @ float16(weight + antiquant_offset)) * scale.
    weight_dtype (newest torch_npu, Ascend 950 only: torch_npu.hifloat8) must be None here.
    """
    # Sources: Ascend/op-plugin docs/context/torch_npu-npu_weight_quant_batchmatmul.md (formula,
    # dtypes, shapes, constraints; the newest version adds weight_dtype, "not supported" on
    # Atlas A2/A3) and op_plugin/config/op_plugin_functions.yaml (schema), and docs/context/torch_npu-npu_convert_weight_to_int4pack.md;
    # Ascend/op-plugin op_plugin/ops/opapi/WeightQuantBatchMatmul*OpApi.cpp (K from a transposed
    # int32 weight is size(0) * 8, N from a contiguous one size(1) * 8; group size 0 or a
    # multiple of 32 in [32, K-1]; quant_offset needs quant_scale; inner_precise 0/1; a float32
    # quant_scale goes through aclnnTransQuantParamV2) and op_plugin/python/meta/
    # _meta_registrations.py (output shape/dtype); hicann/ops-nn
    # matmul/convert_weight_to_int4_pack/op_host/op_api/aclnn_convert_weight_to_int4_pack.cpp
    # (element 2i in the low nibble, 2i+1 in the high one); hicann/ops-nn
    # matmul/weight_quant_batch_matmul_v2/tests/assets/wqbmmv2_kernel_golden.py and
    # wqbmmv2_aclnn_golden.py (antiquant rounded to x's dtype after the add and after the
    # multiply, float32 matmul, float32 bias, packed-scale path, transposed int32 unpacking);
    # hicann/ops-nn quant/trans_quant_param_v2/README.md (scale & 0xFFFFE000, offset
    # clamp(round(offset), -256, 255) in bits 37..45); shared/spec/formats.md.
    fn = "npu_weight_quant_batchmatmul"
    op = _npu_op(fn, x)
    if op is not None:
        args = (x, weight, antiquant_scale, antiquant_offset, quant_scale, quant_offset, bias,
                antiquant_group_size, inner_precise)
        return op(*args) if weight_dtype is None else op(*args, weight_dtype=weight_dtype)
    if _exporting():
        return _npu_ops().npu_weight_quant_batchmatmul(
            x, weight, antiquant_scale, antiquant_offset, quant_scale, quant_offset, bias,
            antiquant_group_size, inner_precise, weight_dtype)

    if weight_dtype is not None:
        raise ValueError(
            f"{fn}: weight_dtype is only supported on Ascend 950 (torch_npu.hifloat8 weights); "
            f"this reference implements the int8 / int4 weights of Atlas A2/A3 and needs weight_dtype=None"
        )
    _tensor(fn, "x", x, _HALF_TYPES)
    _tensor(fn, "weight", weight, (torch.int8, torch.int32))
    _tensor(fn, "antiquant_scale", antiquant_scale, (torch.float16, torch.bfloat16, torch.int64))
    gs = _int_arg(fn, "antiquant_group_size", antiquant_group_size)
    if _int_arg(fn, "inner_precise", inner_precise) not in (0, 1):
        raise ValueError(f"{fn}: inner_precise must be 0 (high precision) or 1 (high performance), got {inner_precise}")
    if x.dim() != 2:
        raise ValueError(f"{fn}: x must be 2-D (M, K), got {x.dim()} dimensions")
    if weight.dim() != 2:
        raise ValueError(f"{fn}: weight must be 2-D (K, N), got {weight.dim()} dimensions")
    dt = x.dtype
    m, k = x.shape

    if weight.dtype == torch.int8:
        kw, n = weight.shape
        w = weight
    elif weight.is_contiguous():  # int32, packed along N: (K, N/8)
        kw, n = weight.shape[0], weight.shape[1] * 8
        w = _unpack_int4(weight)
    elif weight.t().is_contiguous():  # int32, transposed view of a (N, K/8) packed tensor
        kw, n = weight.shape[0] * 8, weight.shape[1]
        w = _unpack_int4(weight.t()).t()
    else:
        raise ValueError(
            f"{fn}: an int32 (int4-packed) weight must be contiguous (K, N/8) or the transpose of "
            f"a contiguous (N, K/8) tensor"
        )
    if kw != k:
        raise ValueError(f"{fn}: the K of x ({k}) and of weight ({kw}) must be equal")
    if m < 1 or k < 1 or n < 1:
        raise ValueError(f"{fn}: empty tensors are not supported (M={m}, K={k}, N={n})")
    if gs != 0 and not (gs % 32 == 0 and 32 <= gs <= k - 1):
        raise ValueError(
            f"{fn}: antiquant_group_size must be 0 or a multiple of 32 in [32, K-1] = [32, {k - 1}], got {gs}"
        )
    _opt_tensor(fn, "quant_scale", quant_scale, (torch.float32, torch.int64))
    _opt_tensor(fn, "quant_offset", quant_offset, (torch.float32,))
    if quant_offset is not None and quant_scale is None:
        raise ValueError(f"{fn}: quant_offset cannot be given without quant_scale")

    if antiquant_scale.dtype == torch.int64:
        # fixpipe per-channel mode (scale from npu_trans_quant_param, applied after the matmul)
        if dt != torch.float16:
            raise TypeError(f"{fn}: an int64 antiquant_scale requires x of dtype torch.float16, got {dt}")
        if weight.dtype != torch.int8:
            raise TypeError(f"{fn}: an int64 antiquant_scale requires an int8 weight, got {weight.dtype}")
        if gs != 0:
            raise ValueError(f"{fn}: an int64 antiquant_scale supports per-channel only (antiquant_group_size=0)")
        if quant_scale is not None or quant_offset is not None:
            raise ValueError(f"{fn}: with an int64 antiquant_scale, quant_scale and quant_offset must be None")
        if tuple(antiquant_scale.shape) not in ((n,), (1, n)):
            raise ValueError(
                f"{fn}: an int64 antiquant_scale must be per-channel, shape ({n},) or (1, {n}), got "
                f"{tuple(antiquant_scale.shape)}"
            )
        _opt_tensor(fn, "antiquant_offset", antiquant_offset, (torch.int32,))
        if antiquant_offset is not None and antiquant_offset.shape != antiquant_scale.shape:
            raise ValueError(
                f"{fn}: antiquant_offset must have the shape of antiquant_scale {tuple(antiquant_scale.shape)}, "
                f"got {tuple(antiquant_offset.shape)}"
            )
        wf = w.to(torch.float32)
        if antiquant_offset is not None:
            wf = wf + antiquant_offset.to(torch.float32).reshape(1, n)
        wf = wf.to(torch.float16).to(torch.float32)
        deq, _ = _decode_packed_scale(antiquant_scale.reshape(n))
        acc = x.to(torch.float32) @ wf
        acc = acc * deq.to(torch.float16).to(torch.float32).reshape(1, n)
    else:
        if antiquant_scale.dtype != dt:
            raise TypeError(f"{fn}: antiquant_scale must have x's dtype {dt}, got {antiquant_scale.dtype}")
        shape = tuple(antiquant_scale.shape)
        if gs > 0:
            groups = -(-k // gs)
            if shape != (groups, n):
                raise ValueError(
                    f"{fn}: per-group antiquant_scale must have shape (ceil(K / antiquant_group_size), N) = "
                    f"({groups}, {n}), got {shape}"
                )

            def expand(p):
                return p.repeat_interleave(gs, dim=0)[:k]

        elif shape in ((1,), (1, 1)):

            def expand(p):
                return p.reshape(1, 1)

        elif shape in ((n,), (1, n)):

            def expand(p):
                return p.reshape(1, n)

        else:
            raise ValueError(
                f"{fn}: antiquant_scale must have shape (1,) or (1, 1) (per-tensor), ({n},) or (1, {n}) "
                f"(per-channel), or (ceil(K / antiquant_group_size), {n}) with antiquant_group_size > 0 "
                f"(per-group); got {shape}"
            )
        wq = w.to(dt)
        if antiquant_offset is not None:
            _tensor(fn, "antiquant_offset", antiquant_offset, _HALF_TYPES)
            if antiquant_offset.dtype != antiquant_scale.dtype:
                raise TypeError(
                    f"{fn}: antiquant_offset must have antiquant_scale's dtype {antiquant_scale.dtype}, "
                    f"got {antiquant_offset.dtype}"
                )
            if antiquant_offset.shape != antiquant_scale.shape:
                raise ValueError(
                    f"{fn}: antiquant_offset must have the shape of antiquant_scale {shape}, got "
                    f"{tuple(antiquant_offset.shape)}"
                )
            wq = wq + expand(antiquant_offset)  # rounded to x's dtype, as on the NPU
        wq = wq * expand(antiquant_scale)
        acc = x.to(torch.float32) @ wq.to(torch.float32)

    if bias is not None:
        want = torch.float16 if dt == torch.float16 else torch.float32
        _tensor(fn, "bias", bias, (torch.float16, torch.float32))
        if bias.dtype != want:
            raise TypeError(f"{fn}: with x of dtype {dt}, bias must have dtype {want}, got {bias.dtype}")
        if tuple(bias.shape) not in ((n,), (1, n)):
            raise ValueError(f"{fn}: bias must have shape ({n},) or (1, {n}), got {tuple(bias.shape)}")
        acc = acc + bias.to(torch.float32).reshape(1, n)

    if quant_scale is None:
        return acc.to(dt)

    qshape = tuple(quant_scale.shape)
    if qshape not in ((1,), (n,), (1, n)):
        raise ValueError(f"{fn}: quant_scale must have shape (1,), ({n},) or (1, {n}), got {qshape}")
    if quant_scale.dtype == torch.int64:
        if quant_offset is not None:
            raise ValueError(
                f"{fn}: with an int64 quant_scale the offset is packed into it by npu_trans_quant_param; "
                f"quant_offset must be None"
            )
        qs, qo = _decode_packed_scale(quant_scale.reshape(-1))
    else:
        qs = _trunc_fp19(quant_scale.reshape(-1))
        if quant_offset is not None:
            if quant_offset.shape != quant_scale.shape:
                raise ValueError(
                    f"{fn}: quant_offset must have the shape of quant_scale {qshape}, got {tuple(quant_offset.shape)}"
                )
            qo = _round_half_away(quant_offset.reshape(-1).to(torch.float32)).clamp(-256, 255)
        else:
            qo = torch.zeros_like(qs)
    v = acc * qs.reshape(1, -1) + qo.reshape(1, -1)
    return _round_saturate(v, *_INT8_RANGE, torch.int8)


# ------------------------------------------------------------------ npu_dequant_swiglu_quant


def npu_dequant_swiglu_quant(
    x,
    *,
    weight_scale=None,
    activation_scale=None,
    bias=None,
    quant_scale=None,
    quant_offset=None,
    group_index=None,
    activate_left=False,
    quant_mode=0,
    swiglu_mode=0,
    clamp_limit=7.0,
    glu_alpha=1.702,
    glu_bias=1.0,
):
    """torch_npu.npu_dequant_swiglu_quant: dequant -> SwiGLU -> int8 quant, per token group.

    x (tokens, 2H) int32: ((x + int32 bias) * weight_scale * activation_scale + float bias);
    bfloat16/float16 x is used as is. swiglu_mode=0: swish(A) * B with A the left half when
    activate_left else the right one, swish(z) = z / (1 + exp(-z)); swiglu_mode=1: A = even
    columns clamped to <= clamp_limit, B = odd columns clamped to [-clamp_limit, clamp_limit]
    plus glu_bias, out = A / (1 + exp(-glu_alpha * A)) * B. quant_mode=1 (dynamic):
    out *= quant_scale, scale = rowmax(|out|) / 127, y = RNE(out / scale); quant_mode=0 (static):
    y = RNE(out / quant_scale + quant_offset), scale = 0. y saturates to int8. group_index
    (counts of tokens) selects the rows of weight_scale / quant_scale for consecutive tokens;
    tokens past its sum get y = 0, scale = 0 (left unwritten on the NPU).
    Returns (y int8 of x.shape[:-1] + (H,), scale float32 of x.shape[:-1]).
    """
    # Sources: Ascend/op-plugin docs/context/torch_npu-npu_dequant_swiglu_quant.md (newest:
    # signature with swiglu_mode, clamp_limit, glu_alpha, glu_bias; dtypes, shapes, rules:
    # activation_scale required for int32 x, activation_scale / bias None for float x, bias and
    # quant_offset None with group_index, group_index counts) and
    # test/test_custom_ops/test_npu_dequant_swiglu_quant.py (golden: int32 bias before the
    # dequant, float bias after, static out / quant_scale + quant_offset, 1-D static
    # quant_scale = one scalar per group, dynamic scale = amax / 127);
    # op_plugin/python/meta/_meta_registrations.py (output shapes / dtypes); hicann/ops-nn
    # quant/dequant_swiglu_quant/tests/assets/golden.py (swish as x / (1 + exp(-alpha x)),
    # swiglu_mode 1 even/odd split and clamps, dynamic y = out / scale, np.rint) and
    # op_kernel/dequant_swiglu_quant.h (the same order of operations; static scale not written);
    # shared/spec/formats.md.
    fn = "npu_dequant_swiglu_quant"
    op = _npu_op(fn, x)
    if op is not None:
        kwargs = {
            "weight_scale": weight_scale, "activation_scale": activation_scale, "bias": bias,
            "quant_scale": quant_scale, "quant_offset": quant_offset, "group_index": group_index,
            "activate_left": activate_left, "quant_mode": quant_mode,
        }
        if swiglu_mode != 0:
            kwargs.update(swiglu_mode=swiglu_mode, clamp_limit=clamp_limit, glu_alpha=glu_alpha, glu_bias=glu_bias)
        return op(x, **kwargs)
    if _exporting():
        return _npu_ops().npu_dequant_swiglu_quant(
            x, weight_scale=weight_scale, activation_scale=activation_scale, bias=bias,
            quant_scale=quant_scale, quant_offset=quant_offset, group_index=group_index,
            activate_left=activate_left, quant_mode=quant_mode, swiglu_mode=swiglu_mode,
            clamp_limit=clamp_limit, glu_alpha=glu_alpha, glu_bias=glu_bias)

    _tensor(fn, "x", x, (torch.int32, torch.bfloat16, torch.float16))
    _bool_arg(fn, "activate_left", activate_left)
    if _int_arg(fn, "quant_mode", quant_mode) not in (0, 1):
        raise ValueError(f"{fn}: quant_mode must be 0 (static) or 1 (dynamic), got {quant_mode}")
    if _int_arg(fn, "swiglu_mode", swiglu_mode) not in (0, 1):
        raise ValueError(f"{fn}: swiglu_mode must be 0 (standard) or 1 (clamped variant), got {swiglu_mode}")
    limit = _float_arg(fn, "clamp_limit", clamp_limit)
    alpha = _float_arg(fn, "glu_alpha", glu_alpha)
    gbias = _float_arg(fn, "glu_bias", glu_bias)
    if swiglu_mode == 1 and limit <= 0:
        raise ValueError(f"{fn}: clamp_limit must be > 0, got {clamp_limit}")
    if x.dim() < 2:
        raise ValueError(f"{fn}: x must be 2-D (TokensNum, 2H), got {x.dim()} dimensions")
    h2 = x.shape[-1]
    if h2 == 0 or h2 % 2:
        raise ValueError(f"{fn}: the last dimension of x must be even and non-zero, got {h2}")
    h = h2 // 2
    xr = x.reshape(-1, h2)
    tokens = xr.shape[0]
    dev = x.device

    # groups of consecutive tokens
    if group_index is not None:
        _tensor(fn, "group_index", group_index, (torch.int64,))
        if group_index.dim() != 1 or group_index.numel() == 0:
            raise ValueError(f"{fn}: group_index must be 1-D and non-empty, got shape {tuple(group_index.shape)}")
        if bias is not None:
            raise ValueError(f"{fn}: bias must be None when group_index is given")
        if quant_offset is not None:
            raise ValueError(f"{fn}: quant_offset must be None when group_index is given")
        counts = _group_counts(fn, group_index)
        if min(counts) < 0:
            raise ValueError(f"{fn}: group_index must hold non-negative token counts, got {counts}")
        if sum(counts) > tokens:
            raise ValueError(f"{fn}: the sum of group_index ({sum(counts)}) exceeds the number of tokens ({tokens})")
    else:
        counts = [tokens]
    ngroups = len(counts)
    used = sum(counts)
    row_group = torch.repeat_interleave(torch.arange(ngroups, device=dev), torch.tensor(counts, device=dev))

    def per_group(arg, p, width, dtypes):
        """(G, width), or (width,) / (1, width) with one group -> float32 rows per used token."""
        _tensor(fn, arg, p, dtypes)
        ok = tuple(p.shape) == (ngroups, width) or (ngroups == 1 and tuple(p.shape) == (width,))
        if not ok:
            want = f"({ngroups}, {width})" + (f" or ({width},)" if ngroups == 1 else "")
            raise ValueError(f"{fn}: {arg} must have shape {want}, got {tuple(p.shape)}")
        return p.reshape(ngroups, width).to(torch.float32)[row_group]

    # dequant
    if x.dtype == torch.int32:
        if activation_scale is None:
            raise ValueError(f"{fn}: activation_scale is required when x is int32")
        _tensor(fn, "activation_scale", activation_scale, (torch.float32,))
        if activation_scale.numel() != tokens or not (
            activation_scale.dim() == 1 or activation_scale.shape[-1] == 1
        ):
            raise ValueError(
                f"{fn}: activation_scale must hold one value per token, shape ({tokens},) or ({tokens}, 1), "
                f"got {tuple(activation_scale.shape)}"
            )
        xi = xr[:used]
        fbias = None
        if bias is not None:
            _tensor(fn, "bias", bias, (torch.int32, torch.float32, torch.float16, torch.bfloat16))
            if tuple(bias.shape) not in ((h2,), (1, h2)):
                raise ValueError(f"{fn}: bias must have shape ({h2},) or (1, {h2}), got {tuple(bias.shape)}")
            if bias.dtype == torch.int32:
                xi = xi + bias.reshape(1, h2)
            else:
                fbias = bias.to(torch.float32).reshape(1, h2)
        v = xi.to(torch.float32)
        if weight_scale is not None:
            v = v * per_group("weight_scale", weight_scale, h2, (torch.float32,))
        v = v * activation_scale.reshape(tokens, 1).to(torch.float32)[:used]
        if fbias is not None:
            v = v + fbias
    else:
        if activation_scale is not None or bias is not None:
            raise ValueError(f"{fn}: activation_scale and bias must be None when x is {x.dtype}")
        if weight_scale is not None:  # allowed by the docs, not applied to a float x
            _tensor(fn, "weight_scale", weight_scale, (torch.float32,))
        v = xr[:used].to(torch.float32)

    # swiglu
    if swiglu_mode == 0:
        left, right = v[:, :h], v[:, h:]
        a, b = (left, right) if activate_left else (right, left)
        neg = torch.tensor(-1.0, dtype=torch.float32, device=dev)
    else:
        a = v[:, 0::2].clamp(max=limit)
        b = v[:, 1::2].clamp(-limit, limit) + torch.tensor(gbias, dtype=torch.float32, device=dev)
        neg = torch.tensor(-alpha, dtype=torch.float32, device=dev)
    out = a / (torch.exp(a * neg) + 1.0) * b

    # quant
    scale = torch.zeros(tokens, dtype=torch.float32, device=dev)
    if quant_mode == 1:
        if quant_offset is not None:
            raise ValueError(f"{fn}: quant_offset is only used by static quantization (quant_mode=0)")
        if quant_scale is not None:
            out = out * per_group("quant_scale", quant_scale, h, _FLOAT_TYPES)
        s = out.abs().amax(-1, keepdim=True) / 127.0
        q = out / torch.where(s > 0, s, torch.ones_like(s))
        scale[:used] = s.reshape(-1)
    else:
        q = out
        if quant_scale is not None:
            _tensor(fn, "quant_scale", quant_scale, (torch.float32,))
            qshape = tuple(quant_scale.shape)
            if qshape == (ngroups, h) or (ngroups == 1 and qshape == (h,)):
                width = h  # per channel
            elif qshape in ((ngroups,), (ngroups, 1)):
                width = 1  # one scalar per group
            else:
                want = f"({ngroups}, {h})" + (f", ({h},)" if ngroups == 1 else "")
                raise ValueError(
                    f"{fn}: static quant_scale must have shape {want} (per channel) or ({ngroups},) / "
                    f"({ngroups}, 1) (one scalar per group), got {qshape}"
                )
            q = q / quant_scale.reshape(ngroups, width).to(torch.float32)[row_group]
            if quant_offset is not None:
                _tensor(fn, "quant_offset", quant_offset, (torch.float32,))
                if quant_offset.shape != quant_scale.shape:
                    raise ValueError(
                        f"{fn}: quant_offset must have the shape of quant_scale {qshape}, "
                        f"got {tuple(quant_offset.shape)}"
                    )
                q = q + quant_offset.reshape(ngroups, width).to(torch.float32)[row_group]
        elif quant_offset is not None:
            raise ValueError(f"{fn}: quant_offset requires quant_scale")

    y = torch.zeros(tokens, h, dtype=torch.int8, device=dev)
    y[:used] = _round_saturate(q, *_INT8_RANGE, torch.int8)
    return y.reshape(*x.shape[:-1], h), scale.reshape(x.shape[:-1])


# ------------------------------------------------------------------ npu_quant_matmul

# output_dtype -> GE DataType code (the QuantBatchMatMul "dtype" attribute)
QUANT_MATMUL_OUT = {torch.int8: 2, torch.float16: 1, torch.bfloat16: 27, torch.int32: 3}


def npu_quant_matmul(x1, x2, scale, *, offset=None, pertoken_scale=None, bias=None, output_dtype=None,
                     x1_dtype=None, x2_dtype=None, pertoken_scale_dtype=None, scale_dtype=None,
                     group_sizes=None, y_scale=None):
    """torch_npu.npu_quant_matmul for int8 x1 (..., M, K) and x2 (..., K, N) on Atlas A2 / A3.

    acc = x1 @ x2 exactly (int32), plus an int32 bias; then by output_dtype:
    - int32: acc (a float bias added in float32, then converted);
    - pertoken_scale given (float16 / bfloat16 output): float32(acc) * scale * pertoken_scale
      (scale per tensor (1,) or per channel (N,), pertoken (M,)), plus a float bias;
    - int8 (None): scale 19-bit truncated (an int64 scale from npu_trans_quant_param is
      decoded, its offset with it; a float32 scale and offset are packed the same way),
      clamp(RNE(acc * scale), -256, 255) + offset, saturated to int8;
    - float16: float32(acc) * truncated scale; bfloat16: float32(acc) * scale (truncated when
      per tensor and the bias is not a float), plus a float bias; rounded RNE to the output.
    Only int8 operands (not int4 packed in int32) and no group / Ascend 950 options.
    """
    # Sources: Ascend/op-plugin docs/zh/custom_APIs/torch_npu/torch_npu-npu_quant_matmul.md
    # (signature, dtype combinations, output_dtype None = int8) and
    # op_plugin/ops/opapi/QuantMatmulKernelNpuOpApi.cpp (a float32 scale without pertoken_scale
    # and with int8 / float16 output goes through npu_trans_quant_param(scale, offset));
    # hicann/ops-nn matmul/quant_batch_matmul_v3/README.md (formulas) and
    # tests/assets/qbmmv3_kernel_golden.py (compute_pertoken, compute_tc, compute_requant with
    # f32_2_s9 = clip(rint(v), -256, 255), compute_int32; scale_generate = & 0xFFFFE000).
    fn = "npu_quant_matmul"
    op = _npu_op(fn, x1)
    if op is not None:
        kwargs = {"offset": offset, "pertoken_scale": pertoken_scale, "bias": bias, "output_dtype": output_dtype}
        for k, v in (("x1_dtype", x1_dtype), ("x2_dtype", x2_dtype), ("pertoken_scale_dtype", pertoken_scale_dtype),
                     ("scale_dtype", scale_dtype), ("group_sizes", group_sizes), ("y_scale", y_scale)):
            if v is not None:
                kwargs[k] = v
        return op(x1, x2, scale, **kwargs)
    for k, v in (("x1_dtype", x1_dtype), ("x2_dtype", x2_dtype), ("pertoken_scale_dtype", pertoken_scale_dtype),
                 ("scale_dtype", scale_dtype), ("group_sizes", group_sizes), ("y_scale", y_scale)):
        if v is not None:
            raise ValueError(f"{fn}: {k} (Ascend 950 formats / group quantization) must be None on the CPU reference")
    if output_dtype is not None and output_dtype not in QUANT_MATMUL_OUT:
        raise TypeError(f"{fn}: output_dtype must be None, {_names(QUANT_MATMUL_OUT)}, got {output_dtype!r}")
    if _exporting():
        return _npu_ops().npu_quant_matmul(x1, x2, scale, offset=offset, pertoken_scale=pertoken_scale,
                                           bias=bias, output_dtype=output_dtype)

    out_dtype = torch.int8 if output_dtype is None else output_dtype
    _tensor(fn, "x1", x1, (torch.int8,))
    _tensor(fn, "x2", x2, (torch.int8,))
    if not (2 <= x1.dim() <= 6 and 2 <= x2.dim() <= 6):
        raise ValueError(f"{fn}: x1 and x2 must have 2 to 6 dimensions, got {x1.dim()} and {x2.dim()}")
    k, n = x2.shape[-2], x2.shape[-1]
    if x1.shape[-1] != k:
        raise ValueError(f"{fn}: x1 (..., M, K) and x2 (..., K, N) disagree on K: {tuple(x1.shape)} @ {tuple(x2.shape)}")
    if k > 65535 or n > 65535:
        raise ValueError(f"{fn}: the last dimensions of x1 and x2 must not exceed 65535, got {k} and {n}")
    m = x1.shape[-2]
    _tensor(fn, "scale", scale, (torch.float32, torch.int64, torch.bfloat16))
    if scale.dim() != 1 or scale.numel() not in (1, n):
        raise ValueError(f"{fn}: scale must be 1-D of length 1 or N = {n}, got shape {tuple(scale.shape)}")
    _opt_tensor(fn, "offset", offset, (torch.float32,))
    if offset is not None and (offset.dim() != 1 or offset.numel() not in (1, n)):
        raise ValueError(f"{fn}: offset must be 1-D of length 1 or N = {n}, got shape {tuple(offset.shape)}")
    _opt_tensor(fn, "pertoken_scale", pertoken_scale, (torch.float32,))
    if pertoken_scale is not None and tuple(pertoken_scale.shape) != (m,):
        raise ValueError(f"{fn}: pertoken_scale must be 1-D of length M = {m}, got shape {tuple(pertoken_scale.shape)}")
    _opt_tensor(fn, "bias", bias, (torch.int32, torch.float32, torch.float16, torch.bfloat16))
    if bias is not None and tuple(bias.shape) != (n,) and not (bias.dim() == 3 and bias.shape[1:] == (1, n)):
        raise ValueError(f"{fn}: bias must have shape ({n},) or (batch, 1, {n}), got {tuple(bias.shape)}")
    int_bias = bias is not None and bias.dtype == torch.int32
    float_bias = bias is not None and not int_bias

    # the dtype combinations of the Atlas A2 / A3 table (torch_npu docs, table 2)
    if pertoken_scale is not None:
        ok = out_dtype in (torch.float16, torch.bfloat16) and scale.dtype != torch.int64 and offset is None
        ok = ok and not (out_dtype == torch.float16 and scale.dtype == torch.bfloat16)
        ok = ok and not (out_dtype == torch.float16 and bias is not None and bias.dtype == torch.bfloat16)
        ok = ok and not (out_dtype == torch.bfloat16 and bias is not None and bias.dtype == torch.float16)
    elif out_dtype == torch.int8:
        ok = scale.dtype != torch.bfloat16 and not float_bias
    elif out_dtype == torch.float16:
        ok = scale.dtype != torch.bfloat16 and not float_bias and offset is None
    elif out_dtype == torch.bfloat16:
        ok = scale.dtype != torch.int64 and offset is None and (bias is None or bias.dtype != torch.float16)
    else:  # int32
        ok = scale.dtype != torch.int64 and offset is None and not float_bias
    if not ok:
        raise TypeError(
            f"{fn}: unsupported combination scale {scale.dtype}, offset {None if offset is None else offset.dtype}, "
            f"bias {None if bias is None else bias.dtype}, pertoken_scale "
            f"{None if pertoken_scale is None else pertoken_scale.dtype}, output {out_dtype} (torch_npu docs, table 2)"
        )
    if scale.dtype == torch.int64 and offset is not None:
        raise ValueError(f"{fn}: with an int64 scale the offset is packed into it by npu_trans_quant_param")

    acc = torch.matmul(x1.to(torch.int64), x2.to(torch.int64))  # exact; int32 on the NPU
    if int_bias:
        acc = acc + bias.to(torch.int64)
    acc32 = acc.to(torch.int32)  # (wraps like int32 past its range; K <= 65535 keeps it inside)
    fb = bias.to(torch.float32) if float_bias else None
    if out_dtype == torch.int32:
        return acc32
    v = acc32.to(torch.float32)
    if pertoken_scale is not None:
        v = v * scale.to(torch.float32) * pertoken_scale.to(torch.float32).unsqueeze(-1)
        if fb is not None:
            v = v + fb
        return v.to(out_dtype)
    if out_dtype == torch.bfloat16:
        s = scale.to(torch.float32)
        if scale.numel() == 1 and not float_bias:
            s = _trunc_fp19(s)
        v = v * s
        if fb is not None:
            v = v + fb
        return v.to(out_dtype)
    # int8 / float16: the scale as npu_trans_quant_param packs it
    if scale.dtype == torch.int64:
        s, o = _decode_packed_scale(scale)
    else:
        s = _trunc_fp19(scale)
        o = torch.zeros_like(s) if offset is None else _round_half_away(offset.to(torch.float32)).clamp(-256, 255)
    if out_dtype == torch.float16:
        return (v * s).to(torch.float16)
    r = torch.round(v * s).clamp(-256, 255) + o
    return r.clamp(-128, 127).to(torch.int8)


# ------------------------------------------------------------------ AscendQuant / AscendDequant

# AMCT's and msModelSlim's deploy ops (default domain in their ONNX models), which ATC fuses
# with the int8 Conv / Gemm / MatMul between them onto the cube. Not torch_npu APIs: CPU
# references of CANN's operators, so that a model in that form can be run and checked.


def ascend_quant(x, scale: float, offset: float = 0.0, *, sqrt_mode: bool = False, round_mode: str = "Round",
                 dst_type: str = "INT8"):
    """CANN AscendQuant on Atlas A2 / 310P (not 950): in float16, y = saturate_int8(rint(fp16(x) *
    fp16(scale) [* fp16(scale)] + fp16(offset))), each step rounded to float16."""
    # Sources: hicann/ops-nn quant/ascend_quant/tests/assets/golden.py (non-950 branch: cast to
    # float16, scale and offset as float16, multiply / add in float16, np.rint for "Round",
    # clip to [-128, 127]) and framework/ascend_quant_onnx_plugin.cpp (attributes, defaults).
    fn = "ascend_quant"
    _tensor(fn, "x", x, _FLOAT_TYPES)
    scale, offset = _float_arg(fn, "scale", scale), _float_arg(fn, "offset", offset)
    if round_mode != "Round" or dst_type != "INT8":
        raise ValueError(f"{fn}: only round_mode='Round' and dst_type='INT8' are implemented, got "
                         f"{round_mode!r}, {dst_type!r}")
    h = torch.float16
    s = torch.tensor(scale, dtype=torch.float32).to(h)
    v = x.to(h) * s
    if sqrt_mode:
        v = v * s
    v = v + torch.tensor(offset, dtype=torch.float32).to(h)
    return _round_saturate(v.to(torch.float32), *_INT8_RANGE, torch.int8)


def pack_deq_scale(deq_scale: torch.Tensor, weight_offset: torch.Tensor | None = None) -> torch.Tensor:
    """float32 deq_scale (activation scale x weight scale, per channel) -> AscendDequant's
    UINT64 word: bits 31..0 the float32, 39..32 shift_n (0), 47..40 the int8 weight offset;
    as a torch.int64 tensor of the same bits (torch has no uint64 arithmetic)."""
    # Source: Ascend/msmodelslim ascend_utils/mindspore/quant/ptq_quant/deploy/deploy_utils.py
    # (compute_fused_deq_scale: |47:40 offset_w|39:32 shift_N|31:0 deq_scale|) and
    # msmodelslim/onnx/squant_ptq/quant_deploy.py (_convert_dequant: float32 bits | 0).
    low = deq_scale.to(torch.float32).contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    if weight_offset is not None:
        low = low | ((weight_offset.to(torch.int64) & 0xFF) << 40)
    return low


def ascend_dequant(x, deq_scale, *, sqrt_mode: bool = False, relu_flag: bool = False, dtype: int = 0):
    """CANN AscendDequant: int32 x (N, C, ...) * the float32 scale in bits 31..0 of deq_scale (C,)
    or (1,) along axis 1 (NCHW's channels; a Gemm output's columns), 19-bit truncated as the
    fixpipe reads it, [squared,] [relu,] as float32 (dtype 0) or float16 (dtype 1)."""
    # Sources: hicann/ops-nn quant/ascend_dequant/op_graph/ascend_dequant_proto.h (inputs, sqrt_mode,
    # relu_flag, dtype DT_FLOAT default) and framework/ascend_dequant_onnx_plugin.cpp; the 19-bit
    # read of a UINT64 scale: matmul/common/tests/st/arch35/matmul_quant_util.py u64_to_deq_scale.
    fn = "ascend_dequant"
    _tensor(fn, "x", x, (torch.int32,))
    _tensor(fn, "deq_scale", deq_scale, (torch.int64,))
    if dtype not in (0, 1):
        raise ValueError(f"{fn}: dtype must be 0 (float32) or 1 (float16), got {dtype}")
    if x.dim() < 2:
        raise ValueError(f"{fn}: x must have at least 2 dimensions (N, C, ...), got {x.dim()}")
    if deq_scale.dim() != 1 or deq_scale.numel() not in (1, x.shape[1]):
        raise ValueError(f"{fn}: deq_scale must be 1-D of length 1 or {x.shape[1]} (x's channels, dimension 1), "
                         f"got shape {tuple(deq_scale.shape)}")
    s, _ = _decode_packed_scale(deq_scale)
    s = s.reshape(-1, *([1] * (x.dim() - 2)))
    if sqrt_mode:
        s = s * s
    v = x.to(torch.float32) * s
    if relu_flag:
        v = torch.relu(v)
    return v.to(torch.float16 if dtype == 1 else torch.float32)


def ascend_anti_quant(x, scale: float, offset: float = 0.0, *, sqrt_mode: bool = False, dtype: int = 0):
    """CANN AscendAntiQuant as its ONNX node reads: y = (x - offset) * scale [* scale] in float32,
    as float32 (dtype 0) or float16 (dtype 1). (The ONNX plugin negates the attribute: the GE op
    computes (x + offset') * scale with offset' = -offset.)"""
    # Sources: hicann/ops-nn quant/ascend_anti_quant/op_graph/ascend_anti_quant_proto.h (formula,
    # dtype DT_FLOAT default) and framework/ascend_anti_quant_onnx_plugin.cpp (offset = attr * -1).
    fn = "ascend_anti_quant"
    _tensor(fn, "x", x, (torch.int8,))
    scale, offset = _float_arg(fn, "scale", scale), _float_arg(fn, "offset", offset)
    if dtype not in (0, 1):
        raise ValueError(f"{fn}: dtype must be 0 (float32) or 1 (float16), got {dtype}")
    s = torch.tensor(scale, dtype=torch.float32)
    v = (x.to(torch.float32) - torch.tensor(offset, dtype=torch.float32)) * s
    if sqrt_mode:
        v = v * s
    return v.to(torch.float16 if dtype == 1 else torch.float32)
