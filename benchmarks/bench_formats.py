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


def median_ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


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
    rows = []
    for name in args.formats:
        fmt = formats.get_format(name)
        copy_ms = median_ms(lambda: out.copy_(x), args.repeat)  # re-measured beside each
        fq = median_ms(lambda: fmt.fake_quant(x), args.repeat)
        en = median_ms(lambda: fmt.encode(x), args.repeat)
        rows.append((name, copy_ms, fq, en))

    threads = torch.get_num_threads()
    if args.markdown:
        print(f"| format | fake-quant ms | x copy | encode ms | x copy |  ({args.size}x{args.size} fp32, {threads} threads)")
        print("|---|---:|---:|---:|---:|")
        for name, c, fq, en in rows:
            print(f"| {name} | {fq:.1f} | {fq / c:.1f} | {en:.1f} | {en / c:.1f} |")
    else:
        print(f"{args.size}x{args.size} float32, {threads} threads, median of {args.repeat}")
        print(f"{'format':<11} {'copy ms':>8} {'fake ms':>8} {'x copy':>7} {'encode ms':>10} {'x copy':>7}")
        for name, c, fq, en in rows:
            print(f"{name:<11} {c:8.2f} {fq:8.1f} {fq / c:7.1f} {en:10.1f} {en / c:7.1f}")


if __name__ == "__main__":
    main()
