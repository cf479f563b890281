"""Model-local function bodies for every custom node of a model, both domains.

    attach(model)   # each npuq / npu node gets `overload` and its FunctionProto
    detach(model)   # the reverse: what ATC wants (it does not read functions)
    validate(model) # NodeError naming the first custom node its op would not take

`attach` is idempotent and also drops bodies no node uses any more, so a graph rewrite
can call it after changing nodes. It validates first (attributes, inputs, the packed byte
counts of npuq::Dequantize) and changes nothing when a node is refused. Bodies are written
for the model's standard opset (`at_opset`, 13 and newer; QuantDequant / Quantize 15 and
newer): onnx and onnxruntime want a function to import the opset its model imports.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper

from .. import formats
from ..errors import NodeError
from . import bodies, defs, npu_ops
from .defs import DOMAIN, format_from_attrs, overload_name

DOMAINS = (DOMAIN, npu_ops.DOMAIN)
ROWS = ".rows"  # overload suffix of a Dequantize with one float32 scale per row (bodies.rows_scaled)
_OPS = {DOMAIN: defs.OPS, npu_ops.DOMAIN: npu_ops.OPS}
_ATTR_TYPES = {onnx.defs.OpSchema.AttrType.STRING: (AttributeProto.STRING, "a string"),
               onnx.defs.OpSchema.AttrType.INT: (AttributeProto.INT, "an int"),
               onnx.defs.OpSchema.AttrType.FLOAT: (AttributeProto.FLOAT, "a float")}
_TYPE_NAMES = {f"tensor({onnx.helper.tensor_dtype_to_string(t).split('.')[-1].lower()})": t
               for t in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.UINT8,
                         TensorProto.INT8, TensorProto.INT32, TensorProto.INT64, TensorProto.UINT64)}


# ------------------------------------------------------------------ validation


def _who(node: onnx.NodeProto, domain: str, op: str) -> str:
    return f"node {node.name or '<unnamed>'} ({domain}::{op})"


def _tensor_info(model: onnx.ModelProto) -> dict[str, tuple[int, list | None]]:
    """name -> (element type, dims: ints / None per dimension, or None for an unknown rank)
    of what the main graph declares: initializers, Constant nodes, inputs, value_info."""
    info: dict[str, tuple[int, list | None]] = {}
    g = model.graph
    for v in list(g.input) + list(g.output) + list(g.value_info):
        if v.type.HasField("tensor_type"):
            tt = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else None for d in tt.shape.dim] \
                if tt.HasField("shape") else None
            info[v.name] = (tt.elem_type, dims)
    for t in g.initializer:
        info[t.name] = (t.data_type, list(t.dims))
    for n in g.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and n.output:
            for a in n.attribute:
                if a.name == "value" and a.type == AttributeProto.TENSOR:
                    info[n.output[0]] = (a.t.data_type, list(a.t.dims))
    return info


def _check_signature(node: onnx.NodeProto, op: defs.OpDef, who: str, info: dict) -> dict:
    """Attribute names and types, input and output counts, input element types; -> attrs."""
    declared = {a.name: a for a in op.attrs}
    attrs = {}
    for a in node.attribute:
        if a.name in attrs:
            raise NodeError(f"{who}: attribute {a.name!r} is given twice")
        if a.name not in declared:
            raise NodeError(f"{who}: unknown attribute {a.name!r} (the op takes {', '.join(declared)})")
        want, words = _ATTR_TYPES[declared[a.name].type]
        if a.type != want:
            kind = AttributeProto.AttributeType.Name(a.type).lower() if a.type else "untyped"
            raise NodeError(f"{who}: attribute {a.name!r} must be {words}, got {kind}")
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                raise NodeError(f"{who}: attribute {a.name!r} is not UTF-8 text") from None
        attrs[a.name] = v
    missing = [a.name for a in op.attrs if a.default is None and a.name not in attrs]
    if missing and op.domain == DOMAIN:  # npu ops say which one themselves (function_body)
        raise NodeError(f"{who}: required attribute(s) {', '.join(map(repr, missing))} missing")
    if len(node.input) > len(op.inputs):
        raise NodeError(f"{who}: {len(node.input)} inputs, the op takes at most {len(op.inputs)}")
    if not node.output or len(node.output) > len(op.outputs):
        raise NodeError(f"{who}: {len(node.output)} outputs, the op has {len(op.outputs)}")
    constraints = dict(op.types)
    for i, (name, constraint, optional) in enumerate(op.inputs):
        given = node.input[i] if i < len(node.input) else ""
        if not given:
            if not optional:
                raise NodeError(f"{who}: required input {name!r} is missing")
            continue
        elem = info.get(given, (0, None))[0]
        allowed = {_TYPE_NAMES.get(t) for t in constraints.get(constraint, ())}
        if elem and allowed and elem not in allowed:
            raise NodeError(f"{who}: input {name!r} ({given!r}) is {onnx.helper.tensor_dtype_to_string(elem)}, "
                            f"the op takes {', '.join(constraints[constraint])}")
    return attrs


def _check_dequantize(node: onnx.NodeProto, attrs: dict, who: str, info: dict) -> None:
    """Block and length against the format, and the packed byte counts where the shapes of
    codes and scales are known."""
    fmt = formats.get_format(attrs["format"])  # Dequantize has no options: they do not change decoding
    block, length = attrs["block"], attrs["length"]
    if length < 1:
        raise NodeError(f"{who}: length {length} (the elements per row) must be at least 1")
    # hif8: block 1 and no scale bytes, or (scale="row" / "tensor") the whole row as the block
    # (length or 0) and one float32 scale per row
    hif8 = fmt.name == "hif8"
    if hif8 and block not in (1, 0, length):
        raise NodeError(f"{who}: block {block}: hif8 has blocks of 1, or (scaled) the whole row "
                        f"({length} or 0)")
    if fmt.block is not None and block != fmt.block and not hif8:
        raise NodeError(f"{who}: block {block}, but {fmt.name} has blocks of {fmt.block}")
    if block < 0:
        raise NodeError(f"{who}: block {block} is negative (0: the whole row is one block)")
    blk = block or length
    blocks = math.ceil(length / blk)
    widths = {"codes": {blocks * math.ceil(blk * fmt.elem_bits / 8)}, "scales": {blocks * fmt.scale_bytes}}
    if hif8:
        widths["scales"] = ({0} if block == 1 else set()) | ({4} if block in (0, length) else set())
    two_level = fmt.tensor_scale(_ones()) is not None
    has_ts = len(node.input) > 2 and bool(node.input[2])
    if two_level and not has_ts:
        raise NodeError(f"{who}: {fmt.name} is two-level: the tensor_scale input is required")
    if has_ts and not two_level:
        raise NodeError(f"{who}: {fmt.name} has no tensor scale, but a tensor_scale input is given")
    rows = {}
    for i, name in enumerate(("codes", "scales")):
        dims = info.get(node.input[i], (0, None))[1]
        if dims is None:
            continue
        if len(dims) != 2:
            raise NodeError(f"{who}: {name} ({node.input[i]!r}) has shape {dims}; packed rows are 2-D "
                            "(rows, bytes per row)")
        rows[name] = dims[0]
        if dims[1] is not None and dims[1] not in widths[name]:
            raise NodeError(f"{who}: {name} ({node.input[i]!r}) has {dims[1]} bytes per row; {fmt.name} with "
                            f"block {blk} and length {length} packs {' or '.join(map(str, sorted(widths[name])))}")
    if None not in rows.values() and len(set(rows.values())) > 1:
        raise NodeError(f"{who}: codes has {rows['codes']} rows, scales {rows['scales']}")
    if has_ts:
        dims = info.get(node.input[2], (0, None))[1]
        if dims is not None and None not in dims and math.prod(dims) != 1:
            raise NodeError(f"{who}: tensor_scale has shape {dims}; it is one float32")


def _ones():
    import torch

    return torch.ones(1)


def _check_npuq(node: onnx.NodeProto, op: str, attrs: dict, who: str, info: dict) -> None:
    if "saturate" in attrs and attrs["saturate"] not in (0, 1):
        raise NodeError(f"{who}: attribute 'saturate' is {attrs['saturate']}, not 0 or 1")
    try:
        if op == "Dequantize":
            _check_dequantize(node, attrs, who, info)
            return
        fmt = format_from_attrs(attrs)
        if op == "Quantize" and fmt.tensor_scale(_ones()) is not None:
            raise NodeError(f"{who}: {fmt.name} is a two-level format; npuq::Quantize has no tensor-scale output")
    except NodeError:
        raise
    except (ValueError, TypeError, KeyError) as err:
        raise NodeError(f"{who}: {err.args[0] if isinstance(err, KeyError) else err}") from None


def validate(model: onnx.ModelProto, rename=None) -> None:
    """Raise NodeError naming the first npuq / npu node of the main graph whose op, attributes
    (names, types, values: the format and its options), inputs (count, element types where
    known) or, for npuq::Dequantize, block / length / packed byte counts (where the shapes of
    codes and scales are known) are not what its op takes. `rename(node) -> (domain, op)`
    maps the nodes of an ATC layout back to their portable names."""
    info = None
    for node in model.graph.node:
        domain, op = rename(node) if rename is not None else (node.domain, node.op_type)
        if domain not in DOMAINS:
            continue
        who = _who(node, domain, op)
        if op not in _OPS[domain]:
            raise NodeError(f"{who}: {op!r} is not an op of the {domain} domain "
                            f"(ops: {', '.join(_OPS[domain])})")
        if info is None:
            info = _tensor_info(model)
        attrs = _check_signature(node, _OPS[domain][op], who, info)
        if domain == DOMAIN:
            _check_npuq(node, op, attrs, who, info)
        else:
            types = [info.get(i, (TensorProto.FLOAT, None))[0] or TensorProto.FLOAT if i else 0 for i in node.input]
            try:
                npu_ops.function_body(op, attrs, types)
            except (ValueError, TypeError, KeyError) as err:
                raise NodeError(f"{who}: {err.args[0] if isinstance(err, KeyError) else err}") from None


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
        rows = node.op_type == "Dequantize" and bodies.rows_scaled(fmt, attrs.get("block", 0), attrs.get("length", 0))
        node.overload = overload_name(fmt) + (ROWS if rows else "")
        if (DOMAIN, node.op_type, node.overload) in have:
            continue
        fn = bodies.dequantize_rows_function(fmt.name) if rows else _npuq_body(node.op_type, fmt)
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
    """Give every npuq / npu node of the main graph its body (exactly those), written for
    the model's standard opset (`at_opset`); in place. Raises NodeError (naming the node)
    for a node `validate` refuses, before any change, and OpsetError when a body cannot be
    written at the model's opset (the model's functions are then as they were; its custom
    nodes may carry their overload names)."""
    validate(model)
    before = [onnx.FunctionProto() for _ in model.functions]
    for copy, fn in zip(before, model.functions):
        copy.CopyFrom(fn)
    detach(model)
    npu_ops.attach_functions(model)
    _attach_npuq(model)
    version = model_opset(model)
    if version is None:
        return model
    ours = [i for i, fn in enumerate(model.functions) if fn.domain in DOMAINS]
    need = max([MIN_OPSET] + [function_min_opset(model.functions[i]) for i in ours]) if ours else None
    if need is not None and version < need:
        del model.functions[:]
        model.functions.extend(before)
        raise OpsetError(f"the model imports standard opset {version}; the function bodies of its npuq / npu "
                         f"nodes need opset {need} or newer")
    for i in ours:
        model.functions[i].CopyFrom(at_opset(model.functions[i], version))
    return model


# ------------------------------------------------------------------ bodies at the model's opset
#
# Bodies are written with opset-21 ops. onnx (and onnxruntime) want a function to import the
# standard opset the model imports ("FunctionOp imports version 21 whereas model imports
# version 20"), so `attach` rewrites each body for the model's opset. Between 13 and the
# newest opset the ops the bodies use kept their meaning for the types they use (later
# versions add types, or attributes left at their defaults); what changed in form is:
#   - ReduceMax / ReduceMin / ReduceProd / ... (not ReduceSum) take `axes` as an input from
#     opset 18, an attribute before;
#   - Shape has `start` / `end` from opset 15: before, a Slice of the whole shape;
#   - CastLike exists from opset 15 (QuantDequant / Quantize bodies use it): no rewrite.
# tests/test_foreign_qdq.py runs every body at every opset 13..MAX_OPSET in onnxruntime
# against the opset-21 result, bit for bit.

MIN_OPSET = 13  # axes / split as inputs (Unsqueeze, ReduceSum, Split): the bodies' floor
MAX_OPSET = 26  # the newest opset tests check (onnxruntime 1.31 runs up to 26; at_opset takes what onnx knows)
_AXES_INPUT_SINCE = 18
_REDUCE_AXES_18 = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
                   "ReduceMin", "ReduceProd", "ReduceSumSquare")
_OP_SINCE = {"CastLike": 15}  # ops the bodies use that do not exist at MIN_OPSET


class OpsetError(ValueError):
    """A function body cannot be written at the model's standard opset."""


def model_opset(model: onnx.ModelProto) -> int | None:
    """The version of the standard domain ("" or "ai.onnx") the model imports, or None."""
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return None


def model_needs_bodies(model: onnx.ModelProto) -> bool:
    return any(n.domain in DOMAINS for n in model.graph.node)


def body_opset(fn: onnx.FunctionProto) -> int | None:
    for o in fn.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return None


def function_min_opset(fn: onnx.FunctionProto) -> int:
    """The oldest standard opset `at_opset` can write `fn` for."""
    return max([MIN_OPSET] + [_OP_SINCE.get(n.op_type, MIN_OPSET) for n in fn.node])


def required_opset(model: onnx.ModelProto) -> int | None:
    """The oldest standard opset at which the bodies of the model's npuq / npu nodes can be
    written (None: it has none). Builds them, on a copy of the graph's nodes only; NodeError
    (`validate`) for a node whose op would not take it."""
    if not model_needs_bodies(model):
        return None
    validate(model)
    shell = onnx.ModelProto()
    shell.ir_version = model.ir_version
    shell.opset_import.extend(model.opset_import)
    shell.graph.node.extend(model.graph.node)
    shell.graph.input.extend(model.graph.input)
    shell.graph.output.extend(model.graph.output)
    shell.graph.value_info.extend(model.graph.value_info)
    for t in model.graph.initializer:  # types and shapes only: attaching reads no values
        shell.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    npu_ops.attach_functions(shell)
    _attach_npuq(shell)
    return max([MIN_OPSET] + [function_min_opset(f) for f in shell.functions if f.domain in DOMAINS])


def _constant_values(fn: onnx.FunctionProto) -> dict:
    out = {}
    for n in fn.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            for a in n.attribute:
                if a.name == "value" and a.type == AttributeProto.TENSOR:
                    out[n.output[0]] = onnx.numpy_helper.to_array(a.t)
    return out


def _inputs(nodes):
    """Every name the nodes read, in their subgraphs (an If's branches) too."""
    for n in nodes:
        yield from n.input
        for a in n.attribute:
            if a.type == AttributeProto.GRAPH:
                yield from _inputs(a.g.node)


def at_opset(fn: onnx.FunctionProto, version: int) -> onnx.FunctionProto:
    """A copy of `fn` (a body written at any opset from 13 on, ours at 21) importing standard
    opset `version` (MIN_OPSET.. the newest onnx knows), its nodes rewritten where the form
    of an op differs at that opset (see above). OpsetError when it cannot be written."""
    newest = onnx.defs.onnx_opset_version()
    need = function_min_opset(fn)
    if not need <= version <= newest:
        raise OpsetError(f"function {fn.domain}::{fn.name}: cannot be written at opset {version} "
                         f"(it needs {need}..{newest})")
    out = onnx.FunctionProto()
    out.CopyFrom(fn)
    if body_opset(fn) == version:
        return out
    consts = _constant_values(fn)
    nodes = []
    for n in fn.node:
        node = onnx.NodeProto()
        node.CopyFrom(n)
        if node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        if node.op_type in _REDUCE_AXES_18 and version < _AXES_INPUT_SINCE and len(node.input) > 1:
            if node.input[1]:
                if node.input[1] not in consts:
                    raise OpsetError(f"function {fn.domain}::{fn.name}: {node.op_type} with computed axes "
                                     f"cannot be written at opset {version}")
                node.attribute.append(helper.make_attribute(
                    "axes", [int(v) for v in consts[node.input[1]].reshape(-1)]))
            del node.input[1:]
        if node.op_type == "Shape" and version < 15 and node.attribute:
            bounds = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            del node.attribute[:]
            whole = f"{node.output[0]}__shape"
            nodes.append(node)
            node.output[0], result = whole, node.output[0]
            start = helper.make_tensor(f"{result}__start", TensorProto.INT64, [1], [bounds.get("start", 0)])
            end = helper.make_tensor(f"{result}__end", TensorProto.INT64, [1],
                                     [bounds.get("end", np.iinfo(np.int64).max)])
            nodes.append(helper.make_node("Constant", [], [start.name], value=start))
            nodes.append(helper.make_node("Constant", [], [end.name], value=end))
            nodes.append(helper.make_node("Slice", [whole, start.name, end.name], [result]))
            continue
        try:
            onnx.defs.get_schema(node.op_type, version, "")
        except onnx.defs.SchemaError:
            raise OpsetError(f"function {fn.domain}::{fn.name}: {node.op_type} does not exist at opset "
                             f"{version}") from None
        nodes.append(node)
    used = set(_inputs(nodes)) | set(out.output)
    nodes = [n for n in nodes if not (n.op_type == "Constant" and n.output[0] not in used)]
    del out.node[:]
    out.node.extend(nodes)
    imports = [o for o in out.opset_import if o.domain not in ("", "ai.onnx")]
    del out.opset_import[:]
    out.opset_import.extend([helper.make_opsetid("", version), *imports])
    return out
