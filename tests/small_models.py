"""Small models the ATC tests share (tests/test_pass_atc.py, tests/test_preflight.py; conftest.py's
`sequential` fixture): a quantized Linear-ReLU-Linear exported to ONNX, and the exporter run
quietly."""
from __future__ import annotations

import warnings

import onnx
import torch

from onnx_npuq.exporter import to_onnx
from onnx_npuq.nn import quantize_model


def quiet(fn, *args, **kwargs):
    """fn(*args, **kwargs) with warnings silenced (what the exporter and torch say on the way)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def sequential_onnx(fmt: str) -> onnx.ModelProto:
    """Linear(32, 64)-ReLU-Linear(64, 16) (seed 0), weights and activations quantized to `fmt`,
    exported for a (2, 32) input."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16))
    quantize_model(m, weights=fmt, activations=fmt)
    return quiet(to_onnx, m, (torch.randn(2, 32),))
