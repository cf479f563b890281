"""Models with external data through the passes, save() and onnxruntime without loading
their large weights: what makes `run_passes` work past 2 GB (the slow test in
test_large.py takes a 2.3 GB model through it)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
from onnx import TensorProto, helper, numpy_helper

from onnx_npuq import io as npuq_io
from onnx_npuq.errors import ExternalDataError
from onnx_npuq.exporter import save
from onnx_npuq.ops import functions
from onnx_npuq.passes import run_passes
from onnx_npuq.runtime import OrtSession

PASSES = ["compress", "atc", "portable"]
W_BYTES = 256 * 256 * 4


def _model() -> onnx.ModelProto:
    """y = Reshape(MatMul(MatMul(x, w), QuantDequant(wq))): an fp32 weight no pass touches, a
    weight compress reads and packs, and a small shape constant."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((256, 256)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((256, 256)).astype(np.float32), "wq"),
             numpy_helper.from_array(np.array([4, 256], np.int64), "shape")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm0"),
             helper.make_node("QuantDequant", ["wq"], ["wq_qd"], name="qd", domain="npuq", format="mxfp4",
                              rounding="away", scale_rule="floor", saturate=0, variant="quant_cy", group=0),
             helper.make_node("MatMul", ["h", "wq_qd"], ["z"], name="mm1"),
             helper.make_node("Reshape", ["z", "shape"], ["y"], name="reshape")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2, 256])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 256])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("npuq", 1)])
    m.ir_version = 10
    return functions.attach(m)


@pytest.fixture
def on_disk(tmp_path) -> Path:
    (tmp_path / "a").mkdir()
    path = tmp_path / "a" / "m.onnx"
    save(_model(), path, external_data=True)
    return path


@pytest.fixture
def reads(monkeypatch) -> list[int]:
    """The byte counts of every external-data read our code makes."""
    seen = []
    original = npuq_io.external_data.read_external_range

    def spy(real, offset, length):
        seen.append(length)
        return original(real, offset, length)

    monkeypatch.setattr(npuq_io.external_data, "read_external_range", spy)
    return seen


def _x() -> torch.Tensor:
    return torch.randn(2, 2, 256, generator=torch.Generator().manual_seed(1))


def _external(model: onnx.ModelProto) -> dict[str, list]:
    return {t.name: [(e.key, e.value) for e in t.external_data] for t in model.graph.initializer
            if t.data_location == TensorProto.EXTERNAL}


def test_passes_read_only_the_weights_they_rewrite(on_disk, reads):
    assert W_BYTES >= npuq_io.LARGE_TENSOR_BYTES
    data_dir = npuq_io.data_dir_of(on_disk)
    out, reports = run_passes(on_disk, PASSES)  # verified: onnxruntime reads the data folder
    # compress read wq to pack it; w went through as a reference to the input's data file
    assert [n for n in reads if n >= npuq_io.LARGE_TENSOR_BYTES] == [W_BYTES]
    assert _external(out) == {"w": _external(npuq_io.load_model(on_disk, load_external_data=False))["w"]}
    assert all(r.mismatches == 0 for r in reports)
    on_disk_bytes = on_disk.stat().st_size + (on_disk.parent / "m.onnx.data").stat().st_size
    assert abs(reports[0].bytes_before - on_disk_bytes) < 2048  # (the data file's alignment padding)
    assert reports[0].bytes_after < reports[0].bytes_before - W_BYTES * 3 // 4  # wq packed to ~4.25 bits

    # the same results as the model loaded whole
    whole, _ = run_passes(npuq_io.load_model(on_disk), PASSES, verify=False)
    x = _x()
    (want,) = OrtSession(whole).run(x)
    (got,) = OrtSession(out, data_dir=data_dir).run(x)
    assert torch.equal(got, want)
    # unfolded, the decoded weight is not a constant, so MatMul sums in another order
    (unfolded,) = OrtSession(out, data_dir=data_dir, constant_folding=False).run(x)
    assert torch.equal(unfolded, OrtSession(whole, constant_folding=False).run(x)[0])
    assert torch.allclose(unfolded, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


def test_large_models_are_verified_unfolded(on_disk, monkeypatch):
    from onnx_npuq.passes import pipeline

    folding = []
    session = pipeline.OrtSession

    def spy(model, **kw):
        folding.append(kw["constant_folding"])
        return session(model, **kw)

    monkeypatch.setattr(pipeline, "OrtSession", spy)
    _, reports = run_passes(on_disk, ["compress"])
    assert folding == [True, True] and reports[0].mismatches == 0
    monkeypatch.setattr(pipeline, "VERIFY_FOLDING_MAX_BYTES", W_BYTES // 2)  # the model: 2.1x, compressed 1.1x
    _, reports = run_passes(on_disk, ["compress", "atc"])
    assert folding[2:] == [False] * 4 and [r.mismatches for r in reports] == [0, 0]
    assert "without onnxruntime's constant folding" in reports[0].line()


def test_save_copies_the_external_data(on_disk, tmp_path):
    data_dir = npuq_io.data_dir_of(on_disk)
    out, _ = run_passes(on_disk, PASSES, verify=False)
    whole, _ = run_passes(npuq_io.load_model(on_disk), PASSES, verify=False)
    before = out.SerializeToString()
    for name, external in (("b", True), ("c", False)):
        (tmp_path / name).mkdir()
        save(out, tmp_path / name / "r.onnx", external_data=external, data_dir=data_dir)
        (tmp_path / name / "whole").mkdir()
        save(whole, tmp_path / name / "whole" / "r.onnx", external_data=external)
        files = sorted(p.name for p in (tmp_path / name).iterdir() if p.is_file())
        assert files == (["r.onnx", "r.onnx.data"] if external else ["r.onnx"])
        for f in files:  # byte for byte what the model loaded whole gives
            assert (tmp_path / name / f).read_bytes() == (tmp_path / name / "whole" / f).read_bytes(), (name, f)
    assert out.SerializeToString() == before  # swapped in and out only while written
    # default: external data in, external data out
    save(out, tmp_path / "d.onnx", data_dir=data_dir)
    assert (tmp_path / "d.onnx.data").read_bytes() == (tmp_path / "b" / "r.onnx.data").read_bytes()


def test_save_needs_the_data_folder(on_disk, tmp_path):
    out, _ = run_passes(on_disk, PASSES, verify=False)
    (tmp_path / "b").mkdir()
    with pytest.raises(ExternalDataError, match="'w'.*without data_dir"):
        save(out, tmp_path / "b" / "r.onnx")
    with pytest.raises(ExternalDataError, match="outside the model's folder"):
        (tmp_path / "b" / "m.onnx.data").symlink_to(on_disk.parent / "m.onnx.data")
        save(out, tmp_path / "c" / "r.onnx", data_dir=tmp_path / "b")  # the data is behind a symlink out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["m.onnx.data"]


def test_rewrite_in_place(on_disk):
    """The output's data file is the input's: read before it is replaced."""
    x = _x()
    (want,) = OrtSession(run_passes(npuq_io.load_model(on_disk), PASSES, verify=False)[0]).run(x)
    out, _ = run_passes(on_disk, PASSES, verify=False)
    save(out, on_disk, data_dir=npuq_io.data_dir_of(on_disk))
    (got,) = OrtSession(on_disk).run(x)
    assert torch.equal(got, want)
    assert sorted(p.name for p in on_disk.parent.iterdir()) == ["m.onnx", "m.onnx.data"]


def test_a_data_file_changed_after_loading(on_disk):
    model = npuq_io.load_model(on_disk, load_external_data=False)
    data = on_disk.parent / "m.onnx.data"
    os.truncate(data, data.stat().st_size // 2)
    with pytest.raises(ExternalDataError, match="past the end"):
        run_passes(model, ["compress"], verify=False, data_dir=on_disk.parent)


def test_in_memory_model_with_data_dir(on_disk):
    lazy = npuq_io.load_model(on_disk, load_external_data=False)
    out, _ = run_passes(lazy, ["compress"], verify=False, data_dir=on_disk.parent)
    assert "w" in _external(out)
    for t in lazy.graph.initializer:  # the caller's model is not changed
        if t.name == "w":
            t.external_data[0].value = "../m.onnx.data"
    with pytest.raises(ExternalDataError, match=r"'\.\.'"):
        run_passes(lazy, ["compress"], verify=False, data_dir=on_disk.parent)


def test_checker_copy_makes_external_initializers_inputs(on_disk, tmp_path, monkeypatch):
    model = npuq_io.load_model(on_disk, load_external_data=False)
    monkeypatch.chdir(tmp_path)  # onnx.checker would look for m.onnx.data here
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model, full_check=True)
    view = npuq_io.checker_copy(model)
    onnx.checker.check_model(view, full_check=True)
    assert {v.name for v in view.graph.input} == {"x", "w", "wq"}
    assert [t.name for t in view.graph.initializer] == ["shape"]
    assert len(model.graph.initializer) == 3  # a copy
    whole = npuq_io.load_model(on_disk)
    assert npuq_io.checker_copy(whole) is whole


def test_cli_rewrite_and_convert_keep_external_data(on_disk, tmp_path):
    from click.testing import CliRunner

    from onnx_npuq.cli import main

    run = CliRunner().invoke
    res = run(main, ["rewrite", str(on_disk), "-o", str(tmp_path / "r.onnx"), "-p", "compress"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r.onnx.data").is_file()
    (got,) = OrtSession(tmp_path / "r.onnx").run(_x())
    (want,) = OrtSession(run_passes(npuq_io.load_model(on_disk), ["compress"], verify=False)[0]).run(_x())
    assert torch.equal(got, want)
    res = run(main, ["convert", str(on_disk), "--soc", "Ascend910B1", "-o", str(tmp_path / "om" / "m"),
                     "--layout", "default"])
    assert res.exit_code == 0, res.output
    laid = npuq_io.load_model(tmp_path / "om" / "m.atc.onnx", load_external_data=False)
    assert "w" in _external(laid)


def test_onnxruntime_takes_large_weights_apart(on_disk, monkeypatch):
    """A ModelProto past 2 GB in memory cannot be serialized: OrtSession gives onnxruntime its
    large initializers from memory instead (forced here by lowering the limit), and the
    passes' verification works through it."""
    from onnx_npuq.runtime import ort as ort_module

    whole = npuq_io.load_model(on_disk)
    x = _x()
    (want,) = OrtSession(whole).run(x)
    monkeypatch.setattr(ort_module, "SERIALIZE_MAX_BYTES", 0)
    session = OrtSession(whole)
    assert len(session._weights) == 2  # w and wq; the 16-byte shape stays in the graph
    assert torch.equal(session.run(x)[0], want)
    out, reports = run_passes(whole, PASSES)  # verified: w in memory apart, the packed wq small
    assert [r.mismatches for r in reports] == [0, 0, 0]
    assert torch.equal(OrtSession(out).run(x)[0], OrtSession(run_passes(on_disk, PASSES)[0],
                                                              data_dir=on_disk.parent).run(x)[0])


def test_model_bytes_is_byte_size_summed_by_parts(on_disk):
    """io.model_bytes, which works past 2 GB, gives what ByteSize() gives below it (plus the
    external data)."""
    only_weights = onnx.ModelProto()
    only_weights.graph.initializer.extend(_model().graph.initializer)
    for m in (_model(), npuq_io.load_model(on_disk), onnx.ModelProto(ir_version=10), only_weights):
        assert npuq_io.model_bytes(m) == m.ByteSize()
    lazy = npuq_io.load_model(on_disk, load_external_data=False)
    assert npuq_io.model_bytes(lazy) == lazy.ByteSize() + 2 * W_BYTES


_tensors = st.builds(
    lambda name, dims, raw, floats, doc, ext, seg: _tensor(name, dims, raw, floats, doc, ext, seg),
    st.text(max_size=8), st.lists(st.integers(0, 300), max_size=3), st.one_of(st.none(), st.binary(max_size=300)),
    st.lists(st.floats(width=32, allow_nan=False), max_size=5), st.text(max_size=5),
    st.lists(st.tuples(st.sampled_from(["location", "offset", "length"]), st.text(max_size=6)), max_size=3),
    st.booleans())


def _tensor(name, dims, raw, floats, doc, ext, seg) -> TensorProto:
    t = TensorProto(name=name, dims=dims, data_type=TensorProto.FLOAT, doc_string=doc)
    if raw is not None:
        t.raw_data = raw  # b"" too: set, serialized as an empty field
    t.float_data.extend(floats)
    for key, value in ext:
        t.external_data.add(key=key, value=value)
    if ext:
        t.data_location = TensorProto.EXTERNAL
    if seg:
        t.segment.begin, t.segment.end = 1, 2
    return t


@settings(max_examples=60, deadline=None)
@given(st.lists(_tensors, max_size=4))
def test_sizes_from_fields_are_bytesize(tensors):
    """tensor_bytes and proto_bytes size raw data by its length, not by serializing it."""
    for t in tensors:
        assert npuq_io.tensor_bytes(t) == t.ByteSize()
    g = helper.make_graph([], "g", [], [], list(tensors))
    m = helper.make_model(g)
    assert npuq_io.proto_bytes(m) == m.ByteSize()
