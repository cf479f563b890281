"""The `onnx-npuq` group and what every command shares: one-line errors, --json output.

Bad input ends with one line on stderr and exit code 2, never a traceback; that includes
click's own usage errors (unknown option, bad choice), which click would print as a usage
block. With --json a command prints one JSON document on stdout instead of its text.
"""
from __future__ import annotations

import functools
import json
import logging
import sys

import click

# Errors our API raises on bad input: typed, with a message that names the problem.
BAD_INPUT = (ValueError, TypeError, KeyError, OSError)


class UsageError(click.ClickException):
    exit_code = 2


def one_line(err: BaseException) -> str:
    text = str(err).strip()
    if isinstance(err, KeyError) and err.args:
        text = str(err.args[0])
    return text.splitlines()[0] if text else type(err).__name__


class Group(click.Group):
    """A click group whose errors are one line (`Error: ...`), exit 2 for bad input."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        _quiet_third_party()
        try:
            # without standalone mode click returns Exit's code (or the command's value)
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except click.exceptions.Exit as e:
            code = e.exit_code
        except click.ClickException as e:
            click.echo(f"Error: {one_line(Exception(e.format_message()))}", err=True)
            code = 2 if isinstance(e, click.UsageError) else e.exit_code
        except click.exceptions.Abort:
            click.echo("Error: aborted", err=True)
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code)


def _quiet_third_party() -> None:
    """Silence warnings other packages log when they are merely imported on a CPU machine:
    torchao (which transformers imports when it is installed) about its CUDA extensions,
    torch about enum registration. They say nothing about the user's model."""
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)


class Out:
    """Where a command writes: its text, or (with --json) one JSON result."""

    def __init__(self, as_json: bool):
        self.json = as_json

    def echo(self, text: str = "", err: bool = False) -> None:
        if err or not self.json:
            click.echo(text, err=err)

    def result(self, data) -> None:
        if self.json:
            click.echo(json.dumps(data, indent=2, default=_jsonable, allow_nan=True))


def _jsonable(v):
    if hasattr(v, "tolist"):
        return v.tolist()
    if hasattr(v, "__dict__"):
        return vars(v)
    return str(v)


def command(group: click.Group, name: str | None = None, **settings):
    """A subcommand with --json; its function gets `out: Out` first. Bad input (BAD_INPUT)
    becomes one line and exit 2."""
    def register(fn):
        @functools.wraps(fn)
        def run(as_json: bool, **kwargs):
            try:
                return fn(Out(as_json), **kwargs)
            except BAD_INPUT as err:
                raise UsageError(one_line(err)) from err
        run = click.option("--json", "as_json", is_flag=True,
                           help="Print one machine-readable JSON result instead of text.")(run)
        return group.command(name, **settings)(run)
    return register


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="onnx-npuq")
def main():
    """Low-bit quantized PyTorch models to ONNX and Ascend .om.

    \b
    onnx-npuq formats                                      the formats and their bits
    onnx-npuq export tiny-llama -w mxfp4 -o m.onnx         quantize + export
    onnx-npuq verify tiny-llama m.onnx -w mxfp4 --layers   torch vs onnxruntime
    onnx-npuq rewrite m.onnx -o m.atc.onnx -p compress -p atc
    onnx-npuq check m.atc.onnx --soc Ascend910B1           would ATC parse it?
    onnx-npuq convert m.onnx --soc Ascend910B1 -o out/m    -> .om (with CANN)
    onnx-npuq run out/m.om --compare m.onnx                on the NPU
    onnx-npuq demo                                         all of it, with a report
    """
