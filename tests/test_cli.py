"""Every `onnx-npuq` command through click's CliRunner, and the installed console script in a
real subprocess: text and --json output, exit codes, one-line errors, complete --help."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner

from onnx_npuq import formats
from onnx_npuq.cli import main

SCRIPT = str(Path(sys.executable).with_name("onnx-npuq"))


def invoke(*args: str, ok: bool = True):
    res = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert res.exit_code == 0, res.output
    return res


def one_line_error(res, code: int = 2) -> str:
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    return lines[0]


FACTORY_FILE = '''
import torch
from torch import nn


def model():
    m = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8))
    return m, (torch.randn(2, 32),)


def bare():
    return nn.Sequential(nn.Linear(16, 8))


def not_a_model():
    return 3


def broken():
    raise RuntimeError("no weights here")


def convnet():
    torch.manual_seed(0)  # export and verify each build it
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=8), nn.Flatten(),
                      nn.Linear(8 * 4 * 4, 10))
    return m, (torch.randn(2, 3, 8, 8),)
'''


@pytest.fixture(scope="module")
def factory(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("factory") / "user_model.py"
    path.write_text(FACTORY_FILE)
    return path


def test_formats():
    res = invoke("formats", "--json")
    rows = json.loads(res.output)
    assert [r["format"] for r in rows] == formats.names()
    text = invoke("formats").output
    assert all(name in text for name in formats.names())


def test_export_and_verify_builtin(tmp_path):
    out = tmp_path / "m.onnx"
    res = invoke("export", "tiny-llama", "-w", "int4sym:group=32", "-a", "mxfp8e4m3", "--exclude", "lm_head",
                 "-o", out, "--json")
    data = json.loads(res.output)
    assert data["quantized_layers"] == 14 and data["bytes"] == out.stat().st_size
    assert sum(n.op_type == "Dequantize" for n in onnx.load(out).graph.node) == 14
    res = invoke("verify", "tiny-llama", out, "-w", "int4sym:group=32", "-a", "mxfp8e4m3", "--exclude", "lm_head",
                 "--layers", "--json")
    results = json.loads(res.output)
    assert len(results) == 1 + 16  # logits, then every weight layer (embedding and lm_head too, float)
    assert all(r["cosine"] > 0.99999 for r in results)
    assert next(r for r in results if r["name"] == "layer:layers.0.self_attn.q_proj")["mismatches"] == 0
    text = invoke("verify", "tiny-llama", out, "-w", "int4sym:group=32", "-a", "mxfp8e4m3", "--exclude", "lm_head").output
    assert "mismatches, max |diff|" in text and "layer:" not in text


def test_export_from_a_file_and_a_module(tmp_path, factory, monkeypatch):
    out = tmp_path / "f.onnx"
    data = json.loads(invoke("export", factory, "-w", "hif8", "-o", out, "--json").output)
    assert data["quantized_layers"] == 2
    data = json.loads(invoke("export", f"{factory}:bare", "-w", "mxfp4", "--input", "x:3,16", "-o", out,
                             "--json").output)
    assert data["quantized_layers"] == 1
    monkeypatch.syspath_prepend(str(factory.parent))
    data = json.loads(invoke("export", "user_model:model", "-w", "int8", "-o", out, "--json").output)
    assert data["quantized_layers"] == 2


def test_export_prints_what_it_quantized_and_left(tmp_path, factory):
    out = tmp_path / "c.onnx"
    text = invoke("export", f"{factory}:convnet", "-w", "mxfp4", "--exclude", "4", "-o", out).output
    assert "2 layers quantized, 1 weight layers left float" in text
    assert "  0 (Conv2d 8x3x3x3): mxfp4," in text and "  2 (Conv2d 8x1x3x3): mxfp4," in text
    assert "  4 (Linear): float, excluded by the recipe" in text
    data = json.loads(invoke("export", f"{factory}:convnet", "-w", "hif8", "-o", out, "--json").output)
    assert [r["name"] for r in data["layers"]] == ["0", "2", "4"] and data["left_float"] == []
    assert sum(n.op_type == "Dequantize" for n in onnx.load(out).graph.node) == 3
    results = json.loads(invoke("verify", f"{factory}:convnet", out, "-w", "hif8", "--layers", "--json").output)
    assert [r["name"] for r in results][1:] == ["layer:0", "layer:2", "layer:4"]
    assert all(r["max_rel"] < 1e-4 and r["cosine"] > 0.99999 for r in results), results  # conv sums in another order


@pytest.mark.parametrize("args, message", [
    (["export", "nope", "-o", "{tmp}/x.onnx"], "model spec 'nope': unknown model"),
    (["export", "{tmp}/missing.py", "-o", "{tmp}/x.onnx"], "no such file"),
    (["export", "nosuchmod:model", "-o", "{tmp}/x.onnx", "--input", "x:1,3"],
     "model spec 'nosuchmod:model': importing 'nosuchmod' raised ModuleNotFoundError: No module named 'nosuchmod'"),
    (["export", "{factory}:broken", "-o", "{tmp}/x.onnx", "--input", "x:1,3"],
     "user_model.py:broken() raised RuntimeError: no weights here"),
    (["verify", "{factory}:broken", "{tmp}/x.onnx"], "no such file"),  # the ONNX file is read first
    (["export", "tiny-llama", "-w", "bogus", "-o", "{tmp}/x.onnx"], "unknown format 'bogus'"),
    (["export", "tiny-llama", "-w", "int4sym:group", "-o", "{tmp}/x.onnx"], "is not key=value"),
    (["export", "{factory}:bare", "-o", "{tmp}/x.onnx"], "give example inputs with --input"),
    (["export", "{factory}:bare", "--input", "x:3,0", "-o", "{tmp}/x.onnx"], "positive integers"),
    (["export", "{factory}:bare", "--input", "x:3,16:int3", "-o", "{tmp}/x.onnx"], "dtype must be one of"),
    (["export", "{factory}:not_a_model", "-o", "{tmp}/x.onnx"], "not a torch.nn.Module"),
    (["export", "{factory}:nothing", "-o", "{tmp}/x.onnx"], "has no 'nothing'"),
    (["verify", "tiny-llama", "{tmp}/missing.onnx"], "no such file"),
    (["export", "tiny-llama", "--bogus"], "No such option"),
    (["rewrite", "{tmp}/missing.onnx", "-o", "{tmp}/x.onnx", "-p", "compress"], "cannot read an ONNX model"),
    (["check", "{tmp}/missing.onnx", "--soc", "Ascend999"], "soc_version 'Ascend999'"),
    (["demo", "-f", "bogus", "--no-minilm", "-o", "{tmp}/d"], "unknown format 'bogus'"),
    (["nope"], "No such command"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, factory, args, message):
    args = [a.format(tmp=tmp_path, factory=factory) for a in args]
    line = one_line_error(invoke(*args, ok=False))
    assert message in line
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "d").exists()


def _commands():
    return sorted(main.commands)


@pytest.mark.parametrize("name", _commands())
def test_help_is_complete(name):
    cmd = main.commands[name]
    assert cmd.help and len(cmd.help) > 30, name
    for p in cmd.params:
        if isinstance(p, __import__("click").Option):
            assert p.help, f"{name} {p.opts} has no help"
    text = invoke(name, "--help").output
    assert "--json" in text and "Usage: " in text


def test_every_command_is_here():
    assert set(main.commands) == {"formats", "export", "rewrite", "passes", "verify", "check", "convert", "run",
                                  "demo"}


def test_demo(tmp_path):
    out = tmp_path / "demo"
    data = json.loads(invoke("demo", "-f", "mxfp4", "-f", "int4sym", "--no-minilm", "--no-cnn", "-o", out,
                             "--json").output)  # the CNN part: tests/test_cnn.py
    assert [r["format"] for r in data["decoder"]] == ["mxfp4", "int4sym"]
    assert all(r["preflight"].startswith("full coverage") for r in data["decoder"])
    assert data["commands"][0].startswith("atc --model=") and "--soc_version=Ascend910B1" in data["commands"][0]
    report = Path(data["report"]).read_text()
    assert "| `mxfp4` | 4.25 |" in report and "![per-layer SNR](layer_snr.png)" in report
    assert (out / "layer_snr.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "tiny-llama.int4sym.onnx").exists() and (out / "tiny-llama.int4sym.atc.onnx").exists()


def test_console_script_in_a_subprocess(tmp_path):
    """The installed entry point, for real: JSON on stdout, one line and exit 2 on bad input."""
    run = subprocess.run([SCRIPT, "formats", "--json"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert [r["format"] for r in json.loads(run.stdout)] == formats.names()
    out = tmp_path / "m.onnx"
    run = subprocess.run([SCRIPT, "export", "tiny-llama", "-w", "mxfp4", "-o", str(out), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["bytes"] == out.stat().st_size
    assert run.stderr.strip() == ""  # torch's exporter chatter is kept quiet
    run = subprocess.run([SCRIPT, "export", "tiny-llama", "-w", "nope", "-o", str(tmp_path / "x.onnx")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1 and run.stdout == ""
    run = subprocess.run([sys.executable, "-m", "onnx_npuq.cli", "passes", "--json"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and {p["name"] for p in json.loads(run.stdout)} >= {"compress", "atc"}
