"""Fake-quant and encode time per format, as a ratio to `out.copy_(x)` in the same process.

    python benchmarks/bench_formats.py [--size 4096] [--repeat 9] [--markdown]

Medians of `--repeat` runs after one warm-up. Import onnx_npuq before torch (as here) so
large tensors use transparent huge pages (see the README).
"""
import argparse
import statistics
import time

import onnx_npuq  # noqa: F401  (first: sets THP_MEM_ALLOC_ENABLE before torch allocates)
import torch
from onnx_npuq import formats


def _ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def timed_vs_copy(fn, copy, repeat: int):
    """-> (median ms of fn, median of per-round fn/copy ratios); copy timed beside each run."""
    fn()
    copy()
    times, ratios = [], []
    for _ in range(repeat):
        c = _ms(copy)
        t = _ms(fn)
        times.append(t)
        ratios.append(t / c)
    return statistics.median(times), statistics.median(ratios)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--formats", nargs="*", default=formats.names())
    ap.add_argument("--markdown", action="store_true", help="print a README table")
    args = ap.parse_args()

    torch.manual_seed(0)
    x = torch.randn(args.size, args.size)
    out = torch.empty_like(x)
    copy = lambda: out.copy_(x)  # noqa: E731
    copy_ms = statistics.median(_ms(copy) for _ in range(args.repeat))
    rows = []
    for name in args.formats:
        fmt = formats.get_format(name)
        fq = timed_vs_copy(lambda f=fmt: f.fake_quant(x), copy, args.repeat)
        en = timed_vs_copy(lambda f=fmt: f.encode(x), copy, args.repeat)
        rows.append((name, *fq, *en))

    threads = torch.get_num_threads()
    head = f"{args.size}x{args.size} float32, {threads} threads, copy {copy_ms:.2f} ms, medians of {args.repeat}"
    if args.markdown:
        print(f"{head}\n")
        print("| format | fake-quant ms | x copy | encode ms | x copy |")
        print("|---|---:|---:|---:|---:|")
        for name, fq, fr, en, er in rows:
            print(f"| `{name}` | {fq:.1f} | {fr:.1f} | {en:.1f} | {er:.1f} |")
    else:
        print(head)
        print(f"{'format':<11} {'fake ms':>8} {'x copy':>7} {'encode ms':>10} {'x copy':>7}")
        for name, fq, fr, en, er in rows:
            print(f"{name:<11} {fq:8.1f} {fr:7.1f} {en:10.1f} {er:7.1f}")


if __name__ == "__main__":
    main()
