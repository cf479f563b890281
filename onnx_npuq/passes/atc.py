"""ATC layouts (pass `atc`) and back (pass `portable`): the model Huawei's ATC parses.

    model, _ = run_passes(m, ["atc"], layout="default", opset=17)   # then atc --framework=5
    runnable = to_portable(model)                                  # onnxruntime runs it again

How ATC finds a node's parser (Ascend/parser parser/onnx/onnx_parser.cc,
OnnxModelParser::ConstructOriType and ModelParseToGraph): the key is
"<domain>::<version>::<op_type>", the version being that of the domain's opset_import; a node
with the empty domain takes the domain and version of the model's only opset_import, and
fails with E16005 when there is more than one (up to GE 9.1); "" is then spelled "ai.onnx".
So two layouts work (shared/spec/ascend.md), chosen with the option `layout`:

  default  one opset_import, "" at the target opset; every node in the default domain, so a
           custom op's key is ai.onnx::<opset>::<op> (AMCT's way).
  domain   the custom domains kept (npuq 1, npu 1); every standard node in domain "ai.onnx",
           with an "ai.onnx" opset_import and no "" one.

Standard ops go from opset 21 down to `opset` (11..18, what ATC documents) by relabelling:
a node stays as it is where its definition did not change, and otherwise only where the
newer definition adds nothing the node uses (a type, an attribute left at its default, an
input it leaves out). A few structural changes are rewritten (constant axes / split inputs
back to attributes, Softmax's axis before opset 13). Anything else is a PassError naming
every offending node. onnx.version_converter is no help downwards (it has no adapter for,
e.g., Relu 14 -> 13); upwards (`portable`, or a model older than the target) it is used.

Every custom node must end up under a key that has a parser: CANN's own (CANN_KEYS, each
with the file that registers it) or one our custom-op package registers (OUR_KEYS, from
onnx_npuq.ops.defs). The function bodies onnxruntime runs are not ATC's business: finish()
detaches them; `portable` restores names, domains and opset 21, so finish() attaches them
again. The metadata records the layout, the target opset, the keys used and the original
name of every custom op, which is all `portable` needs.

Neither layout passes onnx.checker as it stands: it knows no QuantDequant in the default
domain, and nothing at all in domain "ai.onnx" (it only accepts "ai.onnx" as an opset_import
name). `check` validates an ATC-layout model instead: the layout rules above, then the onnx
checker (full) on the same graph with the portable domains and names, at the same opset.
"""
from __future__ import annotations

import functools

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from onnx import helper

from ..io import LARGE_TENSOR_BYTES, checker_copy
from ..ops import defs, npu_ops
from ..ops.layout import (ATC_NAMES, CUSTOM, ORIGIN_KEY, _default_origin, origin_map,  # noqa: F401 (names of this pass)
                          portable_name as _portable_name)
from .graph import constant, constant_array
from .pipeline import LAYOUT_KEY, PassError, register
from .w8a8 import from_atc_form, to_atc_form

LAYOUTS = ("default", "domain")
# ATC documents standard opsets 11..18. Default 17: CANN's docs scope ONNX support to ONNX 1.12
# (opset 17), and it is the one opset at which CANN's plugins (atc/onnx_op_keys.json) register
# every key of the built-in decoder, MiniLM and the digits CNN (at 18 there is no
# ai.onnx::18::ReduceL2; below 15 the exports' Shape start/end and Reshape allowzero do not go).
DEFAULT_OPSET, MIN_OPSET, MAX_OPSET = 17, 11, 18
PORTABLE_OPSET = npu_ops.OPSET  # the opset the function bodies (and the exporter) use: 21

KEYS_KEY = "onnx_npuq.atc_keys"  # sorted, comma-separated keys of the custom nodes
OPSET_KEY = "onnx_npuq.opset"  # the standard opset of the ATC layout
METADATA_KEYS = (LAYOUT_KEY, KEYS_KEY, OPSET_KEY, ORIGIN_KEY)

STANDARD = ("", "ai.onnx")

# ---------------------------------------------------------------- parser keys

# CANN's built-in ONNX parser plugins for the npu ops torch_npu exports (REGISTER_CUSTOM_OP(...)
# .FrameworkType(ONNX).OriginOpType({...})), as read in the public sources:
_WQBMM = ("hicann/ops-nn: matmul/weight_quant_batch_matmul_v2/framework/"
          "npu_weight_quant_batchmatmul_v2_onnx_plugin.cpp")
# these two were read in jbgztxdy/ops-nn (a copy of hicann/ops-nn, commit 732de1d); the same
# plugins' key lists also appear, at other paths, in older CANN op trees
_QUANTIZE = "hicann/ops-nn: quant/quantize/framework/npu_quantize_onnx_plugin.cpp"
_DYNAMIC_QUANT = "hicann/ops-nn: quant/dynamic_quant/framework/npu_dynamic_quant_onnx_plugin.cpp"


def _plugin(source: str, npu_name: str, onnx_name: str, versions) -> dict[str, str]:
    return {f"npu::1::{npu_name}": source, **{f"ai.onnx::{v}::{onnx_name}": source for v in versions}}


CANN_KEYS: dict[str, str] = {
    # Quantize: npu::1::NPUQuantize, ai.onnx::11..18::NPUQuantize
    **_plugin(_QUANTIZE, "NPUQuantize", "NPUQuantize", range(11, 19)),
    # DynamicQuant: npu::1::NPUDynamicQuant, ai.onnx::11..18::NPUDynamicQuant (the same file
    # registers NPUDynamicQuantV2 for DynamicQuantV2, which we do not emit)
    **_plugin(_DYNAMIC_QUANT, "NPUDynamicQuant", "NPUDynamicQuant", range(11, 19)),
    # WeightQuantBatchMatmulV2: npu::1::WeightQuantBatchMatmulV2 (no NPU prefix!) but
    # ai.onnx::11..19::NPUWeightQuantBatchMatmulV2 (torch_npu's name)
    **_plugin(_WQBMM, "WeightQuantBatchMatmulV2", "NPUWeightQuantBatchMatmulV2", range(11, 20)),
}
# Plugins registered under ai.onnx keys only (no npu:: key): the node goes into the standard
# domain in both layouts ("" / "ai.onnx"), so the model's standard opset must be among them.
# Read in hicann/ops-nn at commit e5c3fa93 (2026-08-22).
_QBMM = "hicann/ops-nn: matmul/quant_batch_matmul_v3/framework/quant_batch_matmulV3_onnx_plugin.cpp"
STANDARD_DOMAIN_OPS: dict[tuple[str, str], tuple[str, range]] = {
    # QuantBatchMatmulV3: ai.onnx::8..16::QuantBatchMatMul (not 17 and later)
    (npu_ops.DOMAIN, "QuantBatchMatMul"): (_QBMM, range(8, 17)),
    # AMCT's deploy ops: ai.onnx::8..22::AscendQuant / AscendDequant
    (npu_ops.DOMAIN, "AscendQuant"): ("hicann/ops-nn: quant/ascend_quant/framework/ascend_quant_onnx_plugin.cpp",
                                      range(8, 23)),
    (npu_ops.DOMAIN, "AscendDequant"): ("hicann/ops-nn: quant/ascend_dequant/framework/"
                                        "ascend_dequant_onnx_plugin.cpp", range(8, 23)),
    (npu_ops.DOMAIN, "AscendAntiQuant"): ("hicann/ops-nn: quant/ascend_anti_quant/framework/"
                                          "ascend_anti_quant_onnx_plugin.cpp", range(8, 23)),
}
for (_d, _op), (_src, _versions_) in STANDARD_DOMAIN_OPS.items():
    CANN_KEYS.update({f"ai.onnx::{v}::{_op}": _src for v in _versions_})
# hicann/ops-nn quant/dequant_swiglu_quant has no framework/ directory (no ONNX plugin), and
# torch_npu has no ONNX symbolic for it: NPUDequantSwigluQuant is ours to register, like npuq.

# Keys our custom-op package registers: every npuq op, and the npu ops CANN has no plugin for.
_OURS = [*defs.OPS.values(), npu_ops.NPU_DEQUANT_SWIGLU_QUANT]
OUR_KEYS: dict[str, str] = {
    key: f"onnx_npuq custom ops ({op.domain}::{op.name}, onnx_npuq.ops.defs.OpDef.atc_keys)"
    for op in _OURS for layout in LAYOUTS for key in op.atc_keys(layout)
}
KNOWN_KEYS: dict[str, str] = {**CANN_KEYS, **OUR_KEYS}

# Standard ops no plugin in CANN's operator repositories registers at any opset (atc/
# onnx_op_keys.json): ATC takes QDQ only through AMCT's deploy ops.
_UNREGISTERED = {"DequantizeLinear", "QuantizeLinear"}


def key(domain: str, version: int, op: str) -> str:
    """The parser key ATC builds for a node (onnx_parser.cc ConstructOriType)."""
    return f"{domain or 'ai.onnx'}::{version}::{op}"


# ---------------------------------------------------------------- small helpers


def _who(node) -> str:
    return f"{node.name or '<unnamed>'} ({node.op})"


def _graphs(graph: gs.Graph) -> list[gs.Graph]:
    return [graph, *graph.subgraphs(recursive=True)]


def _nodes(graph: gs.Graph):
    return [n for g in _graphs(graph) for n in g.nodes]


def _standard_opset(graph: gs.Graph) -> int:
    for o in graph.import_domains or []:
        if o.domain in STANDARD:
            return o.version
    return graph.opset


def _set_imports(graph: gs.Graph, standard: tuple[str, int]) -> None:
    """Exactly one standard opset_import, plus one (version 1) per custom domain in use: gs
    adds missing domains itself, but would keep stale ones."""
    used = sorted({n.domain for n in _nodes(graph)} & set(CUSTOM))
    graph.opset = standard[1]
    graph.import_domains = [helper.make_opsetid(*standard), *_custom_imports(used)]


def _custom_imports(domains) -> list[onnx.OperatorSetIdProto]:
    return [helper.make_opsetid(d, next(iter(CUSTOM[d].values())).version) for d in domains]


def _value(v):
    return v.decode() if isinstance(v, bytes) else v


@functools.cache
def _history() -> dict[str, tuple[int, ...]]:
    """Standard op -> every since_version of it, ascending."""
    out: dict[str, set[int]] = {}
    for s in onnx.defs.get_all_schemas_with_history():
        if s.domain == "":
            out.setdefault(s.name, set()).add(s.since_version)
    return {op: tuple(sorted(v)) for op, v in out.items()}


def _versions(op: str) -> tuple[int, ...]:
    return _history().get(op, ())


def _schema(op: str, opset: int):
    try:
        return onnx.defs.get_schema(op, opset, "")
    except onnx.defs.SchemaError:
        return None


def _first_with_attribute(op: str, name: str) -> int | None:
    for v in _versions(op):
        if name in onnx.defs.get_schema(op, v, "").attributes:
            return v
    return None


# ---------------------------------------------------------------- options, names, origin


def _options(options: dict) -> tuple[str, int]:
    layout = options.get("layout", "default")
    if layout not in LAYOUTS:
        raise PassError(f"atc: layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    try:
        opset = int(options.get("opset", DEFAULT_OPSET))
    except (TypeError, ValueError):
        raise PassError(f"atc: opset must be an integer, got {options.get('opset')!r}") from None
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise PassError(f"atc: opset must be within {MIN_OPSET}..{MAX_OPSET} (the standard opsets "
                        f"ATC documents), got {opset}")
    return layout, opset


# ---------------------------------------------------------------- restoring (both passes)


def _restore(graph: gs.Graph, metadata: dict) -> None:
    """Back to portable names and domains, at the same opset. On an ATC-layout model this
    undoes `_lay_out`; on any other it only spells the standard domain "" (a model may use
    "ai.onnx", which onnx.checker and version_converter do not take for nodes)."""
    origin = origin_map(metadata) if LAYOUT_KEY in metadata else {}
    if LAYOUT_KEY in metadata:
        from_atc_form(graph)  # int8 Conv / Gemm / MatMul between AscendQuant and AscendDequant
        graph.cleanup()
    opset = _standard_opset(graph)
    for node in _nodes(graph):
        node.domain, node.op = _portable_name(node.domain or "", node.op, origin)
    _set_imports(graph, ("", opset))


def _upgrade(graph: gs.Graph, target: int) -> None:
    """Raise the standard opset with onnx.version_converter (complete upwards). It drops the
    model's functions: `atc` wants none, and finish() re-attaches ours after `portable`."""
    source = _standard_opset(graph)
    # converted without the large weights (it serializes the model): they go in as graph
    # inputs and come back as the constants they were
    model = checker_copy(gs.export_onnx(graph, do_type_check=False), LARGE_TENSOR_BYTES)
    try:
        model = onnx.version_converter.convert_version(model, target)
    except Exception as err:  # the converter raises RuntimeError / its own C++ errors
        raise PassError(f"onnx.version_converter cannot take the model from opset {source} to "
                        f"{target}: {err}") from err
    new = gs.import_onnx(model)
    kept_inputs = {t.name for t in graph.inputs}
    constants = {t.name: t for t in graph.tensors().values() if isinstance(t, gs.Constant)}
    weights = {t.name: constants[t.name] for t in new.inputs if t.name in constants and t.name not in kept_inputs}
    for node in _nodes(new):
        for i, t in enumerate(node.inputs):
            if t.name in weights:
                node.inputs[i] = weights[t.name]  # (gs keeps each tensor's consumer list in step)
    graph.nodes, graph.outputs = new.nodes, new.outputs
    graph.inputs = [t for t in new.inputs if t.name not in weights]
    graph.functions = []
    _set_imports(graph, ("", target))


# ---------------------------------------------------------------- custom nodes and functions


def _check_custom(graph: gs.Graph) -> None:
    """Every non-standard node must be an op we know in npuq / npu: any other domain has no
    parser we could name, and a model-local function ATC would not read anyway."""
    foreign = {(f.domain, f.name) for f in graph.functions if f.domain not in CUSTOM}
    problems = []
    for node in _nodes(graph):
        d = node.domain or ""
        if (d, node.op) in foreign:
            problems.append(f"{_who(node)}: calls the model-local function {d}::{node.op}, "
                            "which ATC does not read (inline it first)")
        elif d not in STANDARD and d not in CUSTOM:
            problems.append(f"{_who(node)}: domain {d!r} has no ATC parser known to onnx_npuq "
                            f"(known custom domains: {', '.join(CUSTOM)})")
        elif d in CUSTOM and node.op not in CUSTOM[d]:
            problems.append(f"{_who(node)}: not an op of the {d} domain "
                            f"({', '.join(CUSTOM[d])})")
    if problems:
        raise PassError("atc: these nodes have no ATC parser", problems)


def _drop_functions(graph: gs.Graph, ctx) -> None:
    """ATC reads no model-local functions; ours come back with `portable`."""
    unused = sorted(f"{f.domain}::{f.name}" for f in graph.functions if f.domain not in CUSTOM)
    if unused:
        ctx.note(f"dropped unused model-local functions: {', '.join(unused)}")
    graph.functions = []


# ---------------------------------------------------------------- lowering standard ops

# (op, opset) where the op's meaning changed without a new attribute or input we could test
# for: a node defined at or after that opset cannot be relabelled to an older one.
_CHANGED = {
    ("GroupNormalization", 21): "scale and bias are per channel since opset 21, per group before",
    ("GridSample", 20): "its mode names and N-D support changed in opset 20",
    ("DFT", 20): "its axis became an input (default -2) in opset 20",
}
# New attributes whose default is not what the op did before they existed.
_OLD_BEHAVIOUR = {("RoiAlign", "coordinate_transformation_mode"): "output_half_pixel"}
# Attribute values that appeared after their attribute did.
_VALUE_SINCE = {("Pad", "mode", "wrap"): 19,
                ("Resize", "coordinate_transformation_mode", "half_pixel_symmetric"): 19}
# Inputs that were attributes before an opset: op -> (opset, input index, attribute name).
_REDUCE = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
           "ReduceMin", "ReduceProd", "ReduceSumSquare")
_INPUT_ATTRIBUTES = {**{op: (18, 1, "axes") for op in _REDUCE}, "ReduceSum": (13, 1, "axes"),
                     "Squeeze": (13, 1, "axes"), "Unsqueeze": (13, 1, "axes"),
                     "Split": (13, 1, "split")}
_SOFTMAX = ("Softmax", "LogSoftmax", "Hardmax")  # one axis since 13; 2-D coercion before


def _tensor_info(graph: gs.Graph) -> dict[str, tuple]:
    """(element type, rank, dims: ints, None where unknown) of every tensor, by onnx shape
    inference on an exported copy: value_info may be missing (hand-built models), and gs has
    no FP4 / E8M0 dtypes."""
    try:
        model = onnx.shape_inference.infer_shapes(
            checker_copy(gs.export_onnx(graph, do_type_check=False), LARGE_TENSOR_BYTES))
    except Exception as err:
        raise PassError(f"atc: onnx shape inference fails on the model: {err}") from err
    info = {}

    def walk(g: onnx.GraphProto):
        for v in [*g.input, *g.output, *g.value_info]:
            tt = v.type.tensor_type
            if v.type.HasField("tensor_type") and tt.elem_type:
                dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
                info[v.name] = (tt.elem_type, len(dims), dims) if tt.HasField("shape") else (tt.elem_type, None, None)
        for t in g.initializer:
            info[t.name] = (t.data_type, len(t.dims), tuple(t.dims))
        for n in g.node:
            for a in n.attribute:
                if n.op_type == "Constant" and a.name == "value":
                    info[n.output[0]] = (a.t.data_type, len(a.t.dims), tuple(a.t.dims))
                for sub in [a.g] * (a.type == onnx.AttributeProto.GRAPH) + list(a.graphs):
                    walk(sub)

    walk(model.graph)
    return info


def _constant(tensor) -> np.ndarray | None:
    """The value of a constant input (initializer or Constant node), else None."""
    c = constant(tensor)
    return None if c is None else constant_array(c)


def _split_sizes(node: gs.Node, target: int, info) -> str | None:
    """Split's num_outputs (opset 18) as the `split` sizes older opsets take, read from the
    outputs' inferred lengths along the axis (ONNX-18: equal chunks, the last one smaller)."""
    if node.op != "Split" or target >= 18 or "num_outputs" not in node.attrs:
        return None
    sizes = []
    for out in node.outputs:
        _, rank, dims = info.get(out.name, (0, None, None))
        d = dims[node.attrs.get("axis", 0) % rank] if dims else None
        if d is None:
            return f"num_outputs={node.attrs['num_outputs']} with output lengths shape inference does not know"
        sizes.append(d)
    del node.attrs["num_outputs"]
    while len(node.inputs) > 1:
        del node.inputs[-1]
    node.inputs.append(gs.Constant(f"{node.name or node.outputs[0].name}.split", np.array(sizes, np.int64)))
    return None


def _inputs_to_attribute(node: gs.Node, target: int) -> str | None:
    """Constant axes / split inputs back to the attribute they were before their opset."""
    since, index, name = _INPUT_ATTRIBUTES[node.op]
    if target >= since or len(node.inputs) <= index:
        return None
    tensor = node.inputs[index]
    if not tensor.is_empty():
        values = _constant(tensor)
        if values is None:
            return f"input {name} is computed; opset {target} needs it as a constant attribute"
        node.attrs[name] = [int(v) for v in np.asarray(values).reshape(-1)]
    del node.inputs[index]
    return None


def _softmax_axis(node: gs.Node, target: int, info) -> str | None:
    """Before opset 13 Softmax coerced its input to 2-D at `axis` (default 1): the same as
    today's single axis only for the last axis, written -1."""
    if target >= 13:
        return None
    axis = node.attrs.get("axis", -1)
    rank = info.get(node.inputs[0].name, (0, None))[1]
    if axis != -1 and (rank is None or axis != rank - 1):
        return f"axis={axis} (not the last axis) cannot be expressed before opset 13"
    node.attrs["axis"] = -1
    return None


def _new_attributes(node: gs.Node, old, new) -> list[str]:
    """Drop attributes the target lacks where they hold what the op did without them."""
    why = []
    for name in [a for a in new.attributes if a not in old.attributes]:
        default = _value(helper.get_attribute_value(new.attributes[name].default_value))
        before = _OLD_BEHAVIOUR.get((node.op, name), default)  # what the op did without it
        value = _value(node.attrs[name]) if name in node.attrs else default
        if value is None:
            continue  # absent, and no default to stand for
        if isinstance(value, float) and isinstance(before, float):
            same = np.float32(value) == np.float32(before)
        else:
            same = value == before
        if same:
            node.attrs.pop(name, None)
        else:
            why.append(f"attribute {name}={value!r} needs opset {_first_with_attribute(node.op, name)}")
    return why


def _attribute_values(node: gs.Node, target: int) -> list[str]:
    return [f"{name}={value!r} needs opset {since}"
            for (op, name, value), since in _VALUE_SINCE.items()
            if op == node.op and target < since and _value(node.attrs.get(name)) == value]


def _per_axis_scales(node: gs.Node, target: int, info) -> list[str]:
    """QuantizeLinear / DequantizeLinear take only per-tensor scales before opset 13."""
    if node.op not in ("QuantizeLinear", "DequantizeLinear") or target >= 13:
        return []
    rank = info.get(node.inputs[1].name, (0, None))[1]
    return [] if rank == 0 else ["per-axis (or unknown-rank) scales need opset 13"]


def _arity(node: gs.Node, old) -> list[str]:
    """Inputs / outputs beyond what the target's definition has (trailing absent ones go)."""
    while len(node.inputs) > old.max_input and node.inputs[-1].is_empty():
        del node.inputs[-1]
    why = []
    if len(node.inputs) > old.max_input:
        why.append(f"{len(node.inputs)} inputs, opset {old.since_version} takes at most {old.max_input}")
    if len(node.outputs) > old.max_output:
        why.append(f"{len(node.outputs)} outputs, opset {old.since_version} gives at most {old.max_output}")
    return why


def _allowed(schema, params, index: int) -> set[str] | None:
    if not params:
        return None
    p = params[min(index, len(params) - 1)]
    if index >= len(params) and p.option != onnx.defs.OpSchema.FormalParameterOption.Variadic:
        return None
    for c in schema.type_constraints:
        if c.type_param_str == p.type_str:
            return set(c.allowed_type_strs)
    return {p.type_str}


def _types(node: gs.Node, old, info) -> list[str]:
    """Element types the target's definition does not take (INT4, FP8, bfloat16 ...)."""
    why = []
    for kind, tensors, params in (("input", node.inputs, old.inputs), ("output", node.outputs, old.outputs)):
        for i, t in enumerate(tensors):
            if t.is_empty() or t.name not in info:
                continue
            allowed = _allowed(old, params, i)
            name = onnx.TensorProto.DataType.Name(info[t.name][0])
            if allowed is not None and f"tensor({name.lower()})" not in allowed:
                later = [v for v in _versions(node.op) if v > old.since_version]
                why.append(f"{kind} {t.name} is {name}, which {node.op}-{old.since_version} does not "
                           f"take" + (f" (later versions: {', '.join(map(str, later))})" if later else ""))
    return why


def _lower_node(node: gs.Node, source: int, target: int, info) -> list[str]:
    """Relabel one standard node from `source` to `target`; the reasons it cannot be."""
    new, old = _schema(node.op, source), _schema(node.op, target)
    if new is None:
        return [f"not a standard op at opset {source}"]
    if old is None:
        return [f"introduced in opset {_versions(node.op)[0]}; opset {target} has no {node.op}"]
    if new.since_version == old.since_version:
        return []  # the same definition: nothing to do
    why = [reason for (op, v), reason in _CHANGED.items()
           if op == node.op and old.since_version < v <= new.since_version]
    why += filter(None, [_split_sizes(node, target, info)])
    if node.op in _INPUT_ATTRIBUTES:
        why += filter(None, [_inputs_to_attribute(node, target)])
    if node.op in _SOFTMAX:
        why += filter(None, [_softmax_axis(node, target, info)])
    why += _new_attributes(node, old, new)
    why += _attribute_values(node, target)
    why += _per_axis_scales(node, target, info)
    why += _arity(node, old)
    why += _types(node, old, info)
    return why


def _expand_gelu(graph: gs.Graph, target: int, info) -> None:
    """Gelu (opset 20; CANN's plugins register no ai.onnx::*::Gelu key, only npu::1::NPUGeluV2)
    below opset 20, as ONNX's own function body for approximate="none": 0.5 * X * (1 + Erf(X /
    sqrt 2)), with X * (float32) sqrt(1/2) as onnxruntime's Gelu kernel computes it, so the
    outputs stay bit-identical (checked on 2^20 values and +-0, +-inf, NaN). Float32 only; any
    other Gelu is left for _lower to report."""
    if target >= 20:
        return
    for g in _graphs(graph):
        for node in [n for n in g.nodes if n.op == "Gelu" and (n.domain or "") in STANDARD]:
            x, y = node.inputs[0], node.outputs[0]
            if node.attrs.get("approximate", "none") != "none" or info.get(x.name, (0,))[0] != onnx.TensorProto.FLOAT:
                continue
            name = node.name or y.name
            c = {k: gs.Constant(f"{name}.{k}", np.array(v, np.float32))
                 for k, v in (("sqrt_half", np.sqrt(0.5)), ("one", 1.0), ("half", 0.5))}
            scaled, erf, phi, half_x = (gs.Variable(f"{name}.{k}", dtype=np.float32)
                                        for k in ("scaled", "erf", "phi", "half_x"))
            node.outputs.clear()
            node.inputs.clear()
            g.nodes += [gs.Node("Mul", f"{name}.mul", inputs=[x, c["sqrt_half"]], outputs=[scaled]),
                        gs.Node("Erf", f"{name}.erf", inputs=[scaled], outputs=[erf]),
                        gs.Node("Add", f"{name}.add", inputs=[erf, c["one"]], outputs=[phi]),
                        gs.Node("Mul", f"{name}.half", inputs=[c["half"], x], outputs=[half_x]),
                        gs.Node("Mul", f"{name}.out", inputs=[half_x, phi], outputs=[y])]
        g.cleanup().toposort()


def _lower(graph: gs.Graph, target: int) -> None:
    """Relabel every standard node from the graph's opset down to `target`, or fail listing
    each node that cannot be expressed there and why."""
    source = _standard_opset(graph)
    info = _tensor_info(graph)
    _expand_gelu(graph, target, info)
    problems = []
    for node in _nodes(graph):
        if (node.domain or "") in STANDARD:
            why = _lower_node(node, source, target, info)
            if why:
                problems.append(f"{_who(node)}: {', '.join(why)}")
    if problems:
        raise PassError(f"atc: these nodes cannot be expressed at opset {target}", problems)
    _set_imports(graph, ("", target))


# ---------------------------------------------------------------- layout


def _standard_limit(graph: gs.Graph) -> tuple[int, list[str]] | None:
    """(highest opset, the nodes) when the graph has ops CANN registers at ai.onnx opsets only."""
    limit, who = None, []
    for node in _nodes(graph):
        found = STANDARD_DOMAIN_OPS.get((node.domain or "", node.op))
        if found is not None:
            limit = min(limit or 99, max(found[1]))
            who.append(_who(node))
    return None if limit is None else (limit, who)


def _lay_out(graph: gs.Graph, layout: str, opset: int) -> tuple[set[str], dict[str, str]]:
    """Move nodes into the layout's domains and names; the keys used and the origin map."""
    keys, origin, problems = set(), {}, []
    for node in _nodes(graph):
        domain = node.domain or ""
        if domain in CUSTOM:
            version = CUSTOM[domain][node.op].version
            portable = f"{domain}::{node.op}"
            node.op = ATC_NAMES.get((layout, domain, node.op), node.op)
            if (domain, node.op) in STANDARD_DOMAIN_OPS:  # ai.onnx::<opset>::<op> in both layouts
                node.domain, version = ("" if layout == "default" else "ai.onnx"), opset
            elif layout == "default":
                node.domain, version = "", opset
                if _schema(node.op, opset) is not None:
                    problems.append(f"{_who(node)}: {portable} would be read as the standard "
                                    f"{node.op} in the default domain")
            k = key(node.domain, version, node.op)
            origin[f"{node.domain or 'ai.onnx'}::{node.op}"] = portable
            keys.add(k)
            if k not in KNOWN_KEYS:
                problems.append(f"{_who(node)}: key {k} is registered neither by CANN nor by "
                                "onnx_npuq's custom ops")
        else:
            node.domain = "ai.onnx" if layout == "domain" else ""
    if problems:
        raise PassError(f"atc: no ATC parser for these nodes in the {layout} layout", problems)
    _set_imports(graph, ("ai.onnx", opset) if layout == "domain" else ("", opset))
    return keys, origin


# ---------------------------------------------------------------- the passes


@register("atc", exact=True)
def atc(graph: gs.Graph, ctx) -> None:
    """Lay the model out for Huawei's ATC (options: layout=default|domain, opset=11..18)."""
    layout, opset = _options(ctx.options)
    _restore(graph, ctx.metadata)  # an ATC-layout input starts again from its portable form
    _check_custom(graph)
    limit = _standard_limit(graph)
    if limit is not None and opset > limit[0]:
        if "opset" in ctx.options:
            raise PassError(f"atc: CANN registers these ops at ai.onnx opsets up to {limit[0]} only, "
                            f"not {opset} (STANDARD_DOMAIN_OPS)", limit[1])
        ctx.note(f"opset {limit[0]} instead of {opset}: CANN registers {', '.join(limit[1][:3])} "
                 f"at ai.onnx opsets up to {limit[0]} only")
        opset = limit[0]
    _drop_functions(graph, ctx)
    source = _standard_opset(graph)
    if source < opset:
        _upgrade(graph, opset)
    elif source > opset:
        _lower(graph, opset)
    if to_atc_form(graph, lambda: _tensor_info(graph)):  # (int8 Conv / Gemm: not expressible at any opset)
        graph.cleanup()
    keys, origin = _lay_out(graph, layout, opset)
    ctx.metadata.update({
        LAYOUT_KEY: layout,
        KEYS_KEY: ",".join(sorted(keys)),
        OPSET_KEY: str(opset),
        ORIGIN_KEY: ",".join(f"{k}={v}" for k, v in sorted(origin.items())),
    })
    ctx.note(f"layout {layout}, opset {source} -> {opset}; keys: {', '.join(sorted(keys)) or 'none'}")
    unregistered = sorted({n.op for n in _nodes(graph) if n.op in _UNREGISTERED})
    if unregistered:
        ctx.note(f"{', '.join(unregistered)}: no CANN plugin registers it at any opset (ATC stops with "
                 "E19010; onnx-npuq check lists them)")


@register("portable", exact=True)
def portable(graph: gs.Graph, ctx) -> None:
    """Undo `atc`: portable domains and op names, opset 21, function bodies back (CPU runtimes)."""
    if LAYOUT_KEY not in ctx.metadata:
        return  # already portable
    _restore(graph, ctx.metadata)
    for k in METADATA_KEYS:
        ctx.metadata.pop(k, None)
    if _standard_opset(graph) < PORTABLE_OPSET:
        _upgrade(graph, PORTABLE_OPSET)


def to_portable(model: onnx.ModelProto, data_dir=None) -> onnx.ModelProto:
    """A runnable copy of an ATC-layout model (pipeline._runnable verifies with it). Not
    verified itself: verification would run this again."""
    from .pipeline import run_pass

    return run_pass(model, "portable", verify=False, data_dir=data_dir)[0]


# ---------------------------------------------------------------- checking an ATC-layout model


def proto_nodes(g: onnx.GraphProto):
    for n in g.node:
        yield n
        for a in n.attribute:
            for sub in [a.g] * (a.type == onnx.AttributeProto.GRAPH) + list(a.graphs):
                yield from proto_nodes(sub)


def layout_problems(model: onnx.ModelProto) -> list[str]:
    meta = {p.key: p.value for p in model.metadata_props}
    layout, opset = meta.get(LAYOUT_KEY), meta.get(OPSET_KEY, "")
    if layout not in LAYOUTS or not opset.isdigit():
        return [f"metadata {LAYOUT_KEY}={layout!r}, {OPSET_KEY}={opset!r}: not an ATC layout"]
    opset, origin = int(opset), origin_map(meta)
    imports = sorted((o.domain, o.version) for o in model.opset_import)
    problems = []
    if layout == "default" and imports != [("", opset)]:
        problems.append(f"opset_import {imports}: the default layout has exactly ('', {opset})")
    if layout == "domain" and (("ai.onnx", opset) not in imports or any(d == "" for d, _ in imports)):
        problems.append(f"opset_import {imports}: the domain layout has ('ai.onnx', {opset}) and no ''")
    if model.functions:
        problems.append(f"{len(model.functions)} model-local functions: ATC reads none")
    versions = dict(imports)
    keys = set()
    for n in proto_nodes(model.graph):
        who = f"{n.name or '<unnamed>'} ({n.op_type})"
        if n.overload:
            problems.append(f"{who}: overload {n.overload!r}")
        allowed = ("",) if layout == "default" else ("ai.onnx", *CUSTOM)
        if n.domain not in allowed:
            problems.append(f"{who}: domain {n.domain!r} in the {layout} layout")
        if f"{n.domain or 'ai.onnx'}::{n.op_type}" in origin:
            k = key(n.domain, versions.get(n.domain or "", 0), n.op_type)
            keys.add(k)
            if k not in KNOWN_KEYS:
                problems.append(f"{who}: key {k} has no known parser")
    recorded = set(filter(None, meta.get(KEYS_KEY, "").split(",")))
    if recorded != keys:
        problems.append(f"metadata {KEYS_KEY} lists {sorted(recorded)}, the nodes use {sorted(keys)}")
    return problems


def checker_view(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph, same opset, with portable domains and names: what onnx.checker takes."""
    view = onnx.ModelProto()
    view.CopyFrom(model)
    meta = {p.key: p.value for p in model.metadata_props}
    origin, opset = origin_map(meta), int(meta[OPSET_KEY])
    for n in proto_nodes(view.graph):
        n.domain, n.op_type = _portable_name(n.domain, n.op_type, origin)
    used = sorted({n.domain for n in proto_nodes(view.graph)} & set(CUSTOM))
    del view.opset_import[:]
    view.opset_import.extend([helper.make_opsetid("", opset), *_custom_imports(used)])
    if any(n.op_type == "AscendQuant" for n in view.graph.node):  # int8 Conv / Gemm: the integer ops
        graph = gs.import_onnx(view)
        from_atc_form(graph)
        new = gs.export_onnx(graph.cleanup().toposort(), do_type_check=False)
        new.ir_version = view.ir_version
        del new.opset_import[:]
        new.opset_import.extend(view.opset_import)
        view = new
    return view


def check(model: onnx.ModelProto) -> None:
    """Validate an ATC-layout model (what finish() should run instead of onnx.checker, which
    accepts neither layout): the layout rules, then the full onnx checker on checker_view."""
    problems = layout_problems(model)
    if problems:
        raise PassError("not a valid ATC-layout model", problems)
    # inferred afresh: finish()'s inference stops at every node it has no schema for
    view = onnx.shape_inference.infer_shapes(checker_view(checker_copy(model, LARGE_TENSOR_BYTES)),
                                             data_prop=True)
    onnx.checker.check_model(view, full_check=True)
