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
              help="atc: the standard opset to emit (11..18; default 17, or 16 when the model has QuantBatchMatMul, "
                   "which CANN registers up to 16 only).")
@click.option("--compute-dtype", type=click.Choice(["float16", "bfloat16"]), default="float16", show_default=True,
              help="fuse-npu: activation dtype of the fused NPU matmuls.")
@click.option("--soc", "soc_version", default=None,
              help="fold-weights: the ATC --soc_version whose native weight formats stay packed (default: those "
                   "of any SoC).")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Run onnxruntime before and after each pass on random inputs and compare.")
@click.option("--input-shape", "--input_shape", "input_shapes", multiple=True,
              help='Shape of the random verification inputs, e.g. "x:1,3,224,224" (repeat or join with ";"); '
                   "default: the shape the model was exported with, else 3 for each symbolic dimension.")
@click.option("--external-data/--no-external-data", default=None,
              help="Weights in <output>.data (default: when the input has external data, or past "
                   "protobuf's 2 GB).")
def rewrite(out, model, output, passes, layout, opset, compute_dtype, soc_version, verify, input_shapes,
            external_data):
    """Run graph passes over an ONNX model and print what each changed (nodes, bytes, and,
    verified, the onnxruntime outputs against the model before the pass)."""
    from ..exporter import save
    from ..passes import run_passes
    from ..io import data_dir_of

    if soc_version is not None:
        from ..atc import soc_info

        soc_info(soc_version)  # a bad name before any pass runs
    shapes = _concrete_shapes(input_shapes)
    given = {} if opset is None else {"opset": opset}
    result, reports = run_passes(model, _pass_names(passes), verify=verify, layout=layout, compute_dtype=compute_dtype,
                                 soc=soc_version, input_shapes=shapes, **given)
    save(result, output, external_data=external_data, data_dir=data_dir_of(model))
    for r in reports:
        out.echo(r.line())
    out.echo(f"wrote {output}")
    out.result({"output": output, "passes": [report_data(r) for r in reports]})


def _concrete_shapes(values: tuple[str, ...]) -> dict[str, list[int]]:
    from ..atc.command import parse_input_shapes
    from ..atc.errors import InputShapeError

    shapes = parse_input_shapes(";".join(values)) if values else {}
    for name, dims in shapes.items():
        if any(not isinstance(d, int) or d < 0 for d in dims):
            raise InputShapeError(f"--input-shape {name}: random test inputs need sizes, not -1 or ranges")
    return shapes


@command(main, "passes")
def list_passes(out):
    """List the graph passes (exact: onnxruntime outputs stay bit-identical)."""
    from ..passes import PASSES

    for p in PASSES.values():
        out.echo(f"{p.name:<12} {'exact' if p.exact else 'approx':<6} {p.doc}")
    out.result([{"name": p.name, "exact": p.exact, "doc": p.doc} for p in PASSES.values()])
