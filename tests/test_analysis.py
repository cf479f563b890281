"""Per-layer quantization error of a quantized model against its float original."""
import copy
import math

import pytest
import torch

from onnx_npuq import formats, models
from onnx_npuq.nn import layer_errors, quantize_model, snr_db


def test_snr_db():
    x = torch.tensor([3.0, 4.0])
    assert snr_db(x, x) == math.inf
    assert snr_db(x, x * 0.9) == pytest.approx(20.0)  # noise 0.1 of the signal: 20 dB
    assert snr_db(torch.zeros(2), torch.ones(2)) == -math.inf


def test_layer_errors_rank_formats():
    base = models.get("tiny-llama")
    ids = models.example_inputs("tiny-llama")
    by_format = {}
    for fmt in ("int8sym", "mxfp8e4m3", "mxfp4", "int4sym"):
        q = quantize_model(copy.deepcopy(base), weights=fmt, recipe={"exclude": ["lm_head"]})
        errs = layer_errors(base, q, ids)
        assert len(errs) == 14 and errs[0].name == "layers.0.self_attn.q_proj" and errs[0].format == fmt
        # the weight error is what formats says it is
        w = base.layers[0].self_attn.q_proj.weight
        assert errs[0].weight_snr_db == snr_db(w, formats.fake_quant(w, fmt, axis=1))
        by_format[fmt] = sum(e.weight_snr_db for e in errs) / len(errs)
        assert all(0 < e.output_cosine <= 1 + 1e-12 for e in errs)
    # 8-bit formats lose less than 4-bit ones (int8 ~48 dB, e4m3 ~31, int4 ~23, mxfp4 ~18)
    assert min(by_format["int8sym"], by_format["mxfp8e4m3"]) > max(by_format["mxfp4"], by_format["int4sym"]) + 5


def test_layer_errors_needs_the_same_architecture():
    q = quantize_model(models.get("tiny-llama"), weights="mxfp4")
    with pytest.raises(ValueError, match="no weight layer named"):
        layer_errors(torch.nn.Sequential(), q, models.example_inputs("tiny-llama"))
