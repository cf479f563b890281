"""Passes `atc` and `portable` (onnx_npuq/passes/atc.py): the two layouts ATC parses
(shared/spec/ascend.md), opset lowering with explicit checks, parser keys from known tables,
and the way back to a model onnxruntime runs with bit-identical outputs."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from onnx_npuq import formats as F
from onnx_npuq.exporter import to_onnx
from onnx_npuq.nn import quantize_model
from onnx_npuq.ops import defs
from onnx_npuq.ops import npu_ops as N
from onnx_npuq.passes import PassError, random_inputs, run_passes
from onnx_npuq.passes import atc as A
from onnx_npuq.passes.pipeline import LAYOUT_KEY
from onnx_npuq.runtime.ort import OrtSession

sys.path.insert(0, str(Path(__file__).parent))
from conftest import assert_same  # noqa: E402
from small_models import quiet  # noqa: E402
from test_llama_export import Logits, tiny_llama  # noqa: E402

LAYOUTS = ("default", "domain")
CUSTOM_NAMES = {*defs.OPS, *N.OPS, "WeightQuantBatchMatmulV2"}


# ---------------------------------------------------------------- models


class _NpuOps(torch.nn.Module):
    """All four npu ops in one graph (torch_npu names, domain npu)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("w", torch.randint(-128, 128, (32, 16), generator=g, dtype=torch.int8))
        self.register_buffer("asc", (torch.rand(16, generator=g) * 0.01 + 0.001).half())
        self.register_buffer("qs", torch.rand(16, generator=g) + 0.5)
        self.register_buffer("zp", torch.randint(-4, 4, (16,), generator=g, dtype=torch.int8))

    def forward(self, x):
        y = N.npu_weight_quant_batchmatmul(x, self.w, self.asc)
        q, s = N.npu_dynamic_quant(y)
        q2 = N.npu_quantize(y.float(), self.qs, self.zp, torch.qint8, axis=-1)
        q3, s3 = N.npu_dequant_swiglu_quant(y)
        return q, s, q2, q3, s3


class _NpuqOps(torch.nn.Module):
    """npuq::Quantize and npuq::QuantDequant (Dequantize comes with every QuantLinear)."""

    def forward(self, x):
        codes, scales = defs.quantize(x, "mxfp4")
        return codes, scales, defs.quant_dequant(x, "hif8")


@pytest.fixture(scope="module")
def npu_model() -> onnx.ModelProto:
    rows = {0: torch.export.Dim.AUTO}
    return quiet(to_onnx, _NpuOps(), (torch.randn(4, 32).half(),), dynamic_shapes=(rows,))


@pytest.fixture(scope="module")
def npuq_model() -> onnx.ModelProto:
    rows = {0: torch.export.Dim.AUTO}
    return quiet(to_onnx, _NpuqOps(), (torch.randn(4, 64),), dynamic_shapes=(rows,))


@pytest.fixture(scope="module")
def llama() -> onnx.ModelProto:
    model = tiny_llama()
    quantize_model(model, weights="mxfp4", activations="mxfp8e4m3", recipe={"exclude": ["lm_head"]})
    return quiet(to_onnx, Logits(model), (torch.randint(0, 256, (2, 9)),))


def _model(nodes, inputs, outputs, initializers=(), opset=21, ir=10, functions=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir,
                             functions=list(functions))


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _const(name, values, dtype=np.int64):
    return numpy_helper.from_array(np.asarray(values, dtype), name)


def _structural() -> onnx.ModelProto:
    """Opset-21 ops whose inputs were attributes before 13 / 18, and Softmax (2-D before 13)."""
    nodes = [
        helper.make_node("ReduceMean", ["x", "axes_m"], ["m"], name="mean", keepdims=1),
        helper.make_node("Sub", ["x", "m"], ["c"], name="sub"),
        helper.make_node("Softmax", ["c"], ["s"], name="softmax", axis=-1),
        helper.make_node("Split", ["s", "split"], ["a", "b"], name="split", axis=2),
        helper.make_node("Unsqueeze", ["a", "axes_u"], ["u"], name="unsqueeze"),
        helper.make_node("Squeeze", ["u", "axes_u"], ["y0"], name="squeeze"),
        helper.make_node("ReduceSum", ["b", "axes_s"], ["y1"], name="sum", keepdims=0),
        helper.make_node("Cast", ["y1"], ["y2"], name="cast", to=T.FLOAT16),
    ]
    return _model(nodes, [_vi("x", T.FLOAT, [2, 3, 8])],
                  [_vi("y0", T.FLOAT, None), _vi("y1", T.FLOAT, None), _vi("y2", T.FLOAT16, None)],
                  [_const("axes_m", [-1]), _const("split", [3, 5]), _const("axes_u", [0]),
                   _const("axes_s", [1])])


# ---------------------------------------------------------------- what every ATC model must be


def _key(node: onnx.NodeProto, versions: dict[str, int]) -> str:
    return f"{node.domain or 'ai.onnx'}::{versions[node.domain]}::{node.op_type}"


def _assert_atc(model: onnx.ModelProto, layout: str, opset: int = 18) -> set[str]:
    """The layout's rules, checked independently of atc.py's own check; the custom keys."""
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta[LAYOUT_KEY] == layout and meta[A.OPSET_KEY] == str(opset)
    imports = {o.domain: o.version for o in model.opset_import}
    assert len(imports) == len(model.opset_import)
    if layout == "default":
        assert list(imports.items()) == [("", opset)]  # exactly one opset_import
        assert {n.domain for n in model.graph.node} <= {""}
    else:
        assert imports["ai.onnx"] == opset and "" not in imports
        for n in model.graph.node:
            if n.op_type not in CUSTOM_NAMES:
                assert n.domain == "ai.onnx", n  # every standard node
    assert not model.functions
    assert not any(n.overload for n in model.graph.node)
    keys = {_key(n, imports) for n in model.graph.node if n.op_type in CUSTOM_NAMES}
    assert meta[A.KEYS_KEY] == ",".join(sorted(keys))
    assert all(k in A.KNOWN_KEYS for k in keys), keys
    A.check(model)  # layout rules + full onnx check of the same graph with portable names
    return keys


def _assert_same_outputs(original: onnx.ModelProto, atc_model: onnx.ModelProto, seed: int = 1):
    """portable(atc(m)) runs in onnxruntime with exactly m's outputs."""
    back = A.to_portable(atc_model)
    assert LAYOUT_KEY not in {p.key for p in back.metadata_props}
    assert {o.domain: o.version for o in back.opset_import}[""] == A.PORTABLE_OPSET
    feeds = random_inputs(original, seed)
    want, got = OrtSession(original).run(*feeds), OrtSession(back).run(*feeds)
    assert len(want) == len(got)
    for w, g in zip(want, got):
        assert_same(g, w)


def _atc(model, layout, opset=18, verify=True):
    out, reports = run_passes(model, ["atc"], layout=layout, opset=opset, verify=verify)
    if verify:
        assert reports[0].mismatches == 0
    return out


# ---------------------------------------------------------------- every format, both layouts


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fmt", F.names())
def test_atc_every_format(sequential, fmt, layout):
    m = sequential[fmt]
    out = _atc(m, layout)
    keys = _assert_atc(out, layout)
    names = {"Dequantize", "QuantDequant"}
    want = {f"ai.onnx::18::{n}" for n in names} if layout == "default" else {f"npuq::1::{n}" for n in names}
    assert keys == want and keys <= set(A.OUR_KEYS)
    _assert_same_outputs(m, out)
    again = _atc(out, layout, verify=False)
    assert again.SerializeToString() == out.SerializeToString()  # idempotent


@pytest.mark.parametrize("layout", LAYOUTS)
def test_npu_ops_keys(npu_model, layout):
    out = _atc(npu_model, layout)
    keys = _assert_atc(out, layout)
    cann = ({"ai.onnx::18::NPUQuantize", "ai.onnx::18::NPUDynamicQuant",
             "ai.onnx::18::NPUWeightQuantBatchMatmulV2"} if layout == "default" else
            {"npu::1::NPUQuantize", "npu::1::NPUDynamicQuant", "npu::1::WeightQuantBatchMatmulV2"})
    ours = {"ai.onnx::18::NPUDequantSwigluQuant" if layout == "default" else "npu::1::NPUDequantSwigluQuant"}
    assert keys == cann | ours
    assert cann <= set(A.CANN_KEYS) and ours <= set(A.OUR_KEYS)
    _assert_same_outputs(npu_model, out)
    back, reports = run_passes(out, ["portable"], verify=True)
    def ops(m):
        return sorted((n.domain, n.op_type) for n in m.graph.node)

    assert ops(back) == ops(npu_model)
    assert reports[0].mismatches == 0 and len(back.functions) == 4


@pytest.mark.parametrize("layout", LAYOUTS)
def test_npuq_quantize(npuq_model, layout):
    out = _atc(npuq_model, layout)
    assert any(k.endswith("::Quantize") for k in _assert_atc(out, layout))
    _assert_same_outputs(npuq_model, out)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_llama(llama, layout):
    out = _atc(llama, layout)
    _assert_atc(out, layout)
    _assert_same_outputs(llama, out)


def test_switching_layout_converts(npu_model, sequential):
    for m in (npu_model, sequential["mxfp4"]):
        default = _atc(m, "default", verify=False)
        domain = _atc(default, "domain")  # verified against the default-layout model
        assert domain.SerializeToString() == _atc(m, "domain", verify=False).SerializeToString()
        assert _atc(domain, "default", verify=False).SerializeToString() == default.SerializeToString()


def test_portable_leaves_portable_models_alone(sequential):
    m = sequential["hif8"]
    once, (report,) = run_passes(m, ["portable"], verify=True)
    assert not report.changed and report.mismatches == 0
    twice, _ = run_passes(once, ["portable"], verify=False)
    assert twice.SerializeToString() == once.SerializeToString()


def test_metadata_names_what_portable_needs(npu_model):
    out = _atc(npu_model, "domain", verify=False)
    meta = {p.key: p.value for p in out.metadata_props}
    assert "npu::WeightQuantBatchMatmulV2=npu::NPUWeightQuantBatchMatmulV2" in meta[A.ORIGIN_KEY].split(",")
    back = A.to_portable(out)
    assert not {p.key for p in back.metadata_props} & set(A.METADATA_KEYS)


# ---------------------------------------------------------------- lowering standard ops


@pytest.mark.parametrize("opset", [11, 13, 18])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_structural_rewrites(layout, opset):
    m = _structural()
    out = _atc(m, layout, opset)
    _assert_atc(out, layout, opset)
    _assert_same_outputs(m, out)
    nodes = {n.name: n for n in out.graph.node}
    attrs = {n: {a.name for a in nodes[n].attribute} for n in nodes}
    assert ("axes" in attrs["mean"]) == (opset < 18)  # ReduceMean: axes input since 18
    assert ("axes" in attrs["unsqueeze"]) == (opset < 13)
    assert ("split" in attrs["split"]) == (opset < 13)
    assert _atc(out, layout, opset, verify=False).SerializeToString() == out.SerializeToString()


def test_upgrades_an_older_model():
    nodes = [helper.make_node("ReduceSum", ["x"], ["y"], name="sum", axes=[1], keepdims=0)]
    m = _model(nodes, [_vi("x", T.FLOAT, [2, 3])], [_vi("y", T.FLOAT, [2])], opset=11, ir=6)
    out = _atc(m, "default", 13)
    _assert_atc(out, "default", 13)
    _assert_same_outputs(m, out)


def _bad_opset_model() -> onnx.ModelProto:
    """Three nodes opset 18 cannot express, for three different reasons."""
    nodes = [
        helper.make_node("DequantizeLinear", ["q4", "s"], ["d4"], name="dq_int4"),
        helper.make_node("DequantizeLinear", ["q8", "sb"], ["d8"], name="dq_blocked", axis=1, block_size=4),
        helper.make_node("Gelu", ["x"], ["g"], name="gelu", approximate="tanh"),
        helper.make_node("Relu", ["x"], ["r"], name="fine"),
    ]
    inits = [helper.make_tensor("q4", T.INT4, [4, 8], [1] * 32), _const("s", 0.5, np.float32),
             _const("q8", np.ones((4, 8)), np.int8), _const("sb", np.ones((4, 2)), np.float32)]
    outs = [_vi(n, T.FLOAT, None) for n in ("d4", "d8", "g", "r")]
    return _model(nodes, [_vi("x", T.FLOAT, [4, 8])], outs, inits)


def test_lists_every_node_the_opset_cannot_express():
    with pytest.raises(PassError) as err:
        run_passes(_bad_opset_model(), ["atc"], layout="default")
    problems = " ".join(err.value.problems)
    assert len(err.value.problems) == 3, err.value.problems
    assert "dq_int4 (DequantizeLinear)" in problems and "INT4" in problems
    assert "dq_blocked (DequantizeLinear)" in problems and "block_size=4 needs opset 21" in problems
    assert "gelu (Gelu)" in problems and "introduced in opset 20" in problems
    assert "fine" not in problems


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_gelu_and_split_num_outputs_go_below_their_opsets(opset):
    """Gelu-20 ("none") becomes ONNX's function body, bit-identical in onnxruntime; Split-18's
    num_outputs becomes the sizes shape inference gives (the attribute before opset 13)."""
    nodes = [helper.make_node("Gelu", ["x"], ["g"], name="gelu"),
             helper.make_node("Split", ["g"], ["a", "b"], name="split", axis=1, num_outputs=2)]
    m = _model(nodes, [_vi("x", T.FLOAT, [64, 9])], [_vi("a", T.FLOAT, [64, 5]), _vi("b", T.FLOAT, [64, 4])])
    out = _atc(m, "default", opset=opset)  # verified: no mismatch
    ops = [n.op_type for n in out.graph.node]
    assert "Gelu" not in ops and ops.count("Erf") == 1
    (split,) = [n for n in out.graph.node if n.op_type == "Split"]
    sizes = (helper.get_attribute_value(split.attribute[[a.name for a in split.attribute].index("split")])
             if opset < 13 else
             numpy_helper.to_array(next(t for t in out.graph.initializer if t.name == split.input[1])).tolist())
    assert list(sizes) == [5, 4] and "num_outputs" not in [a.name for a in split.attribute]


@pytest.mark.parametrize("opset", [11, 12])
def test_softmax_over_another_axis_needs_opset_13(opset):
    nodes = [helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=1)]
    m = _model(nodes, [_vi("x", T.FLOAT, [2, 3, 4])], [_vi("y", T.FLOAT, [2, 3, 4])])
    with pytest.raises(PassError, match=r"sm \(Softmax\): axis=1"):
        run_passes(m, ["atc"], opset=opset)


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("options, match", [
    ({"opset": 19}, "within 11..18"),
    ({"opset": 10}, "within 11..18"),
    ({"layout": "amct"}, "layout must be one of"),
])
def test_bad_options(sequential, options, match):
    with pytest.raises(PassError, match=match):
        run_passes(sequential["mxfp4"], ["atc"], **options)


def test_unknown_custom_ops():
    nodes = [helper.make_node("FusedMatMul", ["x", "x"], ["a"], name="ms", domain="com.microsoft"),
             helper.make_node("Foo", ["x"], ["b"], name="foo", domain="npuq")]
    m = _model(nodes, [_vi("x", T.FLOAT, [2, 2])], [_vi("a", T.FLOAT, None), _vi("b", T.FLOAT, None)])
    m.opset_import.extend([helper.make_opsetid("com.microsoft", 1), helper.make_opsetid("npuq", 1)])
    with pytest.raises(PassError) as err:
        run_passes(m, ["atc"], verify=False)
    problems = err.value.problems
    assert len(problems) == 2
    assert "ms (FusedMatMul): domain 'com.microsoft'" in problems[0]
    assert "foo (Foo): not an op of the npuq domain" in problems[1]


def test_foreign_function_called():
    body = [helper.make_node("Relu", ["a"], ["b"])]
    fn = helper.make_function("my.fns", "MyRelu", ["a"], ["b"], body, [helper.make_opsetid("", 21)])
    nodes = [helper.make_node("MyRelu", ["x"], ["y"], name="call", domain="my.fns")]
    m = _model(nodes, [_vi("x", T.FLOAT, [2])], [_vi("y", T.FLOAT, [2])], functions=[fn])
    m.opset_import.append(helper.make_opsetid("my.fns", 1))
    with pytest.raises(PassError, match=r"call \(MyRelu\): calls the model-local function my.fns::MyRelu"):
        run_passes(m, ["atc"], verify=False)


# ---------------------------------------------------------------- the key tables and the checker


def test_cann_keys_follow_the_plugins():
    # the WeightQuantBatchMatmulV2 plugin's caveat (shared/spec/ascend.md)
    assert "npu::1::WeightQuantBatchMatmulV2" in A.CANN_KEYS
    assert "npu::1::NPUWeightQuantBatchMatmulV2" not in A.KNOWN_KEYS
    assert "ai.onnx::19::NPUWeightQuantBatchMatmulV2" in A.CANN_KEYS
    assert "ai.onnx::19::NPUQuantize" not in A.CANN_KEYS
    assert all(src.startswith("hicann/ops-nn: ") and src.endswith(".cpp") for src in A.CANN_KEYS.values())
    assert not set(A.CANN_KEYS) & set(A.OUR_KEYS)
    for layout in LAYOUTS:
        assert set(defs.QUANT_DEQUANT.atc_keys(layout)) <= set(A.OUR_KEYS)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_check_rejects_what_atc_would_not_parse(sequential, layout):
    out = _atc(sequential["mxfp4"], layout, verify=False)
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(out)  # why atc.check exists: the checker takes neither layout
    bad = onnx.ModelProto()
    bad.CopyFrom(out)
    bad.opset_import.append(helper.make_opsetid("" if layout == "domain" else "npuq", 1))
    with pytest.raises(PassError, match="opset_import"):
        A.check(bad)
    bad.CopyFrom(out)
    meta = {p.key: p for p in bad.metadata_props}
    meta[A.KEYS_KEY].value = "npuq::1::QuantDequant"
    with pytest.raises(PassError, match=A.KEYS_KEY):
        A.check(bad)
