"""quantize_model: swap every weight layer of a model for its quantized form, per a recipe.

    model = quantize_model(model, weights="mxfp4", activations="mxfp8e4m3")
    print(model.npuq_report)        # each layer with its format; what stayed float, and why

| layer | becomes | weight blocked along |
|---|---|---|
| nn.Linear, transformers' Conv1D (GPT-2) | QuantLinear | in_features |
| nn.Conv1d/2d/3d (grouped, depthwise) | QuantConv | in_channels/groups x kernel |
| nn.ConvTranspose1d/2d/3d | QuantConv | in_channels/groups |
| nn.Embedding (only when a recipe rule selects it) | QuantEmbedding | embedding_dim |
| a Linear quantized by torchao (or a torchao QAT linear) | TorchaoLinear: torchao's own codes and scales (nn/torchao.py) | in_features |
"""
from __future__ import annotations

import copy
import gc
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from ..formats.base import FLOAT_DTYPES
from .conv import QuantConv, conv_layout
from .embedding import QuantEmbedding
from .linear import QuantLinear
from .recipe import UNSET, Recipe
from .spec import parse_spec, spec_str
from .torchao import from_torchao, torchao_layers
from .weight import Layout, QuantWeight, fit


class QuantizationError(ValueError):
    """A layer that cannot be quantized as asked; the message names the layer."""


def is_gpt2_conv1d(module: nn.Module) -> bool:
    """transformers' Conv1D (GPT-2's Linear with a transposed weight), without importing it."""
    t = type(module)
    return t.__name__ == "Conv1D" and t.__module__.startswith("transformers") and module.weight.dim() == 2


def kind_of(module: nn.Module) -> str | None:
    """Which quantized layer a module becomes, or None."""
    if isinstance(module, QuantWeight):
        return None
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, _ConvNd):
        return "conv"
    if isinstance(module, nn.Embedding):
        return "embedding"
    if is_gpt2_conv1d(module):
        return "conv1d"
    return None


def is_weight_layer(module: nn.Module) -> bool:
    """A layer quantize_model quantizes, or one it made."""
    return isinstance(module, QuantWeight) or kind_of(module) is not None


def _convert(kind: str, module: nn.Module, w_spec, a_spec) -> QuantWeight:
    if kind == "linear":
        return QuantLinear.from_linear(module, w_spec, a_spec)
    if kind == "conv1d":
        return QuantLinear.from_conv1d(module, w_spec, a_spec)
    if kind == "conv":
        return QuantConv.from_conv(module, w_spec, a_spec)
    return QuantEmbedding.from_embedding(module, w_spec, a_spec)


def _row_layout(kind: str, module: nn.Module, w_spec) -> Layout:
    shape = module.weight.shape
    if kind == "conv":
        return fit(conv_layout(module), parse_spec(w_spec), shape)
    return Layout.rows_of(shape[::-1] if kind == "conv1d" else shape, 1)


def is_weight_bearing(module: nn.Module) -> bool:
    """Whether a module holds a matrix (or larger) parameter of its own."""
    return any(p.dim() >= 2 for p in module.parameters(recurse=False))


@dataclass
class QuantReport:
    """What quantize_model did: `layers` it quantized, weight-bearing modules `left_float`."""

    layers: list[dict] = field(default_factory=list)  # name, type, format, activation, shape, ...
    left_float: list[dict] = field(default_factory=list)  # name, type, reason

    def __str__(self) -> str:
        lines = [f"{len(self.layers)} layers quantized, {len(self.left_float)} weight layers left float"]
        for r in self.layers:
            act = f", activations {r['activation']}" if r["activation"] else ""
            src = f", from {r['source']}" if r.get("source") else ""
            lines.append(f"  {r['name']} ({r['type']} {'x'.join(map(str, r['shape']))}): {r['format']}{act}, "
                         f"{r['layout']}, {r['packed_bytes']} bytes ({r['fp32_bytes']} in fp32){src}")
            if r.get("note"):
                lines.append(f"    {r['note']}")
        lines += [f"  {r['name']} ({r['type']}): float, {r['reason']}" for r in self.left_float]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"layers": self.layers, "left_float": self.left_float}


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, child = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), child


def _unusable(kind: str, module: nn.Module, parent: nn.Module) -> str | None:
    """Why a layer of a known kind cannot be quantized, or None."""
    if isinstance(parent, nn.MultiheadAttention):
        return "inside nn.MultiheadAttention, which reads its .weight instead of calling it"
    w = module.weight
    if w.dtype not in FLOAT_DTYPES:
        return f"weight dtype {w.dtype} is not supported; use float32, float16 or bfloat16"
    if w.numel() == 0:
        return f"cannot quantize an empty weight of shape {tuple(w.shape)}"
    if kind == "embedding" and module.max_norm is not None:
        return "an nn.Embedding with max_norm rewrites its rows at lookup"
    return None


def _probe(name: str, kind: str, module: nn.Module, w_spec, a_spec) -> None:
    """Raise now what quantizing `module` would raise later: the specs, on one zero row of
    the layer's row length and dtype (no format check depends on the row count)."""
    try:
        length = _row_layout(kind, module, w_spec).matrix[1]
        parse_spec(w_spec).encode(torch.zeros(1, length, dtype=module.weight.dtype), axis=1)
        if a_spec is not None:
            parse_spec(a_spec)
    except (ValueError, TypeError) as err:
        raise QuantizationError(f"layer {name!r}: {err}") from err


def _check_rules(model: nn.Module, recipe: Recipe, modules: dict) -> None:
    for i, rule in enumerate(recipe.rules):
        if not any(rule.matches(n, m) for n, m in modules.items() if n):
            raise QuantizationError(f"recipe rule {i} ({rule.describe()}) matches no module of "
                                    f"{type(model).__name__}")


def _plan(model: nn.Module, recipe: Recipe, skip=()) -> tuple[list, list[dict]]:
    """(name, kind, weight spec, activation spec) of every layer to replace, all checked (an
    error leaves the model as it was), and the weight-bearing modules left float, with why.
    Names, not modules: a replaced layer must not be held. Modules in `skip` (torchao's
    layers, which from_torchao reports) and their submodules are not planned."""
    modules = dict(model.named_modules())
    _check_rules(model, recipe, modules)
    planned, left = [], []

    def leave(name, module, reason):
        if recipe.named_explicitly(name):  # asked for by name: an error, not a skip
            raise QuantizationError(f"layer {name!r} ({type(module).__name__}): {reason}")
        left.append({"name": name, "type": type(module).__name__, "reason": reason})

    for name, module in modules.items():
        if not name or isinstance(module, QuantWeight):
            continue
        if name in skip or any(name.startswith(s + ".") for s in skip):
            continue
        kind = kind_of(module)
        if kind is None:
            if is_weight_bearing(module) or recipe.named_explicitly(name):
                leave(name, module, f"unsupported module type {type(module).__name__} (quantizable: "
                                    "Linear, Conv*d, ConvTranspose*d, GPT-2 Conv1D, Embedding; or call "
                                    "quant_dequant_float on its weight in forward)")
            continue
        if recipe.excluded(name):
            left.append({"name": name, "type": type(module).__name__, "reason": "excluded by the recipe"})
            continue
        rule = recipe.rule_for(name, module)
        if kind == "embedding" and rule is None:
            left.append({"name": name, "type": type(module).__name__,
                         "reason": "embeddings are opt-in: select them with a recipe rule (types: [Embedding])"})
            continue
        w_spec, a_spec = recipe.resolve(name, module)
        if w_spec is None:
            left.append({"name": name, "type": type(module).__name__, "reason": "the recipe says weights: null"})
            continue
        if kind == "embedding":
            if rule.activations not in (None, UNSET):
                raise QuantizationError(f"layer {name!r}: an embedding's input is indices, it takes no "
                                        f"activation format (rule {rule.describe()})")
            a_spec = None
        reason = _unusable(kind, module, _parent(model, name)[0])
        if reason:
            leave(name, module, reason)
            continue
        _probe(name, kind, module, w_spec, a_spec)
        planned.append((name, kind, w_spec, a_spec))
    return planned, left


def _row(name: str, kind: str, module: nn.Module, q: QuantWeight) -> dict:
    return {
        "name": name,
        "type": type(module).__name__,
        "format": spec_str(q.weight_format),
        "activation": None if q.act_format is None else spec_str(q.act_format),
        "shape": list(module.weight.shape),
        "layout": q.weight_layout.describe(),
        "fp32_bytes": 4 * module.weight.numel(),
        "packed_bytes": q.weight_bytes,
    }


@torch.no_grad()
def quantize_model(model: nn.Module, weights="mxfp4", activations=None, recipe=None,
                   inplace: bool = True) -> nn.Module:
    """Replace each weight layer of `model` by its quantized form and return the model.

    `weights` / `activations` are the default format specs ("mxfp4", {"format": ...},
    None); a `recipe` (Recipe, dict, YAML text or path) refines them per module name and
    type, and its own `default` overrides these arguments. Embeddings are quantized only
    when a rule selects them. Nothing is replaced unless every layer can be: every layer
    and spec is checked before the model is touched, and a rule that matches no module is
    an error. `model.npuq_report` (a QuantReport) lists each layer quantized and each
    weight-bearing module left float with the reason; modules left float for a reason
    other than the recipe's are also named in one warning.

    Layers are converted one at a time, in module order, and each float layer is dropped as
    soon as its replacement is in place: once nothing else holds it (a tied weight, an
    optimizer, a reference of the caller's), its float weight is freed before the next
    layer is encoded, so peak memory stays near the float model's size plus one layer's
    temporaries. `inplace=False` quantizes a deep copy, which needs the float model twice.
    An error while encoding (out of memory) leaves the layers before it converted.

    Layers torchao has quantized (a torchao tensor as weight, or a torchao QAT linear) keep
    torchao's codes and scales: from_torchao swaps them (report rows with `source`
    "torchao ...", and a `note` where torchao's activation quantization is left out); the
    recipe does not apply to them.
    """
    recipe = Recipe.load(recipe).with_defaults(weights, activations)
    if not inplace:
        model = copy.deepcopy(model)

    skip = torchao_layers(model)
    planned, left = _plan(model, recipe, set(skip))
    torchao = from_torchao(model, skip) if skip else None  # warns about what it leaves
    # Reference cycles (a traced graph's, say) may hold float weights until the cyclic
    # collector happens to run, which the loop below does not trigger: collect them now.
    gc.collect()
    report = QuantReport(left_float=left)
    if torchao is not None:
        report.layers += torchao.layers
        report.left_float[:0] = torchao.left_float
    for name, kind, w_spec, a_spec in planned:
        parent, child = _parent(model, name)
        module = getattr(parent, child)
        try:
            q = _convert(kind, module, w_spec, a_spec)
        except (ValueError, TypeError) as err:  # the probe passed: not expected
            raise QuantizationError(f"layer {name!r}: {err}") from err
        q.train(module.training)
        setattr(parent, child, q)
        report.layers.append(_row(name, kind, module, q))
        del module, q  # the last references we hold: the float weight goes now, not at the end

    unexpected = [r for r in left if not r["reason"].startswith(("excluded", "the recipe", "embeddings"))]
    if unexpected:
        names = ", ".join(f"{r['name']} ({r['type']})" for r in unexpected[:5])
        more = f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else ""
        warnings.warn(f"onnx_npuq: {len(unexpected)} weight layers left float: {names}{more}; "
                      "see model.npuq_report for why", stacklevel=3)  # quantize_model, no_grad's wrapper
    # A second call (e.g. another recipe for the remaining layers) adds to the report.
    previous = getattr(model, "npuq_report", None)
    if isinstance(previous, QuantReport):
        report.layers[:0] = previous.layers
    model.npuq_report = report
    model.npuq_summary = report.layers  # the earlier name of the layer list
    return model


def quantize_(model: nn.Module, weights="mxfp4", activations=None, recipe=None) -> QuantReport:
    """torchao-style: quantize `model` in place (as quantize_model) and return the report."""
    return quantize_model(model, weights, activations, recipe).npuq_report


__all__ = ["quantize_model", "quantize_", "QuantizationError", "QuantReport", "is_weight_layer"]
