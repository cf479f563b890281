"""The parts of onnx_npuq import each other one way only (docs/architecture.md).

A part is a subpackage or a top-level module of onnx_npuq ("onnx_npuq" itself is the package
facade, onnx_npuq/__init__.py). Every import counts, inside functions too, relative ones
resolved: each part may import only parts listed before it in LAYERS. Pure ast, no imports.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "onnx_npuq"

# Lowest first. A part may import any part before it, none after it.
LAYERS = (
    "_version",  # the version string
    "errors",    # typed errors (ModelError, AtcError, ...)
    "models",    # example torch models: import nothing of onnx_npuq
    "soc",       # the SoC table (atc.soc is an alias)
    "formats",   # bit-exact codecs: the numerics' source of truth
    "npu",       # torch_npu CPU references
    "proto",     # protobuf size limits, layout key, weight-free checker copies
    "ops",       # every op defined once (schema, torch op, lowering, ORT body, ATC names)
    "io",        # the safe loader / checker (checks custom nodes against ops), atomic writes
    "runtime",   # onnxruntime and ACL sessions, compare / verify
    "nn",        # quantized layers, recipes, quantize_model
    "qtype",     # quant_cy-compatible entry points
    "passes",    # graph passes (verified with runtime)
    "exporter",  # torch -> ONNX
    "atc",       # ATC command, preflight, layer report
    "report",    # the demo's report tables
    "onnx_npuq",  # the package facade (onnx_npuq/__init__.py)
    "demo",      # the end-to-end demo
    "cli",       # click commands
)


def _module(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_pkg else parts), is_pkg


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT.parent / rel).with_suffix(".py").is_file() or (ROOT.parent / rel / "__init__.py").is_file()


def _part(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "onnx_npuq"


def _imports(path: Path, source: str | None = None) -> list[tuple[str, int]]:
    """(imported module, line) of every onnx_npuq import in the file, relative ones resolved;
    `from pkg import name` counts as pkg.name when that is a module."""
    mod, is_pkg = _module(path)
    package = mod if is_pkg else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.append((sub if _is_module(sub) else target, node.lineno))
    return [(t, line) for t, line in out if t == "onnx_npuq" or t.startswith("onnx_npuq.")]


def part_graph(extra: dict[Path, str] | None = None) -> dict[tuple[str, str], list[str]]:
    """(importing part, imported part) -> the 'module:line' places it happens."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        mod, _ = _module(path)
        for target, line in _imports(path, (extra or {}).get(path)):
            a, b = _part(mod), _part(target)
            if a != b:
                edges.setdefault((a, b), []).append(f"{mod}:{line}")
    return edges


def find_cycle(edges) -> list[str] | None:
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def upward(edges) -> list[str]:
    rank = {p: i for i, p in enumerate(LAYERS)}
    return [f"{a} -> {b} ({', '.join(where[:3])})" for (a, b), where in sorted(edges.items())
            if rank[a] < rank[b]]


def test_every_part_has_a_layer():
    parts = {_part(_module(p)[0]) for p in ROOT.rglob("*.py")}
    assert parts == set(LAYERS), f"parts missing from LAYERS: {sorted(parts - set(LAYERS))}, " \
                                 f"stale in LAYERS: {sorted(set(LAYERS) - parts)}"


def test_no_import_cycle_between_parts():
    cycle = find_cycle(part_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_go_down_the_layers():
    bad = upward(part_graph())
    assert not bad, "imports of a higher layer:\n" + "\n".join(bad)


@pytest.mark.parametrize("where, line", [
    ("formats/__init__.py", "    from ..ops import defs\n"),  # function-local counts
    ("io/loader.py", "from ..passes.atc import origin_map\n"),
    ("npu/_common.py", "from onnx_npuq.ops import npu_ops\n"),
])
def test_a_planted_upward_import_is_caught(where, line):
    path = ROOT / where
    source = path.read_text() + ("\n\ndef _planted():\n" + line if line.startswith(" ") else "\n" + line)
    edges = part_graph({path: source})
    assert upward(edges), f"{where}: {line.strip()} not reported"
    if where == "io/loader.py":  # io -> passes -> io: a cycle too
        assert find_cycle(edges) is not None
