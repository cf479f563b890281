"""Built-in models: small, self-contained, no download (`onnx-npuq demo`, tests, examples).

    model = onnx_npuq.models.get("tiny-llama")      # input_ids (batch, seq) -> logits
    model = onnx_npuq.models.get("resnet-tiny")     # images (batch, 3, 32, 32) -> logits
    model = onnx_npuq.models.get("digits-cnn")      # images (batch, 1, 8, 8) -> logits, untrained;
    # models.cnn.train_digits() trains it on scikit-learn's digits (a few seconds)
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from . import cnn
from .decoder import DecoderConfig, TinyDecoder

BUILTIN: dict[str, Callable[[], torch.nn.Module]] = {
    "tiny-llama": lambda: TinyDecoder(DecoderConfig()),
    "digits-cnn": cnn.DigitsCNN,
    "resnet-tiny": cnn.resnet_tiny,
}
IMAGE_SHAPES = {"digits-cnn": cnn.DIGITS_SHAPE, "resnet-tiny": cnn.RESNET_SHAPE}  # (channels, height, width)


def names() -> list[str]:
    return list(BUILTIN)


def get(name: str, seed: int = 0) -> torch.nn.Module:
    """A built-in model with deterministic random weights, in eval mode."""
    if name not in BUILTIN:
        raise ValueError(f"unknown built-in model {name!r}; built-in models: {', '.join(BUILTIN)}")
    torch.manual_seed(seed)
    return BUILTIN[name]().eval()


def example_inputs(name: str, batch: int = 2, seq: int = 9, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Example inputs for export and checks: token ids for the decoders, images in [0, 1]
    for the CNNs (`seq` does not apply to them)."""
    if name not in BUILTIN:
        raise ValueError(f"unknown built-in model {name!r}; built-in models: {', '.join(BUILTIN)}")
    if name in IMAGE_SHAPES:
        return cnn.example_images(IMAGE_SHAPES[name], batch, seed)
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, DecoderConfig().vocab_size, (batch, seq), generator=g),)


__all__ = ["BUILTIN", "IMAGE_SHAPES", "DecoderConfig", "TinyDecoder", "example_inputs", "get", "names"]
