"""Preflight: what ATC would say about a model's nodes, before ATC runs.

    report = preflight("model.atc.onnx", "Ascend910B1")
    print(report.summary()); print("\\n".join(report.lines()))
    report.full        # every node has a parser, a kernel family and types the SoC has

For each node it builds the parser key ATC builds (Ascend/parser onnx_parser.cc:
"<domain>::<opset version of that domain>::<op_type>", "" spelled "ai.onnx" and resolved only
when the model has exactly one opset_import) and looks it up:

  our keys       passes.atc.OUR_KEYS (onnx_npuq's custom-op package)
  CANN's keys    onnx_op_keys.json: every key the plugins in CANN's open-source operator
                 repositories register (ops.py; one only an experimental/ plugin registers is
                 unconfirmed), anything else missing; "Constant" needs no plugin

and reports, with the error ATC itself would print:
  E19010 (E16002 in older CANN)  "No parser is registered for Op [name, optype [key]]."
  E16005   a default-domain node in a model with more than one opset_import (GE <= 9.1)
  EZ3003   an npuq node on a SoC family custom_ops/ builds no kernels for (it builds ascend910b only)
  EZ3002   a bfloat16 tensor on a SoC without bfloat16 (Ascend310P*, Ascend910A)
  LAYOUT   no / broken ATC layout metadata (the atc pass was not run)
Nothing here can see what only ATC can: op proto / kernel installation (E10501, EZ3003 for
CANN's own ops), attribute limits of an op, compile failures (E20001).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import onnx

from ..ops import defs
from .ops import PARSER_OPS, parser_keys, plugins, ranges, registered_versions
from .soc import CUSTOM_OP_FAMILIES, NO_KERNELS_WHY, soc_info

ERROR, UNCONFIRMED = "error", "unconfirmed"


@dataclass(frozen=True)
class Finding:
    code: str  # E19010, E16005, EZ3003, EZ3002, LAYOUT, UNCONFIRMED
    node: str
    op: str
    key: str
    message: str
    severity: str = ERROR


@dataclass
class Report:
    soc_version: str
    layout: str | None
    opset: int | None
    nodes: int
    keys: Counter = field(default_factory=Counter)  # parser key -> node count
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def unconfirmed(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == UNCONFIRMED]

    @property
    def full(self) -> bool:
        """Every node would parse, and nothing known stands in its way."""
        return not self.errors

    @property
    def covered(self) -> int:
        """Nodes without an error of their own."""
        bad = {f.node for f in self.errors if f.node}
        return self.nodes - len(bad)

    def summary(self) -> str:
        where = f"{self.soc_version}, layout {self.layout or 'none'}" + (f", opset {self.opset}" if self.opset else "")
        head = (f"coverage: {'full' if self.full else 'NOT full'}: {self.covered} of {self.nodes} nodes "
                f"({where})")
        if self.errors:
            head += f"; {len(self.errors)} error(s)"
        if self.unconfirmed:
            head += (f"; {len(self.unconfirmed)} unconfirmed (a key only an experimental plugin registers, or "
                     "a documented limit the node may hit)")
        return head

    def lines(self) -> list[str]:
        """Findings grouped by (code, key, message): one line each, with a node count."""
        groups: dict[tuple, list[Finding]] = {}
        for f in self.findings:
            groups.setdefault((f.severity, f.code, f.key, f.message), []).append(f)
        out = []
        for (severity, code, key, message), fs in sorted(groups.items(), key=lambda kv: (kv[0][0] != ERROR, kv[0][1:])):
            message = message or fs[0].message
            names = [f.node for f in fs if f.node]
            where = ""
            if names:
                where = f" [{len(names)} node(s): {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}]"
            out.append(f"{code} {message}{where}")
        return out


def _nodes(graph: onnx.GraphProto):
    for n in graph.node:
        yield n
        for a in n.attribute:
            subs = [a.g] if a.type == onnx.AttributeProto.GRAPH else []
            for g in [*subs, *a.graphs]:
                yield from _nodes(g)


def _who(node: onnx.NodeProto) -> str:
    return node.name or f"<unnamed {node.op_type}>"


def _types(model: onnx.ModelProto, layout: str | None) -> dict[str, int]:
    """Tensor name -> element type, from a fresh shape inference (of the portable view of an
    ATC-layout model, where the custom ops have schemas)."""
    from ..io import LARGE_TENSOR_BYTES, checker_copy
    from ..passes.atc import checker_view

    view = checker_copy(model, LARGE_TENSOR_BYTES)  # (inference would serialize the weights)
    if layout is not None:
        try:
            view = checker_view(view)
        except Exception:  # noqa: BLE001  broken metadata: reported as LAYOUT; use the model as it is
            pass
    try:
        view = onnx.shape_inference.infer_shapes(view)
    except Exception:  # noqa: BLE001, S110  types then come from what the model declares
        pass
    out = {}
    for v in [*view.graph.input, *view.graph.output, *view.graph.value_info]:
        if v.type.HasField("tensor_type"):
            out[v.name] = v.type.tensor_type.elem_type
    for t in view.graph.initializer:
        out[t.name] = t.data_type
    return out


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _constraints(node: onnx.NodeProto, key: str) -> list[Finding]:
    """Documented op limits that decide whether ATC takes a node (only those read so far)."""
    if node.op_type == "Gemm":
        used = [x for x in ("C" if len(node.input) > 2 and node.input[2] else "",
                            "alpha" if _attr(node, "alpha", 1.0) != 1.0 else "",
                            "beta" if _attr(node, "beta", 1.0) != 1.0 and len(node.input) > 2 else "") if x]
        if used:
            return [Finding("UNCONFIRMED", _who(node), node.op_type, key,
                            f"{key} with {', '.join(used)}: CANN 8.0..9.0 commercial docs (atlasoxol_09_0065) say "
                            "Gemm's C, alpha and beta are 'not supported currently'; the community-edition page "
                            "documents them", UNCONFIRMED)]
    return []


def _layout_findings(model: onnx.ModelProto, meta: dict) -> list[Finding]:
    from ..passes.atc import layout_problems
    from ..passes.pipeline import LAYOUT_KEY

    if LAYOUT_KEY not in meta:
        return [Finding("LAYOUT", "", "", "", "no onnx_npuq.layout metadata: the model was not laid out for ATC "
                        "by the atc pass (onnx-npuq check does it in memory; onnx-npuq rewrite -p atc writes it)")]
    return [Finding("LAYOUT", "", "", "", f"ATC layout rule broken: {p}") for p in layout_problems(model)]


def preflight(model, soc_version: str, data_dir=None) -> Report:
    """Every node ATC would not find a parser / kernel for on `soc_version` (see module doc).
    `data_dir`: where a ModelProto's external data is (checked, not read)."""
    from ..passes.atc import OPSET_KEY, OUR_KEYS
    from ..passes.pipeline import LAYOUT_KEY, load

    soc = soc_info(soc_version)
    model = load(model, data_dir)
    meta = {p.key: p.value for p in model.metadata_props}
    layout = meta.get(LAYOUT_KEY)
    opset = int(meta[OPSET_KEY]) if meta.get(OPSET_KEY, "").isdigit() else None
    imports = {o.domain: o.version for o in model.opset_import}
    nodes = list(_nodes(model.graph))
    report = Report(soc.name, layout, opset, len(nodes))
    report.findings += _layout_findings(model, meta)
    npuq_ops = set(defs.OPS)  # the ops whose kernels custom_ops/ builds (NPUDequantSwigluQuant: CANN's kernel)

    default_domain = [n for n in nodes if n.domain == ""]
    if default_domain and len(model.opset_import) != 1:
        for n in default_domain:
            report.findings.append(Finding(
                "E16005", _who(n), n.op_type, "",
                f"The model has {len(model.opset_import)} --domain_version fields, but only one is allowed: "
                "a default-domain node resolves only with exactly one opset_import (GE <= 9.1; use the atc "
                "pass's default or domain layout)"))

    for n in nodes:
        if n.op_type in PARSER_OPS:
            continue  # onnx_parser.cc maps it to Const itself
        if n.domain == "":
            if len(model.opset_import) != 1:
                continue  # E16005 above
            only = model.opset_import[0]
            domain, version = only.domain or "ai.onnx", only.version
        else:
            domain = n.domain
            if domain not in imports:
                report.findings.append(Finding("E19010", _who(n), n.op_type, f"{domain}::?::{n.op_type}",
                                               f"domain {domain!r} has no opset_import, so ATC has no key for it"))
                continue
            version = imports[domain]
        key = f"{domain}::{version}::{n.op_type}"
        report.keys[key] += 1
        if key in OUR_KEYS:
            if n.op_type in npuq_ops and soc.family not in CUSTOM_OP_FAMILIES:
                report.findings.append(Finding(
                    "EZ3003", _who(n), n.op_type, key,
                    f"No supported Ops kernel and engine are found for optype [{n.op_type}]: "
                    + NO_KERNELS_WHY.get(soc.family, f"onnx_npuq's custom-op package builds kernels for "
                                         f"{', '.join(CUSTOM_OP_FAMILIES)}, not {soc.family}") + f" ({soc.name})"))
            continue
        if plugins(key):
            report.findings += _constraints(n, key)
            continue
        if key in parser_keys():  # registered, but only by experimental/ plugins
            where = "; ".join(p.cite() for p in parser_keys()[key])
            report.findings.append(Finding(
                "UNCONFIRMED", _who(n), n.op_type, key,
                f"{key}: only an experimental plugin registers it ({where}), outside CANN's released op set",
                UNCONFIRMED))
            continue
        versions = registered_versions(domain, n.op_type)
        if versions:
            why = f"CANN's plugins register {domain}::{n.op_type} at opsets {ranges(versions)}, not {version}"
        elif domain in ("ai.onnx", "npu"):
            why = (f"no plugin in CANN's operator repositories registers {n.op_type} in domain {domain} "
                   "(onnx_npuq/atc/onnx_op_keys.json)")
        else:
            why = "neither CANN nor onnx_npuq's custom-op package registers this key (passes.atc.OUR_KEYS)"
        report.findings.append(Finding(
            "E19010", _who(n), n.op_type, key,
            f"No parser is registered for Op [..., optype [{key}]]: {why}"))

    if not soc.bf16:
        types = _types(model, layout)
        for n in nodes:
            bf16 = [t for t in [*n.input, *n.output] if t and types.get(t) == onnx.TensorProto.BFLOAT16]
            if bf16:
                report.findings.append(Finding(
                    "EZ3002", _who(n), n.op_type, "",
                    f"bfloat16 tensors on {soc.name} ({soc.product}), which has no bfloat16 (ATC precision docs: "
                    "bf16 only on Atlas A2/A3, 200I/500 A2, 950): Optype [" + n.op_type + "] is unsupported"))
    return report
