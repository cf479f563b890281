"""The demo's report: a markdown page with tables and PNG plots (matplotlib, headless).

    write_report(out_dir, decoder_rows, fp32_bytes, minilm_rows, ...)   # -> out_dir / "report.md"
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .io import atomic_path, write_text_atomic
from .nn.analysis import LayerError


@dataclass
class DecoderRow:
    """The built-in decoder, quantized with one weight format."""

    format: str
    bits_per_weight: float
    onnx_bytes: int
    ort_max_abs: float  # onnxruntime vs torch, logits and every Linear layer
    ort_cosine: float
    layers: list[LayerError] = field(default_factory=list)
    atc_keys: list[str] = field(default_factory=list)
    preflight: str = ""  # "full coverage" or what is missing


@dataclass
class MiniLMRow:
    """all-MiniLM-L6-v2 with one weight format: sentence embeddings against fp32."""

    format: str
    onnx_bytes: int
    cosine_min: float
    cosine_mean: float
    ort_max_abs: float  # onnxruntime vs torch, embeddings


@dataclass
class DigitsRow:
    """The CNN trained on scikit-learn's digits, fp32 or with one weight format: top-1 on the
    held-out images in onnxruntime."""

    format: str  # "fp32" for the float model
    bits_per_weight: float
    onnx_bytes: int
    top1: float  # onnxruntime, every held-out image in one batch
    ort_max_abs: float  # onnxruntime vs torch, logits
    preflight: str = ""


@dataclass
class ResNetRow:
    """The ResNet-style model (random weights), fp32 or with one weight format."""

    format: str  # "fp32" for the float model
    bits_per_weight: float
    onnx_bytes: int
    ort_max_abs: float  # onnxruntime vs torch, logits
    preflight: str = ""


def _plot(path: Path, draw) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    try:
        draw(ax)
        fig.tight_layout()
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def _finite(v: float, cap: float = 99.0) -> float:
    return cap if math.isinf(v) and v > 0 else v


def plot_layer_snr(path: Path, rows: list[DecoderRow]) -> None:
    def draw(ax):
        import matplotlib

        colors = matplotlib.colormaps["tab20"]  # 12 formats: more than the default 10 colors
        for i, r in enumerate(rows):
            ax.plot(range(len(r.layers)), [_finite(e.output_snr_db) for e in r.layers], marker="os^v"[i % 4],
                    ms=3, color=colors(i % 20), label=r.format)
        names = [e.name.replace("layers.", "L").replace("self_attn.", "").replace("mlp.", "") for e in rows[0].layers]
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("layer output SNR vs fp32 (dB)")
        ax.set_title("Per-layer quantization error, built-in decoder")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=3)
    _plot(path, draw)


def plot_sizes(path: Path, rows: list[DecoderRow], fp32_bytes: int) -> None:
    def draw(ax):
        names = ["fp32"] + [r.format for r in rows]
        sizes = [fp32_bytes / 1024] + [r.onnx_bytes / 1024 for r in rows]
        ax.bar(names, sizes, color=["gray"] + ["tab:blue"] * len(rows))
        ax.set_ylabel("ONNX file (KiB)")
        ax.set_title("File size per weight format, built-in decoder")
        ax.tick_params(axis="x", rotation=45)
    _plot(path, draw)


def plot_minilm(path: Path, rows: list[MiniLMRow]) -> None:
    def draw(ax):
        ax.bar([r.format for r in rows], [r.cosine_min for r in rows])
        ax.axhline(0.99, color="red", lw=1, ls="--", label="0.99")
        ax.set_ylim(min(0.9, min(r.cosine_min for r in rows) - 0.01), 1.0)
        ax.set_ylabel("min cosine vs fp32 embeddings")
        ax.set_title("all-MiniLM-L6-v2: sentence embeddings per weight format")
        ax.tick_params(axis="x", rotation=45)
        ax.legend()
    _plot(path, draw)


def decoder_table(rows: list[DecoderRow], fp32_bytes: int) -> str:
    lines = ["| format | bits/weight | .onnx KiB | vs fp32 | mean layer SNR dB | onnxruntime vs torch max abs (outputs, layers) | ATC preflight |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        snr = [e.output_snr_db for e in r.layers if not math.isinf(e.output_snr_db)]
        mean = sum(snr) / len(snr) if snr else math.inf
        lines.append(f"| `{r.format}` | {r.bits_per_weight:.2f} | {r.onnx_bytes / 1024:.1f} | "
                     f"{r.onnx_bytes / fp32_bytes:.3f} | {mean:.1f} | {r.ort_max_abs:.2e} | {r.preflight} |")
    return "\n".join(lines)


def minilm_table(rows: list[MiniLMRow], fp32_bytes: int) -> str:
    lines = ["| format | cosine vs fp32 (min / mean) | .onnx MiB | vs fp32 | onnxruntime vs torch max abs |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| `{r.format}` | {r.cosine_min:.4f} / {r.cosine_mean:.4f} | {r.onnx_bytes / 2**20:.1f} | "
                     f"{r.onnx_bytes / fp32_bytes:.3f} | {r.ort_max_abs:.2e} |")
    return "\n".join(lines)


def _fp32_of(rows: list) -> object:
    """The float baseline among `rows` (format "fp32"), or None."""
    return next((r for r in rows if r.format == "fp32"), None)


def _name(fmt: str) -> str:
    return fmt if fmt == "fp32" else f"`{fmt}`"


def digits_table(rows: list[DigitsRow], test_images: int) -> str:
    fp32 = _fp32_of(rows)
    lines = ["| format | bits/weight | .onnx KiB | vs fp32 | top-1 (onnxruntime) | vs fp32 (points) | "
             "net images right vs fp32 | onnxruntime vs torch max abs | ATC preflight |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        delta = 100 * (r.top1 - fp32.top1) if fp32 else math.nan
        changed = round((r.top1 - fp32.top1) * test_images) if fp32 else 0
        lines.append(f"| {_name(r.format)} | {r.bits_per_weight:.2f} | {r.onnx_bytes / 1024:.1f} | "
                     f"{r.onnx_bytes / fp32.onnx_bytes if fp32 else math.nan:.3f} | {r.top1:.4f} | {delta:+.2f} | "
                     f"{changed:+d} | {r.ort_max_abs:.2e} | {r.preflight} |")
    return "\n".join(lines)


def resnet_table(rows: list[ResNetRow]) -> str:
    fp32 = _fp32_of(rows)
    lines = ["| format | bits/weight | .onnx KiB | vs fp32 | onnxruntime vs torch max abs | ATC preflight |",
             "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {_name(r.format)} | {r.bits_per_weight:.2f} | {r.onnx_bytes / 1024:.1f} | "
                     f"{r.onnx_bytes / fp32.onnx_bytes if fp32 else math.nan:.3f} | {r.ort_max_abs:.2e} | "
                     f"{r.preflight} |")
    return "\n".join(lines)


def cnn_section(digits: list[DigitsRow], test_images: int, resnet: list[ResNetRow]) -> list[str]:
    """The report's convolutional part: the digits CNN's accuracy, the ResNet's structure."""
    parts = []
    if digits:
        parts += ["## Digits CNN (real data)", "",
                  f"A small CNN (three conv3x3 + BatchNorm + ReLU, max pool, Linear head) trained in the demo "
                  f"on scikit-learn's bundled 8x8 handwritten digits (fixed seed, stratified split), then each "
                  f"weight format: top-1 accuracy of onnxruntime on the {test_images} held-out images, one "
                  "batch. Weights only: every conv and the Linear head are quantized, activations, BatchNorm "
                  f"and biases stay float. One held-out image is {100 / max(test_images, 1):.2f} points; "
                  "\"net images right\" counts them. The model has 19k weights, so much of each file is the "
                  "format's decoding functions (a fixed cost): bits/weight, not the file size, is what the "
                  "format stores.", "",
                  digits_table(digits, test_images), ""]
    if resnet:
        parts += ["## ResNet-style CNN (structure, random weights)", "",
                  "A 3-channel 7x7 stride-2 stem, residual blocks of depthwise 3x3 and pointwise 1x1 convs "
                  "with BatchNorm and residual adds (one downsampling block with a 1x1 shortcut), global "
                  "average pool, Linear head; input 1 x 3 x 32 x 32 for ATC. Weights only, as above.", "",
                  resnet_table(resnet), ""]
    return parts


def write_report(out_dir: Path, decoder: list[DecoderRow], decoder_fp32_bytes: int,
                 minilm: list[MiniLMRow] | None = None, minilm_fp32_bytes: int = 0,
                 commands: list[str] | None = None, digits: list[DigitsRow] | None = None,
                 digits_test_images: int = 0, resnet: list[ResNetRow] | None = None) -> Path:
    """report.md and its PNGs in `out_dir`; returns the report's path. The digits and
    ResNet rows hold their fp32 baseline as a row of format "fp32"."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = ["# onnx-npuq demo report", "",
             "Built-in LLaMA-style decoder (2 layers, SwiGLU, rotary GQA attention; random weights), "
             "every weight format: exported to ONNX, run by onnxruntime, rewritten for ATC. Linear layers "
             "are quantized; embeddings, norms and the lm_head stay float.", "",
             decoder_table(decoder, decoder_fp32_bytes), ""]
    if decoder:
        plot_layer_snr(out_dir / "layer_snr.png", decoder)
        plot_sizes(out_dir / "sizes.png", decoder, decoder_fp32_bytes)
        parts += ["![per-layer SNR](layer_snr.png)", "", "![file sizes](sizes.png)", ""]
    if minilm:
        plot_minilm(out_dir / "minilm_cosine.png", minilm)
        parts += ["## all-MiniLM-L6-v2 (real weights)", "",
                  f"{len(minilm)} weight formats; embeddings of a fixed set of sentences against fp32. Linear "
                  "layers are quantized; the 30522 x 384 token embedding table (45 MB) stays float, "
                  "which is most of what is left in the files.", "",
                  minilm_table(minilm, minilm_fp32_bytes), "", "![MiniLM cosine](minilm_cosine.png)", ""]
    parts += cnn_section(digits or [], digits_test_images, resnet or [])
    if commands:
        parts += ["## ATC commands", "", "Run on a machine with CANN (not run here):", "", "```",
                  *commands, "```", ""]
    path = out_dir / "report.md"
    write_text_atomic(path, "\n".join(parts))
    return path
