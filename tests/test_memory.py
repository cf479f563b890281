"""Large outputs land on transparent huge pages whatever the import order, so a fresh
output does not pay a 4 KiB page fault per page (2-3x the time of copying it); a repeated
call reuses a dropped output and a kernel's temporaries, so it pays no faults at all."""
import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from onnx_npuq.formats.buffers import HUGE_PAGE, new_empty

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")

# torch allocates before onnx_npuq is imported: THP_MEM_ALLOC_ENABLE cannot act
_CHILD = """
import resource, sys, torch
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.randn(2048, 4096)  # 32 MiB: 8192 pages of 4 KiB
from onnx_npuq.formats import get_format
from onnx_npuq.formats.buffers import new_empty
fresh = new_empty(x.shape, x.dtype, x.device)
before = faults()
fresh.fill_(1.0)
print(faults() - before)
fmt = get_format(sys.argv[1])
for op in ("fake_quant", "encode"):
    for _ in range(8):
        before = faults()
        getattr(fmt, op)(x)
        print(faults() - before)
"""


@functools.cache
def _faults(fmt: str) -> list[int]:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    run = subprocess.run([sys.executable, "-c", _CHILD, fmt], env=env, capture_output=True, text=True,
                         check=True)
    return [int(v) for v in run.stdout.split()]


@pytest.mark.skipif(not THP.exists() or "[never]" in THP.read_text(), reason="no transparent huge pages")
def test_a_fresh_output_faults_in_huge_pages_whatever_the_import_order():
    fresh = _faults("hif4")[0]
    edges = 2 * HUGE_PAGE // 4096  # a partial huge page of 4 KiB faults at each end
    assert fresh < 8192 // 512 + edges, fresh  # 32 MiB: 16 huge pages


@pytest.mark.parametrize("fmt", ["hif4", "mxfp4"])  # hif4: the most temporaries
def test_repeated_calls_fault_in_no_pages(fmt):
    """Compiling and the heap take a few calls to reach its working size; from then on nothing is
    mapped anew: outputs reuse dropped ones, temporaries come from the heap. A call that mapped
    them afresh faults in thousands of pages, every call; the heap still grows by a MiB or two
    in an odd call while it settles (512 faults, not every call), so most calls fault in none."""
    faults = _faults(fmt)[1:]
    for calls in (faults[3:8], faults[11:]):  # the last 5 calls of fake_quant, of encode
        assert sorted(calls)[len(calls) // 2] == 0, faults


def test_new_empty_is_torch_empty():
    t = new_empty((3, 5 * HUGE_PAGE // 4), torch.float32, torch.device("cpu"))
    assert t.shape == (3, 5 * HUGE_PAGE // 4) and t.dtype == torch.float32 and t.is_contiguous()
    assert new_empty((0,), torch.uint8, torch.device("cpu")).numel() == 0
