"""The AscendC kernels (kernels/include/npuq) on the CPU: bit-exact to onnx_npuq.formats.

kernels/host/ implements the AscendC subset the kernels use; CMake builds them into
npuq-kernel-host once per session (pytest-xdist workers share the build through a lock file).
Every comparison is on bits: equal NaN positions, equal bit patterns everywhere else (so -0.0
and +0.0 differ).
"""
from __future__ import annotations

import fcntl
import shutil
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FORMAT_CONFIGS, VECTOR_SETS, config_id
from onnx_npuq import formats as F

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "kernels"
BUILD = KERNELS / "build-host"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _cmake(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["cmake", *args], capture_output=True, text=True)


@pytest.fixture(scope="session")
def kernel_host() -> Path:
    """Path of a built npuq-kernel-host (configured and built under one lock for all workers)."""
    if shutil.which("cmake") is None or shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.fail("building the kernel host binary needs cmake and a C++17 compiler")
    BUILD.mkdir(exist_ok=True)
    with open(BUILD / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        start = time.monotonic()
        configure = ["-S", str(KERNELS), "-B", str(BUILD), "-DCMAKE_BUILD_TYPE=Release"]
        if not (BUILD / "CMakeCache.txt").exists() and shutil.which("ninja"):
            configure += ["-G", "Ninja"]
        done = _cmake(*configure)
        if done.returncode != 0:  # e.g. a cache from another checkout or generator: start over
            for p in BUILD.iterdir():
                if p.name != ".build.lock":
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
            done = _cmake(*configure)
        assert done.returncode == 0, f"cmake configure failed:\n{done.stdout}\n{done.stderr}"
        built = _cmake("--build", str(BUILD), "--parallel", "2")
        assert built.returncode == 0, f"kernel host build failed:\n{built.stdout}\n{built.stderr}"
        elapsed = time.monotonic() - start
    binary = BUILD / "npuq-kernel-host"
    assert binary.exists(), "npuq-kernel-host was not built"
    print(f"npuq-kernel-host ready in {elapsed:.1f} s")
    return binary


# ---------------------------------------------------------------- running the binary


def _raw(x: torch.Tensor) -> np.ndarray:
    if x.dtype == torch.float32:
        return x.contiguous().numpy()
    return x.contiguous().view(torch.int16).numpy()


def _from_raw(path: Path, dtype: torch.dtype, shape) -> torch.Tensor:
    if dtype == torch.float32:
        return torch.from_numpy(np.fromfile(path, dtype=np.float32)).view(shape)
    return torch.from_numpy(np.fromfile(path, dtype=np.int16)).view(dtype).view(shape)


def fake_quant_kernel(binary: Path, tmp: Path, x: torch.Tensor, fmt: str, opts: dict, cores: int = 1,
                      tile_rows: int = 0, env: dict | None = None) -> torch.Tensor:
    """npuq::QuantDequant<T> on `cores` emulated cores; x is (rows, cols) of float32/16, bf16."""
    rows, cols = x.shape
    dtype = {v: k for k, v in DTYPES.items()}[x.dtype]
    src, dst = tmp / "x.bin", tmp / "y.bin"
    _raw(x).tofile(src)
    cmd = [str(binary), fmt, str(src), str(dst), str(rows), str(cols), "--dtype", dtype, "--cores", str(cores)]
    if tile_rows:
        cmd += ["--tile-rows", str(tile_rows)]
    for k, v in opts.items():
        cmd += ["--option", f"{k}={int(v) if isinstance(v, bool) else v}"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=None if env is None else {**os.environ, **env})
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr}"
    return _from_raw(dst, x.dtype, (rows, cols))


def decode_kernel(binary: Path, tmp: Path, p: F.Packed, cores: int = 1, tile_rows: int = 0,
                  env: dict | None = None) -> torch.Tensor:
    """npuq::Dequantize of a 2-d Packed (quantized along the last axis) -> float32."""
    rows = p.codes.shape[0]
    codes, scales, out = tmp / "codes.bin", tmp / "scales.bin", tmp / "decoded.bin"
    p.codes.contiguous().numpy().tofile(codes)
    if p.scales.numel():
        p.scales.contiguous().numpy().tofile(scales)
    cmd = [str(binary), "decode", p.format, str(codes), str(scales) if p.scales.numel() else "-", str(out),
           str(rows), str(p.length), "--block", str(p.block), "--cores", str(cores)]
    if tile_rows:
        cmd += ["--tile-rows", str(tile_rows)]
    if p.tensor_scale is not None:
        cmd += ["--tensor-scale", float(p.tensor_scale).hex()]  # exact float32
    done = subprocess.run(cmd, capture_output=True, text=True, env=None if env is None else {**os.environ, **env})
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr}"
    return _from_raw(out, torch.float32, (rows, p.length))


def assert_bits(got: torch.Tensor, want: torch.Tensor, msg: str = "") -> None:
    """Same shape and dtype, NaN in the same places, identical bits elsewhere."""
    assert got.shape == want.shape and got.dtype == want.dtype, msg
    view = torch.int32 if got.dtype == torch.float32 else torch.int16
    gn, wn = torch.isnan(got), torch.isnan(want)
    diff = (got.view(view) != want.view(view)) & ~(gn & wn)
    if diff.any():
        idx = torch.nonzero(diff)[:6].tolist()
        pairs = [(tuple(i), got[tuple(i)].item(), want[tuple(i)].item()) for i in idx]
        raise AssertionError(f"{msg}: {int(diff.sum())} element(s) differ, e.g. (index, kernel, formats) {pairs}")


# ---------------------------------------------------------------- data

SPECIALS = [0.0, -0.0, 1e-40, -1e-40, 2.0**-149, 2.0**-126, 3 * 2.0**-127, 3e38, -3e38, 65504.0, 40960.0,
            40959.996, 2.0**-23, 2.0**-24, 0.5 - 2.0**-25, 1.0625, 1.5, 2.5, -2.5, 0.25, 6.0, 7.0, 448.0,
            57344.0, 1.75, 0.125]


def edge_data(rows: int, cols: int, seed: int) -> torch.Tensor:
    """Gaussian rows at scales 2^-30..2^30, sprinkled with zeros, subnormals, huge values, grid
    ties (k + 1/2) * 2^e and threshold values; row 1 all zeros, rows 2-4 hold a NaN / +Inf /
    -Inf, row 5 is all subnormal."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=g) * torch.exp2(torch.randint(-30, 30, (rows, 1), generator=g).float())
    flat = x.view(-1)
    specials = torch.tensor(SPECIALS)
    idx = torch.randint(0, flat.numel(), (flat.numel() // 6,), generator=g)
    scale = torch.exp2(torch.randint(-3, 3, (len(idx),), generator=g).float())
    flat[idx] = specials[torch.randint(0, len(specials), (len(idx),), generator=g)] * scale
    idx = torch.randint(0, flat.numel(), (flat.numel() // 6,), generator=g)
    ties = torch.randint(-16, 16, (len(idx),), generator=g).float() + 0.5
    flat[idx] = ties * torch.exp2(torch.randint(-8, 8, (len(idx),), generator=g).float())
    if rows > 5:
        x[1] = 0.0
        x[2, 3 % cols] = float("nan")
        x[3, -1] = float("inf")
        x[4, 0] = float("-inf")
        x[5] = 1e-41
    return x


# ---------------------------------------------------------------- the command line


def test_help(kernel_host):
    done = subprocess.run([str(kernel_host), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "decode" in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["hif8"],
        ["nosuchformat", "a", "b", "1", "1"],
        ["hif8", "{x}", "{y}", "two", "1"],
        ["hif8", "{x}", "{y}", "1", "3"],  # wrong file size
        ["hif8", "/nonexistent/x.bin", "{y}", "1", "1"],
        ["hif8", "{x}", "{y}", "1", "1", "--dtype", "float64"],
        ["hif8", "{x}", "{y}", "1", "1", "--cores", "0"],
        ["hif8", "{x}", "{y}", "1", "1", "--option", "group=4"],
        ["mxfp4", "{x}", "{y}", "1", "1", "--option", "rounding=up"],
        ["int8sym", "{x}", "{y}", "1", "1", "--option", "nonsense"],
        ["hif8", "{x}", "{y}", "1", "1", "--frobnicate"],
        ["decode", "nvfp4", "{x}", "-", "{y}", "1", "1"],  # no tensor scale
        ["decode", "mxfp4", "{x}", "-", "{y}", "1", "1"],  # no scales
        ["decode", "mxfp4", "{x}", "{x}", "{y}", "1", "32", "--block", "16"],
        ["decode", "int8sym", "{x}", "{x}", "{y}", "1", "4", "--tensor-scale", "1.0"],
    ],
    ids=lambda a: " ".join(a) or "no-args",
)
def test_bad_arguments_exit_2(kernel_host, tmp_path, args):
    x = tmp_path / "x.bin"
    np.zeros(1, dtype=np.float32).tofile(x)
    argv = [a.format(x=x, y=tmp_path / "y.bin") for a in args]
    done = subprocess.run([str(kernel_host), *argv], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("npuq-kernel-host: error:"), done.stderr


# ---------------------------------------------------------------- QuantDequant


@pytest.mark.parametrize("prefix", sorted(VECTOR_SETS))
def test_spec_vectors(kernel_host, tmp_path, vectors, prefix):
    """The public vectors (32 x 192), on 1 core and on 3 cores with 5-row tiles."""
    x, y = vectors[prefix]
    for cores, tile_rows in ((1, 0), (3, 5)):
        got = fake_quant_kernel(kernel_host, tmp_path, x, VECTOR_SETS[prefix], {}, cores, tile_rows)
        assert_bits(got, y, f"{prefix} cores={cores}")


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("cfg", FORMAT_CONFIGS, ids=config_id)
def test_fake_quant_edge_values(kernel_host, tmp_path, cfg, dtype):
    """Edge values in ragged shapes (cols not a multiple of any block), several cores, tile
    sizes that give a core several tiles and the last core fewer rows."""
    name, opts = cfg
    for rows, cols, cores, tile_rows in ((13, 100, 3, 2), (9, 37, 2, 0), (6, 203, 4, 1)):
        x = edge_data(rows, cols, seed=rows * cols).to(DTYPES[dtype])
        got = fake_quant_kernel(kernel_host, tmp_path, x, name, opts, cores, tile_rows)
        assert_bits(got, F.fake_quant(x, name, **opts), f"{config_id(cfg)} {dtype} {rows}x{cols}")


LONG_ROWS = [
    ("hif8", {}, 3, 9000),                    # a row longer than a tile, no block scale
    ("int8sym", {}, 3, 9000),                 # per channel: amax pass, then pieces
    ("int4sym", {}, 2, 4099),
    ("fp8e4m3", {}, 2, 8193),
    ("int8sym", {"group": 5000}, 2, 12001),   # groups longer than a tile, a ragged last one
    ("fp8e5m2", {"group": 4097}, 2, 8200),
    ("int4sym", {"group": 7}, 2, 9001),       # tiles of whole odd groups
    ("int8sym", {"group": 300}, 3, 5000),
    ("mxfp4", {}, 2, 5000),                   # tiles of whole blocks
    ("mxfp8e4m3", {"rounding": "even"}, 2, 8193),
    ("nvfp4", {}, 3, 4111),
    ("hif4", {}, 2, 4160),
    ("hifx4_v12", {}, 2, 4097),
]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("case", LONG_ROWS, ids=lambda c: f"{config_id(c[:2])}-{c[2]}x{c[3]}")
def test_fake_quant_long_rows(kernel_host, tmp_path, case, dtype):
    name, opts, rows, cols = case
    g = torch.Generator().manual_seed(cols)
    x = torch.randn(rows, cols, generator=g) * 5
    x[0, 17] = float("nan")
    x[-1, -3] = 1e-39
    x = x.to(DTYPES[dtype])
    got = fake_quant_kernel(kernel_host, tmp_path, x, name, opts, cores=2)
    assert_bits(got, F.fake_quant(x, name, **opts), f"{config_id(case[:2])} {rows}x{cols}")


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4", "int8sym", "hif4", "hif8"])
@pytest.mark.parametrize("cores,tile_rows", [(1, 1), (2, 3), (5, 0), (8, 1)])
def test_fake_quant_cores_and_tiles(kernel_host, tmp_path, fmt, cores, tile_rows):
    """More cores than rows leaves cores idle; NVFP4's tensor amax sits in the last core's rows."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(5, 48, generator=g)
    x[4, 7] = 1e4
    x[0, 0] = float("inf")
    got = fake_quant_kernel(kernel_host, tmp_path, x, fmt, {}, cores, tile_rows)
    assert_bits(got, F.fake_quant(x, fmt), f"{fmt} cores={cores}")


@pytest.mark.parametrize("fill", [float("nan"), float("inf"), 0.0])
def test_nvfp4_tensor_amax_without_finite_values(kernel_host, tmp_path, fill):
    """A tensor with no finite non-zero value gets the tensor scale 1."""
    x = torch.full((4, 20), fill)
    got = fake_quant_kernel(kernel_host, tmp_path, x, "nvfp4", {}, cores=3, tile_rows=1)
    assert_bits(got, F.fake_quant(x, "nvfp4"), f"fill={fill}")


def test_nvfp4_tensor_amax_across_cores(kernel_host, tmp_path):
    """Each core sees a different maximum; the per-tensor scale uses the largest of all."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(16, 64, generator=g) * torch.arange(1, 17).view(16, 1).float() ** 3
    for cores in (1, 4, 16):
        got = fake_quant_kernel(kernel_host, tmp_path, x, "nvfp4", {}, cores=cores, tile_rows=1)
        assert_bits(got, F.fake_quant(x, "nvfp4"), f"cores={cores}")


# ---------------------------------------------------------------- Dequantize


@pytest.mark.parametrize("cfg", FORMAT_CONFIGS, ids=config_id)
def test_decode(kernel_host, tmp_path, cfg):
    """decode of encode, bit-exact with formats.decode: ragged rows, odd int4 groups, rows
    longer than a tile, one-column rows."""
    name, opts = cfg
    for rows, cols, cores, tile_rows in ((13, 100, 3, 2), (9, 37, 2, 0), (3, 5000, 2, 0), (2, 1, 1, 0)):
        x = edge_data(rows, cols, seed=cols) if rows > 5 else torch.randn(rows, cols) * 3
        p = F.encode(x, name, **opts)
        got = decode_kernel(kernel_host, tmp_path, p, cores, tile_rows)
        assert_bits(got, F.decode(p), f"{config_id(cfg)} {rows}x{cols}")


DIV_ULP = {"NPUQ_HOST_DIV_ULP": "1"}  # the emulator's Div 1 ulp off, up or down


@pytest.mark.parametrize("cfg", FORMAT_CONFIGS, ids=config_id)
def test_decode_does_not_depend_on_division_rounding(kernel_host, tmp_path, cfg):
    """910B's Div is not documented as correctly rounded: Dequantize's gather offsets (the
    FloorDiv of its index patterns) and its values stay bit-exact with every quotient 1 ulp
    off. Wide tiles and odd strides: the index quotients that land on exact integers."""
    name, opts = cfg
    for rows, cols, cores, tile_rows in ((13, 100, 3, 2), (40, 777, 2, 0), (3, 5000, 2, 0)):
        x = edge_data(rows, cols, seed=cols) if rows > 5 else torch.randn(rows, cols) * 3
        p = F.encode(x, name, **opts)
        got = decode_kernel(kernel_host, tmp_path, p, cores, tile_rows, env=DIV_ULP)
        assert_bits(got, F.decode(p), f"{config_id(cfg)} {rows}x{cols}")


@pytest.mark.parametrize("prefix", sorted(VECTOR_SETS))
def test_decode_spec_vectors(kernel_host, tmp_path, vectors, prefix):
    x, y = vectors[prefix]
    got = decode_kernel(kernel_host, tmp_path, F.encode(x, VECTOR_SETS[prefix]), cores=4)
    assert_bits(got, y, prefix)


def test_decode_wrong_file_size(kernel_host, tmp_path):
    p = F.encode(torch.randn(2, 64), "mxfp4")
    p.codes.numpy().tofile(tmp_path / "codes.bin")
    p.scales[:, :1].contiguous().numpy().tofile(tmp_path / "scales.bin")
    done = subprocess.run([str(kernel_host), "decode", "mxfp4", str(tmp_path / "codes.bin"),
                           str(tmp_path / "scales.bin"), str(tmp_path / "o.bin"), "2", "64"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "SCALES" in done.stderr
