"""Which kernel results depend on Div being correctly rounded (910B does not document it).

    python benchmarks/div_ulp_survey.py

Runs npuq::QuantDequant in the kernel host build (tests/test_kernels_host.py builds it) with
NPUQ_HOST_DIV_ULP=1, every Div quotient 1 ulp off, on 256 x 256 float32 values (40 rows of
edge values, the rest N(0, 3^2); 2 cores) and counts the values that differ in bits from
onnx_npuq.formats. Dequantize is not listed: it stays exact (a test checks it).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import FORMAT_CONFIGS, config_id  # noqa: E402
from test_kernels_host import DIV_ULP, edge_data, fake_quant_kernel  # noqa: E402

import onnx_npuq.formats as F  # noqa: E402


def main() -> None:
    binary = ROOT / "kernels" / "build-host" / "npuq-kernel-host"
    if not binary.exists():
        sys.exit(f"{binary} is missing: run `pytest tests/test_kernels_host.py` once to build it")
    x = torch.cat([edge_data(40, 256, seed=3), torch.randn(216, 256, generator=torch.Generator().manual_seed(0)) * 3])
    tmp = Path(tempfile.mkdtemp())
    print("| format | values differing (of 65536) |\n|---|---:|")
    for name, opts in FORMAT_CONFIGS:
        want = F.fake_quant(x, name, **opts)
        got = fake_quant_kernel(binary, tmp, x, name, opts, cores=2, env=DIV_ULP)
        differ = (got.view(torch.int32) != want.view(torch.int32)) & ~(got.isnan() & want.isnan())
        print(f"| `{config_id((name, opts))}` | {int(differ.sum())} |")


if __name__ == "__main__":
    main()
