"""`onnx-npuq`: a thin shell over the Python API.

    onnx-npuq rewrite model.onnx -o model.atc.onnx -p compress -p fuse-npu -p atc --layout default

Bad input ends with a one-line message and exit code 2, never a traceback; outputs are
written to a temporary file and renamed, so a failed run leaves no half-written file.
"""
from __future__ import annotations

import sys

import click


class UsageError(click.ClickException):
    exit_code = 2


def _fail_cleanly(fn):
    """Errors we raise on bad input (typed, with a message) become one line and exit 2."""
    import functools

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError, KeyError, OSError) as err:
            raise UsageError(str(err).splitlines()[0] if str(err) else type(err).__name__) from err
    return run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="onnx-npuq")
def main():
    """Low-bit quantized PyTorch models to ONNX and Ascend .om."""


def _pass_names(values: tuple[str, ...]) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Where to write the result.")
@click.option("-p", "--pass", "passes", multiple=True, required=True,
              help="A pass to run (repeat, or comma-separate; they run in order). See `onnx-npuq passes`.")
@click.option("--layout", type=click.Choice(["default", "domain"]), default="default", show_default=True,
              help="atc: one default-domain opset (custom ops as ai.onnx keys) or custom domains kept.")
@click.option("--opset", type=int, default=18, show_default=True, help="atc: the standard opset to emit (11..18).")
@click.option("--compute-dtype", type=click.Choice(["float16", "bfloat16"]), default="float16", show_default=True,
              help="fuse-npu: activation dtype of the fused NPU matmuls.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Run onnxruntime before and after each pass on random inputs and compare.")
@click.option("--external-data/--no-external-data", default=None,
              help="Weights in <output>.data (default: only past protobuf's 2 GB).")
@_fail_cleanly
def rewrite(model, output, passes, layout, opset, compute_dtype, verify, external_data):
    """Run graph passes over an ONNX model and print what each changed."""
    from .exporter import save
    from .passes import run_passes

    names = _pass_names(passes)
    result, reports = run_passes(model, names, verify=verify, layout=layout, opset=opset,
                                 compute_dtype=compute_dtype)
    save(result, output, external_data=external_data)
    for r in reports:
        click.echo(r.line())
    click.echo(f"wrote {output}")


@main.command("passes")
def list_passes():
    """List the graph passes."""
    from .passes import PASSES

    for p in PASSES.values():
        click.echo(f"{p.name:<12} {'exact' if p.exact else 'approx':<6} {p.doc}")


if __name__ == "__main__":
    sys.exit(main())
