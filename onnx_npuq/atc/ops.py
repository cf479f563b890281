"""The standard ONNX ops CANN's ATC has parsers for, by opset version (onnx_ops.json; its
"_about" says where each entry comes from and what is uncertain)."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class OnnxOp:
    name: str
    documented: frozenset[int]  # versions a CANN source states
    inferred: frozenset[int]  # versions assumed (see onnx_ops.json "_about"): reported as unconfirmed
    sources: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.name}: documented v{_ranges(self.documented)}" + (
            f", inferred v{_ranges(self.inferred)}" if self.inferred else "")


def _ranges(versions) -> str:
    v = sorted(versions)
    if not v:
        return "-"
    parts, start = [], v[0]
    for a, b in zip(v, v[1:] + [None]):
        if b != a + 1:
            parts.append(str(start) if start == a else f"{start}..{a}")
            start = b
    return ",".join(parts)


@functools.cache
def onnx_ops() -> dict[str, OnnxOp]:
    """op name -> OnnxOp, from onnx_npuq/atc/onnx_ops.json."""
    text = resources.files(__package__).joinpath("onnx_ops.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return {name: OnnxOp(name, frozenset(e["documented"]), frozenset(e["inferred"]), tuple(e["sources"]))
            for name, e in data["ops"].items()}


@functools.cache
def about() -> dict:
    text = resources.files(__package__).joinpath("onnx_ops.json").read_text(encoding="utf-8")
    return json.loads(text)["_about"]
