"""Large outputs land on transparent huge pages whatever the import order, so a fresh
output does not pay a 4 KiB page fault per page (2-3x the time of copying it)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from onnx_npuq.formats.base import HUGE_PAGE, new_empty

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")

# torch allocates before onnx_npuq is imported: THP_MEM_ALLOC_ENABLE cannot act
_CHILD = """
import resource, sys, torch
x = torch.randn(2048, 4096)  # 32 MiB: 8192 pages of 4 KiB
from onnx_npuq.formats import base, get_format
if sys.argv[1] == "off":
    base._madvise = False
fmt = get_format("int8sym")
for op in ("fake_quant", "encode"):
    getattr(fmt, op)(x)  # warm the allocator's small chunks
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    getattr(fmt, op)(x)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> list[int]:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    run = subprocess.run([sys.executable, "-c", _CHILD, mode], env=env, capture_output=True, text=True,
                         check=True)
    return [int(v) for v in run.stdout.split()]


@pytest.mark.skipif(not THP.exists() or "[never]" in THP.read_text(), reason="no transparent huge pages")
def test_fresh_outputs_fault_in_huge_pages_whatever_the_import_order():
    fake, enc = _faults("on")
    edges = 2 * HUGE_PAGE // 4096  # a partial huge page of 4 KiB faults at each end
    assert fake < 8192 // 4 + edges, fake  # 32 MiB output: 16 huge pages
    assert enc < 2048 // 4 + edges, enc  # 8 MiB of codes: 4 huge pages


def test_new_empty_is_torch_empty():
    t = new_empty((3, 5 * HUGE_PAGE // 4), torch.float32, torch.device("cpu"))
    assert t.shape == (3, 5 * HUGE_PAGE // 4) and t.dtype == torch.float32 and t.is_contiguous()
    assert new_empty((0,), torch.uint8, torch.device("cpu")).numel() == 0
