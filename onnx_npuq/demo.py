"""The end-to-end demo (`onnx-npuq demo`, `make demo`).

For every weight format: quantize the built-in decoder, export it, check onnxruntime
against torch (outputs and every layer), measure per-layer quantization error against
fp32, rewrite it for ATC, run the ATC preflight and build the ATC command; then the same
formats on the real all-MiniLM-L6-v2 (sentence-embedding cosine against fp32). Writes the
models, report.md and its plots under the output folder.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from . import formats, models
from .exporter import save, to_onnx
from .nn import QuantLinear, layer_errors, quantize_model
from .report import DecoderRow, MiniLMRow, write_report
from .runtime.ort import verify

EXCLUDE = {"exclude": ["lm_head"]}  # the decoder's head stays float, as deployments keep it
SOC = "Ascend910B1"


@dataclass
class DemoResult:
    report: Path
    decoder: list[DecoderRow]
    minilm: list[MiniLMRow]
    commands: list[str]


def _bits(model: torch.nn.Module) -> float:
    q = [m for m in model.modules() if isinstance(m, QuantLinear)]
    return sum(m.bits_per_weight * m.in_features * m.out_features for m in q) / sum(
        m.in_features * m.out_features for m in q)


def run_decoder(fmt: str, out_dir: Path, atc: Callable | None = None) -> tuple[DecoderRow, str | None]:
    """One weight format on the built-in decoder; `atc(proto, path)` -> (keys, preflight
    text, command) rewrites for ATC when given."""
    base = models.get("tiny-llama")
    ids = models.example_inputs("tiny-llama")
    model = quantize_model(copy.deepcopy(base), weights=fmt, recipe=EXCLUDE)
    proto = to_onnx(model, ids)
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
    command to convert on a CANN machine (input_ids fixed at 1 x `seq`)."""
    from .atc import plan_command, preflight

    def run(proto, stem: Path):
        cmd = plan_command(proto, soc, stem, input_shapes={"input_ids": [1, seq]}, layout="default")
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
    save(to_onnx(models.get("tiny-llama"), models.example_inputs("tiny-llama")), path)
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


def run(out_dir: str | Path = "demo-out", fmts: Sequence[str] | None = None, minilm: bool = True,
        atc: Callable | None = None, step: Callable[[str], None] = lambda _: None) -> DemoResult:
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
    report = write_report(out_dir, rows, fp32, mini, mini_fp32, commands)
    return DemoResult(report, rows, mini, commands)


def main() -> None:
    result = run(atc=atc_step(), step=lambda s: print(s, flush=True))
    for command in result.commands[:1]:
        print(f"ATC (first format; all in the report): {command}")
    print(f"report: {result.report}")


if __name__ == "__main__":
    main()
