"""The built-in demo model: quantized, exported with dynamic batch and sequence, and run by
onnxruntime like torch runs it."""
import pytest
import torch

import onnx_npuq
from onnx_npuq import models
from onnx_npuq.nn import QuantLinear, quantize_model


@pytest.mark.parametrize("fmt", ["mxfp4", "int4sym"])
def test_tiny_llama_exports_and_runs(fmt, tmp_path):
    model = models.get("tiny-llama")
    quantize_model(model, weights=fmt, activations="mxfp8e4m3", recipe={"exclude": ["lm_head"]})
    assert sum(isinstance(m, QuantLinear) for m in model.modules()) == 14
    onnx_npuq.export(model, models.example_inputs("tiny-llama"), tmp_path / "m.onnx", dynamic=True)
    (c,) = onnx_npuq.verify(model, models.example_inputs("tiny-llama", batch=3, seq=13, seed=1), tmp_path / "m.onnx")
    assert c.shape == (3, 13, 256) and c.max_abs < 1e-5 and c.cosine > 0.99999


def test_builtin_models_are_deterministic():
    a, b = models.get("tiny-llama"), models.get("tiny-llama")
    ids = models.example_inputs("tiny-llama")
    assert torch.equal(a(*ids), b(*ids))
    assert not torch.equal(models.get("tiny-llama", seed=1)(*ids), a(*ids))


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown built-in model 'nope'; built-in models: tiny-llama"):
        models.get("nope")
    with pytest.raises(ValueError, match="unknown built-in model"):
        models.example_inputs("nope")
