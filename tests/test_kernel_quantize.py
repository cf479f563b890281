"""npuq::Quantize (kernels/include/npuq/quantize.h) on the CPU host build: formats.encode's
Packed codes and scale bytes, byte for byte, for every format npuq::Quantize takes (all but
nvfp4, which the op refuses). The binary and its fixture are test_kernels_host's.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FORMAT_CONFIGS, VECTOR_SETS, config_id
from onnx_npuq import formats as F
from test_kernels_host import DIV_ULP, _raw, edge_data, fake_quant_kernel, kernel_host  # noqa: F401 (fixture)

# Every configuration npuq::Quantize takes (ops.defs refuses nvfp4: no tensor-scale output).
ENCODED = [c for c in FORMAT_CONFIGS if c[0] != "nvfp4"] + [("hif8", {"scale": "row"}), ("hif8", {"scale": "tensor"})]
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def encode_kernel(binary: Path, tmp: Path, x: torch.Tensor, fmt: str, opts: dict, cores: int = 1,
                  tile_rows: int = 0, env: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(codes, scales) bytes of npuq::Quantize<T> on `cores` emulated cores; x is (rows, cols)."""
    rows, cols = x.shape
    dtype = {v: k for k, v in DTYPES.items()}[x.dtype]
    _raw(x).tofile(tmp / "x.bin")
    cmd = [str(binary), "encode", fmt, str(tmp / "x.bin"), str(tmp / "c.bin"), str(tmp / "s.bin"), str(rows),
           str(cols), "--dtype", dtype, "--cores", str(cores)]
    if tile_rows:
        cmd += ["--tile-rows", str(tile_rows)]
    if opts:
        cmd += ["--option", *(f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in opts.items())]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, f"{' '.join(cmd)}: {done.stderr}"
    return np.fromfile(tmp / "c.bin", dtype=np.uint8), np.fromfile(tmp / "s.bin", dtype=np.uint8)


def assert_packed(got: tuple[np.ndarray, np.ndarray], p: F.Packed, what: str) -> None:
    for name, g, w in (("codes", got[0], p.codes), ("scales", got[1], p.scales)):
        w = w.contiguous().numpy().reshape(-1)
        assert g.shape == w.shape, f"{what}: {name} {g.shape} bytes, want {w.shape}"
        bad = np.flatnonzero(g != w)
        assert bad.size == 0, (f"{what}: {bad.size} {name} bytes differ, first at {bad[:6].tolist()}: "
                               f"got {g[bad[:6]].tolist()} want {w[bad[:6]].tolist()}")


@pytest.mark.parametrize("prefix", sorted(VECTOR_SETS))
def test_spec_vectors(kernel_host, tmp_path, vectors, prefix):
    x, _ = vectors[prefix]
    fmt = VECTOR_SETS[prefix]
    assert_packed(encode_kernel(kernel_host, tmp_path, x, fmt, {}, cores=3), F.encode(x, fmt), prefix)


# ragged last blocks, odd groups, one row, rows over several tiles and cores
SHAPES = ((13, 100, 3, 2), (7, 33, 2, 0), (1, 1, 1, 0), (6, 48, 1, 0), (40, 777, 2, 0))


@pytest.mark.parametrize("cfg", ENCODED, ids=config_id)
@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_edge_values(kernel_host, tmp_path, cfg, dtype):
    """Zeros, subnormals, huge values, ties, and rows holding NaN / +Inf / -Inf (edge_data)."""
    name, opts = cfg
    for rows, cols, cores, tile_rows in SHAPES if dtype == "float32" else SHAPES[:2]:
        x = (edge_data(rows, cols, seed=rows * cols) if rows > 5 else torch.randn(rows, cols) * 3).to(DTYPES[dtype])
        got = encode_kernel(kernel_host, tmp_path, x, name, opts, cores, tile_rows)
        assert_packed(got, F.encode(x, name, **opts), f"{config_id(cfg)} {dtype} {rows}x{cols}")


@pytest.mark.parametrize("cfg", [("int8sym", {}), ("int4sym", {}), ("fp8e4m3", {}), ("hif8", {}),
                                 ("hif8", {"scale": "row"}), ("hif8", {"scale": "tensor"}), ("int4sym", {"group": 5001}),
                                 ("mxfp4", {}), ("nvf4", {}), ("hif4", {}), ("hifx4_v12", {})], ids=config_id)
def test_long_rows(kernel_host, tmp_path, cfg):
    """Rows longer than a tile: runs of whole blocks, or pieces of one block (per channel, HiF8)
    whose amax and NaN flag come from a first pass over the row; NaN in one row, Inf in another."""
    name, opts = cfg
    x = torch.randn(3, 9001) * 5
    x[1, 7000] = float("nan")
    x[2, 4500] = float("-inf")
    got = encode_kernel(kernel_host, tmp_path, x.to(torch.bfloat16), name, opts, cores=2)
    assert_packed(got, F.encode(x.to(torch.bfloat16), name, **opts), config_id(cfg))


@pytest.mark.parametrize("special", ["none", "inf", "nan"])
def test_hif8_tensor_scale_across_cores(kernel_host, tmp_path, special):
    """scale="tensor": the amax and whether a NaN was seen meet over every core (workspace +
    SyncAll); the stored scale is NaN when any core saw a NaN, +Inf for Inf alone."""
    x = torch.randn(40, 70)
    x[33, 5] = 1000.0
    if special != "none":
        x[37, 9] = float(special)
    got = encode_kernel(kernel_host, tmp_path, x, "hif8", {"scale": "tensor"}, cores=5, tile_rows=3)
    assert_packed(got, F.encode(x, "hif8", scale="tensor"), special)


def _differs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise: different bits, NaN equal to NaN."""
    na, nb = torch.isnan(a), torch.isnan(b)
    return (na != nb) | (~na & ~nb & (a.view(torch.int32) != b.view(torch.int32)))


@pytest.mark.parametrize("cfg", ENCODED, ids=config_id)
def test_division_rounding_changes_only_what_quant_dequant_changes(kernel_host, tmp_path, cfg):
    """910B's Div is not documented as correctly rounded (NPUQ_HOST_DIV_ULP=1: every quotient 1
    ulp off). Quantize's own arithmetic (table offsets, packing, scale bytes) divides nothing and
    its levels are QuantDequant's: with every quotient off, an element decodes differently from
    formats.encode's only where QuantDequant's value (same mode) differs from fake_quant too."""
    name, opts = cfg
    x = edge_data(13, 100, seed=7)
    codes, scales = encode_kernel(kernel_host, tmp_path, x, name, opts, cores=3, tile_rows=2, env=DIV_ULP)
    want = F.encode(x, name, **opts)
    p = F.Packed(want.format, torch.from_numpy(codes).view(want.codes.shape),
                 torch.from_numpy(scales).view(want.scales.shape), want.shape, want.axis, want.dtype, want.block,
                 None, want.options)
    quantize = _differs(F.decode(p), F.decode(want))
    qd = _differs(fake_quant_kernel(kernel_host, tmp_path, x, name, opts, cores=3, tile_rows=2, env=DIV_ULP),
                  F.fake_quant(x, name, **opts))
    assert not (quantize & ~qd).any(), f"{int((quantize & ~qd).sum())} elements change in Quantize only"
    changed = int((codes != want.codes.numpy().reshape(-1)).sum() + (scales != want.scales.numpy().reshape(-1)).sum())
    print(f"{config_id(cfg)}: {changed} of {codes.size + scales.size} bytes and {int(quantize.sum())} values "
          f"(QuantDequant: {int(qd.sum())}) of {x.numel()} change under Div 1 ulp off")


def test_nvfp4_is_refused(kernel_host, tmp_path):
    """nvfp4 is two-level: npuq::Quantize has no tensor-scale output (the op refuses it,
    tests/test_quantize_op.py), and so does the kernel."""
    torch.zeros(2, 64).numpy().tofile(tmp_path / "x.bin")
    done = subprocess.run([str(kernel_host), "encode", "nvfp4", str(tmp_path / "x.bin"), str(tmp_path / "c"),
                           str(tmp_path / "s"), "2", "64"], capture_output=True, text=True)
    assert done.returncode == 2 and "Quantize does not encode nvfp4" in done.stderr
