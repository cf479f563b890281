"""Model-local function bodies for every custom node of a model, both domains.

    attach(model)   # each npuq / npu node gets `overload` and its FunctionProto
    detach(model)   # the reverse: what ATC wants (it does not read functions)

`attach` is idempotent and also drops bodies no node uses any more, so a graph rewrite
can call it after changing nodes.
"""
from __future__ import annotations

import onnx
from onnx import helper

from . import bodies, npu_ops
from .defs import DOMAIN, format_from_attrs, overload_name

DOMAINS = (DOMAIN, npu_ops.DOMAIN)


def _attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _npuq_body(op_type: str, fmt) -> onnx.FunctionProto:
    make = {"Dequantize": bodies.dequantize_function, "QuantDequant": bodies.quant_dequant_function,
            "Quantize": bodies.quantize_function}.get(op_type)
    if make is None:
        raise ValueError(f"npuq::{op_type} is not an op of the npuq domain")
    return make(fmt.name, **fmt.options)


def _attach_npuq(model: onnx.ModelProto) -> None:
    have = {(f.domain, f.name, f.overload) for f in model.functions}
    for node in model.graph.node:
        if node.domain != DOMAIN:
            continue
        attrs = _attrs(node)
        fmt = format_from_attrs(attrs)
        node.overload = overload_name(fmt)
        if (DOMAIN, node.op_type, node.overload) in have:
            continue
        fn = _npuq_body(node.op_type, fmt)
        fn.name, fn.overload = node.op_type, node.overload
        # declare every attribute the node carries (format, options) so checkers accept it
        declared = {a.name for a in fn.attribute_proto} | set(fn.attribute)
        for name, value in attrs.items():
            if name not in declared:
                fn.attribute_proto.append(helper.make_attribute(name, value))
        model.functions.append(fn)
        have.add((DOMAIN, node.op_type, node.overload))


def detach(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove the npuq / npu function bodies and the nodes' overloads; in place."""
    keep = [f for f in model.functions if f.domain not in DOMAINS]
    del model.functions[:]
    model.functions.extend(keep)
    for node in model.graph.node:
        if node.domain in DOMAINS:
            node.overload = ""
    return model


def attach(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every npuq / npu node of the main graph its body (exactly those); in place."""
    detach(model)
    npu_ops.attach_functions(model)
    _attach_npuq(model)
    return model
