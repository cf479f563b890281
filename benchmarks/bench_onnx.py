"""Plain onnxruntime sessions of onnx_npuq exports: session peak memory and steady-state
latency of each weight format's export against the fp32 export's.

    python benchmarks/bench_onnx.py [--size 64m|256m|2g] [--formats mxfp4 int4sym ...]
                                    [--seq 64] [--repeat 20] [--sessions 3] [--markdown]

The model is onnx_npuq.models.TinyDecoder (random weights): 64m has 61 MiB of fp32 weights,
256m 230 MiB, 2g is the 2.28 GB decoder of tests/test_large.py (`make test-slow`), exported
with external data. Quantized variants keep lm_head in fp32.

Every export and every session runs in a fresh interpreter, and its peak is VmHWM (the
process's own resident high-water mark; ru_maxrss would start at the parent's, which Linux
carries over fork and exec). A session is `onnxruntime.InferenceSession(path)` with default
options, as a user makes it: created, then run once. onnxruntime constant-folds the decoding
of every packed weight while it creates the session; the peak holds what the folding keeps.
Latency: the fp32 and the format's sessions in one process, run alternately; the ratio is
the median of per-round ratios (the machine's load moves by up to 2x).
The 2g size needs about 5 GiB (two sessions for the latency) and some minutes per format.
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

HERE = Path(__file__).resolve()
SIZES = {
    "64m": {"vocab_size": 4096, "hidden": 512, "intermediate": 1408, "layers": 4, "heads": 8, "kv_heads": 4},
    "256m": {"vocab_size": 4096, "hidden": 1024, "intermediate": 2816, "layers": 4, "heads": 16, "kv_heads": 8},
    "2g": {"vocab_size": 1024, "hidden": 2048, "intermediate": 5632, "layers": 12, "heads": 16, "kv_heads": 8},
}
DEFAULT_FORMATS = ["mxfp4", "nvfp4", "hif4", "hif8", "int4sym", "int8sym", "fp8e4m3"]


def peak_bytes() -> int:
    """This process's resident high-water mark (VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _ids(args):
    import numpy as np

    vocab = SIZES[args.size]["vocab_size"]
    return np.random.default_rng(1).integers(0, vocab, (1, args.seq)).astype(np.int64)


def _path(args, what: str) -> Path:
    return Path(args.dir) / f"{what}.onnx"


# ------------------------------------------------------------------ children (one step each)


def child_export(args) -> dict:
    import onnx_npuq  # first: huge pages before torch allocates
    import torch
    from onnx_npuq.models import DecoderConfig, TinyDecoder
    from onnx_npuq.nn import quantize_model

    torch.manual_seed(0)
    model = TinyDecoder(DecoderConfig(**SIZES[args.size])).eval()
    fp32_bytes = sum(p.numel() * 4 for p in model.parameters())
    if args.what != "fp32":
        quantize_model(model, weights=args.what, recipe={"exclude": ["lm_head"]})
    ids = torch.from_numpy(_ids(args))
    t0 = time.perf_counter()
    onnx_npuq.export(model, (ids,), _path(args, args.what), external_data=True if args.size == "2g" else None)
    return {"export_s": time.perf_counter() - t0, "fp32_bytes": fp32_bytes}


def child_session(args) -> dict:
    import onnxruntime as ort

    t0 = time.perf_counter()
    session = ort.InferenceSession(_path(args, args.what), providers=["CPUExecutionProvider"])
    created = time.perf_counter() - t0
    session.run(None, {session.get_inputs()[0].name: _ids(args)})
    return {"session_s": created, "peak": peak_bytes()}


def child_latency(args) -> dict:
    import onnxruntime as ort

    names = ["fp32", args.what]
    sessions = {n: ort.InferenceSession(_path(args, n), providers=["CPUExecutionProvider"]) for n in names}
    feed = {sessions["fp32"].get_inputs()[0].name: _ids(args)}
    times: dict[str, list[float]] = {n: [] for n in names}
    for n in names:  # warm-up
        sessions[n].run(None, feed)
    for _ in range(args.repeat):
        for n in names:
            t0 = time.perf_counter()
            sessions[n].run(None, feed)
            times[n].append(time.perf_counter() - t0)
    return {"run_s": statistics.median(times[args.what]), "fp32_run_s": statistics.median(times["fp32"]),
            "x_fp32": statistics.median(q / r for q, r in zip(times[args.what], times["fp32"], strict=True))}


CHILDREN = {"export": child_export, "session": child_session, "latency": child_latency}


def _child(kind: str, what: str, args) -> dict:
    cmd = [sys.executable, os.fspath(HERE), "--child", kind, "--what", what, "--dir", args.dir,
           "--size", args.size, "--seq", str(args.seq), "--repeat", str(args.repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{kind} {what} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _session(args, what: str) -> dict:
    """The session child run --sessions times: the median peak (glibc's heap makes one
    process's VmHWM move by up to ~20% from run to run), the first's creation time."""
    runs = [_child("session", what, args) for _ in range(args.sessions)]
    return {"session_s": runs[0]["session_s"], "peak": statistics.median(r["peak"] for r in runs)}


# ------------------------------------------------------------------ the report


def table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(r) + " |" for r in [header, *rows]]
        lines.insert(1, "|---|" + "---:|" * (len(header) - 1))
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in [header, *rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=list(SIZES), default="64m")
    ap.add_argument("--formats", nargs="*", default=DEFAULT_FORMATS)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--sessions", type=int, default=3, help="fresh sessions per model; the peak is their median")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    ap.add_argument("--child", choices=list(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--what", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)))
        return

    with tempfile.TemporaryDirectory(prefix="npuq-bench-onnx-") as tmp:
        args.dir = tmp
        fp32 = _child("export", "fp32", args)
        ref = _session(args, "fp32")
        rows = [["fp32", f"{ref['peak'] / 2**20:.0f}", "1.00", f"{ref['session_s']:.1f}", "", "1.00"]]
        for name in args.formats:
            _child("export", name, args)
            s = _session(args, name)
            lat = _child("latency", name, args)
            rows.append([f"`{name}`", f"{s['peak'] / 2**20:.0f}", f"{s['peak'] / ref['peak']:.2f}",
                         f"{s['session_s']:.1f}", f"{lat['run_s'] * 1e3:.1f}", f"{lat['x_fp32']:.2f}"])
            rows[0][4] = f"{lat['fp32_run_s'] * 1e3:.1f}"
            _path(args, name).unlink()
            for extra in Path(tmp).glob(f"{name}.onnx.data"):
                extra.unlink()
    c = SIZES[args.size]
    print(f"TinyDecoder {args.size}: hidden {c['hidden']}, intermediate {c['intermediate']}, {c['layers']} layers, "
          f"vocab {c['vocab_size']}: {fp32['fp32_bytes'] / 2**20:.0f} MiB of fp32 weights; input 1x{args.seq}; "
          f"{os.cpu_count()} CPUs; plain onnxruntime.InferenceSession, peak = VmHWM of a fresh process "
          f"(median of {args.sessions}); "
          f"latency: medians of {args.repeat}\n")
    print(table(["model", "session peak MiB", "peak / fp32", "session creation s", "run ms", "latency / fp32"],
                rows, args.markdown))


if __name__ == "__main__":
    main()
