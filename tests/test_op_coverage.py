"""The default opset of the ATC layout (passes.atc.DEFAULT_OPSET = 17) against CANN's parser
keys (atc/onnx_op_keys.json): `onnx-npuq check --json` on the built-in decoder, the digits CNN
and MiniLM (real weights) at most 5 UNCONFIRMED lines and no error, quantized or not. At 18
MiniLM's ReduceL2 has no key (CANN registers ai.onnx::8..17::ReduceL2)."""
from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch
from click.testing import CliRunner

from onnx_npuq import models
from onnx_npuq.cli import main
from onnx_npuq.exporter import save, to_onnx
from onnx_npuq.nn import quantize_model
from onnx_npuq.passes.atc import DEFAULT_OPSET


def _check(proto, tmp_path, *args) -> dict:
    path = tmp_path / "m.onnx"
    save(proto, path)
    res = CliRunner().invoke(main, ["check", str(path), "--soc", "Ascend910B1", "--json", *args])
    data = json.loads(res.stdout)
    assert DEFAULT_OPSET == 17 and data["opset"] == (int(args[1]) if args else DEFAULT_OPSET)
    return data


def _export(model, inputs, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return to_onnx(model, inputs, **kw)


def _unconfirmed(data) -> list[str]:
    return [line for line in data["lines"] if line.startswith("UNCONFIRMED")]


@pytest.mark.parametrize("fmt", ["mxfp4"])
def test_decoder(tmp_path, fmt):
    base = models.get("tiny-llama")
    model = quantize_model(copy.deepcopy(base), weights=fmt) if fmt else base
    data = _check(_export(model, models.example_inputs("tiny-llama")), tmp_path)
    assert data["full"] and data["nodes"] > 150 and _unconfirmed(data) == [], data["lines"]


def test_digits_cnn(tmp_path):
    model = quantize_model(models.get("digits-cnn"), weights="int8sym")
    proto = _export(model, models.example_inputs("digits-cnn"), dynamic_shapes=({0: torch.export.Dim("batch")},))
    data = _check(proto, tmp_path)
    (line,) = _unconfirmed(data)  # the head's Gemm with a bias: a limit the commercial docs state
    assert data["full"] and line.startswith(f"UNCONFIRMED ai.onnx::{DEFAULT_OPSET}::Gemm with C")


@pytest.mark.slow
def test_minilm(tmp_path):
    from onnx_npuq.models import minilm

    encoder, tokenizer = minilm.load()
    ids, mask = minilm.tokenize(tokenizer)
    proto = _export(encoder, (ids, mask))
    data = _check(proto, tmp_path)
    assert data["full"] and _unconfirmed(data) == [], data["lines"]
    at18 = _check(proto, tmp_path, "--opset", "18")
    (err,) = [f for f in at18["findings"] if f["code"] == "E19010"]
    assert err["key"] == "ai.onnx::18::ReduceL2" and "at opsets 8..17, not 18" in err["message"]
