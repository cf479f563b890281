"""How the custom ops are named in an ATC layout (passes.atc writes it; io, atc and the
layer report read it back): the op definitions' side of the layout, below every reader."""
from __future__ import annotations

from . import defs, npu_ops

ORIGIN_KEY = "onnx_npuq.atc_origin"  # "<atc domain>::<atc op>=<domain>::<op>", comma-separated
CUSTOM = {defs.DOMAIN: defs.OPS, npu_ops.DOMAIN: npu_ops.OPS}  # domain -> {op: OpDef}

# The ATC op name of a custom op where it differs from ours, per layout: CANN registers
# WeightQuantBatchMatmulV2 (not NPUWeightQuantBatchMatmulV2) in the npu domain.
ATC_NAMES = {("domain", npu_ops.DOMAIN, "NPUWeightQuantBatchMatmulV2"): "WeightQuantBatchMatmulV2"}


def _default_origin() -> dict[str, str]:
    """ATC name -> portable name of every custom op in either layout, for ATC-layout models
    whose metadata lacks ORIGIN_KEY."""
    out = {}
    for domain, ops in CUSTOM.items():
        for op in ops:
            out[f"ai.onnx::{op}"] = f"{domain}::{op}"
            out[f"{domain}::{ATC_NAMES.get(('domain', domain, op), op)}"] = f"{domain}::{op}"
    return out


def origin_map(metadata: dict) -> dict[str, str]:
    text = metadata.get(ORIGIN_KEY)
    if text is None:
        return _default_origin()
    return dict(item.split("=", 1) for item in text.split(",") if item)


def portable_name(domain: str, op: str, origin: dict[str, str]) -> tuple[str, str]:
    """(domain, op) of a node of an ATC layout in the portable model."""
    name = origin.get(f"{domain or 'ai.onnx'}::{op}")
    if name is not None:
        d, o = name.split("::", 1)
        return d, o
    return ("" if domain == "ai.onnx" else domain), op
