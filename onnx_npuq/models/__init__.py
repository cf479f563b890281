"""Built-in models: small, self-contained, no download (`onnx-npuq demo`, tests, examples).

    model = onnx_npuq.models.get("tiny-llama")      # input_ids (batch, seq) -> logits
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .decoder import DecoderConfig, TinyDecoder

BUILTIN: dict[str, Callable[[], torch.nn.Module]] = {
    "tiny-llama": lambda: TinyDecoder(DecoderConfig()),
}


def names() -> list[str]:
    return list(BUILTIN)


def get(name: str, seed: int = 0) -> torch.nn.Module:
    """A built-in model with deterministic random weights, in eval mode."""
    if name not in BUILTIN:
        raise ValueError(f"unknown built-in model {name!r}; built-in models: {', '.join(BUILTIN)}")
    torch.manual_seed(seed)
    return BUILTIN[name]().eval()


def example_inputs(name: str, batch: int = 2, seq: int = 9, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Example inputs for export and checks: token ids for the decoders."""
    if name not in BUILTIN:
        raise ValueError(f"unknown built-in model {name!r}; built-in models: {', '.join(BUILTIN)}")
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, DecoderConfig().vocab_size, (batch, seq), generator=g),)


__all__ = ["BUILTIN", "DecoderConfig", "TinyDecoder", "example_inputs", "get", "names"]
