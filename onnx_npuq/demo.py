"""The end-to-end demo (`onnx-npuq demo`, `make demo`).

For every weight format: quantize the built-in decoder, export it, check onnxruntime
against torch (outputs and every layer), measure per-layer quantization error against
fp32, rewrite it for ATC, run the ATC preflight and build the ATC command; then the same
formats on the real all-MiniLM-L6-v2 (sentence-embedding cosine against fp32), on a small
CNN trained here on scikit-learn's digits (top-1 accuracy in onnxruntime) and on a
ResNet-style CNN (onnxruntime against torch, ATC preflight). Writes the models, report.md
and its plots under the output folder.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import formats, models
from .exporter import save, to_onnx
from .nn import layer_errors, quantize_model
from .report import DecoderRow, DigitsRow, MiniLMRow, ResNetRow, write_report
from .runtime.ort import OrtSession, verify

EXCLUDE = {"exclude": ["lm_head"]}  # the decoder's head stays float, as deployments keep it
SOC = "Ascend910B1"


@dataclass
class DemoResult:
    report: Path
    decoder: list[DecoderRow]
    minilm: list[MiniLMRow]
    commands: list[str]
    digits: list[DigitsRow] = field(default_factory=list)  # fp32 first
    resnet: list[ResNetRow] = field(default_factory=list)  # fp32 first


def _bits(model: torch.nn.Module) -> float:
    """Stored bits per weight over every layer quantize_model quantized (32 for a float model)."""
    layers = getattr(model, "npuq_report", None)
    layers = layers.layers if layers is not None else []
    if not layers:
        return 32.0
    return 8 * sum(r["packed_bytes"] for r in layers) / sum(r["fp32_bytes"] // 4 for r in layers)


def run_decoder(fmt: str, out_dir: Path, atc: Callable | None = None) -> tuple[DecoderRow, str | None]:
    """One weight format on the built-in decoder; `atc(proto, path)` -> (keys, preflight
    text, command) rewrites for ATC when given."""
    base = models.get("tiny-llama")
    ids = models.example_inputs("tiny-llama")
    model = quantize_model(copy.deepcopy(base), weights=fmt, recipe=EXCLUDE)
    proto = to_onnx(model, ids, dynamic=True)  # verified at other shapes; ATC at seq 64
    path = out_dir / f"tiny-llama.{fmt}.onnx"
    save(proto, path)
    other = models.example_inputs("tiny-llama", batch=3, seq=13, seed=1)
    results = verify(model, other, proto, layers=True)  # the logits, then every Linear layer
    row = DecoderRow(fmt, _bits(model), path.stat().st_size, max(r.max_abs for r in results),
                     min(r.cosine for r in results), layer_errors(base, model, other))
    command = None
    if atc is not None:
        row.atc_keys, row.preflight, command = atc(proto, out_dir / f"tiny-llama.{fmt}")
    return row, command


def atc_step(soc: str = SOC, seq: int = 64):
    """The demo's ATC step: the atc pass (default layout), the preflight, and the files and
    command to convert on a CANN machine. `run(proto, stem, input_shapes)`: input_ids fixed
    at 1 x `seq` unless `input_shapes` says otherwise."""
    from .atc import plan_command, preflight

    def run(proto, stem: Path, input_shapes: dict | None = None):
        shapes = input_shapes or {"input_ids": [1, seq]}
        cmd = plan_command(proto, soc, stem, input_shapes=shapes, layout="default")
        cmd.write()
        report = preflight(cmd.model, soc)
        keys = sorted(report.keys)
        status = "full coverage" if report.full else f"{len(report.errors)} errors"
        if report.full and report.unconfirmed:
            status += f" ({len(report.unconfirmed)} unconfirmed)"
        return keys, status, cmd.shell()
    return run


def fp32_decoder_bytes(out_dir: Path) -> int:
    path = out_dir / "tiny-llama.fp32.onnx"
    save(to_onnx(models.get("tiny-llama"), models.example_inputs("tiny-llama"), dynamic=True), path)
    return path.stat().st_size


def run_minilm(fmts: Sequence[str], out_dir: Path, step: Callable[[str], None] = lambda _: None
               ) -> tuple[list[MiniLMRow], int]:
    """Every format on all-MiniLM-L6-v2 (real weights): embeddings against fp32."""
    from .models import minilm

    encoder, tokenizer = minilm.load()
    ids, mask = minilm.tokenize(tokenizer)
    with torch.no_grad():
        ref = encoder(ids, mask)
    fp32 = out_dir / "minilm.fp32.onnx"
    save(to_onnx(encoder, (ids, mask)), fp32)
    rows = []
    for fmt in fmts:
        step(f"MiniLM {fmt}")
        q = quantize_model(copy.deepcopy(encoder), weights=fmt)
        with torch.no_grad():
            cos = torch.nn.functional.cosine_similarity(q(ids, mask), ref)
        proto = to_onnx(q, (ids, mask))
        path = out_dir / f"minilm.{fmt}.onnx"
        save(proto, path)
        (c,) = verify(q, (ids, mask), proto)
        rows.append(MiniLMRow(fmt, path.stat().st_size, cos.min().item(), cos.mean().item(), c.max_abs))
    return rows, fp32.stat().st_size


# CNN exports: only the batch varies (onnxruntime takes the whole test set at once);
# channels and image size stay numbers, as ATC's --input_shape and the Linear head want
BATCH = ({0: torch.export.Dim("batch")},)


def _export_images(model: torch.nn.Module, name: str, path: Path):
    proto = to_onnx(model, models.example_inputs(name), dynamic_shapes=BATCH)
    save(proto, path)
    return proto


def _preflight(atc: Callable | None, proto, stem: Path, name: str) -> str:
    """The ATC step for a CNN at batch 1 -> its preflight status ("" without `atc`)."""
    if atc is None:
        return ""
    return atc(proto, stem, {proto.graph.input[0].name: [1, *models.IMAGE_SHAPES[name]]})[1]


def digits_row(fmt: str, model: torch.nn.Module, test: tuple[torch.Tensor, torch.Tensor], out_dir: Path,
               atc: Callable | None = None) -> DigitsRow:
    """The digits CNN (float, or quantized as `fmt`): export, every test image through
    onnxruntime in one batch, top-1 and the logits against torch."""
    from .models import cnn

    images, labels = test
    path = out_dir / f"digits-cnn.{fmt}.onnx"
    proto = _export_images(model, "digits-cnn", path)
    (got,) = OrtSession(proto).run(images)
    with torch.no_grad():
        diff = (got - model(images)).abs().max().item()
    return DigitsRow(fmt, _bits(model), path.stat().st_size, cnn.accuracy(got, labels), diff,
                     _preflight(atc, proto, out_dir / f"digits-cnn.{fmt}", "digits-cnn"))


def resnet_row(fmt: str, model: torch.nn.Module, out_dir: Path, atc: Callable | None = None) -> ResNetRow:
    """The ResNet-style model (float, or quantized as `fmt`): export, onnxruntime against
    torch on other inputs than the export's, ATC preflight."""
    path = out_dir / f"resnet-tiny.{fmt}.onnx"
    proto = _export_images(model, "resnet-tiny", path)
    results = verify(model, models.example_inputs("resnet-tiny", batch=4, seed=1), proto)
    return ResNetRow(fmt, _bits(model), path.stat().st_size, max(r.max_abs for r in results),
                     _preflight(atc, proto, out_dir / f"resnet-tiny.{fmt}", "resnet-tiny"))


def run_cnns(fmts: Sequence[str], out_dir: Path, atc: Callable | None = None,
             step: Callable[[str], None] = lambda _: None) -> tuple[list[DigitsRow], int, list[ResNetRow]]:
    """The digits CNN, trained here, and the ResNet-style model: fp32, then each weight
    format (weights only). -> (digits rows, number of test images, ResNet rows)."""
    from .models import cnn

    step("CNN: training on digits")
    trained, test = cnn.train_digits()
    resnet = models.get("resnet-tiny")
    digits = [digits_row("fp32", trained, test, out_dir, atc)]
    resnets = [resnet_row("fp32", resnet, out_dir, atc)]
    for fmt in fmts:
        step(f"CNNs {fmt}")
        digits.append(digits_row(fmt, quantize_model(copy.deepcopy(trained), weights=fmt), test, out_dir, atc))
        resnets.append(resnet_row(fmt, quantize_model(copy.deepcopy(resnet), weights=fmt), out_dir, atc))
    return digits, len(test[1]), resnets


def run(out_dir: str | Path = "demo-out", fmts: Sequence[str] | None = None, minilm: bool = True,
        atc: Callable | None = None, step: Callable[[str], None] = lambda _: None, cnn: bool = True) -> DemoResult:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fmts = list(fmts or formats.names())
    rows, commands = [], []
    for fmt in fmts:
        step(f"decoder {fmt}")
        row, command = run_decoder(fmt, out_dir, atc)
        rows.append(row)
        if command:
            commands.append(command)
    fp32 = fp32_decoder_bytes(out_dir)
    mini, mini_fp32 = run_minilm(fmts, out_dir, step) if minilm else ([], 0)
    digits, test_images, resnet = run_cnns(fmts, out_dir, atc, step) if cnn else ([], 0, [])
    report = write_report(out_dir, rows, fp32, mini, mini_fp32, commands, digits=digits,
                          digits_test_images=test_images, resnet=resnet)
    return DemoResult(report, rows, mini, commands, digits, resnet)


def main() -> None:
    result = run(atc=atc_step(), step=lambda s: print(s, flush=True))
    for command in result.commands[:1]:
        print(f"ATC (first format; all in the report): {command}")
    print(f"report: {result.report}")


if __name__ == "__main__":
    main()
