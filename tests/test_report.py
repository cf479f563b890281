"""The demo report: markdown tables and PNG plots, written atomically."""
import math

from onnx_npuq.nn.analysis import LayerError
from onnx_npuq.report import DecoderRow, DigitsRow, MiniLMRow, ResNetRow, write_report


def _layers(snr):
    return [LayerError(f"layers.{i}.mlp.up_proj", "x", snr, snr - i, 0.99) for i in range(3)]


def test_report(tmp_path):
    rows = [DecoderRow("mxfp4", 4.25, 100 * 1024, 1e-7, 1.0, _layers(20.0), ["ai.onnx::18::Dequantize"], "full coverage"),
            DecoderRow("int8sym", 8.25, 180 * 1024, 2e-7, 1.0, _layers(math.inf), [], "full coverage")]
    mini = [MiniLMRow("int8sym", 23 * 2**20, 0.9995, 0.9998, 1e-7), MiniLMRow("mxfp4", 12 * 2**20, 0.95, 0.97, 2e-7)]
    path = write_report(tmp_path, rows, 400 * 1024, mini, 87 * 2**20, ["atc --model=a.onnx --framework=5"])
    text = path.read_text()
    assert "| `mxfp4` | 4.25 | 100.0 | 0.250 | 19.0 |" in text  # mean of 20, 19, 18
    assert "| `int8sym` | 0.9995 / 0.9998 | 23.0 | 0.264 |" in text
    assert "atc --model=a.onnx --framework=5" in text
    for png in ("layer_snr.png", "sizes.png", "minilm_cosine.png"):
        assert f"]({png})" in text
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_report_cnn_tables(tmp_path):
    digits = [DigitsRow("fp32", 32.0, 80 * 1024, 0.99, 7e-6, "full coverage"),
              DigitsRow("mxfp4", 4.25, 20 * 1024, 0.9875, 5e-6, "full coverage (3 unconfirmed)")]
    resnet = [ResNetRow("fp32", 32.0, 100 * 1024, 1e-7, "full coverage"),
              ResNetRow("int8sym", 8.15, 40 * 1024, 6e-8, "2 errors")]
    text = write_report(tmp_path, [], 1, digits=digits, digits_test_images=400, resnet=resnet).read_text()
    assert "| fp32 | 32.00 | 80.0 | 1.000 | 0.9900 | +0.00 | +0 | 7.00e-06 | full coverage |" in text
    assert "| `mxfp4` | 4.25 | 20.0 | 0.250 | 0.9875 | -0.25 | -1 | 5.00e-06 | full coverage (3 unconfirmed) |" in text
    assert "| `int8sym` | 8.15 | 40.0 | 0.400 | 6.00e-08 | 2 errors |" in text
    assert "400 held-out images" in text
    assert text.index("## Digits CNN") < text.index("## ResNet-style CNN")
