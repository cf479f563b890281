"""`formats`, `export` and `verify`: quantize a PyTorch model, export it, compare it.

A MODEL is a built-in name (`tiny-llama`, `minilm`), `package.module:factory`, or
`path/to/file.py[:factory]` (default factory name: `model`). The factory takes no
arguments and returns an nn.Module, or (module, example inputs tuple). A spec that gives
no model raises ModelSpecError, a ValueError: one line naming the spec and why.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
from pathlib import Path

import click

from ..errors import one_line
from .app import command, main

FACTORY = "model"


class ModelSpecError(ValueError):
    """A MODEL spec that gives no model; the one-line message names the spec and the cause."""

    def __init__(self, spec: str, cause: str):
        super().__init__(one_line(f"model spec {spec!r}: {cause}"))
        self.spec = spec


def _cause(err: BaseException) -> str:
    """'ExcType: message' of an error in the user's code; a SyntaxError with its file and line
    (its str() has only the file's base name)."""
    if isinstance(err, SyntaxError):
        at = "".join([f" in {err.filename}" if err.filename else "", f" line {err.lineno}" if err.lineno else ""])
        return f"{type(err).__name__}{at}: {err.msg}"
    if isinstance(err, SystemExit):  # its str() is its bare code, "None" from exit()
        return f"SystemExit({err.code!r})"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _import(spec: str, path: str):
    """The module of a spec: a .py file, or a module by its dotted name."""
    try:
        if not path.endswith(".py"):
            return importlib.import_module(path)  # a failed import leaves nothing in sys.modules
        module_spec = importlib.util.spec_from_file_location(f"_onnx_npuq_user_{abs(hash(path))}", path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module  # as import does: the module's own code may look itself up
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_spec.name]  # and, as import does, no half-initialized module is left
            raise
        return module
    # SystemExit too: sys.exit() in the user's code is a broken spec, not a request to end the
    # CLI with its code; KeyboardInterrupt still stops everything
    except (Exception, SystemExit) as err:
        raise ModelSpecError(spec, f"importing {path!r} raised {_cause(err)}") from err


def _call_factory(spec: str, fn, where: str):
    if not callable(fn):
        raise ModelSpecError(spec, f"{where} is not callable ({type(fn).__name__})")
    try:
        made = fn()
    except (Exception, SystemExit) as err:  # as in _import
        raise ModelSpecError(spec, f"{where}() raised {_cause(err)}") from err
    model, inputs = (made if isinstance(made, tuple) and len(made) == 2 else (made, None))
    import torch

    if not isinstance(model, torch.nn.Module):
        got = type(model).__name__ if model is made else f"a tuple whose first item is {type(model).__name__}"
        raise ModelSpecError(spec, f"{where}() returned {got}, not a torch.nn.Module")
    if inputs is not None and not isinstance(inputs, tuple):
        inputs = (inputs,)
    return model.eval(), inputs


def load_model(spec: str):
    """(nn.Module, example inputs or None) from a MODEL spec; ModelSpecError when the spec
    gives none (no such file or module, an import or the factory fails, not a module)."""
    from .. import models

    if spec in models.BUILTIN:
        return models.get(spec), models.example_inputs(spec)
    if spec == "minilm":
        from ..models import minilm

        encoder, tokenizer = minilm.load()
        return encoder, minilm.tokenize(tokenizer)
    path, _, name = spec.partition(":") if not spec.endswith(".py") else (spec, "", "")
    if path.endswith(".py"):
        if not os.path.isfile(path):
            raise ModelSpecError(spec, f"no such file: {path}" if not os.path.exists(path) else f"{path} is not a file")
    elif not name:
        known = ", ".join([*models.BUILTIN, "minilm"])
        raise ModelSpecError(spec, f"unknown model: give a built-in name ({known}), package.module:factory, "
                                   "or file.py[:factory]")
    module = _import(spec, path)
    factory = name or FACTORY
    if not hasattr(module, factory):
        hint = f" (the factory to call; name another with {path}:NAME)" if not name else ""
        raise ModelSpecError(spec, f"{path} has no {factory!r}{hint}")
    return _call_factory(spec, getattr(module, factory), f"{path}:{factory}")


def parse_format(text: str | None):
    """'mxfp4' or 'int4sym:group=32,...' -> a format spec for quantize_model (or None)."""
    if text is None or text.lower() == "none":
        return None
    name, _, opts = text.partition(":")
    if not opts:
        return name
    spec = {"format": name}
    for item in opts.split(","):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"format option {item!r} in {text!r} is not key=value")
        spec[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value.strip()
    return spec


_DTYPES = {"float32", "float16", "bfloat16", "int64", "int32", "bool"}
MAX_INPUT_ELEMENTS = 2**26  # per example input (256 MiB of float32)


def parse_inputs(values: tuple[str, ...], seed: int = 0):
    """NAME:D1,D2[:DTYPE] (repeat) -> random example inputs, in order."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = []
    for v in values:
        parts = v.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"--input {v!r}: expected NAME:D1,D2,...[:DTYPE]")
        dims = parts[1].split(",")
        if not all(d.strip().isascii() and d.strip().isdigit() and int(d) > 0 for d in dims):
            raise ValueError(f"--input {v!r}: dimensions must be positive integers, got {parts[1]!r}")
        shape = [int(d) for d in dims]
        if math.prod(shape) > MAX_INPUT_ELEMENTS:
            raise ValueError(f"--input {v!r}: {math.prod(shape)} elements is more than an example input may have "
                             f"({MAX_INPUT_ELEMENTS})")
        dtype = parts[2] if len(parts) == 3 else "float32"
        if dtype not in _DTYPES:
            raise ValueError(f"--input {v!r}: dtype must be one of {', '.join(sorted(_DTYPES))}")
        dt = getattr(torch, dtype)
        if dtype in ("int64", "int32"):
            out.append(torch.randint(0, 8, shape, generator=g).to(dt))
        elif dtype == "bool":
            out.append(torch.ones(shape, dtype=torch.bool))
        else:
            out.append(torch.randn(shape, generator=g).to(dt))
    return tuple(out)


def quant_options(f):
    f = click.option("-w", "--weights", default="mxfp4", show_default=True,
                     help="Weight format (onnx-npuq formats), with options as fmt:key=value,... or none.")(f)
    f = click.option("-a", "--activations", default=None,
                     help="Activation format (fake-quantized along the last axis), default none.")(f)
    f = click.option("--recipe", type=click.Path(dir_okay=False), default=None,
                     help="A recipe YAML (module-name globs -> formats, exclude); -w/-a are its defaults.")(f)
    f = click.option("--exclude", multiple=True, help="Module-name glob to keep float (repeat), e.g. lm_head.")(f)
    f = click.option("--input", "inputs", multiple=True,
                     help="An example input NAME:D1,D2[:DTYPE] (repeat, in order); built-in and factory "
                          "models bring their own.")(f)
    return f


def quantized(model_spec, weights, activations, recipe, exclude, inputs, seed: int = 0):
    """(float model, quantized model, example inputs). The model is built under a fixed torch
    seed, so a factory that initializes randomly builds the same weights for export and verify."""
    import copy
    import dataclasses
    import warnings

    import torch

    from ..nn import Recipe, quantize_model

    # the cheap checks first: a bad recipe or format fails before the model is built
    rec = Recipe.load(Path(recipe)) if recipe else Recipe.from_dict({})
    if exclude:
        rec = dataclasses.replace(rec, exclude=(*rec.exclude, *exclude))
    rec = rec.with_defaults(parse_format(weights), parse_format(activations))
    example = parse_inputs(inputs, seed) if inputs else None
    torch.manual_seed(0)
    model, own_example = load_model(model_spec)
    example = example if example is not None else own_example
    if example is None:
        raise ValueError(f"{model_spec}: give example inputs with --input NAME:D1,D2[:DTYPE]")
    with warnings.catch_warnings():  # the commands print the whole report instead
        warnings.simplefilter("ignore", UserWarning)
        q = quantize_model(copy.deepcopy(model), weights=parse_format(weights),
                           activations=parse_format(activations), recipe=rec)
    return model, q, example


@command(main)
def formats(out):
    """The quantization formats: element, block, scale and bits per element."""
    from rich.console import Console
    from rich.table import Table

    from .. import formats as F

    rows = F.describe()
    table = Table("format", "aliases", "element", "block", "scale", "bits/element")
    for r in rows:
        table.add_row(r["format"], ", ".join(r["aliases"]), r["element"], str(r["block"]), r["scale"],
                      str(r["bits_per_element"]))
    if not out.json:
        Console(width=120).print(table)
    out.result(rows)


@command(main)
@click.argument("model")
@quant_options
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .onnx to write.")
@click.option("--external-data/--no-external-data", default=None,
              help="Weights in <output>.data (default: only past protobuf's 2 GB).")
@click.option("--dynamic", is_flag=True,
              help="Let every input dimension vary that the model allows (for other shapes in onnxruntime, "
                   "ATC's -1 / gears); default: the example inputs' shapes, ~2x faster to export.")
def export(out, model, weights, activations, recipe, exclude, inputs, output, external_data, dynamic):
    """Quantize MODEL's weight layers (Linear, conv, Conv1D; Embedding when the recipe asks)
    and export it to ONNX (packed weights, npuq ops, bodies onnxruntime runs; the example
    inputs' shapes, or with --dynamic any the model allows). Prints each layer quantized and
    each weight layer left float, with why."""
    from ..exporter import export as export_onnx

    _, q, example = quantized(model, weights, activations, recipe, exclude, inputs)
    report = q.npuq_report
    out.echo(str(report))
    names = [v.split(":")[0] for v in inputs] if inputs else None  # the names --input gave
    if names is not None and len(set(names)) != len(names):
        raise ValueError(f"--input: input names must differ, got {', '.join(names)}")
    proto = export_onnx(q, example, output, external_data=external_data, input_names=names,
                        dynamic=dynamic)
    size = os.path.getsize(output)
    out.echo(f"{model}: wrote {output} ({size / 1024:.1f} KiB, {len(proto.graph.node)} nodes)")
    out.result({"output": output, "bytes": size, "quantized_layers": len(report.layers),
                "nodes": len(proto.graph.node), **report.to_dict()})


@command(main)
@click.argument("model")
@click.argument("onnx_file", type=click.Path(dir_okay=False))
@quant_options
@click.option("--layers", is_flag=True, help="Also compare every weight layer's output (recorded by export).")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the random inputs with --input.")
def verify(out, model, onnx_file, weights, activations, recipe, exclude, inputs, layers, seed):
    """Run MODEL (quantized as for export) in torch and ONNX_FILE in onnxruntime on the same
    inputs; compare each output (and with --layers each weight layer)."""
    from ..io import load_model as load_onnx
    from ..runtime.ort import verify as run_verify

    proto = load_onnx(onnx_file)  # a bad file fails before the model is built and quantized
    _, q, example = quantized(model, weights, activations, recipe, exclude, inputs, seed)
    results = run_verify(q, example, proto, layers=layers)
    for r in results:
        out.echo(r.describe())
    out.result([vars(r) for r in results])
