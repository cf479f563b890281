"""`make demo` until the export pipeline lands: quantize one tensor with every format."""
import onnx_npuq  # noqa: F401  (before torch: huge pages for large tensors)
import torch
from onnx_npuq import formats


def main() -> None:
    torch.manual_seed(0)
    w = torch.randn(1024, 4096) * 0.02
    print(f"{'format':<11} {'bits/el':>7} {'packed KiB':>10} {'rel. RMSE':>10} {'roundtrip':>9}")
    for name in formats.names():
        p = formats.encode(w, name)
        y = formats.fake_quant(w, name)
        rmse = ((y - w).pow(2).mean().sqrt() / w.pow(2).mean().sqrt()).item()
        exact = torch.equal(formats.decode(p), y)
        bpe = 8 * p.nbytes / w.numel()
        print(f"{name:<11} {bpe:7.3f} {p.nbytes / 1024:10.1f} {rmse:10.4f} {str(exact):>9}")


if __name__ == "__main__":
    main()
