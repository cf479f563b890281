"""Hostile inputs (tests/fuzz_cases.py, all generated): every case through the Python API and
the CLI. Each must end in one typed error (a ValueError naming the problem), on the command
line exit code 2 with exactly one `Error: ` line on stderr and no traceback, nothing written
anywhere, and nothing outside the given paths opened (an audit hook records every open()).

Non-finite and denormal weights and inputs are not errors: they go through the passes, the
exporter and onnxruntime by the rules of shared/spec/formats.md, checked bit for bit here.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import fuzz_cases as fc
import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import helper, numpy_helper

from onnx_npuq import formats as F
from onnx_npuq import io as npuq_io
from onnx_npuq.atc import plan_command, preflight
from onnx_npuq.cli import main
from onnx_npuq.cli.models import ModelSpecError, load_model
from onnx_npuq.errors import ExternalDataError, ModelError, NodeError
from onnx_npuq.exporter import export, save
from onnx_npuq.nn import Recipe, RecipeError, quantize_model
from onnx_npuq.passes import run_passes
from onnx_npuq.runtime import OrtSession, verify

SOC = "Ascend910B1"
SCRIPT = str(Path(sys.executable).with_name("onnx-npuq"))


# ------------------------------------------------------------------ what is opened


class _Opens:
    """Every open() (io.open, os.open) while recording: (path, mode, flags)."""

    log: list | None = None

    @staticmethod
    def hook(event, args):
        if event == "open" and _Opens.log is not None:
            _Opens.log.append(args)


sys.addaudithook(_Opens.hook)

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


@contextmanager
def recording_opens():
    _Opens.log = []
    try:
        yield _Opens.log
    finally:
        _Opens.log = None


def check_opens(opens, outside: Path) -> None:
    """Nothing under `outside` opened, nothing opened for writing."""
    real_outside = os.path.realpath(outside)
    for path, mode, flags in opens:
        if isinstance(path, int):
            continue
        path = os.fsdecode(path)
        real = os.path.realpath(path)
        assert not real.startswith(real_outside + os.sep), f"opened {path} (-> {real}) outside the given paths"
        writing = any(c in (mode or "") for c in "wax+") or bool((flags or 0) & _WRITE_FLAGS)
        assert not writing, f"opened {path} for writing ({mode!r}, {flags})"


def snapshot(root: Path) -> dict:
    """Every entry under root (symlinks not followed): size, mtime, kind."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


# ------------------------------------------------------------------ fixtures


FACTORY = '''
import torch


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 16)), (torch.randn(2, 64),)


def nonfinite():
    """Weights and inputs with NaN, +-Inf and denormals (valid input: no error)."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(64, 32))  # one layer: NaN stays in its rows / columns
    with torch.no_grad():
        w = m[0].weight
        w[0, 5] = float("nan")
        w[1, 33] = float("inf")
        w[2, 60] = float("-inf")
        w[3, :] = torch.randn(64) * 1e-40  # a row of float32 denormals
        w[4, 0:8] = 3e-39
    x = torch.randn(3, 64)
    x[0, 7] = float("nan")
    x[1, 40] = float("inf")
    x[1, 41] = float("-inf")
    x[2, :32] = torch.randn(32) * 1e-39
    return m, (x,)
'''


@pytest.fixture(scope="module")
def factory(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("factory") / "fuzz_models.py"
    path.write_text(FACTORY)
    return path


@pytest.fixture(scope="module")
def good_onnx(tmp_path_factory) -> Path:
    """A valid model (for `verify ... --recipe BAD`)."""
    path = tmp_path_factory.mktemp("good") / "good.onnx"
    onnx.save(fc.plain(), path)
    return path


class Workspace:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.inp = root / "in"
        self.out = root / "out"
        self.outside = root / "outside"
        for d in (self.inp, self.out, self.outside):
            d.mkdir()
        (self.outside / fc.SECRET).write_bytes(b"secret" * 100)  # 600 bytes nobody may read


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path)


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_cli_error(res, pattern: str, what: str) -> str:
    assert "Traceback" not in res.output, f"{what}: {res.output}"
    assert res.exit_code == 2, f"{what}: exit {res.exit_code}: {res.output}"
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), f"{what}: {res.stderr!r}"
    assert res.stdout == "", f"{what}: printed {res.stdout!r}"
    assert re.search(pattern, lines[0]), f"{what}: {lines[0]!r} does not match {pattern!r}"
    return lines[0]


def assert_api_error(call, pattern: str, what: str) -> ValueError:
    try:
        call()
    except ValueError as err:
        message = str(err)
        assert "\n" not in message.strip(), f"{what}: a message of several lines: {message!r}"
        assert re.search(pattern, message), f"{what}: {type(err).__name__}: {message!r} does not match {pattern!r}"
        return err
    raise AssertionError(f"{what}: no error")


# ------------------------------------------------------------------ models


API = {
    "load": lambda p, ws: npuq_io.load_model(p),
    "passes": lambda p, ws: run_passes(p, ["compress"]),
    "preflight": lambda p, ws: preflight(p, SOC),
    "plan": lambda p, ws: plan_command(p, SOC, ws.out / "m", layout="default"),
    "ort": lambda p, ws: OrtSession(p),
    "verify": lambda p, ws: verify(torch.nn.Identity(), (torch.zeros(2, 64),), p),
}
CLI = {
    "passes": lambda p, ws, f: ["rewrite", p, "-o", ws.out / "r.onnx", "-p", "compress"],
    "preflight": lambda p, ws, f: ["check", p, "--soc", SOC],
    "plan": lambda p, ws, f: ["convert", p, "--soc", SOC, "-o", ws.out / "m"],
    "verify": lambda p, ws, f: ["verify", f"{f}:model", p],
}


def test_enough_cases():
    cases = fc.MODEL_CASES + fc.RECIPE_CASES + fc.SPEC_CASES
    assert len(cases) + len(fc.INPUT_SPECS) + len(fc.NPZ_FILES) >= 200
    ids = [c.id for c in cases] + [c[0] for c in fc.INPUT_SPECS + fc.NPZ_FILES]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("name", sorted(fc.BASES))
def test_base_models_are_valid(name, tmp_path):
    """The unchanged models the cases start from load, rewrite and run: each error below
    comes from what the case changed."""
    path = fc.save(tmp_path, fc.BASES[name]())
    model = npuq_io.load_model(path)
    assert preflight(path, SOC).nodes == len(model.graph.node)
    if name != "npu_quantize":  # fuse / atc keys aside, every base rewrites and runs
        run_passes(path, ["compress"])
        OrtSession(path)


@pytest.mark.parametrize("case", fc.MODEL_CASES, ids=lambda c: f"{c.category}-{c.id}")
def test_model_case(case, ws, factory):
    path = case.build(ws.inp)
    before = snapshot(ws.root)
    with recording_opens() as opens:
        for tool in case.tools:
            assert_api_error(lambda tool=tool: API[tool](path, ws), case.match, f"{case.id} {tool}")
        for tool in case.tools:
            if tool in CLI:
                res = cli(*CLI[tool](path, ws, factory))
                assert_cli_error(res, case.match, f"{case.id} {CLI[tool](path, ws, factory)[0]}")
    assert snapshot(ws.root) == before
    check_opens(opens, ws.outside)


def test_error_types(ws):
    """The errors are typed: ModelError, with ExternalDataError and NodeError below it."""
    assert issubclass(ExternalDataError, ModelError) and issubclass(NodeError, ModelError)
    assert issubclass(ModelError, ValueError)
    cases = {c.id: c for c in fc.MODEL_CASES}
    for cid, kind in [("ext-dotdot", ExternalDataError), ("ext-symlink-out", ExternalDataError),
                      ("qd-format-int", NodeError), ("dq-codes-short", NodeError), ("cycle", ModelError),
                      ("garbage-100-seed1", ModelError)]:
        folder = ws.inp / cid
        folder.mkdir()
        with pytest.raises(kind):
            npuq_io.load_model(cases[cid].build(folder))


def test_in_memory_models_are_checked_too():
    """A ModelProto given to run_passes gets the structural checks (and no external data);
    its custom nodes are validated when the pass attaches their bodies."""
    m = fc.quant_dequant()
    fc.set_attr(fc.node(m, "qd"), "format", 3)
    with pytest.raises(NodeError, match="node qd"):
        run_passes(m, ["compress"])
    m = fc.plain()
    t = fc.init(m, "w")
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    t.external_data.add(key="location", value="w.bin")
    with pytest.raises(ExternalDataError, match="given in memory"):
        run_passes(m, ["compress"])


def test_attach_names_the_node():
    """functions.attach (every pass and the exporter run it) refuses before changing anything."""
    from onnx_npuq.ops import functions

    m = fc.dequantize()
    fc.set_attr(fc.node(m, "dq"), "block", 16)
    before = m.SerializeToString()
    with pytest.raises(NodeError, match=r"node dq \(npuq::Dequantize\): block 16"):
        functions.attach(m)
    assert m.SerializeToString() == before


def test_valid_external_data_through_a_symlinked_folder(tmp_path):
    """Inside the folder is fine, also when the folder is reached through a symlink."""
    real = tmp_path / "real"
    real.mkdir()
    m = fc.dequantize()
    save(m, real / "m.onnx", external_data=True)
    (tmp_path / "link").symlink_to(real)
    via_link = tmp_path / "link" / "m.onnx"
    loaded = npuq_io.load_model(via_link)
    assert loaded.graph.initializer[0].raw_data == m.graph.initializer[0].raw_data
    assert all(t.data_location == onnx.TensorProto.DEFAULT for t in loaded.graph.initializer)
    OrtSession(via_link)
    res = cli("rewrite", via_link, "-o", tmp_path / "r.onnx", "-p", "compress")
    assert res.exit_code == 0, res.output
    # a symlink inside the folder to a file inside it is fine too
    (real / "alias.data").symlink_to("m.onnx.data")
    lazy = npuq_io.load_model(via_link, load_external_data=False)
    for t in lazy.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "alias.data"
    onnx.save(lazy, real / "n.onnx")
    assert npuq_io.load_model(real / "n.onnx").graph.initializer[0].raw_data == m.graph.initializer[0].raw_data


# ------------------------------------------------------------------ recipes


@pytest.mark.parametrize("case", fc.RECIPE_CASES, ids=lambda c: c.id)
def test_recipe_case(case, ws, factory, good_onnx):
    path = case.build(ws.inp)
    before = snapshot(ws.root)
    with recording_opens() as opens:
        err = assert_api_error(lambda: Recipe.load(path), case.match, f"{case.id} Recipe.load")
        assert isinstance(err, RecipeError)
        assert_api_error(lambda: quantize_model(torch.nn.Sequential(torch.nn.Linear(4, 4)), recipe=str(path)),
                         case.match if case.id not in ("recipe-missing-file", "recipe-directory", "recipe-fifo") else "recipe",
                         f"{case.id} quantize_model")
        assert_cli_error(cli("export", f"{factory}:model", "--recipe", path, "-o", ws.out / "m.onnx"),
                         case.match, f"{case.id} export")
        assert_cli_error(cli("verify", f"{factory}:model", good_onnx, "--recipe", path),
                         case.match, f"{case.id} verify")
    assert snapshot(ws.root) == before
    check_opens(opens, ws.outside)


# ------------------------------------------------------------------ example inputs and run --inputs


@pytest.mark.parametrize("cid, spec, match", fc.INPUT_SPECS, ids=[c[0] for c in fc.INPUT_SPECS])
def test_example_input_case(cid, spec, match, ws, factory):
    from onnx_npuq.cli.models import parse_inputs

    before = snapshot(ws.root)
    assert_api_error(lambda: parse_inputs((spec,)), match, f"{cid} parse_inputs")
    assert_cli_error(cli("export", f"{factory}:model", "--input", spec, "-o", ws.out / "m.onnx"), match,
                     f"{cid} export")
    assert snapshot(ws.root) == before


@pytest.mark.parametrize("cid, data, match", fc.NPZ_FILES, ids=[c[0] for c in fc.NPZ_FILES])
def test_run_inputs_case(cid, data, match, ws, monkeypatch):
    """`onnx-npuq run --inputs FILE` (a fake pyACL: the inputs are read before anything runs)."""
    from test_acl import F32, FakeAcl

    from onnx_npuq.cli.atc import _npz_inputs

    monkeypatch.setitem(sys.modules, "acl", FakeAcl([("x", F32, [2, 4])], [("y", F32, [2, 4])], lambda xs: xs))
    om = ws.inp / "m.om"
    om.write_bytes(b"om")
    bad = ws.inp / "inputs.npz"
    bad.write_bytes(data)
    before = snapshot(ws.root)
    with recording_opens() as opens:
        assert_api_error(lambda: _npz_inputs(str(bad), ["x"]), match, f"{cid} _npz_inputs")
        assert_cli_error(cli("run", om, "--inputs", bad, "-o", ws.out / "y.npz"), match, f"{cid} run")
    assert snapshot(ws.root) == before
    check_opens(opens, ws.outside)


# ------------------------------------------------------------------ MODEL specs (export, verify)


def modules_from(folder: Path) -> list[str]:
    """The names in sys.modules of modules imported from files under folder."""
    return [name for name, m in list(sys.modules.items())
            if str(getattr(m, "__file__", None) or "").startswith(str(folder) + os.sep)]


@pytest.fixture
def spec_folder(ws, monkeypatch):
    """ws.inp on sys.path (for the cases' npuq_fuzz_* modules), emptied of them afterwards; no
    __pycache__ written next to the cases' sources (Python's import cache, not our output)."""
    monkeypatch.syspath_prepend(str(ws.inp))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    yield ws.inp
    for name in modules_from(ws.inp):
        del sys.modules[name]


@pytest.mark.parametrize("case", fc.SPEC_CASES, ids=lambda c: c.id)
def test_model_spec_case(case, ws, spec_folder, good_onnx):
    """A MODEL spec that gives no model: load_model raises ModelSpecError; export and verify
    print one line naming the spec and the cause, exit 2, write nothing."""
    import importlib

    spec = case.build(ws.inp)
    importlib.invalidate_caches()  # the folder's listing may be cached from before the build
    named = f"model spec {spec!r}: "
    before = snapshot(ws.root)
    with recording_opens() as opens:
        err = assert_api_error(lambda: load_model(spec), case.match, f"{case.id} load_model")
        assert isinstance(err, ModelSpecError) and str(err).startswith(named), (case.id, str(err))
        if str(err).startswith(f"{named}importing "):  # a failed import leaves no half-initialized module
            assert not modules_from(ws.inp), case.id
        for args in (["export", spec, "--input", "x:2,4", "-o", ws.out / "m.onnx"],
                     ["verify", spec, good_onnx, "--input", "x:2,4"]):
            line = assert_cli_error(cli(*args), case.match, f"{case.id} {args[0]}")
            assert line.startswith(f"Error: {named}"), (case.id, args[0], line)
    assert snapshot(ws.root) == before
    check_opens(opens, ws.outside)


def test_model_spec_keyboard_interrupt_is_not_an_error(tmp_path):
    """Ctrl-C in the user's code (importing or in the factory) stays a KeyboardInterrupt, and an
    interrupted import leaves no half-initialized module either."""
    path = tmp_path / "interrupted.py"
    path.write_text("raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        load_model(str(path))
    assert not modules_from(tmp_path)
    factory = tmp_path / "interrupted_factory.py"
    factory.write_text("def model():\n    raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        load_model(str(factory))
    for name in modules_from(tmp_path):
        del sys.modules[name]


# ------------------------------------------------------------------ real subprocesses


SUBPROCESS_CASES = [("garbage-1000-seed2", "rewrite"), ("ext-symlink-out", "check"), ("qd-format-int", "convert"),
                    ("billion-laughs", "export"), ("spec-missing-module", "export-spec"),
                    ("spec-file-syntax-error", "export-spec"), ("spec-module-raises-at-import", "export-spec"),
                    ("spec-factory-raises", "verify-spec")]


def test_console_script_one_line_errors(tmp_path, factory, good_onnx):
    """A handful of the cases through the installed `onnx-npuq`, in parallel."""
    cases = {c.id: c for c in fc.MODEL_CASES + fc.RECIPE_CASES + fc.SPEC_CASES}
    runs = []
    for cid, command in SUBPROCESS_CASES:
        w = Workspace(tmp_path / cid)
        path = cases[cid].build(w.inp)
        args = {
            "rewrite": ["rewrite", path, "-o", w.out / "r.onnx", "-p", "compress"],
            "check": ["check", path, "--soc", SOC],
            "convert": ["convert", path, "--soc", SOC, "-o", w.out / "m"],
            "verify": ["verify", f"{factory}:model", path],
            "export": ["export", f"{factory}:model", "--recipe", path, "-o", w.out / "m.onnx"],
            "export-spec": ["export", path, "--input", "x:2,4", "-o", w.out / "m.onnx"],
            "verify-spec": ["verify", path, good_onnx, "--input", "x:2,4"],
        }[command]
        # spec cases: their npuq_fuzz_* modules on the path, no __pycache__ beside them
        env = {**os.environ, "PYTHONPATH": str(w.inp), "PYTHONDONTWRITEBYTECODE": "1"}
        before = snapshot(w.root)
        proc = subprocess.Popen([SCRIPT, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
        runs.append((cases[cid], w, before, proc))
    for case, w, before, proc in runs:
        stdout, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (case.id, stdout, err)
        assert stdout == "" and "Traceback" not in err, (case.id, stdout, err)
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (case.id, err)
        assert re.search(case.match, lines[0]), (case.id, lines[0])
        assert snapshot(w.root) == before, case.id


# ------------------------------------------------------------------ non-finite values are valid input


NONFINITE_FORMATS = [("mxfp4", {}), ("mxfp8e4m3", {}), ("hif8", {}), ("hif8", {"saturate": 1}), ("hif4", {}),
                     ("nvf4", {}), ("int8sym", {}), ("int4sym", {"group": 32}), ("fp8e4m3", {})]


def _nonfinite_matrix(rows: int = 6, n: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    w = torch.randn(rows, n, generator=g)
    w[0, 3] = math.nan
    w[1, 40], w[1, 41] = math.inf, -math.inf
    w[2, :] = torch.randn(n, generator=g) * 1e-40  # all float32 denormals
    w[3, 0:16] = 2.0 ** -140  # denormals next to normal values
    w[4, 10] = math.inf
    w[4, 11] = math.nan
    return w


def _block_rule(fmt: str, opts: dict, x: torch.Tensor, y: torch.Tensor) -> None:
    """formats.md on non-finite input: NaN always propagates; MX blocks (32) and HiF4 groups
    (64) with a NaN or Inf decode to NaN entirely; HiF8 keeps Inf (or saturates)."""
    assert torch.isnan(y[torch.isnan(x)]).all()
    bad = ~torch.isfinite(x)
    block = {"mxfp4": 32, "mxfp8e4m3": 32, "hif4": 64}.get(fmt)
    if block:
        blocks = bad.reshape(x.shape[0], -1, block).any(-1)
        assert torch.isnan(y.reshape(x.shape[0], -1, block))[blocks].all()
        assert not torch.isnan(y.reshape(x.shape[0], -1, block))[~blocks].any()
    if fmt == "hif8":
        inf = torch.isinf(x)
        if opts.get("saturate"):
            assert (y[inf].abs() == 32768).all()
        else:
            assert torch.equal(y[inf], x[inf])
        assert not torch.isnan(y[torch.isfinite(x)]).any()


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))


@pytest.mark.parametrize("fmt, opts", NONFINITE_FORMATS, ids=lambda v: v if isinstance(v, str) else "")
def test_nonfinite_weights_compress(fmt, opts, tmp_path):
    """A QuantDequant'ed constant with NaN / Inf / denormals packs (compress) bit-exactly, in
    the API and on the command line, and decodes by formats.md."""
    w = _nonfinite_matrix()
    attrs = {**fc.QD_ATTRS, "format": fmt, **opts}
    m = fc.make_model([helper.make_node("QuantDequant", ["w"], ["q"], name="qd", domain="npuq", **attrs),
                       helper.make_node("Add", ["x", "q"], ["y"], name="add")],
                      [numpy_helper.from_array(w.numpy(), "w")], inputs=(("x", fc.FP, [6, 64]),),
                      outputs=(("y", fc.FP, [6, 64]),), opsets=(("", 21), ("npuq", 1)))
    src = fc.save(tmp_path, m)
    out, (report,) = run_passes(src, ["compress"])  # verified: bit-identical before / after
    assert report.mismatches == 0 and "Dequantize" in [n.op_type for n in out.graph.node]
    y = OrtSession(out).run(torch.zeros(6, 64))[0]
    want = F.fake_quant(w, fmt, **{k: bool(v) if k == "saturate" else v for k, v in opts.items()})
    assert _same_bits(y, want)
    _block_rule(fmt, opts, w, y)
    res = cli("rewrite", src, "-o", tmp_path / "r.onnx", "-p", "compress")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r.onnx").read_bytes() == out.SerializeToString()


@pytest.mark.parametrize("fmt, opts", NONFINITE_FORMATS, ids=lambda v: v if isinstance(v, str) else "")
def test_nonfinite_activations_onnxruntime(fmt, opts, tmp_path):
    """NaN / Inf / denormal inputs through npuq::QuantDequant in onnxruntime: the reference's
    bits, and formats.md's propagation rules."""
    attrs = {**fc.QD_ATTRS, "format": fmt, **opts}
    path = fc.save(tmp_path, fc.make_model(
        [helper.make_node("QuantDequant", ["x"], ["y"], name="qd", domain="npuq", **attrs)],
        inputs=(("x", fc.FP, [6, 64]),), outputs=(("y", fc.FP, [6, 64]),), opsets=(("", 21), ("npuq", 1))))
    m = npuq_io.load_model(path)
    x = _nonfinite_matrix()
    y = OrtSession(m).run(x)[0]
    want = F.fake_quant(x, fmt, **{k: bool(v) if k == "saturate" else v for k, v in opts.items()})
    assert _same_bits(y, want)
    _block_rule(fmt, opts, x, y)


def test_nonfinite_export_and_verify(tmp_path, factory):
    """A model with NaN / Inf / denormal weights and inputs exports and verifies with no
    mismatch (NaN == NaN), through the API and the CLI."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fuzz_models_api", factory)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model, (x,) = mod.nonfinite()
    q = quantize_model(model, weights="mxfp4", activations="mxfp8e4m3")
    proto = export(q, (x,), tmp_path / "api.onnx")
    results = verify(q, (x,), tmp_path / "api.onnx")
    assert all(r.mismatches == 0 for r in results)
    y = OrtSession(proto).run(x)[0]
    assert torch.isnan(y).any() and not torch.isnan(y).all()  # propagated, not everywhere
    assert torch.isnan(y[0]).all() and torch.isnan(y[1]).all()  # an input block with NaN / Inf
    assert torch.isnan(y[2, :3]).all() and torch.isfinite(y[2, 3:]).all()  # weight rows with NaN / Inf

    out = tmp_path / "cli.onnx"
    res = cli("export", f"{factory}:nonfinite", "-w", "mxfp4", "-a", "mxfp8e4m3", "-o", out)
    assert res.exit_code == 0, res.output
    res = cli("verify", f"{factory}:nonfinite", out, "-w", "mxfp4", "-a", "mxfp8e4m3", "--layers", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data and all(r["mismatches"] == 0 for r in data)
    assert out.read_bytes() == (tmp_path / "api.onnx").read_bytes()  # and the same file both ways


def test_zero_size_initializer_is_valid(tmp_path):
    """A zero-size initializer on an ordinary op is valid ONNX: loads, rewrites, runs."""
    m = fc.make_model([helper.make_node("Concat", ["x", "e"], ["y"], name="cat", axis=0)],
                      [numpy_helper.from_array(np.zeros((0, 64), np.float32), "e")])
    path = fc.save(tmp_path, m)
    out, (report,) = run_passes(path, ["compress"])  # verified: the same outputs
    assert report.mismatches == 0 and not report.changed
    y = OrtSession(path).run(torch.ones(2, 64))[0]
    assert torch.equal(y, torch.ones(2, 64)) and torch.equal(OrtSession(out).run(torch.ones(2, 64))[0], y)
    assert npuq_io.load_model(path).graph.initializer[0].dims == [0, 64]
