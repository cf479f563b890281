"""Exported LLaMA-style model: file size vs theory, session creation, onnxruntime latency.

    python benchmarks/bench_onnx.py [--hidden 512] [--layers 2] [--formats mxfp4 hif4 ...]

Each weight format's export is compared with the fp32 export of the same model, in one
process: the latency ratio is the median of per-round ratios (quantized / fp32).
"""
import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import onnx_npuq  # noqa: F401  (first: huge pages before torch allocates)
import torch
import transformers
from onnx_npuq import formats
from onnx_npuq.exporter import Logits
from onnx_npuq.nn import QuantLinear, quantize_model
from onnx_npuq.runtime import OrtSession


def _ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--formats", nargs="*", default=formats.names())
    args = ap.parse_args()

    torch.manual_seed(0)
    h = args.hidden
    cfg = transformers.LlamaConfig(hidden_size=h, intermediate_size=2 * h, num_hidden_layers=args.layers,
                                   num_attention_heads=8, num_key_value_heads=4, vocab_size=1024,
                                   max_position_embeddings=256)
    base = transformers.LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 1024, (1, args.seq))
    out = Path(tempfile.mkdtemp(prefix="npuq-bench-"))

    onnx_npuq.export(Logits(base), (ids,), out / "fp32.onnx")
    ref = OrtSession(out / "fp32.onnx")
    ref.run(ids)
    print(f"LLaMA hidden {h}, {args.layers} layers, seq {args.seq}; fp32 file "
          f"{(out / 'fp32.onnx').stat().st_size / 2**20:.2f} MiB; medians of {args.repeat}")
    print(f"{'format':<11} {'MiB':>6} {'x theory':>8} {'session ms':>10} {'run ms':>7} {'x fp32':>6}")
    for name in args.formats:
        model = copy.deepcopy(base)
        quantize_model(model, weights=name, recipe={"exclude": ["lm_head"]})
        path = out / f"{name}.onnx"
        onnx_npuq.export(Logits(model), (ids,), path)
        quantized = [m for m in model.modules() if isinstance(m, QuantLinear)]
        other = sum(p.numel() * 4 for n, p in model.named_parameters() if "layers." not in n or "norm" in n)
        theory = other + sum(q.in_features * q.out_features * q.bits_per_weight / 8 for q in quantized)
        size = path.stat().st_size
        t0 = time.perf_counter()
        sess = OrtSession(path)
        created = (time.perf_counter() - t0) * 1e3
        sess.run(ids)
        times, ratios = [], []
        for _ in range(args.repeat):
            r = _ms(lambda: ref.run(ids))
            q = _ms(lambda: sess.run(ids))  # noqa: B023
            times.append(q)
            ratios.append(q / r)
        print(f"{name:<11} {size / 2**20:6.2f} {size / theory:8.3f} {created:10.0f} "
              f"{statistics.median(times):7.2f} {statistics.median(ratios):6.2f}")


if __name__ == "__main__":
    main()
