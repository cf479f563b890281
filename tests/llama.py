"""A tiny HF LLaMA (2 layers, SwiGLU MLP, GQA attention) quantized and exported once per
format and process, for the tests of graph passes."""
from __future__ import annotations

import functools

import onnx
import torch
import transformers  # in the test extra: these tests must run, not skip

from onnx_npuq.exporter import Logits, to_onnx
from onnx_npuq.nn import quantize_model


def tiny_llama() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=256, max_position_embeddings=64)
    return transformers.LlamaForCausalLM(cfg).eval()


@functools.cache
def _export(fmt: str) -> bytes:
    model = tiny_llama()
    quantize_model(model, weights=fmt, recipe={"exclude": ["lm_head"]})
    # dynamic: the graph with its shape arithmetic (what ATC's gears need), the harder case
    # for the passes and the preflight
    return to_onnx(Logits(model), (torch.randint(0, 256, (2, 9)),), dynamic=True).SerializeToString()


def llama_onnx(fmt: str) -> onnx.ModelProto:
    """A fresh copy of the exported tiny LLaMA with `fmt` weights (lm_head kept float)."""
    return onnx.load_from_string(_export(fmt))
