"""A tiny HF LLaMA, quantized per weight format, exported, and run by stock onnxruntime."""
import math

import onnx
import pytest
from conftest import e2e_formats
import torch

import onnx_npuq
from onnx_npuq import formats as F
from onnx_npuq.nn import QuantLinear, quantize_model

from llama import Logits, tiny_llama


@pytest.mark.parametrize("fmt", e2e_formats())
def test_quantized_llama_runs_in_onnxruntime_like_torch(fmt, tmp_path):
    model = tiny_llama()
    act = "mxfp8e4m3" if fmt in ("mxfp4", "hif4") else None  # a few with activations too
    quantize_model(model, weights=fmt, activations=act, recipe={"exclude": ["lm_head"]})
    quantized = [m for m in model.modules() if isinstance(m, QuantLinear)]
    assert len(quantized) == 14  # q, k, v, o, gate, up, down per layer

    net = Logits(model)
    path = tmp_path / "llama.onnx"
    proto = onnx_npuq.export(net, (torch.randint(0, 256, (2, 9)),), path, dynamic=True)
    assert sum(n.op_type == "Dequantize" for n in proto.graph.node) == 14

    # dynamic batch and sequence; logits agree up to float32 accumulation order
    (c,) = onnx_npuq.verify(net, (torch.randint(0, 256, (3, 13)),), path)
    assert c.shape == (3, 13, 256)
    assert c.max_abs < 1e-5 and c.cosine > 0.999999, c

    # the file holds the packed bytes: exactly the format's bits for the quantized weights
    saved = onnx.load(path)
    raw = sum(len(t.raw_data) for t in saved.graph.initializer if t.data_type == onnx.TensorProto.UINT8)
    theory = sum(math.ceil(q.in_features * q.out_features * q.bits_per_weight / 8) for q in quantized)
    assert raw == theory - (4 * 14 if fmt == "nvfp4" else 0)  # nvfp4's tensor scale is float32
    # ... and nothing else of weight size: the rest is graph structure, which does not grow
    # with the weights (a tiny model's ~240 nodes; at real sizes it is well under 1%)
    payload = sum(len(t.raw_data) for t in saved.graph.initializer)
    for t in saved.graph.initializer:
        t.raw_data = b""
    assert path.stat().st_size - payload <= saved.ByteSize() + 1024, (path.stat().st_size, payload)
