"""Export cost and what it buys: onnx_npuq.export vs torch.onnx.export, file size vs theory,
onnxruntime latency of quantized vs fp32.

    python benchmarks/bench_export.py [--size 64m|256m|2g | --hidden 1024 --layers 4 ...]
                                      [--formats mxfp4 int4sym hif8] [--seq 128] [--repeat 20] [--markdown]
                                      [--export-only]

The model is the built-in LLaMA-style decoder (onnx_npuq.models.TinyDecoder, random weights,
no download; --size: the presets of bench_onnx.py, 2g the decoder of tests/test_large.py);
quantized variants keep lm_head in fp32. Every export, and every onnxruntime session (plain,
default options) whose memory is reported, runs in a fresh interpreter, so peak RSS (VmHWM,
which counts the ~0.3 GiB of Python and the libraries) is that step's own; an export's peak is
reset just before it (/proc/self/clear_refs), so it excludes building and quantizing the model. Export time is
compared with torch's own `torch.onnx.export(dynamo=True)` of the same model (for a
quantized one with the npuq translation table, the least torch needs to export it), in one
process per model, alternately, after a warm-up of each (the median of per-round ratios);
both static (the example input's shape, either's default), and once with every input
dimension dynamic (`dynamic=True` vs torch given the same `Dim.AUTO` dynamic_shapes).
--export-only skips the onnxruntime sessions (a quantized 2g session needs several GiB).
Latency is measured in one process holding every session: per round each model runs once,
the ratio to fp32 is the median of per-round ratios (this shared machine's load moves by up
to 2x).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnx_npuq  # first: huge pages before torch allocates
import torch

HERE = Path(__file__).resolve()


def _peak() -> int:
    """VmHWM: ru_maxrss would start at the parent's peak, which Linux carries over fork and exec."""
    from bench_onnx import peak_bytes

    return peak_bytes()


def _reset_peak() -> None:
    """VmHWM back to the current RSS (Linux >= 4.0), so the peak measured is the export's own,
    not the model's build or quantization (which peak higher for a large model)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _config(args):
    from onnx_npuq.models import DecoderConfig

    return DecoderConfig(vocab_size=args.vocab, hidden=args.hidden, intermediate=args.intermediate or
                         (11 * args.hidden // 4) // 64 * 64, layers=args.layers, heads=args.heads,
                         kv_heads=args.heads // 2)


def _model(args):
    from onnx_npuq.models import TinyDecoder

    torch.manual_seed(0)
    return TinyDecoder(_config(args)).eval()


def _ids(args) -> torch.Tensor:
    return torch.randint(0, args.vocab, (1, args.seq), generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------ children (one step each)


def child_export(args) -> dict:
    """Build the model (quantize it for a format), then export it: time and memory. `what`:
    torch (its plain export), torch:FMT (the quantized model, with the npuq translation
    table), fp32, fp32-external, fp32-dynamic or a format (onnx_npuq.export)."""
    from onnx_npuq.nn import QuantLinear, quantize_model
    from onnx_npuq.ops import npu_ops
    from onnx_npuq.ops.defs import TRANSLATIONS

    model, ids = _model(args), _ids(args)
    fp32_bytes = sum(p.numel() * 4 for p in model.parameters())
    quantize_s, theory = None, fp32_bytes
    fmt = args.what.removeprefix("torch:")
    if fmt not in ("torch", "fp32", "fp32-external", "fp32-dynamic"):
        t0 = time.perf_counter()
        quantize_model(model, weights=fmt, recipe={"exclude": ["lm_head"]})
        quantize_s = time.perf_counter() - t0
        layers = [m for m in model.modules() if isinstance(m, QuantLinear)]
        theory = sum(p.numel() * 4 for p in model.parameters())  # what stayed float
        theory += sum(q.in_features * q.out_features * q.weight_format.bits_per_element(q.in_features) / 8
                      for q in layers)
    path = Path(args.dir) / f"{args.what.replace(':', '-')}.onnx"
    _reset_peak()
    before = _rss()
    t0 = time.perf_counter()
    if args.what == "torch":  # plain: opset, static shapes, optimizer, external data, as torch sets them
        torch.onnx.export(model, (ids,), path, dynamo=True)
    elif args.what.startswith("torch:"):
        torch.onnx.export(model, (ids,), path, dynamo=True, custom_translation_table={**TRANSLATIONS,
                                                                                      **npu_ops.TRANSLATIONS})
    elif args.what == "fp32-dynamic":
        onnx_npuq.export(model, (ids,), path, dynamic=True)
    else:
        onnx_npuq.export(model, (ids,), path, external_data=True if args.what == "fp32-external" else None)
    export_s = time.perf_counter() - t0
    size = path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob(path.name + ".data"))
    return {"fp32_bytes": fp32_bytes, "quantize_s": quantize_s, "export_s": export_s, "rss_before": before,
            "peak": _peak(), "size": size, "theory": theory}


def child_session(args) -> dict:
    """A plain onnxruntime.InferenceSession (default options) from a file: creation time, memory."""
    import onnxruntime as ort

    t0 = time.perf_counter()
    session = ort.InferenceSession(Path(args.dir) / f"{args.what}.onnx", providers=["CPUExecutionProvider"])
    created = time.perf_counter() - t0
    session.run(None, {session.get_inputs()[0].name: _ids(args).numpy()})
    return {"session_s": created, "peak": _peak()}


def child_timing(args) -> dict:
    """Export time of onnx_npuq.export / torch's plain export of one model (fp32, fp32-dynamic
    or a format), in this one process, alternately after a warm-up of each: the median of
    per-round ratios. fp32-dynamic: dynamic=True vs torch with the same dynamic_shapes."""
    from onnx_npuq.nn import quantize_model
    from onnx_npuq.ops import npu_ops
    from onnx_npuq.ops.defs import TRANSLATIONS

    model, ids = _model(args), _ids(args)
    table, dynamic = None, args.what == "fp32-dynamic"
    shapes = ({0: torch.export.Dim.AUTO, 1: torch.export.Dim.AUTO},) if dynamic else None
    if args.what not in ("fp32", "fp32-dynamic"):
        quantize_model(model, weights=args.what, recipe={"exclude": ["lm_head"]})
        table = {**TRANSLATIONS, **npu_ops.TRANSLATIONS}  # what torch needs for the npuq ops
    out = Path(args.dir) / "timing"

    def theirs():
        torch.onnx.export(model, (ids,), out.with_suffix(".torch.onnx"), dynamo=True, custom_translation_table=table,
                          dynamic_shapes=shapes)

    def ours():
        onnx_npuq.export(model, (ids,), out.with_suffix(".npuq.onnx"), dynamic=dynamic)

    times: dict = {theirs: [], ours: []}
    for fn in times:  # warm-up
        fn()
    for _ in range(args.export_repeat):
        for fn in times:
            t0 = time.perf_counter()
            fn()
            times[fn].append(time.perf_counter() - t0)
    return {"torch_s": statistics.median(times[theirs]), "ours_s": statistics.median(times[ours]),
            "x_torch": statistics.median(o / t for o, t in zip(times[ours], times[theirs], strict=True))}


def child_latency(args) -> dict:
    """Every model's session in this one process; runs interleaved round by round."""
    from onnx_npuq.runtime import OrtSession

    names = args.what.split(",")
    sessions = {n: OrtSession(Path(args.dir) / f"{n}.onnx") for n in names}
    ids = _ids(args)
    times: dict[str, list[float]] = {n: [] for n in names}
    for n in names:  # warm-up
        sessions[n].run(ids)
    for _ in range(args.repeat):
        for n in names:
            t0 = time.perf_counter()
            sessions[n].run(ids)
            times[n].append(time.perf_counter() - t0)
    ratios = {n: statistics.median(q / r for q, r in zip(times[n], times["fp32"], strict=True)) for n in names}
    return {n: {"run_s": statistics.median(times[n]), "x_fp32": ratios[n]} for n in names}


CHILDREN = {"export": child_export, "session": child_session, "latency": child_latency, "timing": child_timing}


def _child(kind: str, what: str, args) -> dict:
    cmd = [sys.executable, os.fspath(HERE), "--child", kind, "--what", what, "--dir", args.dir,
           "--hidden", str(args.hidden), "--layers", str(args.layers), "--heads", str(args.heads),
           "--vocab", str(args.vocab), "--seq", str(args.seq), "--repeat", str(args.repeat),
           "--export-repeat", str(args.export_repeat)]
    if args.intermediate:
        cmd += ["--intermediate", str(args.intermediate)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{kind} {what} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ the report


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f}"


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(r) + " |" for r in [header, *rows]]
        lines.insert(1, "|---|" + "---:|" * (len(header) - 1))  # the README's style
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in [header, *rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["64m", "256m", "2g"], help="a preset of bench_onnx.py (overrides the shape)")
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--intermediate", type=int, default=0, help="default: 2.75 x hidden")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--export-repeat", type=int, default=3, help="rounds of the interleaved export timing")
    ap.add_argument("--formats", nargs="*", default=["mxfp4", "int4sym", "hif8"])
    ap.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    ap.add_argument("--export-only", action="store_true", help="only the export tables (no onnxruntime sessions)")
    ap.add_argument("--child", choices=list(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--what", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.size:
        from bench_onnx import SIZES

        c = SIZES[args.size]
        args.hidden, args.intermediate, args.layers = c["hidden"], c["intermediate"], c["layers"]
        args.heads, args.vocab = c["heads"], c["vocab_size"]
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)))
        return

    with tempfile.TemporaryDirectory(prefix="npuq-bench-export-") as tmp:
        args.dir = tmp
        c = _config(args)
        names = ["fp32", *args.formats]
        exports = {w: _child("export", w, args) for w in ["torch", "fp32-external", "fp32-dynamic", *names,
                                                           *(f"torch:{f}" for f in args.formats)]}
        timing = {n: _child("timing", n, args) for n in ["fp32", "fp32-dynamic", *args.formats]}
        if not args.export_only:
            sessions = {n: _child("session", n, args) for n in names}
            latency = _child("latency", ",".join(names), args)
    fp32_bytes = exports["fp32"]["fp32_bytes"]
    md = args.markdown

    print(f"TinyDecoder hidden {c.hidden}, intermediate {c.intermediate}, {c.layers} layers, vocab "
          f"{c.vocab_size}: {fp32_bytes / 4 / 1e6:.1f}M parameters, {_mib(fp32_bytes)} MiB fp32; "
          f"input 1x{args.seq}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; "
          f"export time: medians of {args.export_repeat} rounds; onnxruntime latency: medians of {args.repeat}\n")

    rows = []
    for w, r in exports.items():
        label = {"torch": "`torch.onnx.export(dynamo=True)`, fp32",
                 "fp32-external": "`onnx_npuq.export(external_data=True)`, fp32",
                 "fp32-dynamic": "`onnx_npuq.export(dynamic=True)`, fp32",
                 "fp32": "`onnx_npuq.export`, fp32"}.get(w, f"`onnx_npuq.export`, `{w}`")
        if w.startswith("torch:"):
            label = f"`torch.onnx.export(dynamo=True)` + npuq translation table, `{w[6:]}`"
        quant = "" if r["quantize_s"] is None else f"{r['quantize_s']:.1f}"
        rows.append([label, quant, f"{r['export_s']:.1f}", _mib(r["rss_before"]), _mib(r["peak"]),
                     _mib(r["peak"] - r["rss_before"]), _mib(r["size"])])
    print(_table(["export (fresh process each)", "quantize s", "export s", "RSS before MiB", "peak RSS MiB",
                  "peak - before MiB", "file MiB"], rows, md))
    print()
    label = {"fp32": "fp32", "fp32-dynamic": "fp32, dynamic: `dynamic=True` vs torch's `Dim.AUTO`"}
    rows = []
    for n, t in timing.items():  # peaks: the fresh-process exports above (torch's: plain / + the table)
        ours, theirs = exports.get(n), exports.get("torch" if n == "fp32" else f"torch:{n}")
        peaks = ["", ""] if ours is None or theirs is None or n == "fp32-dynamic" else \
            [_mib(theirs["peak"] - theirs["rss_before"]), _mib(ours["peak"] - ours["rss_before"])]
        rows.append([label.get(n, f"`{n}` (torch: + npuq translation table)"), f"{t['torch_s']:.2f}",
                     f"{t['ours_s']:.2f}", f"{t['x_torch']:.2f}", *peaks])
    print(_table(["export time (one process, alternating)", "torch.onnx.export s", "onnx_npuq.export s",
                  "x torch's", "torch peak - before MiB", "ours peak - before MiB"], rows, md))
    print()
    if args.export_only:
        return

    rows = []
    for n in names:
        e, s, lat = exports[n], sessions[n], latency[n]
        rows.append([f"`{n}`" if n != "fp32" else "fp32", _mib(e["size"]), f"{e['size'] / e['theory']:.3f}",
                     f"{s['session_s'] * 1e3:.0f}", _mib(s["peak"]), f"{s['peak'] / sessions['fp32']['peak']:.2f}",
                     f"{lat['run_s'] * 1e3:.1f}", f"{lat['x_fp32']:.2f}"])
    print(_table(["model", "MiB", "size / theory", "session creation ms", "session peak RSS MiB", "peak / fp32",
                  "run ms", "latency / fp32"], rows, md))


if __name__ == "__main__":
    main()
