"""The torch_npu quantization ops under their torch_npu ONNX names (domain "npu", version 1).

    y = npu_quantize(x, scales, zps, torch.qint8, axis=1)      # torch.ops.npuq_npu.quantize
    torch.onnx.export(..., custom_translation_table=TRANSLATIONS)  # -> npu::NPUQuantize
    attach_functions(model_proto)                              # bodies onnxruntime can run

Each op is defined once, as in defs.py: ONNX schema (registered with onnx.defs), a torch
custom op computed by onnx_npuq.npu (the CPU reference), its fake, the export lowering and
`function_body`, a model-local FunctionProto of standard opset-21 ops.

Names, input order and attributes follow torch_npu/onnx/wrapper_onnx_ops.py
(shared/spec/ascend.md): NPUQuantize(input, scales, zero_points; dtype, axis, div_mode),
NPUDynamicQuant(x, smooth_scales, group_index; dst_type) -> (y, scale),
NPUWeightQuantBatchMatmulV2(x, weight, antiquant_scale, antiquant_offset, quant_scale,
quant_offset, bias; antiquant_group_size, dtype). torch_npu has no exporter for
npu_dequant_swiglu_quant: NPUDequantSwigluQuant takes the inputs of its Python signature
in order and its scalar keyword arguments as attributes. Integer "dtype" attributes are GE
DataType codes (DT_INT8=2, DT_INT32=3, DT_UINT8=4, DT_FLOAT16=1, DT_INT4=29). Absent
optional inputs are empty input names (torch_npu writes empty constants instead).

A function body depends on the attributes and on which optional inputs are present (and,
for NPUDequantSwigluQuant, on whether bias is int32), so each configuration is its own
function, selected by the node's `overload` (`overload_key`).
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence

import numpy as np
import onnx
import onnxscript
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.defs import OpSchema

from .. import npu
from ..proto import LARGE_TENSOR_BYTES, checker_copy
from .bodies import OFF, _Body
from .defs import Attr, OpDef

DOMAIN = "npu"
VERSION = 1
OPSET = 21

# GE DataType codes used by the torch_npu symbolics
DT_FLOAT, DT_FLOAT16, DT_INT8, DT_INT32, DT_UINT8, DT_BF16, DT_INT4 = 0, 1, 2, 3, 4, 27, 29
_GE_TYPES = {DT_FLOAT: TensorProto.FLOAT, DT_FLOAT16: TensorProto.FLOAT16, DT_INT8: TensorProto.INT8,
             DT_INT32: TensorProto.INT32, DT_BF16: TensorProto.BFLOAT16}

_I, _F, _S = OpSchema.AttrType.INT, OpSchema.AttrType.FLOAT, OpSchema.AttrType.STRING
_FLOATS = ("tensor(float)", "tensor(float16)", "tensor(bfloat16)")
_ANY = _FLOATS + ("tensor(int8)", "tensor(uint8)", "tensor(int32)", "tensor(int64)")


def _npu_op(*args, **kwargs) -> OpDef:
    """An OpDef in the `npu` domain (torch_npu's), version 1."""
    return OpDef(*args, domain=DOMAIN, version=VERSION, **kwargs)


NPU_QUANTIZE = _npu_op(
    "NPUQuantize",
    inputs=(("input", "T", False), ("scales", "S", False), ("zero_points", "Z", True)),
    outputs=(("y", "Y"),),
    types=(("T", _FLOATS), ("S", _FLOATS), ("Z", _ANY),
           ("Y", ("tensor(int8)", "tensor(uint8)", "tensor(int32)"))),
    attrs=(Attr("dtype", _I), Attr("axis", _I, 1), Attr("div_mode", _I, 1)),
    doc="torch_npu.npu_quantize: saturate(RNE(input / scales + zero_points)) (div_mode=1) "
        "or saturate(RNE(input * scales + zero_points)) (div_mode=0); dtype: 2 int8, 4 uint8, "
        "3 int32, 29 int4 packed 8 per int32.",
)
NPU_DYNAMIC_QUANT = _npu_op(
    "NPUDynamicQuant",
    inputs=(("x", "T", False), ("smooth_scales", "T", True), ("group_index", "G", True)),
    outputs=(("y", "Y"), ("scale", "F")),
    types=(("T", ("tensor(float16)", "tensor(bfloat16)")), ("G", ("tensor(int32)",)),
           ("Y", ("tensor(int8)", "tensor(int32)")), ("F", ("tensor(float)",))),
    attrs=(Attr("dst_type", _I, DT_INT8),),
    doc="torch_npu.npu_dynamic_quant: per-row symmetric dynamic quantization; dst_type 2 int8, "
        "29 int4 packed 8 per int32.",
)
NPU_WEIGHT_QUANT_BATCH_MATMUL_V2 = _npu_op(
    "NPUWeightQuantBatchMatmulV2",
    inputs=(("x", "T", False), ("weight", "W", False), ("antiquant_scale", "A", False),
            ("antiquant_offset", "O", True), ("quant_scale", "Q", True),
            ("quant_offset", "F", True), ("bias", "B", True)),
    outputs=(("y", "Y"),),
    types=(("T", ("tensor(float16)", "tensor(bfloat16)")), ("W", ("tensor(int8)", "tensor(int32)")),
           ("A", ("tensor(float16)", "tensor(bfloat16)", "tensor(int64)")),
           ("O", ("tensor(float16)", "tensor(bfloat16)", "tensor(int32)")),
           ("Q", ("tensor(float)", "tensor(int64)")), ("F", ("tensor(float)",)),
           ("B", ("tensor(float16)", "tensor(float)")),
           ("Y", ("tensor(float16)", "tensor(bfloat16)", "tensor(int8)"))),
    attrs=(Attr("antiquant_group_size", _I, 0), Attr("dtype", _I, -1)),
    doc="torch_npu.npu_weight_quant_batchmatmul: x @ ((weight + antiquant_offset) * "
        "antiquant_scale) + bias, optionally quantized to int8 with quant_scale / quant_offset.",
)
NPU_DEQUANT_SWIGLU_QUANT = _npu_op(
    "NPUDequantSwigluQuant",
    inputs=(("x", "X", False), ("weight_scale", "F", True), ("activation_scale", "F", True),
            ("bias", "B", True), ("quant_scale", "Q", True), ("quant_offset", "F", True),
            ("group_index", "G", True)),
    outputs=(("y", "Y"), ("scale", "F")),
    types=(("X", ("tensor(int32)", "tensor(float16)", "tensor(bfloat16)")), ("F", ("tensor(float)",)),
           ("B", ("tensor(int32)",) + _FLOATS), ("Q", _FLOATS), ("G", ("tensor(int64)",)),
           ("Y", ("tensor(int8)",))),
    attrs=(Attr("activate_left", _I, 0), Attr("quant_mode", _I, 0), Attr("swiglu_mode", _I, 0),
           Attr("clamp_limit", _F, 7.0), Attr("glu_alpha", _F, 1.702), Attr("glu_bias", _F, 1.0)),
    doc="torch_npu.npu_dequant_swiglu_quant (no torch_npu exporter): dequant -> SwiGLU -> int8 "
        "quant; inputs in the order of the Python signature, keyword scalars as attributes.",
)
QUANT_BATCH_MATMUL = _npu_op(
    "QuantBatchMatMul",
    # GE QuantBatchMatmulV3's input order (hicann/ops-nn matmul/quant_batch_matmul_v3/op_graph/
    # quant_batch_matmul_v3_proto.h), which its ONNX plugin maps by position: bias before
    # pertoken_scale, unlike torch_npu's keyword order.
    inputs=(("x1", "I", False), ("x2", "I", False), ("scale", "S", False), ("offset", "F", True),
            ("bias", "B", True), ("pertoken_scale", "F", True)),
    outputs=(("y", "Y"),),
    types=(("I", ("tensor(int8)",)), ("S", ("tensor(float)", "tensor(int64)", "tensor(bfloat16)")),
           ("F", ("tensor(float)",)), ("B", ("tensor(int32)",) + _FLOATS),
           ("Y", ("tensor(int8)", "tensor(float16)", "tensor(bfloat16)", "tensor(int32)"))),
    attrs=(Attr("dtype", _I, DT_FLOAT16), Attr("transpose_x1", _I, 0), Attr("transpose_x2", _I, 0)),
    doc="torch_npu.npu_quant_matmul (no torch_npu exporter; CANN's ONNX plugin for QuantBatchMatmulV3): "
        "int8 x1 @ x2 (+ int32 bias), dequantized with scale [* pertoken_scale] (+ float bias) to "
        "dtype 2 int8, 1 float16, 27 bfloat16 or 3 int32.",
)
# AMCT's / msModelSlim's deploy ops (default domain in their models; passes.atc puts them there):
# attributes as CANN's ONNX plugins read them (hicann/ops-nn quant/ascend_quant/framework/
# ascend_quant_onnx_plugin.cpp, quant/ascend_dequant/framework/ascend_dequant_onnx_plugin.cpp).
ASCEND_QUANT = _npu_op(
    "AscendQuant",
    inputs=(("x", "T", False),),
    outputs=(("y", "Y"),),
    types=(("T", _FLOATS), ("Y", ("tensor(int8)",))),
    attrs=(Attr("scale", _F), Attr("offset", _F, 0.0), Attr("sqrt_mode", _I, 0), Attr("round_mode", _S, "Round"),
           Attr("dst_type", _S, "INT8")),
    doc="CANN AscendQuant: saturate_int8(rint(x * scale + offset)) in float16 steps (scale = 1 / the "
        "activation scale).",
)
ASCEND_DEQUANT = _npu_op(
    "AscendDequant",
    inputs=(("x", "X", False), ("deq_scale", "D", False)),
    outputs=(("y", "Y"),),
    types=(("X", ("tensor(int32)",)), ("D", ("tensor(uint64)",)), ("Y", ("tensor(float)", "tensor(float16)"))),
    attrs=(Attr("sqrt_mode", _I, 0), Attr("relu_flag", _I, 0), Attr("dtype", _I, DT_FLOAT)),
    doc="CANN AscendDequant: int32 x * deq_scale (float32 in bits 31..0 of the UINT64, per channel "
        "along axis 1) as float32 (dtype 0) or float16 (dtype 1).",
)
ASCEND_ANTI_QUANT = _npu_op(
    "AscendAntiQuant",
    inputs=(("x", "X", False),),
    outputs=(("y", "Y"),),
    types=(("X", ("tensor(int8)",)), ("Y", ("tensor(float)", "tensor(float16)"))),
    attrs=(Attr("scale", _F), Attr("offset", _F, 0.0), Attr("dtype", _I, DT_FLOAT), Attr("sqrt_mode", _I, 0)),
    doc="CANN AscendAntiQuant (ONNX attributes): (x - offset) * scale as float32 (dtype 0) or float16 (1).",
)
OPS = {op.name: op for op in (NPU_QUANTIZE, NPU_DYNAMIC_QUANT, NPU_WEIGHT_QUANT_BATCH_MATMUL_V2,
                              NPU_DEQUANT_SWIGLU_QUANT, QUANT_BATCH_MATMUL, ASCEND_QUANT, ASCEND_DEQUANT,
                              ASCEND_ANTI_QUANT)}


def _out_types(op_type: str, attrs: dict, types: list[int]) -> list[int]:
    """Output element types from the attributes and the input element types."""
    T = TensorProto
    if op_type == "NPUQuantize":
        if attrs.get("div_mode", 1):
            return [{DT_INT8: T.INT8, DT_UINT8: T.UINT8, DT_INT32: T.INT32}.get(attrs.get("dtype"), T.INT8)]
        return [T.INT32 if attrs.get("dtype") == DT_INT4 else T.INT8]
    if op_type == "NPUDynamicQuant":
        return [T.INT32 if attrs.get("dst_type", DT_INT8) == DT_INT4 else T.INT8, T.FLOAT]
    if op_type == "NPUWeightQuantBatchMatmulV2":
        return [T.INT8 if len(types) > 4 and types[4] else types[0]]
    if op_type == "QuantBatchMatMul":
        return [_GE_TYPES.get(attrs.get("dtype", DT_FLOAT16), T.FLOAT16)]
    if op_type == "AscendQuant":
        return [T.INT8]
    if op_type in ("AscendDequant", "AscendAntiQuant"):
        return [T.FLOAT16 if attrs.get("dtype", DT_FLOAT) == DT_FLOAT16 else T.FLOAT]
    return [T.INT8, T.FLOAT]


def _out_shapes(op_type: str, attrs: dict, types: list[int], shapes: list) -> list:
    """Output shapes (lists of int / str / None) where they follow from the input shapes."""
    x = shapes[0]
    if x is None:
        return [None, None]

    def div(d, k):
        return d // k if isinstance(d, int) else None

    if op_type == "NPUQuantize":
        pack = not attrs.get("div_mode", 1) and attrs.get("dtype") == DT_INT4
        return [x[:-1] + [div(x[-1], 8)] if pack else x]
    if op_type == "NPUDynamicQuant":
        pack = attrs.get("dst_type", DT_INT8) == DT_INT4
        return [x[:-1] + [div(x[-1], 8)] if pack else x, x[:-1]]
    if op_type == "NPUWeightQuantBatchMatmulV2":
        w = shapes[1]
        if w is None or types[1] != TensorProto.INT32:
            return [[x[0], w[1] if w is not None else None]]
        # int4 packed in int32: (K, N/8), or (K/8, N) where the first dimension is not K
        if isinstance(w[0], int) and isinstance(x[-1], int):
            if w[0] != x[-1]:
                return [[x[0], w[1]]]
            return [[x[0], w[1] * 8 if isinstance(w[1], int) else None]]
        return [[x[0], None]]
    if op_type in ("AscendQuant", "AscendDequant", "AscendAntiQuant"):
        return [x]
    if op_type == "QuantBatchMatMul":
        w = shapes[1]
        if w is None or len(x) < 2 or len(w) < 2:
            return [None]
        if attrs.get("transpose_x1", 0):
            x = x[:-2] + [x[-1], x[-2]]
        if attrs.get("transpose_x2", 0):
            w = w[:-2] + [w[-1], w[-2]]
        a, b = x[:-2], w[:-2]
        n = max(len(a), len(b))
        a, b = [1] * (n - len(a)) + a, [1] * (n - len(b)) + b
        batch = [p if q == 1 else q if p == 1 else p if p == q else None for p, q in zip(a, b)]
        return [batch + [x[-2], w[-1]]]
    return [x[:-1] + [div(x[-1], 2)], x[:-1]]


def _make_inference(op_type: str):
    def infer(ctx):
        types, shapes = [], []
        for i in range(ctx.get_num_inputs()):
            t = ctx.get_input_type(i) if ctx.has_input(i) else None
            if t is None or not t.HasField("tensor_type"):
                types.append(0)
                shapes.append(None)
                continue
            types.append(t.tensor_type.elem_type)
            if t.tensor_type.HasField("shape"):
                shapes.append([d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                               for d in t.tensor_type.shape.dim])
            else:
                shapes.append(None)
        attrs = {}
        for a in OPS[op_type].attrs:
            proto = ctx.get_attribute(a.name)
            if proto is not None:
                attrs[a.name] = helper.get_attribute_value(proto)
        for i, (et, shape) in enumerate(zip(_out_types(op_type, attrs, types),
                                            _out_shapes(op_type, attrs, types, shapes))):
            if i >= ctx.get_num_outputs():
                break
            ctx.set_output_type(i, helper.make_tensor_type_proto(et, shape))
    return infer


for _op in OPS.values():
    if not onnx.defs.has(_op.name, DOMAIN):
        _schema = _op.schema()
        _schema.set_type_and_shape_inference_function(_make_inference(_op.name))
        onnx.defs.register_schema(_schema)


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


# ------------------------------------------------------------------ function bodies


class _G(_Body):
    """Nodes of one npu function body (bodies._Body plus the npu ops' integer steps)."""

    def cast_f(self, v: str) -> str:
        return self.op("Cast", v, to=TensorProto.FLOAT)

    def round_sat(self, v: str, lo: int, hi: int, to: int) -> str:
        """RNE (Round), NaN -> 0, clamp to [lo, hi], cast: onnx_npuq.npu._round_saturate."""
        r = self.op("Round", v)
        r = self.op("Where", self.op("IsNaN", r), self.f(0.0), r)
        if to == TensorProto.INT32:  # int32 bounds are not float32 values: clamp in double
            r = self.op("Cast", r, to=TensorProto.DOUBLE)
            r = self.op("Clip", r, self.const(np.array(lo, np.float64)), self.const(np.array(hi, np.float64)))
        else:
            r = self.op("Clip", r, self.f(lo), self.f(hi))
        return self.op("Cast", r, to=to)

    def pack_int4(self, q: str) -> str:
        """int8 values in [-8, 7] -> int32 words, 8 per word, lowest nibble first."""
        q = self.op("Cast", q, to=TensorProto.INT64)
        nib = self.op("Where", self.op("Less", q, self.k(0)), self.op("Add", q, self.k(16)), q)
        shape = self.op("Concat", self.op("Shape", q, end=-1), self.i(-1, 8), axis=0)
        nib = self.op("Reshape", nib, shape)
        word = self.op("ReduceSum", self.op("Mul", nib, self.i(*[16**j for j in range(8)])),
                       self.i(-1), keepdims=0)
        wrap = self.op("GreaterOrEqual", word, self.k(2**31))
        word = self.op("Where", wrap, self.op("Sub", word, self.k(2**32)), word)
        return self.op("Cast", word, to=TensorProto.INT32)

    def unpack_int4(self, w: str, axis: int) -> str:
        """2-D int32 words -> float32 int4 values, 8 per word along `axis` (0 or 1), lowest
        nibble first: the inverse of pack_int4 along the last axis (npu._unpack_int4)."""
        u = self.op("Cast", w, to=TensorProto.INT64)
        u = self.op("Where", self.op("Less", u, self.k(0)), self.op("Add", u, self.k(2**32)), u)
        powers = np.array([16**j for j in range(8)], np.int64).reshape((8, 1) if axis == 0 else (8,))
        nib = self.op("Mod", self.op("Div", self.op("Unsqueeze", u, self.i(axis + 1)), self.const(powers)),
                      self.k(16))
        nib = self.op("Where", self.op("GreaterOrEqual", nib, self.k(8)), self.op("Sub", nib, self.k(16)), nib)
        return self.cast_f(nib)  # (R, C, 8) or (R, 8, C): flattened by the caller

    def trunc_fp19(self, s: str) -> str:
        """float32 with the low 13 bits cleared (npu._trunc_fp19): toward zero to a multiple
        of 2^(e - 10), e = floor_log2(|s|), at least 2^-136 (subnormals); Inf / NaN kept."""
        a = self.op("Abs", s)
        special = self.op("Or", self.op("IsNaN", s), self.op("IsInf", s))
        pos = self.op("Greater", a, self.f(0.0))
        safe = self.op("Where", pos, self.op("Where", special, self.f(1.0), a), self.f(1.0))
        k = self.op("Max", self.op("Sub", self.floor_log2(safe), self.k(10)), self.k(OFF - 136))
        step = self.pow2(k)
        t = self.op("Mul", self.op("Floor", self.op("Div", safe, step)), step)
        t = self.op("Where", pos, t, self.f(0.0))
        # a -0.0 survives Where only as its second value input (and Where(Not(c), ..) is
        # rewritten by onnxruntime into Where(c, ..) with the inputs swapped)
        return self.op("Where", special, s, self.copysign(t, s))

    def packed_scale(self, p: str) -> tuple[str, str]:
        """int64 from npu_trans_quant_param -> (float32 scale, float32 offset): npu._decode_packed_scale."""
        low = self.op("Mod", p, self.k(2**32))  # Mod takes the divisor's sign: bits 0..31
        scale = self.float32_from_bits(self.op("Sub", low, self.op("Mod", low, self.k(8192))))
        high = self.op("Div", self.op("Sub", p, self.op("Mod", p, self.k(2**37))), self.k(2**37))  # exact
        off = self.op("Mod", high, self.k(512))
        off = self.op("Where", self.op("GreaterOrEqual", off, self.k(256)), self.op("Sub", off, self.k(512)), off)
        return scale, self.cast_f(off)

    def row_amax_scale(self, t: str, qmax: float) -> str:
        """amax(|t|, -1, keepdim) / qmax, NaN where a row holds a NaN (torch.amax propagates it;
        onnxruntime's ReduceMax does not reliably)."""
        amax = self.op("ReduceMax", self.op("Abs", t), self.i(-1), keepdims=1)
        nan = self.op("ReduceMax", self.op("Cast", self.op("IsNaN", t), to=TensorProto.FLOAT),
                      self.i(-1), keepdims=1)
        s = self.op("Div", amax, self.f(qmax))
        return self.op("Where", self.op("Greater", nan, self.f(0.0)), self.f(float("nan")), s)

    def safe_div(self, t: str, s: str) -> str:
        """t / where(s > 0, s, 1)."""
        return self.op("Div", t, self.op("Where", self.op("Greater", s, self.f(0.0)), s, self.f(1.0)))

    def row_groups(self, rows: str, ends: str) -> str:
        """For each row index, the number of group ends <= it (int64): its group."""
        le = self.op("LessOrEqual", self.op("Unsqueeze", ends, self.i(0)), self.op("Unsqueeze", rows, self.i(1)))
        return self.op("ReduceSum", self.op("Cast", le, to=TensorProto.INT64), self.i(1), keepdims=0)

    def range_of(self, v: str, axis: int) -> str:
        """0 .. v.shape[axis] - 1 (int64)."""
        dim = self.op("Shape", v, start=axis, end=axis + 1) if axis != -1 else self.op("Shape", v, start=-1)
        n = self.op("Squeeze", dim, self.i(0))
        return self.op("Range", self.k(0), n, self.k(1))


# attribute values an op accepts, beyond their type (the bodies check dtype codes themselves)
_CHOICES = {("NPUQuantize", "div_mode"): (0, 1), ("AscendQuant", "sqrt_mode"): (0, 1),
            ("AscendDequant", "sqrt_mode"): (0, 1), ("AscendDequant", "relu_flag"): (0, 1),
            ("AscendDequant", "dtype"): (DT_FLOAT, DT_FLOAT16), ("AscendAntiQuant", "dtype"): (DT_FLOAT, DT_FLOAT16),
            ("AscendAntiQuant", "sqrt_mode"): (0, 1), ("QuantBatchMatMul", "dtype"): tuple(_GE_TYPES),
            ("QuantBatchMatMul", "transpose_x1"): (0, 1), ("QuantBatchMatMul", "transpose_x2"): (0, 1),
            ("NPUDequantSwigluQuant", "activate_left"): (0, 1),
            ("NPUDequantSwigluQuant", "quant_mode"): (0, 1), ("NPUDequantSwigluQuant", "swiglu_mode"): (0, 1)}
_MINIMUM = {("NPUWeightQuantBatchMatmulV2", "antiquant_group_size"): 0}


def _attrs_with_defaults(op_type: str, attrs: dict) -> dict:
    out = {}
    for a in OPS[op_type].attrs:
        v = attrs.get(a.name, a.default)
        if v is None:
            raise ValueError(f"npu::{op_type}: attribute {a.name} is required")
        if a.type == _I:
            if not isinstance(v, (int, np.integer)):
                raise ValueError(f"npu::{op_type}: attribute {a.name} must be an int, got {v!r:.40}")
            v = int(v)
            if (op_type, a.name) in _CHOICES and v not in _CHOICES[op_type, a.name]:
                raise ValueError(f"npu::{op_type}: attribute {a.name} is {v}, not one of "
                                 f"{', '.join(map(str, _CHOICES[op_type, a.name]))}")
            if (op_type, a.name) in _MINIMUM and v < _MINIMUM[op_type, a.name]:
                raise ValueError(f"npu::{op_type}: attribute {a.name} is {v}, below {_MINIMUM[op_type, a.name]}")
        elif a.type == _S:
            v = v.decode() if isinstance(v, bytes) else v
            if v != a.default:  # round_mode "Round", dst_type "INT8": the only ones implemented
                raise ValueError(f"npu::{op_type}: attribute {a.name} is {v!r}; only {a.default!r} is implemented")
        else:
            if not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
                raise ValueError(f"npu::{op_type}: attribute {a.name} must be a finite float, got {v!r:.40}")
            v = float(v)
        out[a.name] = v
    return out


def _present(op_type: str, inputs: Sequence[int] | None) -> tuple[int, ...]:
    """Element types of the node's inputs (0 where absent), padded to the schema's inputs."""
    n = len(OPS[op_type].inputs)
    if inputs is None:
        inputs = [1] * n
    inputs = [int(bool(t)) if isinstance(t, bool) else int(t or 0) for t in inputs]
    return tuple(inputs + [0] * (n - len(inputs)))


# inputs whose element type changes the body: int32 bias (added before the dequant), int4
# weights packed in int32, int64 scales packed by npu_trans_quant_param
_TYPED = {"NPUDequantSwigluQuant": (3,), "NPUWeightQuantBatchMatmulV2": (1, 2, 4), "QuantBatchMatMul": (2, 4)}


def overload_key(op_type: str, attrs: dict, inputs: Sequence[int] | None = None) -> str:
    """The configuration a body is built for: attributes (floats as float32), then per input
    '0' absent, '1' present, 'i' present as int32 / int64 where that changes the body."""
    a = _attrs_with_defaults(op_type, attrs)
    p = _present(op_type, inputs)
    wide = (TensorProto.INT32, TensorProto.INT64)
    marks = ["i" if t in wide and i in _TYPED.get(op_type, ()) else "1" if t else "0" for i, t in enumerate(p)]
    parts = [f"{k}={str(np.float32(v))}" if isinstance(v, float) else f"{k}={v}" for k, v in a.items()]
    return ".".join(parts + ["in=" + "".join(marks)])


def _quantize_body(g: _G, a: dict, p) -> None:
    x = g.cast_f("input")
    dtype, axis, div_mode = a["dtype"], a["axis"], a["div_mode"]
    if div_mode:
        if dtype not in (DT_INT8, DT_UINT8, DT_INT32):
            raise ValueError(f"npu::NPUQuantize: dtype {dtype} is not 2, 3 or 4 (int8, int32, uint8) with div_mode=1")
        # scales along `axis`: reshape to [1, .., -1 (at axis), .., 1] for any rank
        shape = g.op("Shape", "input")
        ones = g.op("ConstantOfShape", g.op("Shape", shape), value=numpy_helper.from_array(np.array([1], np.int64)))
        target = g.op("ScatterElements", ones, g.i(axis), g.i(-1), axis=0)
        v = g.op("Div", x, g.op("Reshape", g.cast_f("scales"), target))
        if p[2]:
            v = g.op("Add", v, g.op("Reshape", g.cast_f("zero_points"), target))
        lo, hi, to = {DT_INT8: (-128, 127, TensorProto.INT8), DT_UINT8: (0, 255, TensorProto.UINT8),
                      DT_INT32: (-(2**31), 2**31 - 1, TensorProto.INT32)}[dtype]
        g.output("y", g.round_sat(v, lo, hi, to))
        return
    if dtype not in (DT_INT8, DT_INT4):
        raise ValueError(f"npu::NPUQuantize: dtype {dtype} is not 2 or 29 (int8, int4) with div_mode=0")
    # AscendQuantV2: scales per tensor or along the last axis (axis == -2: the second-to-last);
    # every dimension but that one has size 1, so a flat view broadcasts.
    flat = g.i(-1, 1) if axis == -2 else g.i(-1)
    v = g.op("Mul", x, g.op("Reshape", g.cast_f("scales"), flat))
    if p[2]:
        v = g.op("Add", v, g.op("Reshape", g.cast_f("zero_points"), flat))
    lo, hi = (-8, 7) if dtype == DT_INT4 else (-128, 127)
    q = g.round_sat(v, lo, hi, TensorProto.INT8)
    g.output("y", g.pack_int4(q) if dtype == DT_INT4 else q)


def _dynamic_quant_body(g: _G, a: dict, p) -> None:
    dst = a["dst_type"]
    if dst not in (DT_INT8, DT_INT4):
        raise ValueError(f"npu::NPUDynamicQuant: dst_type {dst} is not 2 or 29 (int8, int4)")
    qmax = 7 if dst == DT_INT4 else 127
    xshape = g.op("Shape", "x")
    x = g.op("Reshape", g.cast_f("x"), g.op("Concat", g.i(-1), g.op("Shape", "x", start=-1), axis=0))
    if p[1] and p[2]:
        # row r uses smooth row #(group ends <= r) (group_index: cumulative row ends)
        grp = g.row_groups(g.range_of(x, 0), g.op("Cast", "group_index", to=TensorProto.INT64))
        t = g.op("Mul", x, g.op("Gather", g.cast_f("smooth_scales"), grp, axis=0))
    elif p[1]:
        t = g.op("Mul", x, g.cast_f("smooth_scales"))
    elif p[2]:
        raise ValueError("npu::NPUDynamicQuant: group_index requires smooth_scales")
    else:
        t = x
    s = g.row_amax_scale(t, float(qmax))
    q = g.round_sat(g.safe_div(t, s), -qmax - 1, qmax, TensorProto.INT8)
    q = g.op("Reshape", q, xshape)
    g.output("y", g.pack_int4(q) if dst == DT_INT4 else q)
    g.output("scale", g.op("Reshape", s, g.op("Shape", "x", end=-1)))


def _weight_quant_batchmatmul_body(g: _G, a: dict, p) -> None:
    gs = a["antiquant_group_size"]
    k = g.op("Shape", "x", start=-1)

    def rnd(v):  # round a float32 value to x's dtype (float16 / bfloat16), back to float32
        return g.cast_f(g.op("CastLike", v, "x"))

    def expand(name):
        pf = g.cast_f(name)
        if gs > 0:
            idx = g.op("Div", g.range_of("x", -1), g.k(gs))
            return g.op("Gather", pf, idx, axis=0)
        return g.op("Reshape", pf, g.i(1, -1))  # per-tensor (1,)/(1, 1) or per-channel (N,)/(1, N)

    if p[1] == TensorProto.INT32:
        # int4 packed 8 per int32: (K, N/8) along N, or (K/8, N) along K (the transpose of a
        # (N, K/8) tensor, as npu_convert_weight_to_int4pack gives it). Both unpack to K * N
        # values; the first dimension tells which one is meant.
        to_kn = g.op("Concat", k, g.i(-1), axis=0)
        along_n = g.op("Reshape", g.unpack_int4("weight", 1), to_kn)
        along_k = g.op("Reshape", g.unpack_int4("weight", 0), to_kn)
        w = g.op("Where", g.op("Equal", g.op("Shape", "weight", end=1), k), along_n, along_k)
    else:
        w = g.cast_f("weight")

    if p[2] == TensorProto.INT64:
        # fixpipe per-channel mode: (weight + int32 offset) in float16, scale after the matmul
        if p[3]:
            w = g.op("Add", w, g.op("Reshape", g.cast_f("antiquant_offset"), g.i(1, -1)))
        w = g.cast_f(g.op("Cast", w, to=TensorProto.FLOAT16))
        deq, _ = g.packed_scale(g.op("Reshape", "antiquant_scale", g.i(-1)))
        deq = g.cast_f(g.op("Cast", deq, to=TensorProto.FLOAT16))
        acc = g.op("Mul", g.op("MatMul", g.cast_f("x"), w), g.op("Reshape", deq, g.i(1, -1)))
    else:
        # the int weight is exact in x's dtype; each add / multiply is rounded to x's dtype
        # (float32 result of two float16/bfloat16 values rounded once more: exact, 24 >= 2p + 2)
        if p[3]:
            w = rnd(g.op("Add", w, expand("antiquant_offset")))
        w = rnd(g.op("Mul", w, expand("antiquant_scale")))
        acc = g.op("MatMul", g.cast_f("x"), w)
    if p[6]:
        acc = g.op("Add", acc, g.op("Reshape", g.cast_f("bias"), g.i(1, -1)))
    if not p[4]:
        g.output("y", g.op("CastLike", acc, "x"))
        return
    qs = g.op("Reshape", "quant_scale", g.i(1, -1))
    if p[4] == TensorProto.INT64:
        qs, qo = g.packed_scale(qs)
    else:
        qs = g.trunc_fp19(qs)
        if p[5]:  # round half away from zero, clamped to [-256, 255]
            o = g.op("Reshape", "quant_offset", g.i(1, -1))
            qo = g.op("Mul", g.op("Sign", o), g.op("Floor", g.op("Add", g.op("Abs", o), g.f(0.5))))
            qo = g.op("Clip", qo, g.f(-256.0), g.f(255.0))
        else:
            qo = g.f(0.0)
    g.output("y", g.round_sat(g.op("Add", g.op("Mul", acc, qs), qo), -128, 127, TensorProto.INT8))


def _dequant_swiglu_quant_body(g: _G, a: dict, p) -> None:
    h2 = g.op("Shape", "x", start=-1)
    lead = g.op("Shape", "x", end=-1)
    xr = g.op("Reshape", "x", g.op("Concat", g.i(-1), h2, axis=0))
    if p[6]:
        # token r belongs to group #(cumulative counts <= r); tokens past the sum are zeros
        counts = g.op("Shape", "group_index")
        rows = g.range_of(xr, 0)
        grp = g.row_groups(rows, g.op("CumSum", "group_index", g.k(0)))
        used = g.op("Less", grp, g.op("Squeeze", counts, g.i(0)))
        grp = g.op("Min", grp, g.op("Squeeze", g.op("Sub", counts, g.i(1)), g.i(0)))

        def per_group(name):  # (G, width) rows of the tokens' groups
            v = g.op("Reshape", g.cast_f(name), g.op("Concat", counts, g.i(-1), axis=0))
            return g.op("Gather", v, grp, axis=0)
    else:
        def per_group(name):  # (width,), (1, width), or one value
            return g.op("Reshape", g.cast_f(name), g.i(1, -1))

    if p[2]:  # int32 x: dequant
        if p[3] == TensorProto.INT32:
            xr = g.op("Add", xr, g.op("Reshape", "bias", g.i(1, -1)))
        v = g.cast_f(xr)
        if p[1]:
            v = g.op("Mul", v, per_group("weight_scale"))
        v = g.op("Mul", v, g.op("Reshape", g.cast_f("activation_scale"), g.i(-1, 1)))
        if p[3] and p[3] != TensorProto.INT32:
            v = g.op("Add", v, g.op("Reshape", g.cast_f("bias"), g.i(1, -1)))
    else:  # float x is used as is
        v = g.cast_f(xr)
    if a["swiglu_mode"] == 0:
        left, right = g.op("Split", v, axis=-1, num_outputs=2, n_out=2)
        act, other = (left, right) if a["activate_left"] else (right, left)
        neg = g.f(-1.0)
    else:  # even columns, clamped above; odd columns, clamped both sides, plus glu_bias
        pairs = g.op("Reshape", v, g.i(0, -1, 2))
        act, other = (g.op("Squeeze", t, g.i(-1)) for t in g.op("Split", pairs, axis=-1, num_outputs=2, n_out=2))
        lim, nlim = g.f(a["clamp_limit"]), g.f(-a["clamp_limit"])
        act = g.op("Where", g.op("Greater", act, lim), lim, act)  # NaN passes, as in torch.clamp
        other = g.op("Where", g.op("Greater", other, lim), lim,
                     g.op("Where", g.op("Less", other, nlim), nlim, other))
        other = g.op("Add", other, g.f(a["glu_bias"]))
        neg = g.f(-a["glu_alpha"])
    e = g.op("Exp", g.op("Mul", act, neg))
    out = g.op("Mul", g.op("Div", act, g.op("Add", e, g.f(1.0))), other)
    if a["quant_mode"] == 1:
        if p[4]:
            out = g.op("Mul", out, per_group("quant_scale"))
        s = g.row_amax_scale(out, 127.0)
        q = g.safe_div(out, s)
        scale = g.op("Reshape", s, g.i(-1))
    else:
        q = out
        if p[4]:  # per channel or one scalar (per group)
            q = g.op("Div", q, per_group("quant_scale"))
            if p[5]:
                q = g.op("Add", q, per_group("quant_offset"))
        scale = g.op("ConstantOfShape", g.op("Shape", xr, end=1),
                     value=numpy_helper.from_array(np.array([0.0], np.float32)))
    y = g.round_sat(q, -128, 127, TensorProto.INT8)
    if p[6]:
        y = g.op("Where", g.op("Unsqueeze", used, g.i(1)), y, g.const(np.array(0, np.int8)))
        scale = g.op("Where", used, scale, g.f(0.0))
    h = g.op("Div", h2, g.i(2))
    g.output("y", g.op("Reshape", y, g.op("Concat", lead, h, axis=0)))
    g.output("scale", g.op("Reshape", scale, lead))


def _quant_batch_matmul_body(g: _G, a: dict, p) -> None:
    """npu.npu_quant_matmul; p[2] / p[4]: the element types of scale / bias (see overload_key)."""
    dtype = a["dtype"]
    T = TensorProto
    x1, x2 = "x1", "x2"
    if a["transpose_x1"]:  # (2-D operands: a function body does not know the rank)
        x1 = g.op("Transpose", x1, perm=[1, 0])
    if a["transpose_x2"]:
        x2 = g.op("Transpose", x2, perm=[1, 0])
    acc = g.op("MatMulInteger", x1, x2)  # exact int32 (onnxruntime: int8 x int8)
    int_bias = p[4] == T.INT32
    float_bias = bool(p[4]) and not int_bias
    if int_bias:
        acc = g.op("Add", acc, "bias")
    if dtype == DT_INT32:
        if float_bias:
            raise ValueError("npu::QuantBatchMatMul: an int32 output takes no float bias")
        g.output("y", g.op("Identity", acc))
        return
    v = g.cast_f(acc)
    fb = g.cast_f("bias") if float_bias else None
    if p[5]:  # per-token: float32 scale * pertoken, float bias after
        if p[2] == T.INT64 or dtype not in (DT_FLOAT16, DT_BF16):
            raise ValueError("npu::QuantBatchMatMul: pertoken_scale takes a float scale and a float16 / bfloat16 output")
        v = g.op("Mul", g.op("Mul", v, g.cast_f("scale")), g.op("Unsqueeze", "pertoken_scale", g.i(-1)))
        if fb:
            v = g.op("Add", v, fb)
        g.output("y", g.op("Cast", v, to=_GE_TYPES[dtype]))
        return
    if dtype == DT_BF16:
        if p[2] == T.INT64:
            raise ValueError("npu::QuantBatchMatMul: a bfloat16 output takes a float scale")
        s = g.cast_f("scale")
        if not float_bias:  # truncated when per tensor (one value)
            one = g.op("Equal", g.op("Size", "scale"), g.k(1))
            s = g.op("Where", one, g.trunc_fp19(s), s)
        v = g.op("Mul", v, s)
        if fb:
            v = g.op("Add", v, fb)
        g.output("y", g.op("Cast", v, to=T.BFLOAT16))
        return
    if dtype not in (DT_INT8, DT_FLOAT16) or float_bias:
        raise ValueError(f"npu::QuantBatchMatMul: dtype {dtype} with these inputs is not a supported combination")
    if p[2] == T.INT64:
        s, o = g.packed_scale("scale")
    else:
        s = g.trunc_fp19(g.cast_f("scale"))
        if p[3]:  # round half away from zero, clamped to [-256, 255] (npu_trans_quant_param)
            off = "offset"
            o = g.op("Mul", g.op("Sign", off), g.op("Floor", g.op("Add", g.op("Abs", off), g.f(0.5))))
            o = g.op("Clip", o, g.f(-256.0), g.f(255.0))
        else:
            o = g.f(0.0)
    if dtype == DT_FLOAT16:
        g.output("y", g.op("Cast", g.op("Mul", v, s), to=T.FLOAT16))
        return
    r = g.op("Add", g.op("Clip", g.op("Round", g.op("Mul", v, s)), g.f(-256.0), g.f(255.0)), o)
    g.output("y", g.op("Cast", g.op("Clip", r, g.f(-128.0), g.f(127.0)), to=T.INT8))


def _ascend_quant_body(g: _G, a: dict, p) -> None:
    """npu.ascend_quant: each float16 step emulated in float32 and rounded to float16 (the product
    of two float16 values is exact in float32; their sum rounded twice is still RNE: 24 >= 2p + 2)."""
    def f16(v):
        return g.cast_f(g.op("Cast", v, to=TensorProto.FLOAT16))

    s = g.f(float(np.float16(np.float32(a["scale"]))))
    v = f16(g.op("Mul", f16("x"), s))
    if a["sqrt_mode"]:
        v = f16(g.op("Mul", v, s))
    v = f16(g.op("Add", v, g.f(float(np.float16(np.float32(a["offset"]))))))
    g.output("y", g.round_sat(v, -128, 127, TensorProto.INT8))


def _ascend_dequant_body(g: _G, a: dict, p) -> None:
    s, _ = g.packed_scale(g.op("Cast", g.op("Reshape", "deq_scale", g.i(-1)), to=TensorProto.INT64))
    if a["sqrt_mode"]:
        s = g.op("Mul", s, s)
    # (C,) -> (C, 1, ..., 1): per channel along axis 1 whatever x's rank
    ones = g.op("ConstantOfShape", g.op("Sub", g.op("Shape", g.op("Shape", "x")), g.i(2)),
                value=numpy_helper.from_array(np.array([1], np.int64)))
    s = g.op("Reshape", s, g.op("Concat", g.i(-1), ones, axis=0))
    v = g.op("Mul", g.cast_f("x"), s)
    if a["relu_flag"]:
        v = g.op("Relu", v)
    g.output("y", g.op("Cast", v, to=TensorProto.FLOAT16 if a["dtype"] == DT_FLOAT16 else TensorProto.FLOAT))


def _ascend_anti_quant_body(g: _G, a: dict, p) -> None:
    s = g.f(a["scale"])
    v = g.op("Mul", g.op("Sub", g.cast_f("x"), g.f(a["offset"])), s)
    if a["sqrt_mode"]:
        v = g.op("Mul", v, s)
    g.output("y", g.op("Cast", v, to=TensorProto.FLOAT16 if a["dtype"] == DT_FLOAT16 else TensorProto.FLOAT))


_BODIES = {
    "AscendAntiQuant": _ascend_anti_quant_body,
    "AscendQuant": _ascend_quant_body,
    "AscendDequant": _ascend_dequant_body,
    "QuantBatchMatMul": _quant_batch_matmul_body,
    "NPUQuantize": _quantize_body,
    "NPUDynamicQuant": _dynamic_quant_body,
    "NPUWeightQuantBatchMatmulV2": _weight_quant_batchmatmul_body,
    "NPUDequantSwigluQuant": _dequant_swiglu_quant_body,
}


def function_body(op_type: str, attrs: dict, inputs: Sequence[int] | None = None
                  ) -> tuple[str, onnx.FunctionProto]:
    """(overload key, model-local function) running npu::<op_type> with standard opset-21 ops.

    `inputs`: the node's input element types (TensorProto codes), 0 / None / False where an
    optional input is absent (missing trailing entries count as absent); None: all present.
    Raises ValueError for configurations the op does not accept.
    """
    if op_type not in OPS:
        raise KeyError(f"no npu op {op_type!r}")
    op = OPS[op_type]
    a = _attrs_with_defaults(op_type, attrs)
    p = _present(op_type, inputs)
    for (name, _, optional), t in zip(op.inputs, p):
        if not optional and not t:
            raise ValueError(f"npu::{op_type}: required input {name} is absent")
    g = _G()
    _BODIES[op_type](g, a, p)
    key = overload_key(op_type, attrs, inputs)
    fn = helper.make_function(
        DOMAIN, op_type, [n for n, _, _ in op.inputs], [n for n, _ in op.outputs], g.nodes,
        [helper.make_opsetid("", OPSET)],
        attribute_protos=[helper.make_attribute(k, v) for k, v in a.items()],
        doc_string=f"{op_type} ({key}) in standard ops; see onnx_npuq.ops.npu_ops.",
    )
    fn.overload = key
    return key, fn


# ------------------------------------------------------------------ attaching bodies to a model


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    types = {}
    g = model.graph
    for v in list(g.input) + list(g.output) + list(g.value_info):
        if v.type.HasField("tensor_type"):
            types[v.name] = v.type.tensor_type.elem_type
    for t in g.initializer:
        types[t.name] = t.data_type
    for n in g.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            types[n.output[0]] = n.attribute[0].t.data_type
    return types


def attach_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every npu-domain node of the main graph its body (by overload) and its full
    input list (absent optional inputs as empty names, as many as the schema has); in place."""
    types = _elem_types(model)
    nodes = [n for n in model.graph.node if n.domain == DOMAIN]
    if any(i and i not in types for n in nodes for i in n.input):
        types.update(_elem_types(onnx.shape_inference.infer_shapes(checker_copy(model, LARGE_TENSOR_BYTES))))
    have = {(f.domain, f.name, f.overload) for f in model.functions}
    for node in nodes:
        # the exporter drops trailing absent optional inputs; torch_npu's nodes have them all
        node.input.extend([""] * (len(OPS[node.op_type].inputs) - len(node.input)))
        attrs = {at.name: helper.get_attribute_value(at) for at in node.attribute}
        inputs = [types.get(i, 1) if i else 0 for i in node.input]
        key, fn = function_body(node.op_type, attrs, inputs)
        node.overload = key
        if (DOMAIN, node.op_type, key) not in have:
            model.functions.append(fn)
            have.add((DOMAIN, node.op_type, key))
    if nodes and not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, VERSION))
    return model


npu._EXPORT_OPS = sys.modules[__name__]  # npu's public functions route here while exporting
