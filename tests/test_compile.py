"""The torch.compile backend computes exactly what the eager kernels compute."""
import warnings

import pytest
import torch

from onnx_npuq import formats as F
from onnx_npuq.formats import base

from conftest import FORMAT_CONFIGS, assert_same, config_id


@pytest.fixture
def backend():
    """Run a test with a chosen backend, restoring eager (the suite's default) after."""
    yield F.set_backend
    F.set_backend("eager")
    base._compile_broken = False


def hard_input(rows=96, cols=640, seed=0):
    """Per-row scales over 40 binades, exact zeros, NaN, +-Inf and fp32 subnormals."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=g)
    x *= torch.exp2(torch.randint(-20, 20, (rows, 1), generator=g).float())
    x[3] = 0.0
    x[5, 70] = float("nan")
    x[7, 3] = float("inf")
    x[8, 200] = -float("inf")
    x[9, :40] = torch.randn(40, generator=g) * 2.0**-130
    x[10, 64:96] *= 2.0**-140
    return x


@pytest.mark.parametrize("cfg", FORMAT_CONFIGS, ids=config_id)
def test_compiled_equals_eager(cfg, backend):
    name, opts = cfg
    x = hard_input()
    for axis, inp in ((-1, x), (0, x.t().contiguous()), (-1, x.to(torch.bfloat16))):
        backend("eager")
        expected = F.fake_quant(inp, name, axis=axis, **opts)
        backend("compile")
        assert_same(F.fake_quant(inp, name, axis=axis, **opts), expected, f"{name} axis {axis}")


# Each compile takes seconds: the fast suite encodes a format of each packing path (E8M0 +
# 4-bit codes, HiF4's bit-packed scales, float32 scale bytes + an odd nibble, E4M3 scales,
# unpacked HiF8); `make test-slow` every configuration.
_ENCODE_FAST = {("mxfp4", ()), ("hif4", ()), ("int4sym", (("group", 7),)), ("nvfp4", ()), ("hif8", ())}


@pytest.mark.parametrize("cfg", [
    c if (c[0], tuple(c[1].items())) in _ENCODE_FAST else pytest.param(c, marks=pytest.mark.slow)
    for c in FORMAT_CONFIGS
], ids=config_id)
def test_compiled_encode_equals_eager(cfg, backend):
    name, opts = cfg
    x = hard_input(seed=1)
    x[11, 128:192] = torch.randn(64) * 2.0**-126  # a group of subnormals only
    for axis, inp in ((-1, x), (0, x.t().contiguous())):
        backend("eager")
        expected = F.encode(inp, name, axis=axis, **opts)
        backend("compile")
        got = F.encode(inp, name, axis=axis, **opts)
        assert torch.equal(got.codes, expected.codes), f"{name} axis {axis} codes"
        assert torch.equal(got.scales, expected.scales), f"{name} axis {axis} scales"
        assert_same(got.decode(), expected.decode(), f"{name} axis {axis} decode")


def test_auto_compiles_only_large_cpu_tensors(backend, monkeypatch):
    calls = []
    real = base.Format._compiled
    monkeypatch.setattr(base.Format, "_compiled", lambda self, kind: calls.append(kind) or real(self, kind))
    big = torch.randn(64, 128)
    expected = F.fake_quant(big, "mxfp8e4m3")
    backend("auto")
    monkeypatch.setattr(base, "COMPILE_MIN_ELEMENTS", 1 << 12)
    small = torch.randn(4, 256)
    F.fake_quant(small, "mxfp8e4m3")
    F.encode(small, "mxfp8e4m3")
    assert calls == []
    assert_same(F.fake_quant(big, "mxfp8e4m3"), expected)
    assert calls == ["fake"]


def test_auto_falls_back_to_eager_when_compile_fails(backend, monkeypatch):
    def broken(self, kind):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(base.Format, "_compiled", broken)
    monkeypatch.setattr(base, "COMPILE_MIN_ELEMENTS", 1)
    backend("auto")
    x = torch.randn(8, 64)
    with pytest.warns(UserWarning, match="torch.compile unavailable"):
        y = F.fake_quant(x, "hif4")
    backend("eager")
    assert_same(y, F.fake_quant(x, "hif4"))
    backend("auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once: later calls stay quiet and eager
        assert_same(F.fake_quant(x, "hif4"), y)


def test_compile_backend_raises_instead_of_falling_back(backend, monkeypatch):
    monkeypatch.setattr(base.Format, "_compiled", lambda self, kind: (_ for _ in ()).throw(RuntimeError("boom")))
    backend("compile")
    with pytest.raises(RuntimeError, match="boom"):
        F.fake_quant(torch.randn(4, 32), "mxfp4")


def test_set_backend_validates():
    with pytest.raises(ValueError, match="backend must be one of"):
        F.set_backend("fast")
    assert F.get_backend() == "eager"


def test_formats_with_the_same_graph_do_not_share_a_kernel(backend):
    """int8sym and int4sym trace to the same graph up to their clamp bound; a kernel
    compiled for one must never serve the other (it did with dynamic=True)."""
    x = hard_input(rows=16, seed=3)
    x[0, :16] = torch.tensor([-30, 17, 0, 5] * 4) * 2.0**-149  # rounds to +-8 before the clamp
    backend("eager")
    expected = {g: F.fake_quant(x, "int4sym", group=g) for g in (16, 32)}
    backend("compile")
    F.fake_quant(x, "int8sym", group=32)
    F.fake_quant(x, "int8sym", group=16)
    for g, want in expected.items():
        assert_same(F.fake_quant(x, "int4sym", group=g), want, f"group {g}")


@pytest.mark.parametrize("value, expected", [("eager", "eager"), ("compile", "compile"), ("fast", "auto")])
def test_backend_from_environment(value, expected):
    import os
    import subprocess
    import sys

    env = dict(os.environ, ONNX_NPUQ_BACKEND=value)
    code = "from onnx_npuq import formats; print(formats.get_backend())"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == expected
    assert ("is not one of" in run.stderr) == (value == "fast")
