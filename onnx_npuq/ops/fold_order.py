"""Fold order: a plain onnxruntime session decodes the packed weights a group at a time.

onnxruntime constant-folds every npuq::Dequantize on constants while it creates a session,
and keeps each tensor one optimizer step folds until the step ends. With every weight
decoded in the same step, the session peaks at 2-3.5x the decoded weights (the index, the
products, the Transpose of each). Here the weights are split into groups, and each later
group's codes and scales pass through a gate that opens one step after the group before it
is decoded:

    Size(w of the group before) -> Cast(bool) -> If -> Abs -> QuantizeLinear -> Cast(bool)
    codes, scales -> Where(open, x, x) -> npuq::Dequantize

Both If branches are one DequantizeLinear of a constant, also the branch's output.
onnxruntime folds an If on a constant condition by inlining its branch, whose nodes fold in
the next step; the DequantizeLinear is not folded inside the branch (a DequantizeLinear
folds only as DQ -> X -> QuantizeLinear, and there it is a graph output), but it is once
inlined in front of Abs -> QuantizeLinear. So group k folds in step k. The groups shrink
geometrically (what is decoded stays, the next group's work comes on top), and there are
at most GROUPS: onnxruntime runs at most 10 level-1 steps by default, and a group left
unfolded would decode on every run (tests/test_onnx_bodies.py checks that none is). Each
gate's nodes are a handful of scalars; the Wheres copy the codes (a quarter to an eighth of
the decoded size) and scales once.

In a gated model (opset 15 and newer) each weight's Transpose -> MatMul(a, .) also becomes
Flatten(a) -> Gemm(., w, transB=1) -> Reshape: the folded Transpose was one more full-size
copy of each weight in its group's step (the fp32 export stores its weights transposed
already); Gemm prepacks B as MatMul does, and the products are the same bit for bit.

The gates change no value. The exporter adds them; every pass removes them first
(passes.graph.remove_gates, the Gemms back to Transpose -> MatMul) and the pipeline adds
them back to what it writes, so the passes see Dequantize -> Transpose -> MatMul on
constants, and ATC layouts (our NPU ops) get none.
"""
from __future__ import annotations

import numpy as np
import onnx

from .defs import DOMAIN

PREFIX = "npuq.fold_order"
GEMM = f"{PREFIX}.gemm"  # the Transpose -> MatMul of a packed weight, as Gemm(transB=1)
# names of the Gemm form: the Flatten's (GEMM_T) and Gemm's (GEMM_M) carry the Transpose's and
# MatMul's names (`carried`), the Flatten's output the Transpose's output (GEMM_A + it), the
# Gemm's output GEMM_Y + the MatMul's: what remove_gates needs to write the two nodes again
GEMM_T, GEMM_M, GEMM_A, GEMM_Y = f"{GEMM}.t.", f"{GEMM}.m.", f"{GEMM}.a.", f"{GEMM}.y."


def _carrying(prefix: str, y: str, name: str) -> str:
    return f"{prefix}{y}|{name}"  # unique with the MatMul's output y, even for unnamed nodes


def carried(prefix: str, y: str, node_name: str) -> str:
    """The original node name in `node_name`, a Gemm-form name made for MatMul output `y`."""
    return node_name[len(_carrying(prefix, y, "")):]
GROUPS = 8  # folds in 9 of the 10 level-1 steps onnxruntime runs by default (the first group takes 2)
MIN_BYTES = 2**24  # decoded float32 weights below which the session's own memory dominates
SHRINK = 0.8  # each group's decoded bytes / the one before's (0.6-1.0 measured at 2 GB: 0.8 lowest)


def groups(sizes: list[int], count: int = GROUPS, shrink: float = SHRINK) -> list[int]:
    """The group (0, 1, ...) of each weight, in order: contiguous runs whose shares of the
    total shrink by `shrink` from one group to the next (a weight goes where it starts)."""
    shares = np.cumsum([shrink ** k for k in range(count)])
    bounds = shares / shares[-1]
    starts = np.cumsum([0, *sizes[:-1]]) / (float(sum(sizes)) or 1.0)
    raw = np.searchsorted(bounds, starts, side="right")
    return [int(g) for g in np.cumsum(np.diff(raw, prepend=raw[0]) > 0)]  # numbered without gaps


def _gate(k: int, after: str) -> tuple[list[onnx.NodeProto], str]:
    """Nodes making a bool scalar that becomes constant one folding step after `after` does."""
    name, nodes = f"{PREFIX}.{k}", []

    def node(op, inputs, **attrs):
        out = f"{name}.{len(nodes)}.{op}"
        nodes.append(onnx.helper.make_node(op, inputs, [out], out, **attrs))
        return out

    def branch(tag):
        zero, one = f"{name}.{tag}.zero", f"{name}.{tag}.one"
        dq = onnx.helper.make_node("DequantizeLinear", [zero, one], [f"{name}.{tag}"], f"{name}.{tag}.DequantizeLinear")
        return onnx.helper.make_graph(
            [dq], f"{name}.{tag}", [], [onnx.helper.make_tensor_value_info(f"{name}.{tag}", onnx.TensorProto.FLOAT, [])],
            [onnx.numpy_helper.from_array(np.array(0, np.uint8), zero),
             onnx.numpy_helper.from_array(np.array(1, np.float32), one)])

    cond = node("Cast", [node("Size", [after])], to=onnx.TensorProto.BOOL)
    z = node("If", [cond], then_branch=branch("then"), else_branch=branch("else"))
    opened = node("Cast", [node("QuantizeLinear", [node("Abs", [z]), f"{name}.one", f"{name}.zero"])],
                  to=onnx.TensorProto.BOOL)
    consts = [onnx.helper.make_node("Constant", [], [f"{name}.one"], f"{name}.one",
                                    value=onnx.numpy_helper.from_array(np.array(1, np.float32))),
              onnx.helper.make_node("Constant", [], [f"{name}.zero"], f"{name}.zero",
                                    value=onnx.numpy_helper.from_array(np.array(0, np.uint8)))]
    return consts + nodes, opened


def _decoded_bytes(node: onnx.NodeProto, codes: onnx.TensorProto) -> int:
    length = next((a.i for a in node.attribute if a.name == "length"), 0)
    return int(np.prod(codes.dims[:-1])) * length * 4


def add_gates(model: onnx.ModelProto) -> int:
    """Gate the codes and scales of `model`'s packed weights, in place (see the module doc): the
    npuq::Dequantize nodes whose inputs are all initializers, in node order. Returns the
    number of groups (1: no gate)."""
    graph = model.graph
    consts = {t.name: t for t in graph.initializer}
    for name in {i.name for i in graph.input}:  # an initializer that is also an input can change
        consts.pop(name, None)
    weights = [n for n in graph.node if n.op_type == "Dequantize" and n.domain == DOMAIN and n.input
               and all(not i or i in consts for i in n.input)]
    sizes = [_decoded_bytes(n, consts[n.input[0]]) for n in weights]
    if sum(sizes) < MIN_BYTES:
        return 1
    group_of = dict(zip(map(id, weights), groups(sizes)))  # NodeProtos are unhashable
    nodes, gate, prev = [], None, None
    for node in graph.node:
        g = group_of.get(id(node), 0)
        if g:
            if group_of[id(prev)] != g:
                gate_nodes, gate = _gate(g, prev.output[0])
                nodes += gate_nodes
            for i, name in enumerate(node.input):  # codes and scales: a body may expand either to full size
                if name:
                    kept = f"{PREFIX}.{g}.{node.output[0]}.{i}"  # weights may share an input (a tensor scale)
                    nodes.append(onnx.helper.make_node("Where", [gate, name, name], [kept], kept))
                    node.input[i] = kept
        if id(node) in group_of:
            prev = node
        nodes.append(node)
    before = {o for n in nodes for o in n.output}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset >= 15:  # Shape(start, end)
        nodes = _untransposed(nodes, {id(n) for n in weights}, {o.name for o in graph.output} | _subgraph_reads(nodes))
    gone = before - {o for n in nodes for o in n.output}  # the Transposes' outputs
    kept_info = [v for v in graph.value_info if v.name not in gone]
    if len(kept_info) != len(graph.value_info):
        del graph.value_info[:]
        graph.value_info.extend(kept_info)
    if len(nodes) != len(graph.node):
        copies = [onnx.NodeProto() for _ in nodes]
        for c, n in zip(copies, nodes):
            c.CopyFrom(n)
        del graph.node[:]
        graph.node.extend(copies)
    return max(group_of.values(), default=0) + 1


def _untransposed(nodes: list[onnx.NodeProto], weights: set[int], graph_outputs: set[str]) -> list[onnx.NodeProto]:
    """`nodes` with each weight's Dequantize -> Transpose -> MatMul(a, .) as
    Flatten(a) -> Gemm(., w, transB=1) -> Reshape to MatMul's shape: onnxruntime then folds
    no Transpose of the decoded weight (a full-size copy held with the group's others until
    the step ends; the fp32 export has its weights transposed already) and prepacks B as it
    would for MatMul: the same products, bit for bit (tests). Names keep the two nodes' names
    and the Transpose's output for passes.graph.remove_gates."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        for name in n.input:
            readers.setdefault(name, []).append(n)
    swap: dict[int, list[onnx.NodeProto]] = {}
    for dq in (n for n in nodes if id(n) in weights):
        t = [r for r in readers.get(dq.output[0], []) if not r.name.startswith(PREFIX)]  # not a gate's Size
        if len(t) != 1 or not _is_transpose_2d(t[0]) or t[0].output[0] in graph_outputs:
            continue
        mm = readers.get(t[0].output[0], [])
        if len(mm) != 1 or mm[0].op_type != "MatMul" or mm[0].domain or list(mm[0].input[1:]) != [t[0].output[0]]:
            continue
        swap[id(t[0])] = []
        swap[id(mm[0])] = _gemm(t[0], mm[0])
    return [m for n in nodes for m in swap.get(id(n), [n])]


def _subgraph_reads(nodes) -> set[str]:
    """Every name read inside the nodes' subgraphs (an If's branches: outer-scope reads)."""
    out = set()
    for n in nodes:
        for a in n.attribute:
            for g in [a.g] if a.type == onnx.AttributeProto.GRAPH else a.graphs:
                out |= {i for m in g.node for i in m.input} | _subgraph_reads(g.node)
    return out


def stands_for(node: onnx.NodeProto) -> str | None:
    """The name of the MatMul that `node`, a Gemm this module wrote, stands for; else None."""
    if node.op_type != "Gemm" or not node.name.startswith(GEMM_M):
        return None
    return carried(GEMM_M, node.output[0][len(GEMM_Y):], node.name)


def _is_transpose_2d(node: onnx.NodeProto) -> bool:
    perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
    return node.op_type == "Transpose" and not node.domain and perm == [1, 0]


def _gemm(t: onnx.NodeProto, mm: onnx.NodeProto) -> list[onnx.NodeProto]:
    (a, _), (w,), (y,) = mm.input, t.input, mm.output
    a2, y2 = f"{GEMM_A}{t.output[0]}", f"{GEMM_Y}{y}"
    lead, n, shape = f"{GEMM}.lead.{y}", f"{GEMM}.n.{y}", f"{GEMM}.shape.{y}"
    make = onnx.helper.make_node
    return [make("Flatten", [a], [a2], _carrying(GEMM_T, y, t.name), axis=-1),
            make("Gemm", [a2, w], [y2], _carrying(GEMM_M, y, mm.name), transB=1),
            make("Shape", [a], [lead], lead, end=-1),
            make("Shape", [y2], [n], n, start=1),
            make("Concat", [lead, n], [shape], shape, axis=0),
            make("Reshape", [y2, shape], [y], f"{GEMM}.reshape.{y}", allowzero=1)]  # a 0 in shape is a 0
