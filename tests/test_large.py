"""Large models: memory-bounded quantization and export, and a decoder whose fp32 weights
pass protobuf's 2 GB limit taken end to end (`make test-slow`).

The slow test runs each phase in a fresh interpreter (`python tests/test_large.py PHASE
DIR`) and reads the phase's peak resident memory (ru_maxrss, which includes the ~0.3 GB of
Python, torch and onnxruntime themselves) from its last output line:

- export:  build the fp32 decoder (2.28 GB of weights), run it, export it (> 2 GB: the
           weights stream to external data), quantize it layer by layer, run it, export
           the quantized model with external data forced.
- rewrite-fp32: run_passes on the fp32 export's path (compress, atc, portable), verified
           by onnxruntime after each pass; save the result (its weights copied from the
           input's data file).
- rewrite-quant: the same on the quantized export, unverified (verify-quant compares).
- rewrite-fp32-in-memory: the fp32 export loaded whole (2.28 GB of protobuf in memory, past
           what protobuf serializes) through the same passes, unverified (test_external_data
           verifies through the same path on a small model), saved: the same files as
           rewrite-fp32's.
- verify-fp32, verify-quant: onnxruntime sessions from the paths, against torch, and each
           rewritten model against its input.

The fast tests below check the two mechanisms on small models: quantize_model drops each
float weight before encoding the next layer, and the streamed export writes what save()
writes, atomically.
"""
from __future__ import annotations

import filecmp
import gc
import json
import os
import resource
import subprocess
import sys
import time
import weakref
from pathlib import Path

import onnx_npuq  # noqa: F401  (first: huge pages before torch allocates, as users get)
import onnx
import pytest
import torch
from torch import nn

from onnx_npuq import exporter
from onnx_npuq.exporter import export, save, to_onnx
from onnx_npuq.io import file_mode
from onnx_npuq.nn import QuantLinear, quantize_model

# 12 blocks of hidden 2048 / intermediate 5632: 570M parameters, 2.28 GB of fp32 weights
CONFIG = {"vocab_size": 1024, "hidden": 2048, "intermediate": 5632, "layers": 12, "heads": 16, "kv_heads": 8}
WEIGHTS = "int4sym"  # the fastest encoder: the phases are about memory and files, not numerics
PASSES = ["compress", "atc", "portable"]  # ends runnable again, so the result can be verified
PEAK_LIMIT = 1.3  # peak RSS of a phase / fp32 weight bytes
PHASE_TIMEOUT = 600


# ---------------------------------------------------------------- the phases (subprocesses)


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _build():
    from onnx_npuq.models import DecoderConfig, TinyDecoder

    torch.manual_seed(0)
    return TinyDecoder(DecoderConfig(**CONFIG)).eval()


def _ids() -> torch.Tensor:
    return torch.randint(0, CONFIG["vocab_size"], (1, 16), generator=torch.Generator().manual_seed(1))


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def phase_export(out: Path) -> dict:
    (model, t_build) = _timed(_build)
    fp32_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    ids = _ids()
    with torch.no_grad():
        expected_fp32 = model(ids)
    _, t_fp32 = _timed(lambda: export(model, (ids,), out / "fp32.onnx"))  # auto: > 2 GB -> external
    _, t_quant = _timed(lambda: quantize_model(model, weights=WEIGHTS, recipe={"exclude": ["lm_head"]}))
    assert not any(type(m) is nn.Linear for n, m in model.named_modules() if n != "lm_head")
    with torch.no_grad():
        expected_quant = model(ids)
    _, t_qexport = _timed(lambda: export(model, (ids,), out / "quant.onnx", external_data=True))
    torch.save({"ids": ids, "fp32": expected_fp32, "quant": expected_quant}, out / "expected.pt")
    return {"fp32_bytes": fp32_bytes, "build_s": t_build, "export_fp32_s": t_fp32,
            "quantize_s": t_quant, "export_quant_s": t_qexport}


def _rewrite(out: Path, name: str, verify: bool) -> dict:
    from onnx_npuq.passes import run_passes

    (model, reports), t_passes = _timed(lambda: run_passes(out / f"{name}.onnx", PASSES, verify=verify))
    _, t_save = _timed(lambda: save(model, out / f"{name}.rewritten.onnx", data_dir=out))
    return {"passes_s": t_passes, "save_s": t_save, "reports": [r.line() for r in reports],
            "mismatches": sum(r.mismatches or 0 for r in reports)}


def phase_rewrite_fp32(out: Path) -> dict:
    return _rewrite(out, "fp32", verify=True)


def phase_rewrite_quant(out: Path) -> dict:
    return _rewrite(out, "quant", verify=False)


def phase_rewrite_fp32_in_memory(out: Path) -> dict:
    from onnx_npuq.io import load_model
    from onnx_npuq.passes import run_passes

    model, t_load = _timed(lambda: load_model(out / "fp32.onnx"))
    (model, reports), t_passes = _timed(lambda: run_passes(model, PASSES, verify=False))
    (out / "memory").mkdir()
    _, t_save = _timed(lambda: save(model, out / "memory" / "fp32.rewritten.onnx", external_data=True))
    same = all(filecmp.cmp(out / name, out / "memory" / name, shallow=False)
               for name in ("fp32.rewritten.onnx", "fp32.rewritten.onnx.data"))
    for f in (out / "memory").iterdir():
        f.unlink()
    (out / "memory").rmdir()
    return {"load_s": t_load, "passes_s": t_passes, "save_s": t_save, "same_files": same,
            "reports": [r.line() for r in reports], "mismatches": sum(r.mismatches or 0 for r in reports)}


def _compare(expected: torch.Tensor, got: torch.Tensor) -> dict:
    from onnx_npuq.runtime.ort import compare

    c = compare("logits", expected, got)
    return {"max_abs": c.max_abs, "max_ref": expected.abs().max().item(), "cosine": c.cosine}


def _verify(out: Path, name: str, constant_folding: bool) -> dict:
    """The export and its rewrite in onnxruntime, one session at a time, from their paths."""
    from onnx_npuq.runtime import OrtSession

    expected = torch.load(out / "expected.pt")
    got, times = {}, {}
    for model in (name, f"{name}.rewritten"):
        t0 = time.perf_counter()
        session = OrtSession(out / f"{model}.onnx", constant_folding=constant_folding)
        t1 = time.perf_counter()
        (got[model],) = session.run(expected["ids"])
        times[f"{model}_session_s"], times[f"{model}_run_s"] = t1 - t0, time.perf_counter() - t1
        session = None  # one at a time
    return {**times, "rewrite_exact": torch.equal(got[name], got[f"{name}.rewritten"]),
            **_compare(expected[name], got[name])}


def phase_verify_fp32(out: Path) -> dict:
    return _verify(out, "fp32", constant_folding=True)


def phase_verify_quant(out: Path) -> dict:
    # unfolded: folding this model's weight decoding at session creation peaks at ~7x the
    # fp32 weights (15.5 GiB measured); unfolded, each run decodes them again in ~1x
    return _verify(out, "quant", constant_folding=False)


PHASES = {"export": phase_export, "rewrite-fp32": phase_rewrite_fp32, "rewrite-quant": phase_rewrite_quant,
          "rewrite-fp32-in-memory": phase_rewrite_fp32_in_memory, "verify-fp32": phase_verify_fp32,
          "verify-quant": phase_verify_quant}


def _run_phase(phase: str, out: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, phase, os.fspath(out)], capture_output=True, text=True,
                          timeout=PHASE_TIMEOUT, check=False)
    assert proc.returncode == 0, f"phase {phase} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = result.pop("_wall_s")
    return result


@pytest.fixture
def big_tmp(tmp_path):
    """tmp_path, emptied afterwards: pytest keeps the last three runs' folders, 2.9 GB each."""
    yield tmp_path
    for f in tmp_path.iterdir():
        f.unlink()


@pytest.mark.slow
def test_large_decoder_end_to_end(big_tmp):
    tmp_path = big_tmp
    results = {phase: _run_phase(phase, tmp_path) for phase in PHASES}
    fp32_bytes = results["export"]["fp32_bytes"]
    assert fp32_bytes > 2**31  # past protobuf's limit

    # files: each written to a temporary name and renamed; nothing else is left
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["expected.pt"] + [f"{m}{s}" for m in ("fp32", "quant", "fp32.rewritten", "quant.rewritten")
                           for s in (".onnx", ".onnx.data")])
    assert (tmp_path / "fp32.onnx.data").stat().st_size >= fp32_bytes
    assert (tmp_path / "fp32.onnx").stat().st_size < 2**20  # the graph only
    graph = onnx.load(tmp_path / "fp32.onnx", load_external_data=False)
    external = [t for t in graph.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert sum(int({e.key: e.value for e in t.external_data}["length"]) for t in external) >= 0.99 * fp32_bytes
    assert all(int({e.key: e.value for e in t.external_data}["offset"]) % 64 == 0 for t in external)

    summary = []
    for phase, r in results.items():
        ratio = r["peak_bytes"] / fp32_bytes
        summary.append(f"{phase}: {r['wall_s']:.0f} s, peak RSS {r['peak_bytes'] / 2**30:.2f} GiB "
                       f"= {ratio:.2f}x fp32 weights; "
                       + ", ".join(f"{k} {v:.3g}" for k, v in r.items()
                                   if isinstance(v, float) and k not in ("wall_s",)))
    print("\n" + "\n".join(summary))
    # every step stays within 1.3x the fp32 weights: quantize + both exports; the rewrites,
    # whose weights stay on disk (the fp32 one's verification holds one onnxruntime session
    # at a time); the sessions (the fp32 one holds its weights once, the quantized ones,
    # unfolded, decode them per run)
    for phase, r in results.items():
        if phase != "rewrite-fp32-in-memory":  # (holds the model in memory, by design)
            assert r["peak_bytes"] < PEAK_LIMIT * fp32_bytes, summary
    assert (tmp_path / "fp32.rewritten.onnx.data").stat().st_size >= fp32_bytes  # copied by save()

    # outputs: onnxruntime from the paths against torch (matmul sums in another order), and
    # the rewritten models bit-identical to their inputs (the passes are exact)
    assert results["rewrite-fp32"]["mismatches"] == 0
    # a model past 2 GB in memory: rewritten and saved as the on-disk path does
    assert results["rewrite-fp32-in-memory"]["same_files"]
    for phase in ("verify-fp32", "verify-quant"):
        r = results[phase]
        assert r["max_abs"] <= 1e-4 * r["max_ref"] and r["cosine"] > 0.99999, (phase, r)
        assert r["rewrite_exact"], phase


# ---------------------------------------------------------------- fast: the mechanisms


class _Stack(nn.Module):
    def __init__(self, n=4, width=256):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(n))

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))
        return x


def test_quantize_model_frees_each_weight_before_the_next(monkeypatch):
    torch.manual_seed(0)
    model = _Stack()
    weights = [weakref.ref(m.weight) for m in model.layers]
    alive_at_call = []
    original = QuantLinear.from_linear.__func__

    def spy(cls, linear, weight, activation=None):
        alive_at_call.append([w() is not None for w in weights])
        return original(cls, linear, weight, activation)

    monkeypatch.setattr(QuantLinear, "from_linear", classmethod(spy))
    quantize_model(model, weights="mxfp4")
    # when layer i is encoded, the weights of layers 0..i-1 are gone already
    assert alive_at_call == [[j >= i for j in range(4)] for i in range(4)]
    assert all(w() is None for w in weights)


def test_quantize_model_checks_every_layer_before_touching_any():
    torch.manual_seed(0)
    model = _Stack()
    model.layers.append(nn.Linear(256, 256).double())
    with pytest.raises(ValueError, match=r"layer 'layers.4' \(Linear\): weight dtype torch.float64"):
        quantize_model(model, recipe={"rules": [{"match": "layers.4", "weights": "mxfp4"}]})
    assert all(type(m) is nn.Linear for m in model.layers)
    # a bad option of a format is found by the probe, before layer 0 is replaced
    with pytest.raises(ValueError, match="group"):
        quantize_model(_Stack(), recipe={"rules": [{"match": "layers.3", "weights": {"format": "int4sym",
                                                                                    "group": 0}}]})


def _model_and_input():
    torch.manual_seed(0)
    model = quantize_model(nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 64)),
                           recipe={"rules": [{"match": "2", "weights": None}]})  # one fp32 layer
    return model, torch.randn(3, 256)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("how", ["forced", "past_threshold"])
def test_streamed_export_writes_what_save_writes(tmp_path, monkeypatch, how):
    model, x = _model_and_input()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    save(to_onnx(model, (x,)), tmp_path / "a" / "m.onnx", external_data=True)
    if how == "forced":
        proto = export(model, (x,), tmp_path / "b" / "m.onnx", external_data=True)
    else:
        monkeypatch.setattr(exporter, "EXTERNAL_DATA_THRESHOLD", 1000)
        proto = export(model, (x,), tmp_path / "b" / "m.onnx")
    assert _files(tmp_path / "b") == ["m.onnx", "m.onnx.data"]
    for name in ("m.onnx", "m.onnx.data"):  # byte for byte: layout, offsets, alignment
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for name in ("m.onnx", "m.onnx.data"):
        assert oct((tmp_path / "b" / name).stat().st_mode & 0o777) == oct(file_mode())
    # the returned proto refers to the data file instead of holding the weights
    assert proto.SerializeToString() == (tmp_path / "b" / "m.onnx").read_bytes()
    external = {t.name for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL}
    assert len(external) == 3  # codes and scales of the mxfp4 layer, the fp32 weight; biases < 1 KB

    from onnx_npuq.runtime import OrtSession

    (got,) = OrtSession(tmp_path / "b" / "m.onnx").run(x)
    (want,) = OrtSession(to_onnx(model, (x,))).run(x)
    assert torch.equal(got, want)


@pytest.mark.parametrize("where", ["data", "model"])
def test_streamed_export_failure_leaves_nothing_behind(tmp_path, monkeypatch, where):
    model, x = _model_and_input()

    def boom(*a, **k):
        raise OSError("disk full")

    if where == "data":
        monkeypatch.setattr(exporter, "_finish", boom)  # after the data file is written
    else:
        monkeypatch.setattr(onnx, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        export(model, (x,), tmp_path / "m.onnx", external_data=True)
    assert list(tmp_path.iterdir()) == []


def test_streamed_export_failed_rename_keeps_the_old_files(tmp_path, monkeypatch):
    model, x = _model_and_input()
    (tmp_path / "m.onnx").write_bytes(b"old model")
    (tmp_path / "m.onnx.data").write_bytes(b"old data")
    replace = os.replace

    def failing_replace(src, dst):
        if Path(dst).name == "m.onnx":  # the data file is in place already: it must go back
            raise OSError("rename failed")
        replace(src, dst)

    monkeypatch.setattr(exporter.os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        export(model, (x,), tmp_path / "m.onnx", external_data=True)
    assert _files(tmp_path) == ["m.onnx", "m.onnx.data"]
    assert (tmp_path / "m.onnx").read_bytes() == b"old model"
    assert (tmp_path / "m.onnx.data").read_bytes() == b"old data"


def test_small_export_stays_in_one_file(tmp_path, monkeypatch):
    model, x = _model_and_input()
    proto = export(model, (x,), tmp_path / "m.onnx")
    assert _files(tmp_path) == ["m.onnx"]
    assert proto.SerializeToString() == to_onnx(model, (x,)).SerializeToString()
    monkeypatch.setattr(exporter, "EXTERNAL_DATA_THRESHOLD", 1000)  # past it, but told not to
    export(model, (x,), tmp_path / "n.onnx", external_data=False)
    assert _files(tmp_path) == ["m.onnx", "n.onnx"]


@pytest.mark.parametrize("external_data", [False, True])
def test_export_leaves_no_reference_to_the_parameters(tmp_path, external_data):
    """onnxscript's rewrite rules keep the last exported graph; it must not keep the model's
    tensors alive (quantize_model after an export would free nothing)."""
    torch.manual_seed(0)
    model = _Stack(n=2)
    refs = [weakref.ref(p) for p in model.parameters()]
    export(model, (torch.randn(3, 256),), tmp_path / "m.onnx", external_data=external_data)
    to_onnx(model, (torch.randn(3, 256),))
    del model
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)


# ---------------------------------------------------------------- child entry point

if __name__ == "__main__":
    _phase, _out = sys.argv[1], Path(sys.argv[2])
    _t0 = time.perf_counter()
    _result = PHASES[_phase](_out)
    _result.update(peak_bytes=_peak_bytes(), _wall_s=time.perf_counter() - _t0)
    print(json.dumps(_result))
