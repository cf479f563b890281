"""The npu-domain op definitions: GE dtype codes, each op's OpDef (ONNX schema, registered with
onnx.defs, with its type and shape inference), and the attribute checks and overload keys the
function bodies are selected by. The facade is ops/npu_ops.py."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnx.defs import OpSchema

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
