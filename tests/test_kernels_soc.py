"""The host emulator as a per-SoC model (kernels/host/kernel_operator.h, kSocTable).

NPUQ_HOST_SOC=910B (default) or 310P picks the chip. A call, dtype overload or mode the chip
lacks (or runs differently) aborts naming the call and the chip; a NaN operand reaching a
float compare / Max / Min / reduce, whose NaN ordering neither chip documents, aborts too.
npuq-soc-probe runs one table row at a time. The facts asserted here are the review's
(../shared/spec/ascendc.md, from asc-devkit's dav_c220 / dav_m200 sources and docs).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import FORMAT_CONFIGS, config_id
from onnx_npuq import formats as F
from test_kernels_host import assert_bits, decode_kernel, edge_data, fake_quant_kernel, kernel_host  # noqa: F401
from test_kernel_quantize import assert_packed, encode_kernel

PHRASE = {"no": "has no such call", "noop": "compiles but does nothing", "other": "computes something else"}


@pytest.fixture(scope="module")
def probe(kernel_host) -> Path:  # noqa: F811 (fixture)
    path = kernel_host.parent / "npuq-soc-probe"
    assert path.exists(), "npuq-soc-probe was not built"
    return path


def _run(cmd, soc: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NPUQ_HOST_SOC"}
    if soc is not None:
        env["NPUQ_HOST_SOC"] = soc
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)


def _table(probe) -> dict[str, tuple[str, str, bool]]:
    done = _run([probe, "--list"], None)
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    return {call: (a2, m200, nan == "1") for call, a2, m200, nan in rows}


def test_table_holds_the_reviewed_facts(probe):
    """310P: DataCopyPad, level-0 Copy, float->float Cast, ShiftLeft, ShiftRight and hard
    SyncAll do nothing, float->half RINT writes nothing, bf16 Casts have no overload, WholeReduceMax
    ORDER_ONLY_VALUE lays results out index-first, int32 compares do not exist; 910B has every
    call the kernels use, and compares int32 for EQ only. NaN ordering: undocumented for every
    float compare / max / min / reduce."""
    table = _table(probe)
    on_310p = {call: m200 for call, (_, m200, _) in table.items() if m200 != "yes"}
    assert on_310p == {
        "DataCopyPad(GM->UB)": "noop", "DataCopyPad(UB->GM)": "noop", "Copy": "noop",
        "Cast(float <- float)": "noop", "ShiftLeft(int32_t)": "noop", "SyncAll": "noop",
        "ShiftRight(int32_t)": "noop", "ShiftRight(uint32_t)": "noop",
        "Cast(half <- float, RINT)": "noop", "Cast(bfloat16_t <- float)": "no", "Cast(float <- bfloat16_t)": "no",
        "WholeReduceMax(float, ORDER_ONLY_VALUE)": "other", "CompareScalar(int32_t, EQ)": "no",
        "CompareScalar(int32_t, not EQ)": "no",
    }
    assert {call: a2 for call, (a2, _, _) in table.items() if a2 != "yes"} == {"CompareScalar(int32_t, not EQ)": "other"}
    assert {call for call, (_, _, nan) in table.items() if nan} == {
        "CompareScalar(float)", "Max(float)", "Maxs(float)", "Mins(float)",
        "WholeReduceMax(float, ORDER_ONLY_VALUE)", "BlockReduceMax(float)",
    }


@pytest.mark.parametrize("soc", ["910B", "310P"])
def test_every_row_runs_or_is_refused_by_name(probe, soc):
    """Each row on each SoC: runs where the table says yes, else aborts (status 3) with one
    line naming the call, the SoC and why."""
    for call, (a2, m200, _) in _table(probe).items():
        has = a2 if soc == "910B" else m200
        done = _run([probe, call], soc)
        if has == "yes":
            assert done.returncode == 0, f"{call} on {soc}: {done.stderr}"
        else:
            assert done.returncode == 3, f"{call} on {soc} ran"
            line = done.stderr.strip()
            assert "\n" not in line and line.startswith(f"npuq-kernel-host: AscendC emulation error: {call}: ")
            assert soc in line and PHRASE[has] in line, line


def test_nan_reaching_an_undocumented_compare_aborts(probe):
    """A NaN lane in a float compare / Max / Min / reduce aborts; arithmetic, Select and the
    int32 Max / Min / EQ the kernels classify with take NaN bits as data."""
    for call, (a2, _, nan) in _table(probe).items():
        if a2 != "yes":
            continue
        done = _run([probe, call, "--nan"], "910B")
        if nan:
            assert done.returncode == 3 and f"{call}: a NaN operand" in done.stderr, f"{call}: {done.stderr}"
        elif not call.startswith("Cast(int32_t"):  # float -> int32 of NaN is out of range anyway
            assert done.returncode == 0, f"{call}: {done.stderr}"


def test_unknown_soc(kernel_host, tmp_path):  # noqa: F811
    x = torch.randn(2, 64)
    x.numpy().tofile(tmp_path / "x.bin")
    done = _run([kernel_host, "hif8", tmp_path / "x.bin", tmp_path / "y.bin", 2, 64], "910C")
    assert done.returncode == 3 and "NPUQ_HOST_SOC=910C: the emulator models 910B and 310P" in done.stderr


@pytest.mark.parametrize("cfg", FORMAT_CONFIGS, ids=config_id)
def test_every_kernel_is_bit_exact_on_910b_and_refused_on_310p(kernel_host, tmp_path, cfg):  # noqa: F811
    """NPUQ_HOST_SOC=910B: QuantDequant (float32, bfloat16; NaN / Inf rows included),
    Quantize (every format but nvfp4, which the op refuses) and Dequantize bit-exact. 310P:
    QuantDequant and Quantize stop at their first DataCopyPad (a no-op there; their bf16 Casts
    would not even compile, Quantize's ShiftRight and float->half RINT are no-ops), Dequantize
    at its first float->float Cast (a no-op), before it copies anything."""
    name, opts = cfg
    x = edge_data(13, 100, seed=5)
    for dtype in (torch.float32, torch.bfloat16):
        xd = x.to(dtype)
        got = fake_quant_kernel(kernel_host, tmp_path, xd, name, opts, cores=2, env={"NPUQ_HOST_SOC": "910B"})
        assert_bits(got, F.fake_quant(xd, name, **opts), f"{config_id(cfg)} {dtype}")
    p = F.encode(x, name, **opts)
    assert_bits(decode_kernel(kernel_host, tmp_path, p, cores=2, env={"NPUQ_HOST_SOC": "910B"}), F.decode(p))

    x.numpy().tofile(tmp_path / "x.bin")
    cmd = [kernel_host, name, tmp_path / "x.bin", tmp_path / "y.bin", 13, 100, "--cores", 2]
    for k, v in opts.items():
        cmd += ["--option", f"{k}={int(v) if isinstance(v, bool) else v}"]
    done = _run(cmd, "310P")
    assert done.returncode == 3 and "error: DataCopyPad(GM->UB): on 310P it compiles but does nothing" in done.stderr
    if name != "nvfp4":
        for dtype in (torch.float32, torch.bfloat16):
            xd = x.to(dtype)
            got = encode_kernel(kernel_host, tmp_path, xd, name, opts, cores=2, env={**os.environ, "NPUQ_HOST_SOC": "910B"})
            assert_packed(got, F.encode(xd, name, **opts), f"{config_id(cfg)} {dtype}")
        x.numpy().tofile(tmp_path / "x.bin")
        cmd = [kernel_host, "encode", name, tmp_path / "x.bin", tmp_path / "c.bin", tmp_path / "s.bin", 13, 100,
               "--dtype", "float32", "--cores", 2]
        if opts:
            cmd += ["--option", *(f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in opts.items())]
        done = _run(cmd, "310P")
        assert done.returncode == 3 and "error: DataCopyPad(GM->UB): on 310P it compiles but does nothing" in done.stderr
    p.codes.contiguous().numpy().tofile(tmp_path / "codes.bin")
    scales = "-"
    if p.scales.numel():
        scales = tmp_path / "scales.bin"
        p.scales.contiguous().numpy().tofile(scales)
    cmd = [kernel_host, "decode", name, tmp_path / "codes.bin", scales, tmp_path / "o.bin", 13, 100, "--block", p.block]
    if p.tensor_scale is not None:
        cmd += ["--tensor-scale", float(p.tensor_scale).hex()]
    done = _run(cmd, "310P")
    assert done.returncode == 3 and "error: Cast(float <- float): on 310P it compiles but does nothing" in done.stderr


def _classification_data() -> torch.Tensor:
    """16 x 128 float32: NaN of every kind (quiet, signalling, negative, all-ones payload) and
    +-Inf at random places of rows 0-7 (several per row, row 7 all NaN); rows 8-15 have no NaN:
    subnormal scales and amax, MX rceil quotients amax / max at, just above and just below
    2^-127 (each 32-block holds the amax and a tiny element that the scale's choice decides),
    a row of zeros with one subnormal, N(0, 1)."""
    g = torch.Generator().manual_seed(15)
    x = torch.randn(16, 128, generator=g)
    specials = torch.tensor([0x7FC00000, 0x7F800001, 0x7FBFFFFF, 0xFFC00000, 0xFFFFFFFF, 0xFF800001,
                             0x7F800000, 0xFF800000], dtype=torch.int64).to(torch.int32).view(torch.float32)
    for r in range(8):
        cols = torch.randint(0, 128, (1 + r,), generator=g)
        x[r, cols] = specials[torch.randint(0, len(specials), (len(cols),), generator=g)]
    x[7] = specials[0]
    one = torch.tensor(1.0)
    for r, amax, tiny in ((8, torch.tensor(6 * 2.0**-127), 2.0**-128), (9, torch.tensor(448 * 2.0**-127), 2.0**-136),
                          (10, torch.tensor(57344 * 2.0**-127), 2.0**-143),
                          (11, torch.tensor(6 * 2.0**-127).nextafter(one), 2.0**-128),
                          (12, torch.tensor(6 * 2.0**-127).nextafter(-one), 2.0**-129)):
        x[r] = torch.linspace(-1, 1, 128) * amax * 0.5
        x[r, ::32] = amax
        x[r, 1::32] = tiny
    x[13] = torch.linspace(-1, 1, 128) * 127 * 2.0**-130  # int scale amax / 127 = 2^-130
    x[14] = 0.0
    x[14, 77] = -2.0**-149
    return x


@pytest.mark.parametrize("cfg", FORMAT_CONFIGS, ids=config_id)
def test_nan_payloads_and_subnormal_scales_are_bit_exact(kernel_host, tmp_path, cfg):  # noqa: F811
    """Classification from bits: every NaN encoding (sign and payload) and +-Inf make their
    block NaN (HiF8: the element) without a NaN reaching a float compare (the emulator would
    abort), subnormal amax and scales are neither zero nor flushed, for float32 and float16;
    Quantize's codes and scale bytes too (NaN apart from Inf, from the bits)."""
    name, opts = cfg
    x = _classification_data()
    for xd in (x, x.half()):
        got = fake_quant_kernel(kernel_host, tmp_path, xd, name, opts, cores=3, tile_rows=2)
        assert_bits(got, F.fake_quant(xd, name, **opts), f"{config_id(cfg)} {xd.dtype}")
        if name != "nvfp4":
            got = encode_kernel(kernel_host, tmp_path, xd, name, opts, cores=3, tile_rows=2)
            assert_packed(got, F.encode(xd, name, **opts), f"{config_id(cfg)} {xd.dtype} encode")
