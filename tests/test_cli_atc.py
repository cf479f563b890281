"""onnx-npuq check / convert / run, and atc_scripts/. ATC, CANN and pyACL are not installed
here: `convert` is tested without atc and with a FAKE atc script on PATH, `run` with the FAKE
acl module of test_acl.py and a fake CANN tree for env.sh. None of them is the real thing."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from onnx_npuq.cli import main
from onnx_npuq.exporter import save, to_onnx
from onnx_npuq.nn import quantize_model
from onnx_npuq.passes.atc import to_portable
from onnx_npuq.passes.pipeline import is_atc_layout
from onnx_npuq.runtime.ort import OrtSession

sys.path.insert(0, str(Path(__file__).parent))
from test_acl import F32, FakeAcl  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "atc_scripts"
SOC = "Ascend910B1"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16))
    quantize_model(m, weights="hif8", activations="hif8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = to_onnx(m, (torch.randn(2, 32),), dynamic=True)  # the gear tests need the batch open
    path = tmp_path_factory.mktemp("model") / "m.onnx"
    save(proto, path)
    return path


def _run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def _one_line_error(res, code=2):
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    err = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(err) == 1, res.output
    return err[0]


@pytest.fixture
def no_atc(tmp_path, monkeypatch):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("atc") is None


def _fake_atc(folder: Path, rc: int = 0) -> Path:
    """A FAKE `atc` (bash, builtins only): logs its arguments, writes <--output>.om unless it fails."""
    folder.mkdir(parents=True, exist_ok=True)
    atc = folder / "atc"
    atc.write_text(f"""#!/bin/bash
printf '%s\\n' "$@" > "{folder}/atc.args"
for a in "$@"; do case "$a" in --output=*) out="${{a#--output=}}" ;; esac; done
if [ {rc} -ne 0 ]; then echo "E19010: No parser is registered for Op [x, optype [ai.onnx::18::X]]."; exit {rc}; fi
: > "$out.om"
echo "ATC run success, welcome to the next use."
""")
    atc.chmod(atc.stat().st_mode | stat.S_IEXEC)
    return atc


# ---------------------------------------------------------------- check


def test_check(model_path):
    res = _run("check", model_path, "--soc", SOC)
    assert res.exit_code == 0, res.output
    assert "laid out by the atc pass (layout default, opset 17)" in res.output
    assert "coverage: full: 7 of 7 nodes (Ascend910B1, layout default, opset 17)" in res.output
    res = _run("check", model_path, "--soc", SOC, "--layout", "domain", "--opset", "13")
    assert res.exit_code == 0 and "layout domain, opset 13" in res.output, res.output
    res = _run("check", model_path, "--soc", SOC, "--strict")  # Gemm with a bias: a documented limit
    assert res.exit_code == 1 and "UNCONFIRMED" in res.output
    res = _run("check", model_path, "--soc", SOC, "--as-is")
    assert res.exit_code == 1 and "E16005" in res.output and "LAYOUT" in res.output
    # ATC's spellings; each quantized layer and how it runs, in text and --json
    res = _run("check", model_path, "--soc_version", SOC, "--json")
    data = json.loads(res.output)
    assert res.exit_code == 0 and data["soc_version"] == SOC and data["warnings"] == []
    assert [(x["op"], x["kind"]) for x in data["layers"]] == [("Gemm", "custom kernel")] * 2
    assert "npuq::QuantDequant (format hif8) on the activation" in data["layers"][0]["why"]
    assert any(line.startswith("UNCONFIRMED ") for line in data["lines"])
    res = _run("check", model_path, "--soc", SOC)
    assert "quantized layers: 2" in res.output and ": custom kernel: " in res.output


def test_check_exit_codes_on_bad_input(model_path, tmp_path):
    assert "soc_version 'Ascend000'" in _one_line_error(_run("check", model_path, "--soc", "Ascend000"))
    assert "cannot read an ONNX model" in _one_line_error(_run("check", tmp_path / "missing.onnx", "--soc", SOC))
    (tmp_path / "bad.onnx").write_bytes(b"\x00not onnx")
    _one_line_error(_run("check", tmp_path / "bad.onnx", "--soc", SOC))
    res = _run("check", model_path, "--soc", SOC, "--opset", "9")
    _one_line_error(res)


def test_check_a_model_the_atc_pass_cannot_lay_out(tmp_path):
    """GroupNormalization-21 has no older definition with the same meaning: exit 1, with why."""
    from onnx import TensorProto as T
    from onnx import helper

    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], name="gn", num_groups=2)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", T.FLOAT, [1, 4, 8]),
                                        helper.make_tensor_value_info("s", T.FLOAT, [4]),
                                        helper.make_tensor_value_info("b", T.FLOAT, [4])],
                          [helper.make_tensor_value_info("y", T.FLOAT, [1, 4, 8])])
    path = tmp_path / "gn.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), path)
    res = _run("check", path, "--soc", SOC)
    assert res.exit_code == 1, res.output
    assert "the atc pass cannot lay the model out" in res.output and "gn (GroupNormalization)" in res.output


# ---------------------------------------------------------------- convert


def test_convert_without_atc_writes_the_inputs_and_prints_the_command(model_path, tmp_path, no_atc):
    stem = tmp_path / "out" / "m"
    res = _run("convert", model_path, "--soc", SOC, "-o", stem, "--input-shape", "input:-1,32",
               "--dynamic-batch", "1,2,4")
    assert res.exit_code == 0, res.output
    assert sorted(os.listdir(stem.parent)) == ["m.atc.onnx", "m.keep_dtype.cfg"]
    assert is_atc_layout(onnx.load(f"{stem}.atc.onnx"))
    cmd = next(line for line in res.stdout.splitlines() if line.startswith("atc "))
    assert cmd == (f"atc --model={stem}.atc.onnx --framework=5 --output={stem} --soc_version={SOC} "
                   f"--input_format=ND --input_shape=input:-1,32 --dynamic_batch_size=1,2,4 "
                   f"--precision_mode_v2=fp16 --keep_dtype={stem}.keep_dtype.cfg --log=error")
    why = [line for line in res.stderr.splitlines() if "atc is not on PATH" in line]
    assert len(why) == 1 and "the command above was not run" in why[0]
    # ATC's own flag spellings are aliases of ours: the same command
    res = _run("convert", model_path, "--soc_version", SOC, "-o", stem, "--input_shape", "input:-1,32",
               "--dynamic_batch_size", "1,2,4", "--log", "error")
    assert res.exit_code == 0 and next(x for x in res.stdout.splitlines() if x.startswith("atc ")) == cmd
    res = _run("convert", model_path, "--soc", SOC, "-o", stem, "--input-shape", "input:2,32", "--require-atc")
    assert res.exit_code == 1 and "atc is not on PATH" in res.output


def test_convert_bad_input_writes_nothing(model_path, tmp_path, no_atc):
    out = tmp_path / "out"
    cases = [
        (["--soc", "Ascend9"], "soc_version"),
        (["--soc", SOC], "has dimensions the model leaves open"),
        (["--soc", SOC, "--input-shape", "nope:1,32"], "no input 'nope'"),
        (["--soc", SOC, "--input-shape", "input:-1,32", "--dynamic-batch", "4"], "gear"),
        (["--soc", SOC, "--input-shape", "input:2,32", "--precision-mode", "force_fp16",
          "--precision-mode-v2", "fp16"], "cannot both be set"),
        (["--soc", SOC, "--input-shape", "input:2,32", "--atc-arg", "--output=x"], "set by build_command"),
    ]
    for args, match in cases:
        res = _run("convert", model_path, "-o", out / "m", *args)
        assert match in _one_line_error(res), (args, res.output)
        assert not out.exists(), args


def test_convert_stops_on_preflight_errors(model_path, tmp_path, no_atc):
    out = tmp_path / "out"
    # the npuq kernels are not built for Ascend310B*: EZ3003
    res = _run("convert", model_path, "--soc", "Ascend310B1", "-o", out / "m", "--input-shape", "input:2,32")
    assert res.exit_code == 1 and "EZ3003" in res.output and "not converting" in res.output
    assert not out.exists()
    res = _run("convert", model_path, "--soc", "Ascend310B1", "-o", out / "m", "--input-shape", "input:2,32",
               "--force")
    assert res.exit_code == 0 and (out / "m.atc.onnx").is_file()


def test_310p_is_refused_with_the_reason(model_path, tmp_path, no_atc):
    """custom_ops builds no ascend310p kernels: check and convert say why, in the EZ3003 line."""
    res = _run("check", model_path, "--soc", "Ascend310P3")
    assert res.exit_code == 1
    ez = [x for x in res.output.splitlines() if "EZ3003" in x]
    assert ez and all("custom_ops builds no kernels for ascend310p: " in x for x in ez), res.output
    res = _run("convert", model_path, "--soc", "Ascend310P1", "-o", tmp_path / "m", "--input-shape", "input:2,32")
    assert res.exit_code == 1 and "not converting" in res.output
    assert "custom_ops builds no kernels for ascend310p" in res.output
    assert not (tmp_path / "m.atc.onnx").exists()


def test_convert_runs_atc_when_it_is_on_path(model_path, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    _fake_atc(bin_dir)
    monkeypatch.setenv("PATH", str(bin_dir))
    stem = tmp_path / "out" / "m"
    res = _run("convert", model_path, "--soc", "Ascend910B3", "-o", stem, "--input-shape", "input:2,32",
               "--keep-fp32", "origin", "--atc-arg", "--op_select_implmode=high_precision")
    assert res.exit_code == 0, res.output
    assert f"wrote {stem}.om" in res.output and (tmp_path / "out" / "m.om").is_file()
    args = (bin_dir / "atc.args").read_text().splitlines()
    assert args == [f"--model={stem}.atc.onnx", "--framework=5", f"--output={stem}", "--soc_version=Ascend910B3",
                    "--input_format=ND", "--input_shape=input:2,32", "--precision_mode_v2=origin", "--log=error",
                    "--op_select_implmode=high_precision"]
    # an ATC-layout file is converted from where it is
    res = _run("convert", f"{stem}.atc.onnx", "--soc", SOC, "-o", tmp_path / "again", "--input-shape", "input:2,32")
    assert res.exit_code == 0, res.output
    assert (bin_dir / "atc.args").read_text().splitlines()[0] == f"--model={stem}.atc.onnx"


def test_convert_reports_an_atc_failure(model_path, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    _fake_atc(bin_dir, rc=3)
    monkeypatch.setenv("PATH", str(bin_dir))
    res = _run("convert", model_path, "--soc", SOC, "-o", tmp_path / "m", "--input-shape", "input:2,32")
    assert res.exit_code == 1 and "atc failed with exit code 3" in res.output


# ---------------------------------------------------------------- run


def test_run_without_pyacl_or_ais_bench(tmp_path, monkeypatch):
    om = tmp_path / "m.om"
    om.write_bytes(b"om")
    for name in ("acl", "ais_bench", "ais_bench.infer", "ais_bench.infer.interface"):
        monkeypatch.setitem(sys.modules, name, None)
    err = _one_line_error(_run("run", om))
    assert "neither pyACL (import acl) nor ais_bench" in err
    assert "no such file" in _one_line_error(_run("run", tmp_path / "missing.om"))


def test_run_with_a_fake_acl_and_compare(model_path, tmp_path, monkeypatch):
    """The FAKE acl 'executes' the model with onnxruntime: this checks the plumbing (inputs,
    outputs, comparison), not an NPU."""
    laid_out = onnx.load(model_path)
    session = OrtSession(to_portable(laid_out) if is_atc_layout(laid_out) else laid_out)
    in_name, out_name = session.input_names[0], session.output_names[0]
    fake = FakeAcl([(in_name, F32, [2, 32])], [(out_name, F32, [2, 16])],
                   lambda xs: [session.run(torch.from_numpy(xs[0].copy()))[0].numpy()])
    monkeypatch.setitem(sys.modules, "acl", fake)
    om = tmp_path / "m.om"
    om.write_bytes(b"om")
    x = np.random.default_rng(0).standard_normal((2, 32)).astype(np.float32)
    np.savez(tmp_path / "in.npz", **{in_name: x})
    res = _run("run", om, "--inputs", tmp_path / "in.npz", "--compare", model_path, "-o", tmp_path / "out.npz")
    assert res.exit_code == 0, res.output
    assert f"{out_name}: float32 (2, 16)" in res.output
    assert f"compare {out_name}: (2, 16) 0 mismatches" in res.output
    assert "CosineSimilarity 1.000000 RelativeEuclideanDistance 0.000000" in res.output  # msprobe's names
    assert "pass (msprobe thresholds)" in res.output
    res = _run("run", om, "--inputs", tmp_path / "in.npz", "--compare", model_path, "--json")
    (cmp,) = json.loads(res.output)["compare"]
    assert cmp["metrics"]["KullbackLeiblerDivergence"] == 0.0 and cmp["precision_errors"] == []
    with np.load(tmp_path / "out.npz") as out:
        want = session.run(torch.from_numpy(x))[0].numpy()
        np.testing.assert_array_equal(out[out_name], want)
    assert fake.names()[-1] == "acl.finalize"
    # random inputs from the .om description; wrong npz keys are bad input
    assert _run("run", om).exit_code == 0
    np.savez(tmp_path / "bad.npz", nope=x)
    assert "the model's inputs are" in _one_line_error(_run("run", om, "--inputs", tmp_path / "bad.npz"))
    # a failing pyACL call: one line, exit 1
    fake.fail = {"acl.mdl.execute"}
    res = _run("run", om)
    assert res.exit_code == 1 and "acl.mdl.execute failed with code" in res.output and "Traceback" not in res.output


def test_rewrite_and_passes_still_work(model_path, tmp_path):
    res = _run("passes")
    assert res.exit_code == 0 and "atc" in res.output
    res = _run("rewrite", model_path, "-o", tmp_path / "r.onnx", "-p", "atc", "--no-verify")
    assert res.exit_code == 0 and is_atc_layout(onnx.load(tmp_path / "r.onnx")), res.output


# ---------------------------------------------------------------- atc_scripts


SCRIPT_NAMES = ("env.sh", "build_custom_ops.sh", "convert.sh", "run_om.sh", "device_check.sh")


def _bash(script: str, env=None, cwd=REPO):
    return subprocess.run(["bash", "-c", script], check=False, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_scripts_parse(name):
    res = subprocess.run(["bash", "-n", str(SCRIPTS / name)], check=False, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    text = (SCRIPTS / name).read_text()
    if name != "env.sh":  # env.sh is sourced into the caller's shell
        assert "set -euo pipefail" in text
    assert "usage" in text


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (apt-get install shellcheck)")
def test_scripts_pass_shellcheck():
    res = subprocess.run(["shellcheck", "-x", *SCRIPT_NAMES], check=False, capture_output=True, text=True, cwd=SCRIPTS)
    assert res.returncode == 0, res.stdout + res.stderr


def test_script_usage_messages(tmp_path):
    for script, args in (("convert.sh", ""), ("run_om.sh", ""), ("build_custom_ops.sh", "--bogus"),
                         ("run_om.sh", str(tmp_path / "missing.om"))):
        res = _bash(f"bash atc_scripts/{script} {args}")
        assert res.returncode == 2, (script, res.stdout, res.stderr)
        assert "usage" in res.stderr or "no such" in res.stderr
    res = _bash("bash atc_scripts/env.sh")
    assert res.returncode == 2 and "usage: source" in res.stderr


def _fake_cann(root: Path) -> tuple[Path, Path]:
    """A FAKE CANN toolkit (set_env.sh that puts a fake atc on PATH) and a fake installed
    custom-op package (vendors/npuq/bin/set_env.bash)."""
    home = root / "ascend-toolkit" / "latest"
    (home / "bin").mkdir(parents=True)
    _fake_atc(home / "bin")
    (home / "set_env.sh").write_text(f'export PATH="{home}/bin:$PATH"\nexport ASCEND_OPP_PATH="{home}/opp"\n'
                                     f'export LD_LIBRARY_PATH="{home}/lib64:${{LD_LIBRARY_PATH:-}}"\n')
    vendor = root / "opp_install" / "vendors" / "npuq"
    (vendor / "bin").mkdir(parents=True)
    (vendor / "bin" / "set_env.bash").write_text(
        f'export ASCEND_CUSTOM_OPP_PATH="{vendor}:${{ASCEND_CUSTOM_OPP_PATH}}"\n')
    return home, root / "opp_install"


def test_env_sh_with_a_fake_cann(tmp_path):
    home, opp = _fake_cann(tmp_path)
    env = {**os.environ, "ASCEND_HOME_PATH": str(home)}
    env.pop("ASCEND_CUSTOM_OPP_PATH", None)
    res = _bash(f'source atc_scripts/env.sh "{opp}" && echo "OPP=$ASCEND_OPP_PATH" && '
                'echo "CUSTOM=$ASCEND_CUSTOM_OPP_PATH" && command -v atc && echo "NPUQ=$NPUQ_CUSTOM_OPP" && '
                'case $- in *e*) echo errexit-leaked ;; esac', env=env)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert f"OPP={home}/opp" in out and f"CUSTOM={opp}/vendors/npuq:" in out
    assert f"{home}/bin/atc" in out and f"NPUQ={opp}" in out and "errexit-leaked" not in out
    res = _bash('ASCEND_HOME_PATH=/nonexistent source atc_scripts/env.sh; echo "rc=$?"')
    assert "rc=1" in res.stdout and "no CANN set_env.sh" in res.stderr
    res = _bash(f'source atc_scripts/env.sh "{tmp_path}/nowhere"; echo "rc=$?"', env=env)
    assert "rc=0" in res.stdout and "no custom-op package" in res.stderr


def test_convert_sh_end_to_end_with_a_fake_cann(model_path, tmp_path):
    home, opp = _fake_cann(tmp_path)
    cli = Path(sys.executable).with_name("onnx-npuq")
    env = {**os.environ, "ASCEND_HOME_PATH": str(home), "NPUQ_CUSTOM_OPP": str(opp), "ONNX_NPUQ": str(cli),
           "PATH": "/usr/bin:/bin"}
    stem = tmp_path / "out" / "m"
    res = _bash(f'bash atc_scripts/convert.sh "{model_path}" {SOC} "{stem}" --input-shape "input:2,32"', env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "out" / "m.om").is_file() and "ATC run success" in res.stdout
    res = _bash(f'bash atc_scripts/convert.sh "{model_path}" {SOC} "{stem}"', env=env)
    assert res.returncode == 2 and "leaves open" in res.stderr
