"""Fake-quant and encode time per format, as a ratio to `out.copy_(x)` in the same process.

    python benchmarks/bench_formats.py [--size 4096] [--repeat 7] [--markdown] [--cpu-time]

torch is imported first, as user scripts do: the speed must not depend on import order
(onnx_npuq puts its large outputs on transparent huge pages itself). Each operation gets
two warm-up calls (the first compiles), then `--repeat` runs, each right after a copy;
the ratio is the median of the per-run op/copy ratios. The header also gives `x * 2` in the
same units: one pass that writes a fresh output, whose pages the kernel faults in and
zero-fills (`out.copy_` does not pay that). onnx_npuq's ops reuse the memory of an output
the caller dropped (formats/buffers.py), so from the third call on the `faults` column is 0.
Timing is wall clock; with
--cpu-time it is the CPU time of one thread (torch.set_num_threads(1)), which other
processes on a shared machine disturb far less (they still share caches and memory).
"""
import argparse
import resource
import statistics
import time

import torch  # noqa: I001  (first, on purpose)

from onnx_npuq import formats


_clock = time.perf_counter


def _ms(fn) -> float:
    t0 = _clock()
    fn()
    return (_clock() - t0) * 1e3


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed_vs_copy(fn, copy, repeat: int):
    """-> (median ms of fn, median of per-run fn/copy ratios, median page faults per run)."""
    fn()
    fn()
    times, ratios, faults = [], [], []
    for _ in range(repeat):
        c = _ms(copy)
        f0 = _faults()
        t = _ms(fn)
        faults.append(_faults() - f0)
        times.append(t)
        ratios.append(t / c)
    return statistics.median(times), statistics.median(ratios), statistics.median(faults)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--formats", nargs="*", default=formats.names())
    ap.add_argument("--markdown", action="store_true", help="print README tables")
    ap.add_argument("--cpu-time", action="store_true", help="1 thread, its CPU time")
    args = ap.parse_args()
    if args.cpu_time:
        global _clock
        torch.set_num_threads(1)
        _clock = time.thread_time

    torch.manual_seed(0)
    x = torch.randn(args.size, args.size)
    out = torch.empty_like(x)
    copy = lambda: out.copy_(x)  # noqa: E731
    copy()
    copy_ms = statistics.median(_ms(copy) for _ in range(args.repeat))
    results = {"fake-quant": [], "encode": []}
    # Every op once before any is timed: the compiles' memory churn is over before timing.
    for name in args.formats:
        fmt = formats.get_format(name)
        fmt.fake_quant(x), fmt.encode(x)
    fresh = timed_vs_copy(lambda: x * 2, copy, args.repeat)[1]
    for name in args.formats:
        fmt = formats.get_format(name)
        xb = x.reshape(-1, fmt.block_for(x.shape[-1]))
        compiled = fmt._use_compile(xb)
        path = "compiled" if compiled else "eager"
        results["fake-quant"].append((name, path, *timed_vs_copy(lambda f=fmt: f.fake_quant(x), copy, args.repeat)))
        results["encode"].append((name, path, *timed_vs_copy(lambda f=fmt: f.encode(x), copy, args.repeat)))

    with open("/proc/loadavg") as fh:
        load = fh.read().split()[0]
    clock = "CPU time" if args.cpu_time else "wall clock"
    head = (f"{args.size}x{args.size} float32, torch imported first, {torch.get_num_threads()} threads, {clock}, "
            f"copy {copy_ms:.2f} ms, x * 2 (fresh output) {fresh:.2f}x copy, medians of {args.repeat} after 2 warm-up calls, load {load}")
    print(head)
    for op, rows in results.items():
        print()
        if args.markdown:
            print(f"| {op} | " + " | ".join(f"`{r[0]}`" for r in rows) + " |")
            print("|---|" + "---:|" * len(rows))
            print("| x copy | " + " | ".join(f"{r[3]:.1f}" for r in rows) + " |")
            print("| ms | " + " | ".join(f"{r[2]:.1f}" for r in rows) + " |")
            print("| path | " + " | ".join(r[1] for r in rows) + " |")
        else:
            print(f"{op:<11} {'path':>8} {'ms':>8} {'x copy':>7} {'faults':>7}")
            for name, path, ms, ratio, faults in rows:
                print(f"{name:<11} {path:>8} {ms:8.1f} {ratio:7.2f} {faults:7.0f}")


if __name__ == "__main__":
    main()
