"""Function names (`function_name`: op type from format and options) and FunctionProto
assembly shared by the Dequantize, QuantDequant and Quantize bodies.
"""
from __future__ import annotations

import onnx
from onnx import helper

from ... import formats as F
from .builder import _Body, DOMAIN, OPSET

# ------------------------------------------------------------------ names and signatures


def _fmt(fmt_name: str, options: dict):
    fmt = F.get_format(fmt_name, **options)
    return F.canonical(fmt_name), fmt


def _suffix(options: dict) -> str:
    parts = []
    for key, value in sorted(options.items()):
        parts.append(key if value is True else f"{key}_{value}")
    return "".join("_" + p for p in parts)


def function_name(kind: str, fmt_name: str, **options) -> str:
    """Op type of a function: 'Dequantize_<fmt>' or 'QuantDequant_<fmt>[_<opt>_<val>...]'.

    Only non-default options appear (e.g. QuantDequant_mxfp4_rounding_even,
    QuantDequant_int4sym_group_32, QuantDequant_hif8_saturate, QuantDequant_hif4_variant_amct).
    """
    name, fmt = _fmt(fmt_name, options)
    if kind == "Dequantize":
        return f"Dequantize_{name}"
    if kind == "QuantDequant":
        return f"QuantDequant_{name}{_suffix(fmt.options)}"
    raise ValueError(f"kind must be 'Dequantize' or 'QuantDequant', got {kind!r}")


def _make_function(name, inputs, outputs, body: _Body, attrs: dict, doc: str) -> onnx.FunctionProto:
    return helper.make_function(
        DOMAIN,
        name,
        inputs,
        outputs,
        body.nodes,
        [helper.make_opsetid("", OPSET)],
        attribute_protos=[helper.make_attribute(k, v) for k, v in attrs.items()],
        doc_string=doc,
    )
