"""CPU reference of torch_npu.npu_weight_quant_batchmatmul (int8 / int4 weights, float
activations)."""

from __future__ import annotations

import torch

from ._common import (
    _HALF_TYPES, _INT8_RANGE, _decode_packed_scale, _exporting, _int_arg, _npu_op, _npu_ops, _opt_tensor,
    _round_half_away, _round_saturate, _tensor, _trunc_fp19, _unpack_int4,
)


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
