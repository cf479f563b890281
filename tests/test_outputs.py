"""What onnx_npuq writes: atomically (a failure midway leaves the target folder as it was),
and reproducibly (the same model exported or rewritten twice gives the same bytes, also
from two processes with different PYTHONHASHSEED)."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from onnx_npuq import exporter
from onnx_npuq import io as npuq_io
from onnx_npuq import report
from onnx_npuq.atc import plan_command
from onnx_npuq.cli import main
from onnx_npuq.exporter import save, to_onnx
from onnx_npuq.nn import quantize_model
from onnx_npuq.passes import run_passes

from conftest import FullDisk

SCRIPT = str(Path(sys.executable).with_name("onnx-npuq"))
SOC = "Ascend910B1"

FACTORY = '''
import torch


def model():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16))
    return m, (torch.randn(2, 64),)
'''


def listing(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def factory(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("factory") / "det_models.py"
    path.write_text(FACTORY)
    return path


@pytest.fixture(scope="module")
def small() -> onnx.ModelProto:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16))
    quantize_model(m, weights={"format": "int4sym", "group": 32}, activations="mxfp8e4m3")
    return to_onnx(m, (torch.randn(2, 64),))


def _failing_call(real, n: int):
    """A stand-in for `real` whose n-th call (1-based) fails as a full disk would; the
    others do the real thing."""
    calls = {"n": 0}

    def fake(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return real(*args, **kwargs)
    return fake


# ------------------------------------------------------------------ atomic


@pytest.mark.parametrize("external", [False, True])
def test_save_failure_midway_leaves_nothing(small, tmp_path, monkeypatch, external):
    out = tmp_path / "out"
    out.mkdir()

    def half_written(proto, path, *a, **k):  # writes part of the file, then the disk is full
        Path(path).write_bytes(proto.SerializeToString()[:100])
        raise OSError(errno.ENOSPC, "No space left on device (injected)")

    monkeypatch.setattr(onnx, "save", half_written)  # external: the graph's file
    monkeypatch.setattr(exporter, "open", FullDisk, raising=False)  # inline: save() writes it
    with pytest.raises(OSError):
        save(small, out / "m.onnx", external_data=external)
    assert listing(out) == {}


def test_save_external_data_second_rename_fails(small, tmp_path, monkeypatch):
    """The data file is in place, the model's rename fails: the new data file goes away, and
    an old model + data pair is left exactly as it was."""
    out = tmp_path / "out"
    monkeypatch.setattr(os, "replace", _failing_call(os.replace, 2))
    with pytest.raises(OSError):
        save(small, out / "m.onnx", external_data=True)
    assert listing(out) == {}
    monkeypatch.undo()
    old = onnx.ModelProto()
    old.CopyFrom(small)
    old.producer_name = "old"
    save(old, out / "m.onnx", external_data=True)
    before = listing(out)
    changed = onnx.ModelProto()
    changed.CopyFrom(small)
    for t in changed.graph.initializer:  # other weights, so the data file differs
        if len(t.raw_data) >= 1024:
            t.raw_data = bytes(len(t.raw_data))
    monkeypatch.setattr(os, "replace", _failing_call(os.replace, 2))
    with pytest.raises(OSError):
        save(changed, out / "m.onnx", external_data=True)
    monkeypatch.undo()
    assert listing(out) == before
    assert npuq_io.load_model(out / "m.onnx").producer_name == "old"


def test_atomic_path(tmp_path):
    target = tmp_path / "f.txt"
    with pytest.raises(RuntimeError), npuq_io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("midway")
    assert listing(tmp_path) == {}
    npuq_io.write_text_atomic(target, "whole")
    assert listing(tmp_path) == {"f.txt": b"whole"}
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_atc_command_write_is_all_or_nothing(small, tmp_path, monkeypatch):
    """plan_command(...).write(): the model, then the --keep_dtype file; when the second
    fails, the first (new) file is removed again."""
    from onnx_npuq.atc import command

    cmd = plan_command(small, SOC, tmp_path / "out" / "m", layout="default", input_shapes={"input": [2, 64]})
    assert cmd.write_model and cmd.keep_dtype_path is not None
    monkeypatch.setattr(command, "_write_text_atomic", _failing_call(command._write_text_atomic, 1))
    with pytest.raises(OSError):
        cmd.write()
    assert listing(tmp_path / "out") == {}
    monkeypatch.undo()
    written = cmd.write()
    assert sorted(p.name for p in written) == ["m.atc.onnx", "m.keep_dtype.cfg"]


def test_cli_rewrite_disk_full(small, tmp_path, monkeypatch):
    """The CLI on a failing write: one line, exit 2, no file."""
    src = tmp_path / "in.onnx"
    save(small, src)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(exporter, "open", FullDisk, raising=False)
    res = CliRunner().invoke(main, ["rewrite", str(src), "-o", str(out / "r.onnx"), "-p", "compress"])
    assert res.exit_code == 2 and res.stderr.startswith("Error: ") and "No space left" in res.stderr
    assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.output
    assert listing(out) == {}


def test_report_write_failure_leaves_nothing(tmp_path, monkeypatch):
    """report.md (and its plots) are written to a temporary name first."""
    monkeypatch.setattr(os, "replace", _failing_call(os.replace, 1))
    with pytest.raises(OSError):
        report.write_report(tmp_path / "r", [], 1)
    assert listing(tmp_path / "r") == {}


def test_cli_run_npz_failure_leaves_nothing(tmp_path, monkeypatch):
    """`onnx-npuq run -o out.npz` (with a fake pyACL): a failing write leaves no file."""
    from test_acl import F32, FakeAcl

    fake = FakeAcl([("x", F32, [2, 4])], [("y", F32, [2, 4])], lambda xs: [xs[0] * 2])
    monkeypatch.setitem(sys.modules, "acl", fake)
    om = tmp_path / "m.om"
    om.write_bytes(b"om")
    out = tmp_path / "out"
    out.mkdir()

    def half_savez(file, **arrays):
        Path(file).write_bytes(b"PK\x03\x04 half")
        raise OSError(errno.ENOSPC, "No space left on device (injected)")

    monkeypatch.setattr(np, "savez", half_savez)
    res = CliRunner().invoke(main, ["run", str(om), "-o", str(out / "y.npz")])
    assert res.exit_code == 2 and "No space left" in res.stderr and "Traceback" not in res.output
    assert listing(out) == {}
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "acl", fake)
    res = CliRunner().invoke(main, ["run", str(om), "-o", str(out / "y.npz")])
    assert res.exit_code == 0, res.output
    assert list(listing(out)) == ["y.npz"]


# ------------------------------------------------------------------ reproducible


def test_export_twice_same_bytes(small, tmp_path):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16))
    quantize_model(m, weights={"format": "int4sym", "group": 32}, activations="mxfp8e4m3")
    again = to_onnx(m, (torch.randn(2, 64),))
    assert again.SerializeToString() == small.SerializeToString()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        save(small, tmp_path / name / "m.onnx", external_data=True)
    assert listing(tmp_path / "a") == listing(tmp_path / "b")


def test_rewrite_twice_same_bytes(small, tmp_path):
    passes = ["compress", "fuse-npu", "atc"]
    a, _ = run_passes(small, passes, verify=False)
    b, _ = run_passes(small, passes, verify=False)
    assert a.SerializeToString() == b.SerializeToString()
    src = tmp_path / "in.onnx"
    save(small, src)
    flags = [arg for p in passes for arg in ("-p", p)]
    for name in ("r1.onnx", "r2.onnx"):
        res = CliRunner().invoke(main, ["rewrite", str(src), "-o", str(tmp_path / name), *flags])
        assert res.exit_code == 0, res.output
    assert (tmp_path / "r1.onnx").read_bytes() == (tmp_path / "r2.onnx").read_bytes() == a.SerializeToString()


def test_export_and_rewrite_in_two_processes_same_bytes(tmp_path, factory):
    """`onnx-npuq export` then `rewrite`, in two processes at once with different hash seeds
    (set order, module names derived from hash()) and working directories."""
    procs = []
    # both commands in one interpreter each (what the console script runs, less one start-up)
    script = ("import sys; from onnx_npuq.cli import main; "
              f"sys.exit(main(['export', {str(factory) + ':model'!r}, '-w', 'int4sym:group=32', '-a', 'mxfp8e4m3', "
              "'-o', 'm.onnx', '--external-data'], standalone_mode=False) or "
              "main(['rewrite', 'm.onnx', '-o', 'r.onnx', '-p', 'compress', '-p', 'fuse-npu', '-p', 'atc'], "
              "standalone_mode=False))")
    for seed in ("0", "4242"):
        d = tmp_path / seed
        d.mkdir()
        env = {**os.environ, "PYTHONHASHSEED": seed}
        procs.append(subprocess.Popen([sys.executable, "-c", script], cwd=d, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out
    a, b = listing(tmp_path / "0"), listing(tmp_path / "4242")
    assert sorted(a) == ["m.onnx", "m.onnx.data", "r.onnx"]
    assert a == b
