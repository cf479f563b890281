"""Checks of a model's versions (IR, opset_import) and graph structure (SSA, dangling
names, cycles, outputs).
"""
from __future__ import annotations

import onnx

from ..errors import ModelError
from .tensors import _subgraphs


MIN_IR_VERSION = 3  # the first IR with opset_import

# ------------------------------------------------------------------ versions and graph


def _check_versions(model: onnx.ModelProto) -> None:
    ir = model.ir_version
    if ir < MIN_IR_VERSION:
        raise ModelError(f"IR version {ir} is not supported (at least {MIN_IR_VERSION}, "
                         "the first with opset_import; 0 means the field is missing)")
    if ir > onnx.IR_VERSION:
        raise ModelError(f"IR version {ir} is newer than this onnx ({onnx.__version__}) reads "
                         f"(at most {onnx.IR_VERSION})")
    if not model.opset_import:
        raise ModelError("the model has no opset_import (which operator set versions its nodes use)")
    _check_imports(model.opset_import, "opset_import")
    for f in model.functions:
        _check_imports(f.opset_import, f"function {f.domain}::{f.name} opset_import")


def _check_imports(imports, where: str) -> None:
    seen = set()
    newest = onnx.defs.onnx_opset_version()
    for o in imports:
        domain = "" if o.domain == "ai.onnx" else o.domain
        if domain in seen:
            raise ModelError(f"{where}: domain {o.domain or 'ai.onnx'!r} is listed twice")
        seen.add(domain)
        if o.version < 1:
            raise ModelError(f"{where}: domain {o.domain or 'ai.onnx'!r} version {o.version} (versions start at 1)")
        if domain == "" and o.version > newest:
            raise ModelError(f"{where}: opset {o.version} of the standard domain is newer than this onnx "
                             f"({onnx.__version__}) knows (at most {newest})")


def _who(n: onnx.NodeProto) -> str:
    return f"node {n.name or '<unnamed>'} ({n.domain + '::' if n.domain else ''}{n.op_type})"


def _cycle(nodes, producer: dict[str, int]) -> list[int] | None:
    """Indices of the nodes on one dependency cycle, or None."""
    deps = [[producer[i] for i in n.input if i in producer] for n in nodes]
    state = [0] * len(nodes)  # 0 new, 1 on the stack, 2 done
    for start in range(len(nodes)):
        if state[start]:
            continue
        stack, path = [(start, iter(deps[start]))], [start]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state[nxt] == 1:
                return path[path.index(nxt):] + [nxt]
            elif state[nxt] == 0:
                state[nxt] = 1
                stack.append((nxt, iter(deps[nxt])))
                path.append(nxt)
    return None


def _check_graph(g: onnx.GraphProto, outer: set[str], where: str) -> None:
    """SSA (each name assigned once), every node input produced somewhere (no dangling
    names), no cycles, graph outputs produced; subgraphs see the names of the scopes around
    them. Node order is left to onnx.checker (the passes sort the graph anyway), domains and
    their opset_import too (the ATC preflight reports those)."""
    defined: dict[str, str] = {}
    for v in g.input:
        if not v.name:
            raise ModelError(f"{where}a graph input has no name")
        if v.name in defined:
            raise ModelError(f"{where}graph input {v.name!r} is listed twice")
        defined[v.name] = "a graph input"
    for t in list(g.initializer) + [s.values for s in g.sparse_initializer]:
        if t.name in defined and defined[t.name] != "a graph input":
            raise ModelError(f"{where}initializer {t.name!r} is defined twice")
        defined[t.name] = "an initializer"
    producer: dict[str, int] = {}
    for idx, n in enumerate(g.node):
        if not n.op_type:
            raise ModelError(f"{where}{_who(n)} has no op_type")
        for o in n.output:
            if not o:
                continue
            if o in producer:
                raise ModelError(f"{where}tensor {o!r} is the output of both {_who(g.node[producer[o]])} and "
                                 f"{_who(n)} (a graph assigns each name once)")
            if o in defined:
                raise ModelError(f"{where}{_who(n)} outputs {o!r}, which is already {defined[o]}")
            producer[o] = idx
    visible = set(outer) | set(defined) | set(producer)
    for n in g.node:
        for i in n.input:
            if i and i not in visible:
                raise ModelError(f"{where}{_who(n)} reads {i!r}, which no node, graph input or initializer produces")
        for a in n.attribute:
            for sub in _subgraphs(a):
                _check_graph(sub, visible, f"{where}subgraph {sub.name!r} of {_who(n)}: ")
    cycle = _cycle(g.node, producer)
    if cycle:
        raise ModelError(f"{where}the graph has a cycle: {' -> '.join(_who(g.node[c]) for c in cycle)}")
    for v in g.output:
        if v.name not in visible:
            raise ModelError(f"{where}graph output {v.name!r} is produced by no node, input or initializer")
