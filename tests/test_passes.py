"""Graph passes: the pipeline, compress, fuse-npu and the rewrite CLI. Bit-exact where the
pass changes no arithmetic (the pipeline's own verification and torch.equal here)."""
from __future__ import annotations

import math

import onnx
import onnx_graphsurgeon as gs
import pytest
from conftest import e2e_formats
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import FORMAT_CONFIGS, config_id
from llama import llama_onnx
from onnx_npuq import formats as F
from onnx_npuq.cli import main
from onnx_npuq.exporter import to_onnx
from onnx_npuq.nn import quantize_model
from onnx_npuq.ops import defs
from onnx_npuq.ops import npu_ops as N
from onnx_npuq.passes import PASSES, PassError, random_inputs, register, run_passes
from onnx_npuq.runtime import OrtSession


def ort_run(model: onnx.ModelProto, feeds: list[torch.Tensor]) -> list[torch.Tensor]:
    return OrtSession(model).run(*feeds)


def same_outputs(a: onnx.ModelProto, b: onnx.ModelProto, seed: int = 1) -> None:
    feeds = random_inputs(a, seed)
    for x, y in zip(ort_run(a, feeds), ort_run(b, feeds), strict=True):
        assert x.dtype == y.dtype and torch.equal(x.nan_to_num(), y.nan_to_num())


def weight_bytes(model: onnx.ModelProto) -> int:
    return sum(len(t.raw_data) for t in model.graph.initializer)


def ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


class FakeQuantWeight(torch.nn.Module):
    """quant_cy style: the forward fake-quantizes its own weight (QuantDequant on a constant)."""

    def __init__(self, fmt, options, shape=(24, 64), dtype=torch.float32):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        w = torch.randn(shape, generator=g) * torch.exp2(torch.randint(-6, 6, (*shape[:-1], 1), generator=g).float())
        w.view(-1, shape[-1])[-1] = 0.0
        self.w = torch.nn.Parameter(w.to(dtype))
        self.fmt, self.options = fmt, options

    def forward(self, x):
        w = defs.quant_dequant(self.w, self.fmt, **self.options).float()
        return x @ w.reshape(-1, w.shape[-1]).t()


# ------------------------------------------------------------------ compress


@pytest.mark.parametrize("cfg", FORMAT_CONFIGS, ids=config_id)
def test_compress_packs_fake_quantized_weights_bit_exactly(cfg):
    name, opts = cfg
    model = to_onnx(FakeQuantWeight(name, opts), (torch.randn(3, 64),), compress=False)
    assert "QuantDequant" in ops(model)
    out, (report,) = run_passes(model, ["compress"])  # verify=True: bit-exact or PassError
    assert "QuantDequant" not in ops(out) and ops(out).count("Dequantize") == 1
    assert report.mismatches == 0
    assert weight_bytes(out) < weight_bytes(model)  # (the file also holds the decoding function)
    same_outputs(model, out)
    # the packed initializers are exactly the format's bits
    p = F.encode(FakeQuantWeight(name, opts).w.detach(), name, **opts)
    packed = sum(len(t.raw_data) for t in out.graph.initializer if t.data_type == onnx.TensorProto.UINT8)
    assert packed == p.codes.numel() + p.scales.numel()
    if 64 % (F.get_format(name, **opts).block or 64) == 0:  # no padding: the format's bits exactly
        assert packed == math.ceil(24 * 64 * F.get_format(name, **opts).bits_per_element(64) / 8)
    # idempotent
    again, (r2,) = run_passes(out, ["compress"])
    assert again.SerializeToString() == out.SerializeToString() and not r2.changed


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(4, 6, 64), (2, 3, 4, 32)])
def test_compress_keeps_shape_and_dtype(dtype, shape):
    model = to_onnx(FakeQuantWeight("mxfp4", {}, shape, dtype), (torch.randn(3, shape[-1]),), compress=False)
    out, _ = run_passes(model, ["compress"])
    assert ops(out)[:2] == ["Dequantize", "Reshape"] and "Cast" in ops(out)
    same_outputs(model, out)


def test_compress_leaves_activations_alone():
    class Act(torch.nn.Module):
        def forward(self, x):
            return defs.quant_dequant(x, "hif8")

    model = to_onnx(Act(), (torch.randn(3, 64),))
    out, (report,) = run_passes(model, ["compress"])
    assert ops(out) == ["QuantDequant"] and not report.changed


# ------------------------------------------------------------------ fuse-npu


def _linear_model(weights, bias=True, k=64):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(k, 32, bias=bias), torch.nn.ReLU(), torch.nn.Linear(32, 16, bias=False))
    quantize_model(m, weights=weights)
    return to_onnx(m, (torch.randn(2, 3, k),))


# group 32 on the 32-wide second layer is one block a row: per channel there
@pytest.mark.parametrize("weights, group", [("int8sym", 0), ("int4sym", 0), ({"format": "int4sym", "group": 32}, 32),
                                            ({"format": "int8sym", "group": 32}, 32)])
@pytest.mark.parametrize("compute", ["float16", "bfloat16"])
def test_fuse_weight_only_matmul(weights, group, compute):
    model = _linear_model(weights)
    out, (report,) = run_passes(model, ["fuse-npu"], compute_dtype=compute)
    nodes = [n for n in out.graph.node if n.op_type == "NPUWeightQuantBatchMatmulV2"]
    assert len(nodes) == 2 and all(n.domain == "npu" for n in nodes)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attrs["antiquant_group_size"] == group
    weight = next(t for t in out.graph.initializer if t.name == nodes[0].input[1])
    int4 = "int4" in str(weights)
    assert weight.data_type == (onnx.TensorProto.INT32 if int4 else onnx.TensorProto.INT8)
    assert list(weight.dims) == ([64, 32 // 8] if int4 else [64, 32])
    # float16 / bfloat16 activations and weights: close, not equal
    feeds = random_inputs(model, 3)
    (want,), (got,) = ort_run(model, feeds), ort_run(out, feeds)
    tol = 2e-2 if compute == "bfloat16" else 3e-3
    torch.testing.assert_close(got, want, rtol=tol, atol=tol * want.abs().max().item())
    assert report.mismatches > 0 and report.max_abs < tol * want.abs().max().item() * 2
    again, (r2,) = run_passes(out, ["fuse-npu"], compute_dtype=compute)
    assert again.SerializeToString() == out.SerializeToString() and not r2.changed


@pytest.mark.parametrize("weights, note", [("mxfp4", None), ({"format": "int8sym", "group": 16}, "group 16")])
def test_fuse_leaves_what_does_not_fit(weights, note):
    model = _linear_model(weights)
    out, (report,) = run_passes(model, ["fuse-npu"])
    assert not report.changed and report.mismatches == 0
    if note:
        assert any(note in n for n in report.notes), report.notes


class DequantSwiglu(torch.nn.Module):
    def __init__(self, left: bool, wscale: bool):
        super().__init__()
        self.ws = torch.nn.Parameter(torch.rand(64) * 0.01) if wscale else None
        self.left = left

    def forward(self, x, act):
        h = x.float()
        if self.ws is not None:
            h = h * self.ws
        h = h * act
        a, b = h.chunk(2, -1)
        out = torch.nn.functional.silu(a) * b if self.left else a * torch.nn.functional.silu(b)
        return N.npu_dynamic_quant(out.to(torch.float16))


@pytest.mark.parametrize("left", [True, False])
@pytest.mark.parametrize("wscale", [True, False])
def test_fuse_dequant_swiglu_quant(left, wscale):
    auto = torch.export.Dim.AUTO
    # without a weight scale, a small activation scale keeps the float16 of the unfused graph finite
    args = (torch.randint(-1000, 1000, (5, 64), dtype=torch.int32), torch.rand(5, 1) * (1.0 if wscale else 0.01))
    model = to_onnx(DequantSwiglu(left, wscale), args, dynamic_shapes=({0: auto}, {0: auto}))
    out, (report,) = run_passes(model, ["fuse-npu"])
    assert ops(out) == ["NPUDequantSwigluQuant"]
    node = out.graph.node[0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["activate_left"] == int(left) and attrs["quant_mode"] == 1
    assert bool(node.input[1]) == wscale
    # against the torch reference of the fused op (onnxruntime's Exp may differ by an ulp)
    x, act = args
    feeds = [x, act]
    y, s = ort_run(out, feeds)
    ws = next((torch.from_numpy(onnx.numpy_helper.to_array(t).copy()) for t in out.graph.initializer), None)
    from onnx_npuq import npu

    ry, rs = npu.npu_dequant_swiglu_quant(x, weight_scale=ws, activation_scale=act, activate_left=left, quant_mode=1)
    assert (y.int() - ry.int()).abs().max() <= 1
    torch.testing.assert_close(s, rs, rtol=1e-6, atol=0)
    # against the unfused graph (float16 before its quantization): int8 within one step
    (y0, s0) = ort_run(model, feeds)
    assert (y.int() - y0.int()).abs().max() <= 1, (y, y0)


@pytest.mark.parametrize("fmt, removed", [("mxfp4", True), ("hif8", True), ("hif4", False), ("int8sym", False)])
def test_fuse_drops_repeated_idempotent_quant_dequant(fmt, removed):
    class Twice(torch.nn.Module):
        def forward(self, x):
            return defs.quant_dequant(defs.quant_dequant(x, fmt), fmt) * 2

    model = to_onnx(Twice(), (torch.randn(3, 64),))
    out, (report,) = run_passes(model, ["fuse-npu"])
    assert ops(out).count("QuantDequant") == (1 if removed else 2)
    assert report.mismatches == 0  # removal is exact where it happens
    same_outputs(model, out)


# ------------------------------------------------------------------ tiny LLaMA, every format


@pytest.mark.parametrize("fmt", e2e_formats())
def test_llama_every_pass(fmt):
    """The whole chain on a tiny LLaMA per weight format, each pass verified by the pipeline
    (onnxruntime before/after) and idempotent."""
    model = llama_onnx(fmt)
    names = ["import-qdq", "compress", "fuse-npu", "atc", "portable"]
    outs, reports = [model], []
    for name in names:
        out, (r,) = run_passes(outs[-1], [name], layout="default")
        again, _ = run_passes(out, [name], layout="default")
        assert again.SerializeToString() == out.SerializeToString(), name
        outs.append(out)
        reports.append(r)
    q, c, f, a, p = reports
    assert not q.changed and not c.changed  # the exporter already stores weights packed
    fused = sum(n.op_type == "NPUWeightQuantBatchMatmulV2" for n in outs[3].graph.node)
    assert fused == (14 if fmt in ("int8sym", "int4sym") else 0)
    if fused:
        assert f.max_abs < 0.05  # float16 activations, on logits of magnitude ~1
    else:
        assert f.mismatches == 0
    atc_model = outs[4]
    assert len(atc_model.opset_import) == 1 and not atc_model.functions
    keys = {m.key: m.value for m in atc_model.metadata_props}["onnx_npuq.atc_keys"].split(",")
    # every weight Dequantize went into a fused matmul, or stays for our custom op package
    assert keys == (["ai.onnx::17::NPUWeightQuantBatchMatmulV2"] if fused else ["ai.onnx::17::Dequantize"])
    assert a.mismatches == 0 and p.mismatches == 0
    same_outputs(outs[3], outs[5])  # portable(atc(m)) runs like m


# ------------------------------------------------------------------ pipeline


def test_pipeline_rejects_a_pass_that_changes_outputs(monkeypatch):
    monkeypatch.setitem(PASSES, "bad", None)

    @register("bad")
    def bad(graph, ctx):
        """Doubles the output."""
        y = graph.outputs[0]
        pre = gs.Variable("pre", dtype=y.dtype)
        for n in y.inputs:
            n.outputs = [pre]
        graph.nodes.append(gs.Node("Add", inputs=[pre, pre], outputs=[y]))

    model = _linear_model("mxfp4")
    with pytest.raises(PassError, match="bad changed onnxruntime outputs"):
        run_passes(model, ["bad"])
    with pytest.raises(PassError, match="unknown pass 'nope'"):
        run_passes(model, ["nope"])


def test_pipeline_keeps_model_fields_and_metadata():
    model = _linear_model("int8sym")
    model.producer_name = "someone"
    model.metadata_props.add(key="k", value="v")
    out, _ = run_passes(model, ["compress"])
    assert out.producer_name == "someone" and out.ir_version == model.ir_version
    assert {p.key: p.value for p in out.metadata_props} == {p.key: p.value for p in model.metadata_props}
    assert {p.key: p.value for p in out.metadata_props}["k"] == "v"
    onnx.checker.check_model(out, full_check=True)


@settings(max_examples=8, deadline=None)
@given(rows=st.integers(1, 5), k=st.sampled_from([32, 64, 96]), name=st.sampled_from(["mxfp4", "hif8", "int4sym", "nvf4"]))
def test_compress_property(rows, k, name):
    model = to_onnx(FakeQuantWeight(name, {}, (rows, k)), (torch.randn(2, k),), compress=False)
    out, (report,) = run_passes(model, ["compress"])
    assert report.mismatches == 0 and "QuantDequant" not in ops(out)
    again, _ = run_passes(out, ["compress"])
    assert again.SerializeToString() == out.SerializeToString()


# ------------------------------------------------------------------ CLI


def test_cli_rewrite(tmp_path):
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(to_onnx(FakeQuantWeight("mxfp4", {}), (torch.randn(3, 64),), compress=False), src)
    res = CliRunner().invoke(main, ["rewrite", str(src), "-o", str(dst), "-p", "compress"])
    assert res.exit_code == 0, res.output
    assert "compress: nodes" in res.output and "saved" in res.output and "0 mismatches" in res.output
    assert "Dequantize" in ops(onnx.load(dst))


@pytest.mark.parametrize("args, message", [
    (["-p", "nope"], "unknown pass 'nope'"),
    (["-p", "compress", "--opset", "x"], "'x' is not a valid integer"),
])
def test_cli_rewrite_errors(tmp_path, args, message):
    src = tmp_path / "in.onnx"
    onnx.save(to_onnx(FakeQuantWeight("mxfp4", {}), (torch.randn(3, 64),), compress=False), src)
    res = CliRunner().invoke(main, ["rewrite", str(src), "-o", str(tmp_path / "o.onnx"), *args])
    assert res.exit_code == 2 and message in res.output
    assert "Traceback" not in res.output and not (tmp_path / "o.onnx").exists()


def test_cli_rewrite_unreadable_model(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    res = CliRunner().invoke(main, ["rewrite", str(bad), "-o", str(tmp_path / "o.onnx"), "-p", "compress"])
    assert res.exit_code == 2 and "cannot read an ONNX model" in res.output
    assert len(res.output.strip().splitlines()) == 1
