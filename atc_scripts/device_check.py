"""The checks atc_scripts/device_check.sh runs on an Ascend 910B, each line PASS / FAIL / INFO:

    python atc_scripts/device_check.py models  --soc Ascend910B1 --out DIR [--device N]
    python atc_scripts/device_check.py vectors --soc Ascend910B1 --out DIR [--device N]
    python atc_scripts/device_check.py probes  --bin OUT/npuq_probes --out DIR [--device N] [--cores 40]

models   one small model per format (digits-cnn, `onnx-npuq export` -w FORMAT), `onnx-npuq convert`
         to .om, `onnx-npuq run --compare` against onnxruntime: PASS when every output's cosine is
         >= 0.99 (msprobe's threshold; ATC runs the convolutions in float16, so not bit for bit).
vectors  a one-node npuq::QuantDequant model per format, converted and run through ACL
         (onnx_npuq.runtime.acl) on the spec vectors (tests/data/fakequant_lastaxis.npz) and on
         random data with specials, float32 and float16: PASS only when bit for bit equal to
         onnx_npuq.formats.fake_quant (NaN matches any NaN).
probes   atc_scripts/probes (built by device_check.sh): (a) NVFP4 QuantDequant's SyncAll with and
         without the mixed kernel type, (b) NaN / Inf / subnormal compares and Muls / Maxs / Max,
         (c) Div on exact multiples k*d/d and random pairs against the correctly rounded quotient,
         (d) float -> half casts of Inf / NaN / overflow; against IEEE 754 as numpy computes it.

Exit status: 0 all PASS, 1 a FAIL, 2 bad use. Needs CANN (atc, pyACL) for real; its pieces are
tested on a machine without (tests/test_device_check.py) with fakes.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SPEC_VECTORS = REPO / "tests" / "data" / "fakequant_lastaxis.npz"
MODEL, MODEL_SHAPE = "digits-cnn", "x:2,1,8,8"
COSINE_MIN = 0.99
PROBE_TIMEOUT = 120  # seconds; a kernel waiting in SyncAll for a core that never comes hangs


def say(status: str, what: str) -> bool:
    print(f"{status} {what}", flush=True)
    return status != "FAIL"


def _npuq() -> list[str]:
    return shlex.split(os.environ.get("ONNX_NPUQ", "onnx-npuq"))


def _cli(*args, timeout=1800) -> subprocess.CompletedProcess:
    return subprocess.run([*_npuq(), *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False)


def _why(res: subprocess.CompletedProcess) -> str:
    lines = (res.stderr or res.stdout or "").strip().splitlines()
    return f"exit {res.returncode}" + (f": {lines[-1]}" if lines else "")


def convert(onnx_path: Path, stem: Path, soc: str, shape: str) -> Path:
    """onnx-npuq convert ... --require-atc -> STEM.om; RuntimeError with ATC's last line."""
    res = _cli("convert", onnx_path, "--soc", soc, "-o", stem, "--input-shape", shape, "--require-atc")
    om = stem.with_name(stem.name + ".om")
    if res.returncode != 0 or not om.is_file():
        raise RuntimeError(f"onnx-npuq convert failed ({_why(res)})")
    return om


def acl_runner(device: int):
    """(om, arrays) -> outputs through onnx_npuq.runtime.acl (pyACL, else ais_bench)."""
    def run(om: Path, arrays: list[np.ndarray]) -> list[np.ndarray]:
        from onnx_npuq.runtime.acl import open_session

        with open_session(om, device) as s:
            return s.run(*arrays)
    return run


# ---------------------------------------------------------------- comparisons


def bit_diff(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Indexes where got and want differ in bits (any NaN equals any NaN)."""
    if got.shape != want.shape or got.dtype != want.dtype:
        raise ValueError(f"got {got.dtype}{list(got.shape)}, want {want.dtype}{list(want.shape)}")
    uint = {2: np.uint16, 4: np.uint32}[want.dtype.itemsize]
    same = (got.view(uint) == want.view(uint)) | (np.isnan(got) & np.isnan(want))
    return np.argwhere(~same)


def describe_diff(got: np.ndarray, want: np.ndarray, where: np.ndarray) -> str:
    first = tuple(int(i) for i in where[0])
    return (f"{len(where)} of {want.size} differ; first at {list(first)}: got {got[first]!r} "
            f"want {want[first]!r}")


# ---------------------------------------------------------------- vectors


def specials(rows: int, cols: int, dtype, rng) -> np.ndarray:
    """Random normal rows at several scales, the first rows seeded with the values formats
    treat specially (zeros, Inf, NaN, subnormals, the largest finite values)."""
    x = (rng.standard_normal((rows, cols)) * np.exp2(rng.integers(-20, 20, (rows, 1)))).astype(np.float32)
    odd = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 2.0**-149, -(2.0**-149), 2.0**-127, 2.0**-126, 1e-40,
                    65504.0, 70000.0, 448.0, 57344.0, 6.0, -6.0, 3.0e38, -3.0e38, 1.0, 0.5], np.float32)
    for r in range(min(rows, 8)):
        x[r, r::9][:len(odd)] = odd[:len(x[r, r::9])]
    if dtype == np.float16:
        with np.errstate(over="ignore"):
            return x.astype(np.float16)
    return x


def qd_model(fmt: str, rows: int, cols: int, dtype):
    import onnx
    from onnx import TensorProto, helper

    from onnx_npuq.ops import defs

    op = defs.QUANT_DEQUANT
    elem = TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT
    node = helper.make_node(op.name, ["x"], ["y"], domain=op.domain, format=fmt)
    graph = helper.make_graph([node], f"qd_{fmt}", [helper.make_tensor_value_info("x", elem, [rows, cols])],
                              [helper.make_tensor_value_info("y", elem, [rows, cols])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                    helper.make_opsetid(op.domain, op.version)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def reference(x: np.ndarray, fmt: str) -> np.ndarray:
    import torch

    from onnx_npuq import formats as F

    return F.fake_quant(torch.from_numpy(np.ascontiguousarray(x)), fmt).numpy()


def vector_cases(fmt: str, seed: int) -> list[tuple[str, np.ndarray]]:
    from onnx_npuq import formats as F

    cases = []
    if SPEC_VECTORS.is_file():
        with np.load(SPEC_VECTORS) as spec:
            for key in spec.files:
                name = key[:-2]
                if key.endswith("_x") and F.ALIASES.get(name, name) == fmt:
                    cases.append((f"spec {name}", spec[key]))
    rng = np.random.default_rng(seed)
    cases.append(("random float32", specials(64, 256, np.float32, rng)))
    cases.append(("random float16", specials(64, 256, np.float16, rng)))
    return cases


def vectors(out: Path, soc: str, formats: list[str], run, seed: int = 0, convert=convert) -> bool:
    import onnx

    ok = True
    if SPEC_VECTORS.is_file():  # the host reference is the spec's (else nothing below means much)
        with np.load(SPEC_VECTORS) as spec:
            for key in (k for k in spec.files if k.endswith("_x")):
                name = key[:-2]
                where = bit_diff(reference(spec[key], name), spec[f"{name}_y"])
                ok &= say("FAIL" if len(where) else "PASS", f"vectors host reference {name} = spec vectors")
    out.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        for label, x in vector_cases(fmt, seed):
            what = f"vectors {fmt} {label} {x.shape[0]}x{x.shape[1]}"
            stem = out / f"qd_{fmt}_{label.replace(' ', '_')}"
            try:
                onnx.save(qd_model(fmt, *x.shape, x.dtype), f"{stem}.onnx")
                om = convert(Path(f"{stem}.onnx"), stem, soc, f"x:{x.shape[0]},{x.shape[1]}")
                (got,) = run(om, [x])
                where = bit_diff(np.asarray(got), reference(x, fmt))
            except Exception as err:  # noqa: BLE001  one case's failure is reported, the rest go on
                ok &= say("FAIL", f"{what}: {err}")
                continue
            ok &= say("FAIL", f"{what}: {describe_diff(np.asarray(got), reference(x, fmt), where)}") if len(where) \
                else say("PASS", f"{what}: bit-exact")
    return ok


# ---------------------------------------------------------------- models


def models(out: Path, soc: str, formats: list[str], device: int) -> bool:
    out.mkdir(parents=True, exist_ok=True)
    ok = True
    for fmt in formats:
        what = f"model {MODEL} {fmt}"
        path, stem = out / f"{MODEL}.{fmt}.onnx", out / f"{MODEL}.{fmt}"
        res = _cli("export", MODEL, "-w", fmt, "-o", path)
        if res.returncode != 0:
            ok &= say("FAIL", f"{what}: onnx-npuq export failed ({_why(res)})")
            continue
        try:
            om = convert(path, stem, soc, MODEL_SHAPE)
        except RuntimeError as err:
            ok &= say("FAIL", f"{what}: {err}")
            continue
        res = _cli("run", om, "--json", "--compare", path, "--device", device)
        try:
            compared = json.loads(res.stdout)["compare"] if res.returncode == 0 else None
        except (ValueError, KeyError):
            compared = None
        if not compared:
            ok &= say("FAIL", f"{what}: onnx-npuq run failed ({_why(res)})")
            continue
        worst = min(c["cosine"] for c in compared)
        detail = (f"cosine {worst:.6f}, max |diff| {max(c['max_abs'] for c in compared):g}, "
                  f"{sum(c['mismatches'] for c in compared)} mismatches vs onnxruntime")
        ok &= say("PASS" if worst >= COSINE_MIN else "FAIL", f"{what}: {detail}")
    return ok


# ---------------------------------------------------------------- probes


def binary_runner(binary: Path, device: int):
    """(probe, dir) -> None, running atc_scripts/probes' npuq_probes; TimeoutError on a hang."""
    def run(probe: str, work: Path) -> None:
        try:
            res = subprocess.run([str(binary), probe, str(work), str(device)], capture_output=True, text=True,
                                 timeout=PROBE_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as err:
            raise TimeoutError(f"no answer in {PROBE_TIMEOUT} s (a hang)") from err
        if res.returncode != 0:
            raise RuntimeError(f"npuq_probes {probe} {_why(res)}")
    return run


def _f32(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype=np.float32)


def probe_sync(work: Path, run, cores: int) -> bool:
    """(a): NVFP4 QuantDequant over `cores` vector cores (its tensor amax is a SyncAll)."""
    rng = np.random.default_rng(1)
    rows, cols = 4 * cores, 256
    x = (rng.standard_normal((rows, cols)) * np.exp2(rng.integers(-8, 8, (rows, 1)))).astype(np.float32)
    want = reference(x, "nvfp4")
    results = {}
    for probe in ("qd_mix", "qd_aiv"):  # the one that may hang last
        d = work / probe
        d.mkdir(parents=True, exist_ok=True)
        x.tofile(d / "x.bin")
        (d / "args.txt").write_text(f"{rows} {cols} {cores}\n")
        try:
            run(probe, d)
            got = _f32(d / "y.bin").reshape(rows, cols)
            where = bit_diff(got, want)
            results[probe] = "bit-exact" if not len(where) else describe_diff(got, want, where)
        except (TimeoutError, RuntimeError, ValueError, OSError) as err:
            results[probe] = str(err)
    ok = say("PASS" if results["qd_mix"] == "bit-exact" else "FAIL",
             f"probe (a) nvfp4 QuantDequant, {rows}x{cols} on {cores} cores, KERNEL_TYPE_MIX_AIV_1_0: "
             f"{results['qd_mix']}")
    say("INFO", f"probe (a) the same without the mixed kernel type: {results['qd_aiv']}")
    return ok


PROBE_VALUES = np.array([np.nan, -np.nan, np.inf, -np.inf, 2.0**-127, 2.0**-149, -(2.0**-149), 2.0**-126, 0.0, -0.0,
                         1.0, -1.0, 3.0e38, 1e-40, 448.0, 6.0], np.float32)
CMP_OPS = {0: np.less, 1: np.greater, 2: np.equal, 3: np.less_equal, 4: np.greater_equal, 5: np.not_equal}


def probe_compares(work: Path, run) -> bool:
    """(b): CompareScalar on NaN / Inf / subnormals against 0, 2^-127, +Inf (the kernels' NaN
    test is |x| < +Inf being false for NaN); Muls / Maxs by 2^-127 on the non-NaN lanes; how Max
    treats NaN (INFO)."""
    x = np.resize(PROBE_VALUES, 64)
    work.mkdir(parents=True, exist_ok=True)
    x.tofile(work / "x.bin")
    cases = [(op, s) for s in (0.0, 2.0**-127, np.inf) for op in CMP_OPS] + [(6, 2.0**-127), (7, 2.0**-127), (8, 0.0)]
    (work / "args.txt").write_text("".join(f"{op} {np.float32(s).view(np.uint32)}\n" for op, s in cases))
    try:
        run("cmp", work)
    except (TimeoutError, RuntimeError) as err:
        return say("FAIL", f"probe (b) compares: {err}")
    bad = []
    for i, (op, s) in enumerate(cases):
        got = _f32(work / f"z{i}.bin")
        s32 = np.float32(s)
        if op in CMP_OPS:
            want = CMP_OPS[op](x, s32).astype(np.float32)
        elif op == 6:
            want = x * s32
        elif op == 7:
            want = np.maximum(x, s32)
        else:
            lanes = got[np.isnan(x)]
            seen = ("NaN: it propagates" if np.isnan(lanes).all() else "0: it ignores NaN" if (lanes == 0).all()
                    else f"{lanes.tolist()}")
            say("INFO", f"probe (b) Max(NaN, 0) on the device gives {seen}")
            continue
        keep = np.ones_like(x, bool) if op in CMP_OPS else ~np.isnan(x)
        where = bit_diff(got[keep], want[keep])
        if len(where):
            name = {**{k: f.__name__ for k, f in CMP_OPS.items()}, 6: "Muls", 7: "Maxs"}[op]
            bad.append(f"{name}(x, {s32!r}): {describe_diff(got[keep], want[keep], where)} (x = {x[keep][where[0][0]]!r})")
    return say("FAIL" if bad else "PASS", "probe (b) NaN / Inf / subnormal compares, Muls / Maxs by 2^-127: "
               + ("; ".join(bad) if bad else "IEEE 754"))


DIVISORS = (6.0, 7.0, 24.0, 40.0, 127.0, 448.0, 2688.0, 57344.0)


def probe_div(work: Path, run) -> bool:
    """(c): Div on exact multiples k*d / d (the quotient is k) and random pairs, against the
    correctly rounded float32 quotient; QuantDequant's values listed in kernels/README.md change
    when Div is 1 ulp off."""
    k = np.arange(512, dtype=np.float32)
    a_exact = np.concatenate([k * np.float32(d) for d in DIVISORS]).astype(np.float32)
    b_exact = np.repeat(np.array(DIVISORS, np.float32), len(k))
    rng = np.random.default_rng(2)
    a_rand = (rng.standard_normal(4096) * np.exp2(rng.integers(-30, 30, 4096))).astype(np.float32)
    b_rand = (rng.standard_normal(4096) * np.exp2(rng.integers(-30, 30, 4096))).astype(np.float32)
    ok = True
    for label, a, b in (("exact multiples k*d/d", a_exact, b_exact), ("random pairs", a_rand, b_rand)):
        d = work / label.split()[0]
        d.mkdir(parents=True, exist_ok=True)
        a.tofile(d / "a.bin")
        b.tofile(d / "b.bin")
        try:
            run("div", d)
            got = _f32(d / "z.bin")
            want = a / b
            where = bit_diff(got, want)
        except (TimeoutError, RuntimeError, ValueError) as err:
            ok &= say("FAIL", f"probe (c) Div {label}: {err}")
            continue
        detail = "correctly rounded" if not len(where) else describe_diff(got, want, where)
        if label.startswith("exact"):
            floors = int(np.count_nonzero(np.floor(got) != np.floor(want)))
            detail += f"; floor(k*d/d) != k for {floors}"
        ok &= say("FAIL" if len(where) else "PASS", f"probe (c) Div {label} ({a.size}): {detail}")
    return ok


CAST_VALUES = np.array([np.inf, -np.inf, np.nan, 70000.0, -70000.0, 65504.0, 65519.0, 65520.0, 2.0**-24, 2.0**-25,
                        1.5 * 2.0**-25, 2.0**-14, 1e-8, 0.0, -0.0, 1.0 / 3.0], np.float32)


def probe_cast(work: Path, run) -> bool:
    """(d): float -> half (CAST_RINT) of Inf, NaN, overflow and half subnormals, against IEEE
    (round to nearest even, overflow to Inf); 65504 for Inf means the device is in saturation mode."""
    x = np.resize(CAST_VALUES, 64)
    work.mkdir(parents=True, exist_ok=True)
    x.tofile(work / "x.bin")
    try:
        run("cast", work)
        got = np.fromfile(work / "y.bin", dtype=np.float16)
        with np.errstate(over="ignore"):
            want = x.astype(np.float16)
        where = bit_diff(got, want)
    except (TimeoutError, RuntimeError, ValueError) as err:
        return say("FAIL", f"probe (d) float -> half casts: {err}")
    detail = "IEEE (Inf/NaN mode)" if not len(where) else describe_diff(got, want, where)
    if len(where) and got[0] == np.float16(65504):
        detail += " (Inf -> 65504: the device is in saturation mode)"
    return say("FAIL" if len(where) else "PASS", f"probe (d) float -> half casts of Inf / NaN / overflow: {detail}")


def probes(out: Path, run, cores: int) -> bool:
    ok = probe_compares(out / "b", run)
    ok &= probe_div(out / "c", run)
    ok &= probe_cast(out / "d", run)
    ok &= probe_sync(out / "a", run, cores)  # last: the aiv-only kernel may hang the device
    return ok


# ---------------------------------------------------------------- command line


def main(argv=None) -> int:
    from onnx_npuq import formats as F

    parser = argparse.ArgumentParser(prog="device_check.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["models", "vectors", "probes"])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "npuq_device_check")
    parser.add_argument("--soc", default="Ascend910B1")
    parser.add_argument("--device", type=int, default=0)
    parser.add_argument("--formats", default=",".join(F.names()), help="comma-separated (default: all)")
    parser.add_argument("--bin", type=Path, help="probes: the npuq_probes binary")
    parser.add_argument("--cores", type=int, default=40, help="probes: vector cores for (a) (910B2: 40)")
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    unknown = [f for f in formats if f not in F.names()]
    if unknown:
        parser.error(f"unknown format(s) {', '.join(unknown)}; known: {', '.join(F.names())}")
    if args.step == "models":
        ok = models(args.out, args.soc, formats, args.device)
    elif args.step == "vectors":
        ok = vectors(args.out, args.soc, formats, acl_runner(args.device))
    else:
        if args.bin is None or not args.bin.is_file():
            parser.error(f"probes needs --bin, the built npuq_probes (got {args.bin})")
        ok = probes(args.out, binary_runner(args.bin, args.device), args.cores)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
