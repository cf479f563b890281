"""Runnable single-node models around the bodies (decode a Packed, fake-quantize an input),
and every default function at once.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from ... import formats as F
from ...formats.asym import Asym
from ...formats.integer import Sym
from .builder import DOMAIN, DOMAIN_VERSION, IR_VERSION, OPSET, TORCH_TO_ONNX
from .dequantize import dequantize_function, dequantize_rows_function, rows_scaled
from .quant_dequant import quant_dequant_function

# ------------------------------------------------------------------ runnable models


def _model(graph: onnx.GraphProto, functions: list[onnx.FunctionProto]) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
        ir_version=IR_VERSION,
        functions=functions,
        producer_name="onnx_npuq",
    )
    return model


def _onnx_dtype(dtype) -> int:
    if isinstance(dtype, torch.dtype):
        if dtype not in TORCH_TO_ONNX:
            raise TypeError(f"dtype {dtype} is not float32, float16 or bfloat16")
        return TORCH_TO_ONNX[dtype]
    if isinstance(dtype, int):
        return dtype
    if isinstance(dtype, str):
        return TORCH_TO_ONNX[getattr(torch, dtype)]
    raise TypeError(f"unsupported dtype {dtype!r}")


def model_for_decode(packed: F.Packed, as_inputs: bool = False) -> onnx.ModelProto:
    """A runnable model that decodes `packed` to `decode(packed)` (shape, axis and dtype).

    codes, scales (and nvfp4's tensor_scale) are initializers, or graph inputs of the
    same names with `as_inputs=True`. The output is `Y`.
    """
    name = F.canonical(packed.format)
    rows = rows_scaled(F.get_format(name), packed.block, packed.length)
    func = dequantize_rows_function(name) if rows else dequantize_function(name)
    arrays = {"codes": packed.codes.contiguous().numpy(), "scales": packed.scales.contiguous().numpy()}
    if name == "nvfp4":
        arrays["tensor_scale"] = packed.tensor_scale.to(torch.float32).reshape(()).numpy()
    attrs = {"length": packed.length}
    if isinstance(F.get_format(name), (Sym, Asym)):
        attrs["block"] = packed.block
    shape, axis = tuple(packed.shape), packed.axis
    moved = shape[:axis] + shape[axis + 1:] + (shape[axis],)
    rank = len(shape)
    perm = [i if i < axis else (rank - 1 if i == axis else i - 1) for i in range(rank)]
    nodes = [
        helper.make_node(func.name, list(arrays), ["decoded"], domain=DOMAIN, **attrs),
        helper.make_node("Reshape", ["decoded", "moved_shape"], ["moved"]),
        helper.make_node("Transpose", ["moved"], ["restored"], perm=perm),
        helper.make_node("Cast", ["restored"], ["Y"], to=_onnx_dtype(packed.dtype)),
    ]
    inits = [numpy_helper.from_array(np.array(moved, np.int64), "moved_shape")]
    inputs = []
    for key, arr in arrays.items():
        if as_inputs:
            inputs.append(helper.make_tensor_value_info(
                key, helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape))
        else:
            inits.append(numpy_helper.from_array(arr, key))
    out = helper.make_tensor_value_info("Y", _onnx_dtype(packed.dtype), shape)
    graph = helper.make_graph(nodes, f"decode_{name}", inputs, [out], initializer=inits)
    return _model(graph, [func])


def model_for_fake_quant(fmt_name: str, shape: Sequence[int | str | None], axis: int = -1,
                         dtype=torch.float32, **options) -> onnx.ModelProto:
    """A runnable model Y = fake_quant(X, fmt, axis, **options); X and Y of `dtype`.

    Dimensions given as a string or None are symbolic (dynamic).
    """
    func = quant_dequant_function(fmt_name, **options)
    elem = _onnx_dtype(dtype)
    rank = len(shape)
    if isinstance(axis, bool) or not isinstance(axis, int) or not -rank <= axis < rank:
        raise ValueError(f"axis {axis!r} is out of range for a {rank}-d input")
    dims = [d if isinstance(d, (int, str)) else None for d in shape]
    node = helper.make_node(func.name, ["X"], ["Y"], domain=DOMAIN, axis=int(axis))
    graph = helper.make_graph(
        [node],
        f"fake_quant_{F.canonical(fmt_name)}",
        [helper.make_tensor_value_info("X", elem, dims)],
        [helper.make_tensor_value_info("Y", elem, dims)],
    )
    return _model(graph, [func])


def all_functions() -> list[onnx.FunctionProto]:
    """Dequantize and default-option QuantDequant functions of every format."""
    funcs = [dequantize_function(n) for n in F.names()]
    funcs += [quant_dequant_function(n) for n in F.names()]
    return funcs
