"""Shared helpers, fixtures and the hypothesis profile for the numerics test suite.

Every numeric comparison in this suite is bit-exact (`assert_same`): same shape, same
dtype, NaN in the same positions, and equal values everywhere else. `torch.equal`
semantics are used for the finite part, so +0.0 and -0.0 compare equal.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

from onnx_npuq import formats as F

DATA = Path(__file__).parent / "data"

# The suite's tensors are small: intra-op threads only add OpenMP hand-off cost, and on a
# busy 2-core machine spinning workers slow every call 10-30x. Results must not depend on
# the thread count; NPUQ_TEST_THREADS=2 (etc.) runs the suite multi-threaded.
torch.set_num_threads(int(os.environ.get("NPUQ_TEST_THREADS", "1")))

# The eager kernels are the reference; tests/test_compile.py checks the compiled backend
# against them explicitly, so no other test pays for a compile.
F.set_backend("eager")

# "npuq" (default): deterministic (fixed seeds, no example database), so a run's result
# does not depend on earlier runs. "npuq-long": random, 1000 examples, for bug hunting:
#   NPUQ_HYPOTHESIS_PROFILE=npuq-long pytest tests/   (or --hypothesis-profile=npuq-long)
# Per-format end-to-end tests on the tiny LLaMA run one format per family in `make test` (each
# takes 10-25 s); the others run in `make test-slow`. Every format is covered end to end on
# small models in the fast suite (test_qtype_export, test_onnx_bodies, test_pass_atc).
E2E_FAST_FORMATS = ("hif8", "hif4", "mxfp4", "nvfp4", "int4sym")


def e2e_formats() -> list:
    return [f if f in E2E_FAST_FORMATS else pytest.param(f, marks=pytest.mark.slow) for f in F.names()]


_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)
settings.register_profile("npuq", max_examples=60, derandomize=True, database=None, **_COMMON)
settings.register_profile("npuq-long", max_examples=1000, **_COMMON)
settings.load_profile(os.environ.get("NPUQ_HYPOTHESIS_PROFILE", "npuq"))

# Prefix of an array pair in tests/data/fakequant_lastaxis.npz -> the format name.
# `hifx4` is stored under its alias: running it through the alias checks the alias too.
VECTOR_SETS = {
    "hif8": "hif8",
    "hifx4": "hifx4",
    "hifx4_v12": "hifx4_v12",
    "mxfp4": "mxfp4",
    "mxfp8e4m3": "mxfp8e4m3",
    "mxfp8e5m2": "mxfp8e5m2",
    "nvf4": "nvf4",
}

# Every canonical format, and a few option combinations, as (name, options) pairs.
ALL_FORMATS = [
    "hif8",
    "hif4",
    "hifx4_v12",
    "mxfp4",
    "mxfp8e4m3",
    "mxfp8e5m2",
    "nvf4",
    "nvfp4",
    "int8sym",
    "int4sym",
    "fp8e4m3",
    "fp8e5m2",
]
FORMAT_CONFIGS = [(name, {}) for name in ALL_FORMATS] + [
    ("hif8", {"saturate": True}),
    ("hif4", {"variant": "amct"}),
    ("mxfp4", {"rounding": "even"}),
    ("mxfp4", {"scale_rule": "rceil"}),
    ("mxfp8e4m3", {"rounding": "even", "scale_rule": "rceil"}),
    ("mxfp8e5m2", {"rounding": "even"}),
    ("mxfp8e5m2", {"scale_rule": "rceil"}),
    ("int8sym", {"group": 32}),
    ("int8sym", {"group": 5}),
    ("int4sym", {"group": 16}),
    ("int4sym", {"group": 7}),  # odd: a padding nibble per block
    ("fp8e4m3", {"group": 32}),
    ("fp8e5m2", {"group": 5}),
]


class FullDisk:
    """open() on a disk that fills up after the first write (ENOSPC). Patch it over the
    `open` of the module that writes: monkeypatch.setattr(exporter, "open", FullDisk,
    raising=False); save() writes a single-file model itself."""

    def __init__(self, *args, **kw):
        import builtins

        self.f, self.writes = builtins.open(*args, **kw), 0

    def write(self, data):
        import errno

        self.writes += 1
        if self.writes > 1:
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def config_id(cfg) -> str:
    name, opts = cfg
    return name + "".join(f"-{k}={v}" for k, v in opts.items())


def assert_same(a: torch.Tensor, b: torch.Tensor, msg: str = "") -> None:
    """Bit-exact comparison: shape, dtype, NaN positions, equal values elsewhere."""
    assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), msg
    assert a.shape == b.shape, f"{msg} shape {tuple(a.shape)} != {tuple(b.shape)}"
    assert a.dtype == b.dtype, f"{msg} dtype {a.dtype} != {b.dtype}"
    if a.is_floating_point():
        na, nb = torch.isnan(a), torch.isnan(b)
        if not torch.equal(na, nb):
            idx = torch.nonzero(na != nb)[:5].tolist()
            raise AssertionError(f"{msg} NaN positions differ, e.g. at {idx}")
        a = torch.where(na, torch.zeros_like(a), a)
        b = torch.where(nb, torch.zeros_like(b), b)
    if not torch.equal(a, b):
        bad = torch.nonzero(a != b)
        first = bad[:5].tolist()
        pairs = [(tuple(i), a[tuple(i)].item(), b[tuple(i)].item()) for i in first]
        raise AssertionError(f"{msg} {bad.shape[0]} element(s) differ, e.g. (index, got, expected) {pairs}")


def f32_from_bits(bits) -> torch.Tensor:
    """float32 tensor from uint32-valued bit patterns (any int iterable / array)."""
    arr = np.asarray(bits, dtype=np.uint64).astype(np.uint32)
    return torch.from_numpy(arr.view(np.float32).copy())


def bits_of(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().contiguous().numpy().view(np.uint32)


def spec_json_value(v):
    """Value as written in the JSON tables: 'inf'/'-inf' strings, null for NaN."""
    if v is None:
        return math.nan
    if isinstance(v, str):
        return float(v)
    return float(v)


@pytest.fixture(scope="session")
def vectors() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{prefix: (x, y)} from tests/data/fakequant_lastaxis.npz (float32, 32 x 192)."""
    with np.load(DATA / "fakequant_lastaxis.npz") as d:
        out = {}
        for prefix in VECTOR_SETS:
            out[prefix] = (torch.from_numpy(d[prefix + "_x"].copy()), torch.from_numpy(d[prefix + "_y"].copy()))
    return out


@pytest.fixture(scope="session")
def hif8_table() -> tuple[list[int], torch.Tensor]:
    """(codes, float32 values) from tests/data/hif8_decode_table.json."""
    raw = json.loads((DATA / "hif8_decode_table.json").read_text())
    values = torch.tensor([spec_json_value(v) for v in raw["values"]], dtype=torch.float32)
    return list(raw["codes"]), values


@pytest.fixture(scope="module")
def sequential() -> dict:
    """{format: small_models.sequential_onnx(format)} for every format, exported once per test
    module (the ATC tests lay these out and check them). small_models is imported here, not at
    the top: the exporter is slow to import and most of the suite does not need it."""
    from small_models import sequential_onnx

    return {fmt: sequential_onnx(fmt) for fmt in F.names()}
