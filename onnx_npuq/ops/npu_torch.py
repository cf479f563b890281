"""The npu ops in torch: torch_npu dtype -> GE code maps, the npuq_npu custom ops (computed by
onnx_npuq.npu, with their fakes), the torch_npu-signature wrappers, and their export lowering
(TRANSLATIONS). Registers itself as onnx_npuq.npu's export route."""

from __future__ import annotations

import contextlib
import sys

import onnxscript
import torch
from onnx import TensorProto

from .. import npu
from .npu_defs import DOMAIN, DT_FLOAT, DT_FLOAT16, DT_INT32, DT_INT4, DT_INT8, DT_UINT8, OPS, VERSION


# ------------------------------------------------------------------ dtype codes

_QUANTIZE_DIV = {torch.qint8: DT_INT8, torch.quint8: DT_UINT8, torch.qint32: DT_INT32, torch.int32: DT_INT32}
_QUANTIZE_MUL = {torch.qint8: DT_INT8, torch.int8: DT_INT8, torch.quint4x2: DT_INT4}
_CODE_DIV = {DT_INT8: torch.qint8, DT_UINT8: torch.quint8, DT_INT32: torch.qint32}
_CODE_MUL = {DT_INT8: torch.qint8, DT_INT4: torch.quint4x2}
_DYN_CODE = {DT_INT8: torch.int8, DT_INT4: torch.quint4x2}


# ------------------------------------------------------------------ torch custom ops


@contextlib.contextmanager
def _computing():
    """While a custom op computes with onnx_npuq.npu, that must not route back to it."""
    token = npu._IN_CUSTOM_OP.set(True)
    try:
        yield
    finally:
        npu._IN_CUSTOM_OP.reset(token)


@torch.library.custom_op("npuq_npu::quantize", mutates_args=())
def _quantize(input: torch.Tensor, scales: torch.Tensor, zero_points: torch.Tensor | None,
              dtype: int, axis: int, div_mode: bool) -> torch.Tensor:
    dt = (_CODE_DIV if div_mode else _CODE_MUL)[dtype]
    with _computing():
        return npu.npu_quantize(input, scales, zero_points, dt, axis, div_mode)


@_quantize.register_fake
def _(input, scales, zero_points, dtype, axis, div_mode):
    if div_mode:
        out = {DT_INT8: torch.int8, DT_UINT8: torch.uint8, DT_INT32: torch.int32}[dtype]
        return input.new_empty(input.shape, dtype=out)
    if dtype == DT_INT4:
        return input.new_empty((*input.shape[:-1], input.shape[-1] // 8), dtype=torch.int32)
    return input.new_empty(input.shape, dtype=torch.int8)


@torch.library.custom_op("npuq_npu::dynamic_quant", mutates_args=())
def _dynamic_quant(input: torch.Tensor, smooth_scales: torch.Tensor | None,
                   group_index: torch.Tensor | None, dst_type: int) -> tuple[torch.Tensor, torch.Tensor]:
    with _computing():
        return npu.npu_dynamic_quant(input, smooth_scales=smooth_scales, group_index=group_index,
                                     dst_type=_DYN_CODE[dst_type])


@_dynamic_quant.register_fake
def _(input, smooth_scales, group_index, dst_type):
    if dst_type == DT_INT4:
        y = input.new_empty((*input.shape[:-1], input.shape[-1] // 8), dtype=torch.int32)
    else:
        y = input.new_empty(input.shape, dtype=torch.int8)
    return y, input.new_empty(input.shape[:-1], dtype=torch.float32)


@torch.library.custom_op("npuq_npu::weight_quant_batchmatmul", mutates_args=())
def _weight_quant_batchmatmul(
    x: torch.Tensor, weight: torch.Tensor, antiquant_scale: torch.Tensor,
    antiquant_offset: torch.Tensor | None, quant_scale: torch.Tensor | None,
    quant_offset: torch.Tensor | None, bias: torch.Tensor | None,
    antiquant_group_size: int, inner_precise: int,
) -> torch.Tensor:
    with _computing():
        return npu.npu_weight_quant_batchmatmul(x, weight, antiquant_scale, antiquant_offset,
                                                quant_scale, quant_offset, bias,
                                                antiquant_group_size, inner_precise)


@_weight_quant_batchmatmul.register_fake
def _(x, weight, antiquant_scale, antiquant_offset, quant_scale, quant_offset, bias,
      antiquant_group_size, inner_precise):
    if weight.dtype == torch.int8:
        n = weight.shape[1]
    elif weight.is_contiguous():
        n = weight.shape[1] * 8
    else:
        n = weight.shape[1]
    out = x.dtype if quant_scale is None else torch.int8
    return x.new_empty((x.shape[0], n), dtype=out)


@torch.library.custom_op("npuq_npu::dequant_swiglu_quant", mutates_args=())
def _dequant_swiglu_quant(
    x: torch.Tensor, weight_scale: torch.Tensor | None, activation_scale: torch.Tensor | None,
    bias: torch.Tensor | None, quant_scale: torch.Tensor | None, quant_offset: torch.Tensor | None,
    group_index: torch.Tensor | None, activate_left: bool, quant_mode: int, swiglu_mode: int,
    clamp_limit: float, glu_alpha: float, glu_bias: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    with _computing():
        return npu.npu_dequant_swiglu_quant(
            x, weight_scale=weight_scale, activation_scale=activation_scale, bias=bias,
            quant_scale=quant_scale, quant_offset=quant_offset, group_index=group_index,
            activate_left=activate_left, quant_mode=quant_mode, swiglu_mode=swiglu_mode,
            clamp_limit=clamp_limit, glu_alpha=glu_alpha, glu_bias=glu_bias,
        )


@_dequant_swiglu_quant.register_fake
def _(x, weight_scale, activation_scale, bias, quant_scale, quant_offset, group_index,
      activate_left, quant_mode, swiglu_mode, clamp_limit, glu_alpha, glu_bias):
    y = x.new_empty((*x.shape[:-1], x.shape[-1] // 2), dtype=torch.int8)
    return y, x.new_empty(x.shape[:-1], dtype=torch.float32)


_QMM_CODE = {v: k for k, v in npu.QUANT_MATMUL_OUT.items()}


@torch.library.custom_op("npuq_npu::quant_matmul", mutates_args=())
def _quant_matmul(x1: torch.Tensor, x2: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor | None,
                  pertoken_scale: torch.Tensor | None, bias: torch.Tensor | None, dtype: int) -> torch.Tensor:
    with _computing():
        return npu.npu_quant_matmul(x1, x2, scale, offset=offset, pertoken_scale=pertoken_scale, bias=bias,
                                    output_dtype=_QMM_CODE[dtype])


@_quant_matmul.register_fake
def _(x1, x2, scale, offset, pertoken_scale, bias, dtype):
    batch = torch.broadcast_shapes(x1.shape[:-2], x2.shape[:-2])
    return x1.new_empty((*batch, x1.shape[-2], x2.shape[-1]), dtype=_QMM_CODE[dtype])


@torch.library.custom_op("npuq_npu::ascend_quant", mutates_args=())
def _ascend_quant(x: torch.Tensor, scale: float, offset: float, sqrt_mode: bool) -> torch.Tensor:
    return npu.ascend_quant(x, scale, offset, sqrt_mode=sqrt_mode)


@_ascend_quant.register_fake
def _(x, scale, offset, sqrt_mode):
    return x.new_empty(x.shape, dtype=torch.int8)


@torch.library.custom_op("npuq_npu::ascend_dequant", mutates_args=())
def _ascend_dequant(x: torch.Tensor, deq_scale: torch.Tensor, sqrt_mode: bool, relu_flag: bool,
                    dtype: int) -> torch.Tensor:
    return npu.ascend_dequant(x, deq_scale, sqrt_mode=sqrt_mode, relu_flag=relu_flag, dtype=dtype)


@_ascend_dequant.register_fake
def _(x, deq_scale, sqrt_mode, relu_flag, dtype):
    return x.new_empty(x.shape, dtype=torch.float16 if dtype == DT_FLOAT16 else torch.float32)


@torch.library.custom_op("npuq_npu::ascend_anti_quant", mutates_args=())
def _ascend_anti_quant(x: torch.Tensor, scale: float, offset: float, sqrt_mode: bool, dtype: int) -> torch.Tensor:
    return npu.ascend_anti_quant(x, scale, offset, sqrt_mode=sqrt_mode, dtype=dtype)


@_ascend_anti_quant.register_fake
def _(x, scale, offset, sqrt_mode, dtype):
    return x.new_empty(x.shape, dtype=torch.float16 if dtype == DT_FLOAT16 else torch.float32)


# ------------------------------------------------------------------ torch_npu-signature wrappers


def npu_quantize(input, scales, zero_points, dtype, axis=1, div_mode=True):
    """torch_npu.npu_quantize through torch.ops.npuq_npu.quantize (exports as npu::NPUQuantize)."""
    table = _QUANTIZE_DIV if div_mode else _QUANTIZE_MUL
    if dtype not in table:
        raise TypeError(f"npu_quantize: with div_mode={div_mode} dtype must be one of "
                        f"({', '.join(map(str, table))}), got {dtype}")
    return torch.ops.npuq_npu.quantize(input, scales, zero_points, table[dtype], axis, div_mode)


def npu_dynamic_quant(input, *, smooth_scales=None, group_index=None, dst_type=None):
    """torch_npu.npu_dynamic_quant through torch.ops.npuq_npu.dynamic_quant -> (y, scale)."""
    if dst_type is None or dst_type == torch.int8:
        code = DT_INT8
    elif dst_type == torch.quint4x2:
        code = DT_INT4
    else:
        raise TypeError(f"npu_dynamic_quant: dst_type must be None, torch.int8 or torch.quint4x2, got {dst_type!r}")
    return tuple(torch.ops.npuq_npu.dynamic_quant(input, smooth_scales, group_index, code))


def npu_weight_quant_batchmatmul(x, weight, antiquant_scale, antiquant_offset=None, quant_scale=None,
                                 quant_offset=None, bias=None, antiquant_group_size=0,
                                 inner_precise=0, weight_dtype=None):
    """torch_npu.npu_weight_quant_batchmatmul through torch.ops.npuq_npu.weight_quant_batchmatmul."""
    if weight_dtype is not None:
        raise ValueError("npu_weight_quant_batchmatmul: weight_dtype (Ascend 950 only) must be None")
    return torch.ops.npuq_npu.weight_quant_batchmatmul(
        x, weight, antiquant_scale, antiquant_offset, quant_scale, quant_offset, bias,
        antiquant_group_size, inner_precise)


def npu_dequant_swiglu_quant(x, *, weight_scale=None, activation_scale=None, bias=None, quant_scale=None,
                             quant_offset=None, group_index=None, activate_left=False, quant_mode=0,
                             swiglu_mode=0, clamp_limit=7.0, glu_alpha=1.702, glu_bias=1.0):
    """torch_npu.npu_dequant_swiglu_quant through torch.ops.npuq_npu.dequant_swiglu_quant."""
    return tuple(torch.ops.npuq_npu.dequant_swiglu_quant(
        x, weight_scale, activation_scale, bias, quant_scale, quant_offset, group_index,
        bool(activate_left), int(quant_mode), int(swiglu_mode), float(clamp_limit), float(glu_alpha),
        float(glu_bias)))


def npu_quant_matmul(x1, x2, scale, *, offset=None, pertoken_scale=None, bias=None, output_dtype=None):
    """torch_npu.npu_quant_matmul through torch.ops.npuq_npu.quant_matmul (exports as npu::QuantBatchMatMul)."""
    code = npu.QUANT_MATMUL_OUT[torch.int8 if output_dtype is None else output_dtype]
    return torch.ops.npuq_npu.quant_matmul(x1, x2, scale, offset, pertoken_scale, bias, code)


def ascend_quant(x, scale: float, offset: float = 0.0, *, sqrt_mode: bool = False):
    """npu.ascend_quant through torch.ops.npuq_npu.ascend_quant (exports as npu::AscendQuant)."""
    return torch.ops.npuq_npu.ascend_quant(x, float(scale), float(offset), bool(sqrt_mode))


def ascend_dequant(x, deq_scale, *, sqrt_mode: bool = False, relu_flag: bool = False, dtype: int = DT_FLOAT):
    """npu.ascend_dequant through torch.ops.npuq_npu.ascend_dequant; deq_scale the int64 bits of
    npu.pack_deq_scale (exported as the UINT64 ONNX wants)."""
    return torch.ops.npuq_npu.ascend_dequant(x, deq_scale, bool(sqrt_mode), bool(relu_flag), int(dtype))


def ascend_anti_quant(x, scale: float, offset: float = 0.0, *, sqrt_mode: bool = False, dtype: int = DT_FLOAT):
    """npu.ascend_anti_quant through torch.ops.npuq_npu.ascend_anti_quant (npu::AscendAntiQuant)."""
    return torch.ops.npuq_npu.ascend_anti_quant(x, float(scale), float(offset), bool(sqrt_mode), int(dtype))


# ------------------------------------------------------------------ export lowering


_opset = onnxscript.values.Opset(DOMAIN, VERSION)
_OPS = {name: onnxscript.values.Op(_opset, name, op.schema()) for name, op in OPS.items()}


def _lower_quantize(input, scales, zero_points, dtype: int, axis: int, div_mode: bool):
    return _OPS["NPUQuantize"](input, scales, zero_points, dtype=dtype, axis=axis, div_mode=int(div_mode))


def _lower_dynamic_quant(input, smooth_scales, group_index, dst_type: int):
    return _OPS["NPUDynamicQuant"](input, smooth_scales, group_index, dst_type=dst_type)


def _lower_weight_quant_batchmatmul(x, weight, antiquant_scale, antiquant_offset, quant_scale,
                                    quant_offset, bias, antiquant_group_size: int, inner_precise: int):
    # torch_npu: dtype 1 (DT_FLOAT16) without quant_scale, 2 (DT_INT8) with it; inner_precise is
    # not exported (torch_npu's symbolic has no attribute for it).
    dtype = DT_FLOAT16 if quant_scale is None else DT_INT8
    return _OPS["NPUWeightQuantBatchMatmulV2"](
        x, weight, antiquant_scale, antiquant_offset, quant_scale, quant_offset, bias,
        antiquant_group_size=antiquant_group_size, dtype=dtype)


def _lower_dequant_swiglu_quant(x, weight_scale, activation_scale, bias, quant_scale, quant_offset,
                                group_index, activate_left: bool, quant_mode: int, swiglu_mode: int,
                                clamp_limit: float, glu_alpha: float, glu_bias: float):
    return _OPS["NPUDequantSwigluQuant"](
        x, weight_scale, activation_scale, bias, quant_scale, quant_offset, group_index,
        activate_left=int(activate_left), quant_mode=quant_mode, swiglu_mode=swiglu_mode,
        clamp_limit=clamp_limit, glu_alpha=glu_alpha, glu_bias=glu_bias)


def _lower_quant_matmul(x1, x2, scale, offset, pertoken_scale, bias, dtype: int):
    return _OPS["QuantBatchMatMul"](x1, x2, scale, offset, bias, pertoken_scale, dtype=dtype,
                                    transpose_x1=0, transpose_x2=0)


def _lower_ascend_quant(x, scale: float, offset: float, sqrt_mode: bool):
    return _OPS["AscendQuant"](x, scale=scale, offset=offset, sqrt_mode=int(sqrt_mode), round_mode="Round",
                               dst_type="INT8")


def _lower_ascend_dequant(x, deq_scale, sqrt_mode: bool, relu_flag: bool, dtype: int):
    u64 = onnxscript.opset18.Cast(deq_scale, to=TensorProto.UINT64)  # torch has no uint64 arithmetic
    return _OPS["AscendDequant"](x, u64, sqrt_mode=int(sqrt_mode), relu_flag=int(relu_flag), dtype=dtype)


def _lower_ascend_anti_quant(x, scale: float, offset: float, sqrt_mode: bool, dtype: int):
    return _OPS["AscendAntiQuant"](x, scale=scale, offset=offset, dtype=dtype, sqrt_mode=int(sqrt_mode))


TRANSLATIONS = {
    torch.ops.npuq_npu.ascend_anti_quant.default: _lower_ascend_anti_quant,
    torch.ops.npuq_npu.ascend_quant.default: _lower_ascend_quant,
    torch.ops.npuq_npu.ascend_dequant.default: _lower_ascend_dequant,
    torch.ops.npuq_npu.quant_matmul.default: _lower_quant_matmul,
    torch.ops.npuq_npu.quantize.default: _lower_quantize,
    torch.ops.npuq_npu.dynamic_quant.default: _lower_dynamic_quant,
    torch.ops.npuq_npu.weight_quant_batchmatmul.default: _lower_weight_quant_batchmatmul,
    torch.ops.npuq_npu.dequant_swiglu_quant.default: _lower_dequant_swiglu_quant,
}


npu._common._EXPORT_OPS = sys.modules[__name__]  # npu's public functions route here while exporting
