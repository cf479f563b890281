"""The convolutional built-in models: the digits CNN trained on real data (deterministic,
accurate, still accurate quantized), both CNNs exported and run by onnxruntime as torch runs
them, fully covered by the ATC preflight, and the demo's CNN tables."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from onnx_npuq import demo, models
from onnx_npuq.exporter import to_onnx
from onnx_npuq.models import cnn
from onnx_npuq.nn import QuantConv, QuantLinear, quantize_model
from onnx_npuq.report import write_report
from onnx_npuq.runtime.ort import OrtSession, verify

SOC = "Ascend910B1"


@pytest.fixture(scope="module")
def trained():
    return cnn.train_digits()


def _export(model, name):
    return to_onnx(model, models.example_inputs(name), dynamic_shapes=demo.BATCH)


def test_training_is_accurate_and_deterministic(trained):
    model, (x, y) = trained
    assert len(y) == 360 and x.shape == (360, 1, 8, 8) and 0 <= x.min() and x.max() <= 1
    with torch.no_grad():
        assert cnn.accuracy(model(x), y) >= 0.9
    again, (x2, y2) = cnn.train_digits()
    assert torch.equal(x, x2) and torch.equal(y, y2)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert not model.training


def test_training_leaves_global_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    cnn.train_digits(epochs=1)
    assert torch.equal(torch.rand(3), expected) and torch.get_num_threads() == threads


@pytest.mark.parametrize("fmt", ["int8sym", "mxfp8e4m3", "mxfp4"])
def test_quantized_accuracy_stays_close(trained, fmt):
    model, (x, y) = trained
    q = quantize_model(copy.deepcopy(model), weights=fmt)
    assert sum(isinstance(m, QuantConv) for m in q.modules()) == 3
    assert sum(isinstance(m, QuantLinear) for m in q.modules()) == 1
    with torch.no_grad():
        fp32, quant = cnn.accuracy(model(x), y), cnn.accuracy(q(x), y)
    assert abs(quant - fp32) <= 0.015, (fp32, quant)  # 5 of the 360 held-out images


@pytest.mark.parametrize("fmt", ["nvfp4"])  # int8sym and mxfp4: test_demo_cnn_tables
def test_digits_in_onnxruntime(trained, fmt):
    model, (x, y) = trained
    q = quantize_model(copy.deepcopy(model), weights=fmt)
    proto = _export(q, "digits-cnn")
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, 8, 8]
    (got,) = OrtSession(proto).run(x)  # the whole test set, one batch
    with torch.no_grad():
        want = q(x)
    assert (got - want).abs().max() < 1e-4  # logits of ~10: conv sums in another order
    assert cnn.accuracy(got, y) == cnn.accuracy(want, y)


def test_resnet_structure():
    model = models.get("resnet-tiny")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].in_channels == 3 and convs[0].kernel_size == (7, 7) and convs[0].stride == (2, 2)
    assert any(c.groups == c.in_channels > 1 for c in convs)  # depthwise
    assert any(c.kernel_size == (1, 1) for c in convs)  # pointwise
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert model(*models.example_inputs("resnet-tiny")).shape == (2, 10)
    assert torch.equal(models.get("resnet-tiny").state_dict()["stem.1.running_mean"],
                       model.state_dict()["stem.1.running_mean"])


@pytest.mark.parametrize("fmt", [None, "hif8", "int4sym"])
def test_resnet_in_onnxruntime(fmt):
    model = models.get("resnet-tiny")
    if fmt:
        quantize_model(model, weights=fmt)
        assert len(model.npuq_report.layers) == 9 and not model.npuq_report.left_float
    proto = _export(model, "resnet-tiny")
    ops = {n.op_type for n in proto.graph.node}
    assert {"Conv", "Add", "Gemm"} <= ops
    (c,) = verify(model, models.example_inputs("resnet-tiny", batch=3, seed=1), proto)
    assert c.shape == (3, 10) and c.max_abs < 1e-5


def _check_cli(path) -> dict:
    from click.testing import CliRunner

    from onnx_npuq.cli import main

    res = CliRunner().invoke(main, ["check", str(path), "--soc", SOC, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_demo_cnn_tables(tmp_path):
    """The demo's CNN part for two formats: rows, files, ATC preflight (fp32 and quantized,
    both models), `onnx-npuq check` on its ATC inputs, and the report's tables."""
    digits, n, resnet = demo.run_cnns(["int8sym", "mxfp4"], tmp_path, demo.atc_step(SOC))
    assert n == 360
    assert [r.format for r in digits] == [r.format for r in resnet] == ["fp32", "int8sym", "mxfp4"]
    assert digits[0].bits_per_weight == 32 and 8 < digits[1].bits_per_weight < 8.5 and digits[2].bits_per_weight < 4.5
    assert all(r.top1 >= 0.9 and r.ort_max_abs < 1e-4 for r in digits)
    assert all(abs(r.top1 - digits[0].top1) <= 0.015 for r in digits)
    assert all(r.ort_max_abs < 1e-5 for r in resnet)
    assert all(r.preflight.startswith("full coverage") for r in digits + resnet)
    assert all(r.onnx_bytes < digits[0].onnx_bytes for r in digits[1:])
    for stem in ("digits-cnn.mxfp4", "resnet-tiny.int8sym"):
        assert (tmp_path / f"{stem}.onnx").exists()
        assert _check_cli(tmp_path / f"{stem}.atc.onnx")["full"] is True
    text = write_report(tmp_path, [], 1, digits=digits, digits_test_images=n, resnet=resnet).read_text()
    assert "## Digits CNN (real data)" in text and "## ResNet-style CNN" in text
    assert f"| fp32 | 32.00 | {digits[0].onnx_bytes / 1024:.1f} | 1.000 | {digits[0].top1:.4f} | +0.00 | +0 |" in text
    assert f"| `mxfp4` | {digits[2].bits_per_weight:.2f} |" in text and f"| {digits[2].top1:.4f} |" in text
