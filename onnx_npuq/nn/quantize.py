"""quantize_model: swap every nn.Linear of a model for a QuantLinear, per a recipe."""
from __future__ import annotations

import copy
import gc
import warnings

import torch
from torch import nn

from .. import formats
from ..formats.base import FLOAT_DTYPES
from .linear import WEIGHT_AXIS, QuantLinear, parse_spec, spec_str
from .recipe import Recipe, is_glob


class QuantizationError(ValueError):
    """A layer that cannot be quantized as asked; the message names the layer."""


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, child = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), child


def _check(name: str, module: nn.Module, parent: nn.Module, recipe: Recipe) -> bool:
    """Whether `module` is a Linear we can replace; raises for what a recipe names but
    cannot be done."""
    explicit = recipe.named_explicitly(name)
    if not isinstance(module, nn.Linear):
        if explicit:
            raise QuantizationError(
                f"unsupported module type {type(module).__name__} at {name!r}: "
                "only nn.Linear layers can be quantized"
            )
        return False
    if isinstance(parent, nn.MultiheadAttention):
        # MHA reads out_proj.weight directly instead of calling out_proj: a swap breaks it.
        if explicit:
            raise QuantizationError(
                f"unsupported layer {name!r}: the out_proj of nn.MultiheadAttention is "
                "used through its .weight, not called"
            )
        warnings.warn(f"onnx_npuq: leaving {name!r} (inside nn.MultiheadAttention) unquantized",
                      stacklevel=5)  # _check, _plan, quantize_model, no_grad's wrapper, caller
        return False
    w = module.weight
    if w.dtype not in FLOAT_DTYPES:
        raise QuantizationError(
            f"layer {name!r}: weight dtype {w.dtype} is not supported; "
            "use float32, float16 or bfloat16"
        )
    if module.in_features == 0 or module.out_features == 0:
        raise QuantizationError(
            f"layer {name!r}: cannot quantize an empty weight of shape {tuple(w.shape)}"
        )
    return True


def _probe(name: str, module: nn.Linear, w_spec, a_spec) -> None:
    """Raise now what quantizing `module` would raise later: the specs, on a one-row weight
    of the layer's width and dtype (no format check depends on the row count)."""
    try:
        row = torch.zeros(1, module.in_features, dtype=module.weight.dtype)
        QuantLinear(formats.encode(row, parse_spec(w_spec), axis=WEIGHT_AXIS), None, a_spec)
    except (ValueError, TypeError) as err:
        raise QuantizationError(f"layer {name!r}: {err}") from err


def _plan(model: nn.Module, recipe: Recipe) -> list[tuple[str, object, object]]:
    """(name, weight spec, activation spec) of every Linear to replace, all checked: an
    error leaves the model as it was. Names, not modules: a replaced Linear must not be held."""
    modules = dict(model.named_modules())
    for glob in dict.fromkeys(g for r in recipe.rules for g in r.match):
        if not is_glob(glob) and glob not in modules:  # likely a typo
            warnings.warn(f"onnx_npuq: recipe rule {glob!r} names no module", stacklevel=4)  # the caller
    planned = []
    for name, module in modules.items():
        if not name:
            continue
        w_spec, a_spec = recipe.resolve(name)
        if w_spec is None:
            continue  # excluded, or its rule says weights: null
        parent, _ = _parent(model, name)
        if not _check(name, module, parent, recipe):
            continue
        _probe(name, module, w_spec, a_spec)
        planned.append((name, w_spec, a_spec))
    return planned


@torch.no_grad()
def quantize_model(model: nn.Module, weights="mxfp4", activations=None, recipe=None,
                   inplace: bool = True) -> nn.Module:
    """Replace each nn.Linear of `model` by a QuantLinear and return the model.

    `weights` / `activations` are the default format specs ("mxfp4", {"format": ...},
    None); a `recipe` (Recipe, dict, YAML text or path) refines them per module name, and
    its own `default` overrides these arguments. Nothing is replaced unless every layer
    can be: every layer and spec is checked before the model is touched. The layers replaced
    are listed in `model.npuq_summary`.

    Layers are converted one at a time, in module order, and each nn.Linear is dropped as
    soon as its QuantLinear is in place: once nothing else holds it (a tied weight, an
    optimizer, a reference of the caller's), its float weight is freed before the next
    layer is encoded, so peak memory stays near the float model's size plus one layer's
    temporaries. `inplace=False` quantizes a deep copy, which needs the float model twice.
    An error while encoding (out of memory) leaves the layers before it converted.
    """
    recipe = Recipe.load(recipe).with_defaults(weights, activations)
    if not inplace:
        model = copy.deepcopy(model)

    planned = _plan(model, recipe)
    # Reference cycles (a traced graph's, say) may hold float weights until the cyclic
    # collector happens to run, which the loop below does not trigger: collect them now.
    gc.collect()
    summary = []
    for name, w_spec, a_spec in planned:
        parent, child = _parent(model, name)
        linear = getattr(parent, child)
        try:
            q = QuantLinear.from_linear(linear, w_spec, a_spec)
        except (ValueError, TypeError) as err:  # the probe passed: not expected
            raise QuantizationError(f"layer {name!r}: {err}") from err
        q.train(linear.training)
        setattr(parent, child, q)
        del linear  # the last reference we hold: its weight goes now, not at the end
        summary.append({
            "name": name,
            "format": spec_str(q.weight_format),
            "activation": None if q.act_format is None else spec_str(q.act_format),
            "in": q.in_features,
            "out": q.out_features,
            "fp32_bytes": 4 * q.in_features * q.out_features,
            "packed_bytes": q.weight_bytes,
        })
        del q
    # A second call (e.g. another recipe for the remaining layers) adds to the summary.
    model.npuq_summary = list(getattr(model, "npuq_summary", [])) + summary
    return model


quantize_ = quantize_model  # torchao-style name

__all__ = ["quantize_model", "quantize_", "QuantizationError"]
