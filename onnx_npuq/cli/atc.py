"""`check`, `convert` and `run`: ATC preflight, .om conversion, and running an .om on an NPU."""
from __future__ import annotations

import click

from .app import UsageError, command, main


def _load(model):
    from ..passes.pipeline import load

    return load(model)


def _data_dir(path: str) -> str:
    from ..io import data_dir_of

    return data_dir_of(path)


def _lay_out(out, proto, path: str, layout: str | None, opset: int | None):
    """The model in an ATC layout (the atc pass in memory when needed); exit 1 with the pass's
    problems when it cannot be laid out."""
    from ..atc import AtcOptionError, atc_model
    from ..passes import PassError
    from ..passes.atc import MAX_OPSET, MIN_OPSET
    from ..passes.pipeline import is_atc_layout

    if opset is not None and not MIN_OPSET <= opset <= MAX_OPSET:
        raise AtcOptionError(f"--opset {opset}: ATC documents standard opsets {MIN_OPSET}..{MAX_OPSET}")
    if is_atc_layout(proto) and layout is None and opset is None:
        return proto, False
    try:
        laid, converted = atc_model(proto, layout=layout or "default", opset=opset, data_dir=_data_dir(path))
    except PassError as err:
        head = str(err).split(": ", 1)[0] if err.problems else str(err)
        out.echo(f"{path}: the atc pass cannot lay the model out for ATC: {head}", err=True)
        for p in err.problems:
            out.echo(f"  {p}", err=True)
        raise click.exceptions.Exit(1) from None
    if converted:
        meta = {p.key: p.value for p in laid.metadata_props}
        out.echo(f"{path}: laid out by the atc pass (layout {meta.get('onnx_npuq.layout')}, "
                 f"opset {meta.get('onnx_npuq.opset')})")
    return laid, converted


def report_data(report) -> dict:
    return {"soc_version": report.soc_version, "layout": report.layout, "opset": report.opset,
            "nodes": report.nodes, "covered": report.covered, "full": report.full,
            "keys": dict(report.keys), "lines": report.lines(), "findings": [vars(f) for f in report.findings]}


def _print_report(out, report) -> None:
    out.echo(report.summary())
    for line in report.lines():
        out.echo(f"  {line}")


# Every option that is an ATC flag also takes ATC's own spelling (--soc_version, --input_shape,
# --log, ...), so an ATC command line's flags can be pasted.
_SOC_HELP = ("ATC --soc_version, e.g. Ascend910B1 (npu-smi info's Name, prefixed Ascend); the npuq kernels "
             "are built for Ascend910B* only.")


def _limit_options(f):
    """The ATC flags whose use with a quantized deploy model ATC documents as unsupported."""
    for option in reversed([
            click.option("--dynamic-batch", "--dynamic_batch_size", "dynamic_batch", default=None,
                         help='Gears for a -1 first dimension, e.g. "1,2,4,8".'),
            click.option("--dynamic-image-size", "--dynamic_image_size", "dynamic_image_size", default=None,
                         help='Gears for -1 H and W (NCHW), e.g. "224,224;448,448".'),
            click.option("--dynamic-dims", "--dynamic_dims", "dynamic_dims", default=None,
                         help='Gears for the -1 dimensions (input format ND), e.g. "16;32;64".'),
            click.option("--precision-mode", "--precision_mode", "precision_mode", default=None,
                         help="ATC --precision_mode (not with --precision-mode-v2)."),
            click.option("--precision-mode-v2", "--precision_mode_v2", "precision_mode_v2", default=None,
                         help="ATC --precision_mode_v2, e.g. fp16, origin.")]):
        f = option(f)
    return f


def _print_layers(out, model, soc_version, limits: dict) -> dict:
    """Each quantized layer's kind and why, and the ATC limits the flags hit."""
    from ..atc.layers import deploy_warnings, quantized_layers

    layers = quantized_layers(model, soc_version)
    warnings = deploy_warnings(model, **limits)
    if layers:
        out.echo(f"quantized layers: {len(layers)}")
        for layer in layers:
            out.echo(f"  {layer.line()}")
    for w in warnings:
        out.echo(f"warning: {w}", err=True)
    return {"layers": [vars(layer) for layer in layers], "warnings": warnings}


_LAYOUT_HELP = ("ATC layout to lay a not-yet-laid-out model out in (the atc pass; default: default); given for "
                "an ATC-layout model, it lays it out again.")


@command(main)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--soc", "--soc_version", "soc_version", required=True, help=_SOC_HELP)
@click.option("--layout", type=click.Choice(["default", "domain"]), default=None, help=_LAYOUT_HELP)
@click.option("--opset", type=int, default=None, help="Standard opset of the ATC layout (11..18; default 17).")
@click.option("--as-is", "as_is", is_flag=True, help="Check the file as it is: no atc pass in memory.")
@click.option("--strict", is_flag=True, help="Exit 1 on unconfirmed nodes too.")
@_limit_options
def check(out, model, soc_version, layout, opset, as_is, strict, dynamic_batch, dynamic_image_size, dynamic_dims,
          precision_mode, precision_mode_v2):
    """Would ATC find a parser (and kernel, and dtypes) for every node? Exit 0 if so, 1 if not.

    A model not yet in an ATC layout is laid out in memory by the atc pass first (unless
    --as-is). Errors are what ATC would stop on (E19010 no parser, E16005, EZ3003 no kernel
    for the SoC, EZ3002 bfloat16 on a SoC without it); UNCONFIRMED nodes use a key only an
    experimental CANN plugin registers, or may hit a documented op limit. Each quantized layer
    is listed with how it would run (native int8 cube, weight-only matmul, our custom kernel,
    folded) and why; the gear and precision flags warn where ATC documents a limit.
    """
    from ..atc import preflight, soc_info

    soc_info(soc_version)
    proto = _load(model)
    if not as_is:
        proto, _ = _lay_out(out, proto, model, layout, opset)
    report = preflight(proto, soc_version, _data_dir(model))
    _print_report(out, report)
    layers = _print_layers(out, proto, soc_version, dict(
        dynamic_batch=dynamic_batch, dynamic_image_size=dynamic_image_size, dynamic_dims=dynamic_dims,
        precision_mode=precision_mode, precision_mode_v2=precision_mode_v2))
    out.result({**report_data(report), **layers})
    if not report.full or (strict and report.unconfirmed):
        raise click.exceptions.Exit(1)


@command(main)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--soc", "--soc_version", "soc_version", required=True, help=_SOC_HELP)
@click.option("-o", "--output", "stem", required=True, type=click.Path(dir_okay=False),
              help="Output stem: ATC writes STEM.om; the laid-out model goes to STEM.atc.onnx.")
@click.option("--input-shape", "--input_shape", "input_shapes", multiple=True,
              help='ATC --input_shape, e.g. "input_ids:1,-1" (repeat or join inputs with ";"). '
                   "Required for inputs with open dimensions.")
@_limit_options
@click.option("--input-format", "--input_format", "input_format", type=click.Choice(["ND", "NCHW", "NCDHW"]),
              default="ND", show_default=True,
              help="ATC --input_format (ND for token ids and --dynamic-dims).")
@click.option("--keep-fp32", type=click.Choice(["keep_dtype", "origin", "none"]), default="keep_dtype",
              show_default=True,
              help="How custom nodes keep their dtypes: a generated --keep_dtype file (STEM.keep_dtype.cfg), "
                   "--precision_mode_v2=origin for the whole graph, or nothing.")
@click.option("--keep-dtype", "--keep_dtype", "keep_dtype", type=click.Path(dir_okay=False), default=None,
              help="Your own --keep_dtype file, used instead of the generated one.")
@click.option("--log", type=click.Choice(["debug", "info", "warning", "error", "null"]), default="error",
              show_default=True, help="ATC --log.")
@click.option("--atc-arg", "atc_args", multiple=True, help="Another ATC flag, as --flag=value (repeat).")
@click.option("--layout", type=click.Choice(["default", "domain"]), default=None, help=_LAYOUT_HELP)
@click.option("--opset", type=int, default=None,
              help="Standard opset of the ATC layout (11..18; default 17, or 16 with QuantBatchMatMul).")
@click.option("--weights", type=click.Choice(["auto", "fold", "packed"]), default="auto", show_default=True,
              help="Packed weights: auto folds (fold-weights) those the SoC has no kernel of its own for, "
                   "fold folds every one, packed keeps them all (smaller; decoded per inference).")
@click.option("--force", is_flag=True, help="Convert even when the preflight finds errors.")
@click.option("--require-atc", is_flag=True, help="Exit 1 when atc is not on PATH (default: print the command, exit 0).")
def convert(out, model, soc_version, stem, input_shapes, dynamic_batch, dynamic_image_size, dynamic_dims, input_format,
            precision_mode, precision_mode_v2, keep_fp32, keep_dtype, log, atc_args, layout, opset, weights, force,
            require_atc):
    """ONNX -> ATC-layout ONNX -> .om: preflight, write STEM.atc.onnx (+ STEM.keep_dtype.cfg),
    then run atc when it is on PATH.

    Without atc on PATH the exact command is printed with one line saying why it did not run,
    and the exit code is 0 (the files it needs are written: run it where CANN is installed);
    --require-atc makes that exit 1. Exit 1 also when the preflight finds errors (unless
    --force) or atc fails; exit 2 on bad input, with nothing written.
    """
    import shutil
    import subprocess

    from ..atc import plan_command, preflight, soc_info

    soc_info(soc_version)
    proto = _load(model)
    proto, layout, opset, folding = _weights(out, proto, model, soc_version, weights, layout, opset)
    laid_out, converted = _lay_out(out, proto, model, layout, opset)
    cmd = plan_command(laid_out if converted else model, soc_version, stem,
                       input_shapes=";".join(input_shapes) if input_shapes else None, dynamic_batch=dynamic_batch,
                       dynamic_image_size=dynamic_image_size, dynamic_dims=dynamic_dims, input_format=input_format,
                       precision_mode=precision_mode, precision_mode_v2=precision_mode_v2, keep_dtype=keep_dtype,
                       keep_fp32=keep_fp32, log=log, extra=list(atc_args), data_dir=_data_dir(model))
    report = preflight(cmd.model, soc_version, cmd.data_dir)
    _print_report(out, report)
    layers = _print_layers(out, cmd.model, soc_version, dict(
        dynamic_batch=dynamic_batch, dynamic_image_size=dynamic_image_size, dynamic_dims=dynamic_dims,
        precision_mode=precision_mode, precision_mode_v2=precision_mode_v2))
    data = {"preflight": {**report_data(report), **layers}, "argv": cmd.argv, "command": cmd.shell(), "written": [],
            "atc": "not run", "om": None, "weights": folding}

    def finish(status: str, code: int = 0):
        data["atc"] = status
        out.result(data)
        if code:
            raise click.exceptions.Exit(code)

    if not report.full and not force:
        out.echo("not converting: ATC would stop on the errors above (--force converts anyway)", err=True)
        return finish("not run: preflight errors", 1)
    for note in cmd.notes:
        out.echo(note)
    for path in cmd.write():
        out.echo(f"wrote {path}")
        data["written"].append(str(path))
    atc = shutil.which("atc")
    if atc is None:
        out.echo(cmd.shell())
        out.echo("atc is not on PATH (install CANN and source atc_scripts/env.sh): the command above was not run",
                 err=True)
        return finish("not on PATH", 1 if require_atc else 0)
    out.echo(f"running: {cmd.shell()}")
    rc = subprocess.call([atc, *cmd.argv[1:]])
    if rc != 0:
        out.echo(f"atc failed with exit code {rc} (its messages are above; logs under $HOME/ascend/log/)", err=True)
        return finish(f"failed with exit code {rc}", 1)
    if not cmd.om_path.is_file():
        out.echo(f"atc exited 0 but wrote no {cmd.om_path}", err=True)
        return finish("wrote no .om", 1)
    out.echo(f"wrote {cmd.om_path}")
    data["om"] = str(cmd.om_path)
    finish("ok")


def _weights(out, proto, path: str, soc_version: str, mode: str, layout, opset):
    """convert --weights: the model with its packed weights folded as `mode` says (the
    fold-weights pass; an ATC-layout model goes back to portable for it and is laid out again
    as it was), the layout / opset to lay it out with, and what was done ({mode, notes}),
    printed a line per layer."""
    from ..atc.soc import CUSTOM_OP_FAMILIES, soc_info
    from ..passes import run_passes
    from ..passes.atc import OPSET_KEY, to_portable
    from ..passes.pipeline import LAYOUT_KEY

    packed = [n for n in proto.graph.node if n.op_type == "Dequantize" and n.domain in ("npuq", "")]
    if not packed:
        return proto, layout, opset, _say(out, mode, ["no packed weights"])
    if mode == "packed":
        soc = soc_info(soc_version)
        where = ("onnx_npuq's Dequantize kernel decodes it per inference" if soc.family in CUSTOM_OP_FAMILIES else
                 f"no Dequantize kernel for {soc.family}: ATC stops with EZ3003 (fold it)")
        return proto, layout, opset, _say(out, mode, [f"{n.name or n.output[0]}: packed, {where}" for n in packed])
    meta = {p.key: p.value for p in proto.metadata_props}
    if LAYOUT_KEY in meta:
        proto = to_portable(proto, _data_dir(path))
        layout = layout or meta[LAYOUT_KEY]
        if opset is None and meta.get(OPSET_KEY, "").isdigit():
            opset = int(meta[OPSET_KEY])
    folded, (report,) = run_passes(proto, ["fold-weights"], verify=False, data_dir=_data_dir(path), soc=soc_version,
                                   fold_native=mode == "fold")
    return folded, layout, opset, _say(out, mode, report.notes)


def _say(out, mode: str, notes: list[str]) -> dict:
    out.echo(f"weights ({mode}):")
    for note in notes:
        out.echo(f"  {note}")
    return {"mode": mode, "notes": notes}


def _npz_inputs(path: str, names: list[str]) -> list:
    import zipfile

    import numpy as np

    try:
        data = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, ValueError) as err:  # numpy's messages do not name the file
        raise ValueError(f"{path}: not a readable .npz ({err or type(err).__name__})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: a single array (.npy), not an .npz of named arrays")
    try:
        with data:
            keys = list(data.keys())
            if set(names) <= set(keys):
                return [data[n] for n in names]
            positional = [f"arr_{i}" for i in range(len(names))]
            if set(positional) <= set(keys):
                return [data[k] for k in positional]
    except (zipfile.BadZipFile, EOFError, ValueError) as err:  # a member that is not an array
        raise ValueError(f"{path}: not a readable .npz ({err or type(err).__name__})") from None
    raise ValueError(f"{path}: has arrays {', '.join(keys) or 'none'}; the model's inputs are "
                     f"{', '.join(names)} (or give arr_0..arr_{len(names) - 1})")


@command(main, "run")
@click.argument("om", type=click.Path(dir_okay=False))
@click.option("--inputs", "inputs_npz", type=click.Path(dir_okay=False), default=None,
              help="Inputs as an .npz (arrays named like the model inputs, or arr_0, arr_1, ...).")
@click.option("--compare", "onnx_model", type=click.Path(dir_okay=False), default=None,
              help="Also run this ONNX model in onnxruntime on the same inputs and compare each output.")
@click.option("--device", "device_id", type=int, default=0, show_default=True, help="NPU device id.")
@click.option("--backend", type=click.Choice(["auto", "acl", "ais_bench"]), default="auto", show_default=True,
              help="pyACL, ais_bench, or the first that imports.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Save the outputs to this .npz.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of random inputs (without --inputs).")
def run_om(out, om, inputs_npz, onnx_model, device_id, backend, output, seed):
    """Run an offline model (.om) on an Ascend NPU (pyACL, or ais_bench) and optionally
    compare it with the ONNX model in onnxruntime. Without --inputs the inputs are random
    (from the ONNX model's inputs with --compare, else from the .om's description)."""
    import os

    import numpy as np

    from ..runtime.acl import AclError, RuntimeUnavailable, open_session

    for path in (om, inputs_npz, onnx_model):
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"no such file: {path}")
    proto = _load(onnx_model) if onnx_model else None
    try:
        session = open_session(om, device_id, backend)
    except RuntimeUnavailable as err:
        raise UsageError(str(err)) from err
    except AclError as err:
        out.echo(f"{om}: {err}", err=True)
        raise click.exceptions.Exit(1) from None
    try:
        with session:
            names = list(session.input_names)
            if inputs_npz:
                arrays = _npz_inputs(inputs_npz, names)
            elif proto is not None:
                from ..passes import random_inputs

                arrays = [_to_numpy(t) for t in random_inputs(proto, seed)]
            elif hasattr(session, "input_shapes"):
                rng = np.random.default_rng(seed)
                arrays = [rng.standard_normal(shape).astype(dtype) if dtype.kind == "f"
                          else rng.integers(0, 8, shape).astype(dtype)
                          for shape, dtype in zip(session.input_shapes, session.input_dtypes)]
            else:
                raise ValueError("give --inputs (or --compare MODEL.onnx to draw random inputs from it)")
            outputs = session.run(*arrays)
            out_names = list(session.output_names)
    except AclError as err:
        out.echo(f"{om}: {err}", err=True)
        raise click.exceptions.Exit(1) from None
    for name, value in zip(out_names, outputs):
        out.echo(f"{name}: {value.dtype} {tuple(value.shape)}")
    if output:
        from ..io import atomic_path

        with atomic_path(output, suffix=".npz") as tmp:  # np.savez adds .npz to other names
            np.savez(tmp, **dict(zip(out_names, outputs)))
        out.echo(f"wrote {output}")
    compared = _compare(out, proto, _data_dir(onnx_model), arrays, out_names, outputs) if proto is not None else []
    out.result({"om": om, "outputs": [{"name": n, "dtype": str(v.dtype), "shape": list(v.shape)}
                                      for n, v in zip(out_names, outputs)],
                "saved": output, "compare": compared})


def _to_numpy(t):
    """torch -> numpy, bfloat16 as ml_dtypes.bfloat16."""
    import torch

    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.uint16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _to_torch(a):
    """numpy -> torch, ml_dtypes.bfloat16 as torch.bfloat16."""
    import numpy as np
    import torch

    a = np.ascontiguousarray(a)
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _compare(out, proto, data_dir, arrays, names, outputs) -> list:
    from ..passes.atc import to_portable
    from ..passes.pipeline import is_atc_layout
    from ..runtime.ort import OrtSession, compare

    runnable = to_portable(proto, data_dir) if is_atc_layout(proto) else proto
    session = OrtSession(runnable, data_dir=data_dir)
    want = session.run(*[_to_torch(a) for a in arrays])
    if len(want) != len(outputs):
        raise ValueError(f"the ONNX model has {len(want)} output(s), the .om {len(outputs)}")
    results = []
    for name, w, g in zip(names, want, outputs):
        r = compare(name, w, _to_torch(g))
        out.echo(f"compare {r.describe()}")
        results.append(vars(r))
    return results


