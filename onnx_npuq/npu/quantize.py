"""CPU references of torch_npu.npu_quantize (static scales) and torch_npu.npu_dynamic_quant
(per-token dynamic scales)."""

from __future__ import annotations

import torch

from ._common import (
    _FLOAT_TYPES, _HALF_TYPES, _INT4_RANGE, _INT8_RANGE, _bool_arg, _exporting, _group_counts, _int_arg,
    _names, _npu_op, _npu_ops, _pack_int4, _round_saturate, _tensor,
)


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
