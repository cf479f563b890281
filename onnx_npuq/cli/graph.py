"""`rewrite` and `passes`: graph passes over ONNX files."""
from __future__ import annotations

import click

from .app import command, main


def _pass_names(values: tuple[str, ...]) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def report_data(r) -> dict:
    return {"pass": r.name, "nodes_before": sum(r.nodes_before.values()), "nodes_after": sum(r.nodes_after.values()),
            "bytes_before": r.bytes_before, "bytes_after": r.bytes_after, "changed": r.changed,
            "mismatches": r.mismatches, "max_abs": r.max_abs, "notes": r.notes}


@command(main)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Where to write the result.")
@click.option("-p", "--pass", "passes", multiple=True, required=True,
              help="A pass to run (repeat, or comma-separate; they run in order). See `onnx-npuq passes`.")
@click.option("--layout", type=click.Choice(["default", "domain"]), default="default", show_default=True,
              help="atc: one default-domain opset (custom ops as ai.onnx keys) or custom domains kept.")
@click.option("--opset", type=int, default=None,
              help="atc: the standard opset to emit (11..18; default 18, or the highest CANN registers the "
                   "model's ops under: 16 with QuantBatchMatMul).")
@click.option("--compute-dtype", type=click.Choice(["float16", "bfloat16"]), default="float16", show_default=True,
              help="fuse-npu: activation dtype of the fused NPU matmuls.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Run onnxruntime before and after each pass on random inputs and compare.")
@click.option("--external-data/--no-external-data", default=None,
              help="Weights in <output>.data (default: when the input has external data, or past "
                   "protobuf's 2 GB).")
def rewrite(out, model, output, passes, layout, opset, compute_dtype, verify, external_data):
    """Run graph passes over an ONNX model and print what each changed (nodes, bytes, and,
    verified, the onnxruntime outputs against the model before the pass)."""
    from ..exporter import save
    from ..passes import run_passes
    from ..io import data_dir_of

    given = {} if opset is None else {"opset": opset}
    result, reports = run_passes(model, _pass_names(passes), verify=verify, layout=layout, compute_dtype=compute_dtype,
                                 **given)
    save(result, output, external_data=external_data, data_dir=data_dir_of(model))
    for r in reports:
        out.echo(r.line())
    out.echo(f"wrote {output}")
    out.result({"output": output, "passes": [report_data(r) for r in reports]})


@command(main, "passes")
def list_passes(out):
    """List the graph passes (exact: onnxruntime outputs stay bit-identical)."""
    from ..passes import PASSES

    for p in PASSES.values():
        out.echo(f"{p.name:<12} {'exact' if p.exact else 'approx':<6} {p.doc}")
    out.result([{"name": p.name, "exact": p.exact, "doc": p.doc} for p in PASSES.values()])
