"""atc_scripts/device_check.sh and device_check.py, without an NPU or CANN.

The shell script is run for real against a FAKE CANN tree (set_env.sh, atc, cmake, an empty
`acl` module) in a copy of atc_scripts/ whose build_custom_ops.sh and device_check.py are fakes
that log their arguments: what is checked is the script's own work (arguments, the refusal
without CANN, the order of the steps and what it hands each, the PASS / FAIL summary and exit
code). The driver's checks (device_check.py) are run in-process with fake runners standing in
for ACL and the probe binary: bit-exact comparisons against onnx_npuq.formats and IEEE 754, and
what they say when the device differs. None of this is the device.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "atc_scripts"
SCRIPT = SCRIPTS / "device_check.sh"


def _driver():
    spec = importlib.util.spec_from_file_location("device_check", SCRIPTS / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DC = _driver()


def _exe(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _bash(script: Path, *args, env=None, cwd=None):
    return subprocess.run(["bash", str(script), *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=60, check=False)


def _base_env(**extra) -> dict:
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "PYTHON": sys.executable}
    env.update({k: str(v) for k, v in extra.items()})
    return env


# ---------------------------------------------------------------- arguments, refusal


def test_script_is_clean_bash():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0
    assert "set -euo pipefail" in SCRIPT.read_text()


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (apt-get install shellcheck)")
def test_script_passes_shellcheck():
    res = subprocess.run(["shellcheck", "-x", "device_check.sh"], capture_output=True, text=True, cwd=SCRIPTS,
                         check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_help_and_bad_arguments(tmp_path):
    res = _bash(SCRIPT, "--help", env=_base_env())
    assert res.returncode == 0 and res.stdout.startswith("usage: atc_scripts/device_check.sh") and not res.stderr
    for flag in ("--soc", "--out", "--device", "--skip-build"):
        assert flag in res.stdout
    for args, why in ((["--bogus"], "unknown argument: --bogus"), (["--soc"], "--soc needs a value"),
                      (["--soc", "Ascend310P3"], "built for Ascend910B1..B4 only"),
                      (["--soc=Ascend910A"], "built for Ascend910B1..B4 only"),
                      (["--device", "x"], "--device x: not a device id")):
        res = _bash(SCRIPT, "--out", tmp_path / "o", *args, env=_base_env())
        assert res.returncode == 2 and res.stdout == "", args
        assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith("device_check: "), res.stderr
        assert why in res.stderr, (args, res.stderr)
    assert not (tmp_path / "o").exists()


def test_refuses_without_cann_in_one_line(tmp_path):
    out = tmp_path / "out"
    res = _bash(SCRIPT, "--out", out, env=_base_env(ASCEND_HOME_PATH=tmp_path / "nowhere"))
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip() == (f"device_check: CANN not found: no set_env.sh under ASCEND_HOME_PATH="
                                  f"{tmp_path / 'nowhere'} (install the CANN toolkit or set ASCEND_HOME_PATH)")
    assert not out.exists()
    # a set_env.sh that puts no atc on PATH; then atc but no pyACL
    cann = tmp_path / "cann"
    (cann / "bin").mkdir(parents=True)
    (cann / "set_env.sh").write_text(f'export PATH="{cann}/bin:$PATH"\n')
    res = _bash(SCRIPT, "--out", out, env=_base_env(ASCEND_HOME_PATH=cann))
    assert res.returncode == 2 and "device_check: CANN not found: no atc on PATH" in res.stderr
    _exe(cann / "bin" / "atc", "#!/bin/bash\nexit 0\n")
    res = _bash(SCRIPT, "--out", out, env=_base_env(ASCEND_HOME_PATH=cann))
    assert res.returncode == 2 and "device_check: pyACL not found" in res.stderr and len(res.stderr.splitlines()) == 1
    assert not out.exists()


# ---------------------------------------------------------------- the steps, with a fake CANN


def _fake_tree(tmp_path: Path, cmake_build_rc: int = 0, vectors_fail: bool = True) -> tuple[Path, dict]:
    """A FAKE CANN (set_env.sh, atc, cmake, acl module) and a copy of atc_scripts/ whose
    build_custom_ops.sh and device_check.py only log and print."""
    log = tmp_path / "calls.log"
    cann = tmp_path / "cann"
    (cann / "py").mkdir(parents=True)
    (cann / "py" / "acl.py").write_text("# FAKE pyACL\n")
    (cann / "set_env.sh").write_text(f'export PATH="{cann}/bin:$PATH"\nexport PYTHONPATH="{cann}/py"\n')
    _exe(cann / "bin" / "atc", "#!/bin/bash\nexit 0\n")
    _exe(cann / "bin" / "cmake", f"""
        #!/bin/bash
        echo "cmake $*" >> "{log}"
        [ "$1" != "-S" ] || mkdir -p "$4"
        if [ "$1" = "--build" ]; then
            [ {cmake_build_rc} -eq 0 ] || {{ echo "make: *** [all] Error {cmake_build_rc}"; exit {cmake_build_rc}; }}
            touch "$2/npuq_probes"
        fi
        """)
    scripts = tmp_path / "repo" / "atc_scripts"
    scripts.mkdir(parents=True)
    for name in ("device_check.sh", "env.sh"):
        shutil.copy(SCRIPTS / name, scripts / name)
    (scripts / "probes").mkdir()
    _exe(scripts / "build_custom_ops.sh", f"""
        #!/bin/bash
        echo "build $*" >> "{log}"
        mkdir -p "$2/vendors/npuq/bin"
        echo 'export NPUQ_FAKE_VENDOR=1' > "$2/vendors/npuq/bin/set_env.bash"
        echo "installed"
        """)
    _exe(scripts / "device_check.py", f"""
        import os, sys
        with open("{log}", "a") as f:
            f.write("device_check.py " + " ".join(sys.argv[1:]) + " vendor=" + os.environ.get("NPUQ_FAKE_VENDOR", "-") + "\\n")
        step = sys.argv[1]
        print(f"PASS {{step}} one")
        print(f"INFO {{step}} said")
        if step == "vectors" and {vectors_fail}:
            print("FAIL vectors mxfp4 random float32 64x256: 1 of 16384 differ")
            sys.exit(1)
        """)
    env = _base_env(ASCEND_HOME_PATH=cann)
    return scripts / "device_check.sh", env


def _calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls.log").read_text().splitlines()


def test_steps_run_in_order_and_the_summary_counts(tmp_path):
    script, env = _fake_tree(tmp_path)
    out = tmp_path / "out"
    res = _bash(script, "--soc", "Ascend910B3", "--out", out, "--device", "1", env=env)
    assert res.returncode == 1, res.stdout + res.stderr
    here = script.parent
    assert _calls(tmp_path) == [
        f"build --install-path {out}/opp",
        f"device_check.py models --soc Ascend910B3 --out {out}/models --device 1 vendor=1",
        f"device_check.py vectors --soc Ascend910B3 --out {out}/vectors --device 1 vendor=1",
        f"cmake -S {here}/probes -B {out}/probes -DSOC_VERSION=Ascend910B3 -DASCEND_CANN_PACKAGE_PATH={tmp_path}/cann",
        f"cmake --build {out}/probes -j",
        f"device_check.py probes --bin {out}/probes/npuq_probes --out {out}/probes/run --device 1 vendor=1",
    ]
    steps = [line for line in res.stdout.splitlines() if line.startswith("== ")]
    assert steps == ["== build", "== models", "== vectors", "== probes",
                     f"== summary (Ascend910B3, device 1, {out})"]
    summary = res.stdout.split("== summary")[1].splitlines()[1:]
    assert summary == [f"PASS cann: {tmp_path}/cann, {tmp_path}/cann/bin/atc, pyACL", "PASS models one",
                       "PASS vectors one", "FAIL vectors mxfp4 random float32 64x256: 1 of 16384 differ",
                       "PASS probes one", "device_check: 4 passed, 1 failed"]
    assert "INFO vectors said" in res.stdout  # shown, not counted
    for step in ("cann", "build", "models", "vectors", "probes", "env"):
        assert (out / "logs" / f"{step}.log").is_file(), step


def test_skip_build_and_all_passed(tmp_path):
    script, env = _fake_tree(tmp_path, vectors_fail=False)
    opp = tmp_path / "installed"
    res = _bash(script, "--skip-build", "--out", tmp_path / "out", env={**env, "NPUQ_CUSTOM_OPP": str(opp)},
                cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    calls = _calls(tmp_path)
    assert not [c for c in calls if c.startswith("build")]
    assert calls[0].startswith("device_check.py models --soc Ascend910B1 --out ") and calls[0].endswith("vendor=-")
    assert f"== build (skipped: --skip-build; package from {opp})" in res.stdout
    assert res.stdout.strip().splitlines()[-1] == "device_check: 4 passed, 0 failed"
    # --out relative to where it runs
    assert (tmp_path / "out" / "logs" / "models.log").is_file()


def test_a_step_failing_without_saying_so_is_a_fail(tmp_path):
    script, env = _fake_tree(tmp_path, cmake_build_rc=3, vectors_fail=False)
    out = tmp_path / "out"
    res = _bash(script, "--skip-build", "--out", out, env=env)
    assert res.returncode == 1
    assert not [c for c in _calls(tmp_path) if c.startswith("device_check.py probes")]
    assert f"FAIL probes: exit 3 (see {out}/logs/probes.log)" in res.stdout.split("== summary")[1]
    assert res.stdout.strip().splitlines()[-1] == "device_check: 3 passed, 1 failed"
    assert "make: *** [all] Error 3" in (out / "logs" / "probes.log").read_text()


# ---------------------------------------------------------------- the driver's checks


def _fake_convert(formats: dict):
    """Stands in for onnx-npuq convert: records which format each .om is (from the model)."""
    def convert(onnx_path, stem, soc, shape):
        model = onnx.load(onnx_path)
        (node,) = model.graph.node
        formats[f"{stem}.om"] = onnx.helper.get_attribute_value(node.attribute[0]).decode()
        dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        assert soc == "Ascend910B1" and shape == f"x:{dims[0]},{dims[1]}"
        Path(f"{stem}.om").write_bytes(b"om")
        return Path(f"{stem}.om")
    return convert


def test_vectors_are_bit_exact_or_say_where_not(tmp_path, capsys):
    formats: dict = {}

    def device(om, arrays):  # a device computing exactly what onnx_npuq.formats does
        return [DC.reference(arrays[0], formats[str(om)])]

    assert DC.vectors(tmp_path / "a", "Ascend910B1", ["mxfp4"], device, convert=_fake_convert(formats))
    lines = capsys.readouterr().out.splitlines()
    assert "PASS vectors host reference mxfp4 = spec vectors" in lines
    assert [x for x in lines if x.startswith("PASS vectors mxfp4")] == [
        "PASS vectors mxfp4 spec mxfp4 32x192: bit-exact", "PASS vectors mxfp4 random float32 64x256: bit-exact",
        "PASS vectors mxfp4 random float16 64x256: bit-exact"]
    assert not [x for x in lines if x.startswith("FAIL")]

    def one_ulp_off(om, arrays):
        y = DC.reference(arrays[0], formats[str(om)]).copy()
        flat = y.reshape(-1).view(np.uint32 if y.dtype == np.float32 else np.uint16)
        flat[1000] += 1
        return [y]

    assert not DC.vectors(tmp_path / "b", "Ascend910B1", ["nvfp4"], one_ulp_off, convert=_fake_convert(formats))
    fails = [x for x in capsys.readouterr().out.splitlines() if x.startswith("FAIL")]
    assert len(fails) == 2 and fails[0].startswith("FAIL vectors nvfp4 random float32 64x256: 1 of 16384 differ; "
                                                   "first at [3, 232]: got ")
    # NaN equals NaN whatever its payload; a wrong dtype is a failure, not an exception
    nan = np.array([np.nan], np.float32)
    assert len(DC.bit_diff(nan, -nan)) == 0 and len(DC.bit_diff(nan, np.zeros(1, np.float32))) == 1
    with pytest.raises(ValueError, match="got float16"):
        DC.bit_diff(nan.astype(np.float16), nan)


def _ieee_device(div_ulp: int = 0, saturate: bool = False, hang: tuple = (), mix_wrong: bool = False):
    """A FAKE probe binary: IEEE 754 results (numpy), with the faults the probes look for."""
    def run(probe, d):
        if probe in hang:
            raise TimeoutError("no answer in 120 s (a hang)")
        if probe.startswith("qd"):
            rows, cols, _ = map(int, (d / "args.txt").read_text().split())
            y = DC.reference(np.fromfile(d / "x.bin", np.float32).reshape(rows, cols), "nvfp4")
            if mix_wrong and probe == "qd_mix":
                y = y * 2
            y.tofile(d / "y.bin")
        elif probe == "div":
            z = np.fromfile(d / "a.bin", np.float32) / np.fromfile(d / "b.bin", np.float32)
            z.view(np.uint32)[:] -= np.uint32(div_ulp) * (z > 0)
            z.tofile(d / "z.bin")
        elif probe == "cast":
            x = np.fromfile(d / "x.bin", np.float32)
            with np.errstate(over="ignore", invalid="ignore"):
                y = (np.clip(np.nan_to_num(x, nan=0.0), -65504, 65504) if saturate else x).astype(np.float16)
            y.tofile(d / "y.bin")
        elif probe == "cmp":
            x = np.fromfile(d / "x.bin", np.float32)
            for i, line in enumerate((d / "args.txt").read_text().splitlines()):
                op, bits = map(int, line.split())
                s = np.uint32(bits).view(np.float32)
                ops = {**DC.CMP_OPS, 6: np.multiply, 7: np.maximum, 8: np.maximum}
                z = ops[op](x, s).astype(np.float32)
                z.tofile(d / f"z{i}.bin")
    return run


def test_probes_pass_on_ieee_and_name_each_fault(tmp_path, capsys):
    assert DC.probes(tmp_path / "ok", _ieee_device(), cores=4)
    out = capsys.readouterr().out.splitlines()
    assert [x.split(":")[0] for x in out if x.startswith("PASS")] == [
        "PASS probe (b) NaN / Inf / subnormal compares, Muls / Maxs by 2^-127",
        "PASS probe (c) Div exact multiples k*d/d (4096)", "PASS probe (c) Div random pairs (4096)",
        "PASS probe (d) float -> half casts of Inf / NaN / overflow",
        "PASS probe (a) nvfp4 QuantDequant, 16x256 on 4 cores, KERNEL_TYPE_MIX_AIV_1_0"]
    assert "INFO probe (b) Max(NaN, 0) on the device gives NaN: it propagates" in out
    assert "INFO probe (a) the same without the mixed kernel type: bit-exact" in out

    # Div 1 ulp low: every exact multiple k*d/d (k > 0) floors to k-1; the sync hang of an
    # aiv-only kernel is said, not counted; saturation mode shows in the cast
    assert not DC.probes(tmp_path / "bad", _ieee_device(div_ulp=1, saturate=True, hang=("qd_aiv",)), cores=4)
    out = capsys.readouterr().out.splitlines()
    (exact,) = [x for x in out if x.startswith("FAIL probe (c) Div exact")]
    assert "floor(k*d/d) != k for 4088" in exact  # 8 divisors x 511 nonzero k
    assert any(x.startswith("FAIL probe (c) Div random pairs") for x in out)
    (cast,) = [x for x in out if x.startswith("FAIL probe (d)")]
    assert "saturation mode" in cast
    assert "INFO probe (a) the same without the mixed kernel type: no answer in 120 s (a hang)" in out
    assert any(x.startswith("PASS probe (a)") for x in out)

    # the mixed kernel hanging or wrong is a FAIL
    assert not DC.probes(tmp_path / "hang", _ieee_device(hang=("qd_mix",)), cores=4)
    assert any(x.startswith("FAIL probe (a)") and "a hang" in x for x in capsys.readouterr().out.splitlines())
    assert not DC.probes(tmp_path / "wrong", _ieee_device(mix_wrong=True), cores=4)
    assert any(x.startswith("FAIL probe (a)") and "differ" in x for x in capsys.readouterr().out.splitlines())


def test_models_read_the_comparison(tmp_path, capsys, monkeypatch):
    """models drives the onnx-npuq CLI (here a FAKE that logs and answers) and judges the
    comparison it prints."""
    log = tmp_path / "cli.log"
    fake = _exe(tmp_path / "onnx-npuq", f"""
        #!/bin/bash
        echo "$*" >> "{log}"
        case "$1" in
            export) touch "$6" ;;
            convert) touch "$6.om" ;;
            run) case "$2" in
                    *mxfp4*) echo '{json.dumps({"compare": [{"cosine": 0.9991, "max_abs": 0.01, "mismatches": 3}]})}' ;;
                    *) echo '{json.dumps({"compare": [{"cosine": 0.42, "max_abs": 3.0, "mismatches": 9}]})}' ;;
                 esac ;;
        esac
        """)
    monkeypatch.setenv("ONNX_NPUQ", str(fake))
    assert not DC.models(tmp_path / "m", "Ascend910B2", ["mxfp4", "hif8"], device=3)
    out = capsys.readouterr().out.splitlines()
    assert out == ["PASS model digits-cnn mxfp4: cosine 0.999100, max |diff| 0.01, 3 mismatches vs onnxruntime",
                   "FAIL model digits-cnn hif8: cosine 0.420000, max |diff| 3, 9 mismatches vs onnxruntime"]
    m = tmp_path / "m"
    assert log.read_text().splitlines()[:3] == [
        f"export digits-cnn -w mxfp4 -o {m}/digits-cnn.mxfp4.onnx",
        f"convert {m}/digits-cnn.mxfp4.onnx --soc Ascend910B2 -o {m}/digits-cnn.mxfp4 --input-shape x:2,1,8,8 "
        "--require-atc",
        f"run {m}/digits-cnn.mxfp4.om --json --compare {m}/digits-cnn.mxfp4.onnx --device 3"]


def test_probe_sources_agree():
    """atc_scripts/probes cannot be compiled here: its pieces are held together statically.
    Every kernel file is in the CMake library, every host wrapper a kernel file defines is
    declared in main.cpp with the same signature, and main.cpp dispatches every probe the driver
    runs."""
    import re

    probes = SCRIPTS / "probes"
    cmake = (probes / "CMakeLists.txt").read_text()
    main = (probes / "main.cpp").read_text()
    kernels = sorted(p for p in probes.glob("*.cpp") if p.name != "main.cpp")
    listed = re.search(r"ascendc_library\(npuq_probe_kernels SHARED([^)]*)\)", cmake).group(1).split()
    assert kernels and sorted(listed) == [f"${{CMAKE_CURRENT_SOURCE_DIR}}/{p.name}" for p in kernels]

    def wrappers(text):
        return {m.group(1): " ".join(m.group(2).split()) for m in re.finditer(r"void (npuq_probe_\w+_do)\(([^)]*)\)", text)}

    defined = {k: v for p in kernels for k, v in wrappers(p.read_text()).items()}
    assert defined and wrappers(main) == defined
    for p in kernels:  # each wrapper launches its own kernel with <<<>>>
        for name in wrappers(p.read_text()):
            assert re.search(rf"{name[:-3]}<<<blockDim, l2ctrl, stream>>>\(", p.read_text()), name
    driver = (SCRIPTS / "device_check.py").read_text()
    used = set(re.findall(r'run\("(\w+)"', driver)) | {"qd_mix", "qd_aiv"}
    assert used == {"qd_mix", "qd_aiv", "div", "cast", "cmp"}
    for probe in used:
        assert f'"{probe}"' in main, probe
