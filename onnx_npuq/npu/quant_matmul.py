"""CPU reference of torch_npu.npu_quant_matmul (int8 x int8, QuantBatchMatMul)."""

from __future__ import annotations

import torch

from ._common import (
    _decode_packed_scale, _exporting, _names, _npu_op, _npu_ops, _opt_tensor, _round_half_away, _tensor,
    _trunc_fp19,
)


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
