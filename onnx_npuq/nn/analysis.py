"""How much quantization costs, layer by layer: a float model against its quantized copy.

    errors = layer_errors(float_model, quantized_model, (input_ids,))
    for e in errors: print(e.name, e.weight_snr_db, e.output_snr_db)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .quantize import kind_of
from .spec import spec_str
from .weight import QuantWeight


@dataclass(frozen=True)
class LayerError:
    """One quantized layer: its weight and its output against the float model's, as
    signal-to-noise ratios in dB (higher is better; inf when identical) and cosine."""

    name: str
    format: str
    weight_snr_db: float
    output_snr_db: float
    output_cosine: float


def snr_db(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """10 log10(|ref|^2 / |ref - approx|^2), computed in float64."""
    r, a = reference.detach().double().flatten(), approx.detach().double().flatten()
    noise = (r - a).pow(2).sum().item()
    signal = r.pow(2).sum().item()
    if noise == 0:
        return math.inf
    if signal == 0:
        return -math.inf
    return 10 * math.log10(signal / noise)


def _outputs(model: nn.Module, names: list[str], args: tuple) -> dict[str, torch.Tensor]:
    modules = dict(model.named_modules())
    seen: dict[str, torch.Tensor] = {}
    hooks = [modules[n].register_forward_hook(lambda _m, _i, out, n=n: seen.__setitem__(n, out.detach()))
             for n in names]
    try:
        with torch.no_grad():
            model.eval()(*args)
    finally:
        for h in hooks:
            h.remove()
    return seen


def layer_errors(float_model: nn.Module, quantized_model: nn.Module, args: tuple) -> list[LayerError]:
    """Every quantized layer of `quantized_model` against the same-named layer of `float_model`,
    both run on `args` (each layer sees its own model's inputs, so errors accumulate as
    they would in deployment)."""
    floats = dict(float_model.named_modules())
    quant = [(n, m) for n, m in quantized_model.named_modules() if isinstance(m, QuantWeight)]
    missing = [n for n, _ in quant if floats.get(n) is None or kind_of(floats[n]) is None]
    if missing:
        raise ValueError(f"the float model has no weight layer named {missing[0]!r}: not the same architecture")
    names = [n for n, _ in quant]
    ref, got = _outputs(float_model, names, args), _outputs(quantized_model, names, args)
    out = []
    for name, q in quant:
        w = floats[name].weight
        if kind_of(floats[name]) == "conv1d":  # GPT-2's (in, out) weight; QuantLinear holds (out, in)
            w = w.t()
        out.append(LayerError(
            name, spec_str(q.weight_format),
            snr_db(w, q.dequantized_weight().to(w.dtype)),
            snr_db(ref[name], got[name]),
            torch.nn.functional.cosine_similarity(ref[name].double().flatten(), got[name].double().flatten(),
                                                  dim=0).item(),
        ))
    return out
