"""onnx_npuq.atc.preflight: the parser keys ATC would build and what it would say about them,
and onnx_ops.json (the ONNX ops CANN documents). ATC itself is not run."""
from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto as T
from onnx import helper

from onnx_npuq import atc as C
from onnx_npuq.exporter import to_onnx
from onnx_npuq.ops import defs
from onnx_npuq.passes.atc import KNOWN_KEYS

sys.path.insert(0, str(Path(__file__).parent))
from llama import llama_onnx  # noqa: E402
from small_models import quiet  # noqa: E402

LAYOUTS = ("default", "domain")


def _model(nodes, inputs, outputs, imports=(("", 18),), metadata=None) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", inputs, outputs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid(d, v) for d, v in imports], ir_version=10)
    for k, v in (metadata or {}).items():
        m.metadata_props.add(key=k, value=v)
    return m


def _vi(name, elem=T.FLOAT, shape=(2, 4)):
    return helper.make_tensor_value_info(name, elem, list(shape))


def _codes(report) -> set[str]:
    return {f.code for f in report.findings}


# ---------------------------------------------------------------- exported models: full coverage


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_format_is_fully_covered_after_the_atc_pass(sequential, layout):
    for fmt, model in sequential.items():
        laid_out, converted = C.atc_model(model, layout)
        assert converted
        for soc in ("Ascend910B1", "Ascend910B4"):
            report = C.preflight(laid_out, soc)
            assert report.full, (fmt, soc, report.lines())
            assert report.covered == report.nodes == len(laid_out.graph.node)
            assert report.layout == layout and report.opset == 18
            # the custom nodes resolve to keys CANN or custom_ops/ registers
            custom = [k for k in report.keys if "Dequantize" in k or "QuantDequant" in k]
            assert custom and all(k in KNOWN_KEYS for k in custom)
            # Gemm with a bias and Relu at v18 are reported, not hidden
            assert {f.op for f in report.unconfirmed} == {"Gemm", "Relu"}, fmt


def test_tiny_llama_is_fully_covered():
    model = llama_onnx("mxfp4")
    for layout in LAYOUTS:
        laid_out, _ = C.atc_model(model, layout)
        report = C.preflight(laid_out, "Ascend910B1")
        assert report.full, report.lines()
        assert report.nodes > 200
        ops = {f.op for f in report.unconfirmed}
        assert "Unsqueeze" in ops and "IsNaN" not in ops and "LessOrEqual" not in ops  # 8.x pages read
        assert report.keys["ai.onnx::18::IsNaN"] == 2  # "" is spelled ai.onnx in either layout


def test_a_raw_export_is_not(sequential):
    report = C.preflight(sequential["hif8"], "Ascend910B1")
    assert not report.full
    assert _codes(report) == {"E16005", "LAYOUT"}
    e16005 = [f for f in report.findings if f.code == "E16005"]
    assert {f.op for f in e16005} == {"Gemm", "Relu"}
    assert "2 --domain_version fields, but only one is allowed" in e16005[0].message
    assert report.summary().startswith("coverage: NOT full: ")


# ---------------------------------------------------------------- what ATC would say


def test_standard_op_without_a_parser():
    m = _model([helper.make_node("Trilu", ["x"], ["y"], name="tri"),
                helper.make_node("Resize", ["x", "", "s"], ["z"], name="rs")],
               [_vi("x"), _vi("s", T.FLOAT, (2,))], [_vi("y"), _vi("z")],
               metadata={"onnx_npuq.layout": "default", "onnx_npuq.opset": "18", "onnx_npuq.atc_keys": ""})
    report = C.preflight(m, "Ascend910B1")
    assert not report.full and report.covered == 0
    by_op = {f.op: f for f in report.errors if f.code == "E19010"}
    assert by_op["Trilu"].key == "ai.onnx::18::Trilu"
    assert by_op["Trilu"].message.startswith("No parser is registered for Op [..., optype [ai.onnx::18::Trilu]]")
    assert "not in the ONNX operator list CANN documents" in by_op["Trilu"].message
    assert "CANN documents Resize: documented v10..12, not v18" in by_op["Resize"].message
    lines = report.lines()
    assert any(line.startswith("E19010 ") and "[1 node(s): tri]" in line for line in lines)


def test_unsqueeze_13_is_documented_nowhere():
    m = _model([helper.make_node("Unsqueeze", ["x", "a"], ["y"], name="u")],
               [_vi("x"), _vi("a", T.INT64, (1,))], [_vi("y", T.FLOAT, (1, 2, 4))], imports=(("", 13),))
    f = [f for f in C.preflight(m, "Ascend910B1").errors if f.code == "E19010"]
    assert len(f) == 1 and f[0].key == "ai.onnx::13::Unsqueeze"


def test_custom_key_not_registered():
    # npuq at version 2: nobody registers npuq::2::QuantDequant
    m = _model([helper.make_node("QuantDequant", ["x"], ["y"], domain="npuq", name="qd", format="hif8")],
               [_vi("x")], [_vi("y")], imports=(("ai.onnx", 18), ("npuq", 2)),
               metadata={"onnx_npuq.layout": "domain", "onnx_npuq.opset": "18"})
    report = C.preflight(m, "Ascend910B1")
    f = [f for f in report.errors if f.code == "E19010"]
    assert f and f[0].key == "npuq::2::QuantDequant" and "passes.atc.KNOWN_KEYS" in f[0].message
    # a domain without an opset_import has no key at all
    m = _model([helper.make_node("Foo", ["x"], ["y"], domain="acme", name="foo")], [_vi("x")], [_vi("y")])
    f = C.preflight(m, "Ascend910B1").errors
    assert any(x.code == "E19010" and "no opset_import" in x.message for x in f)


def test_e16005_only_with_more_than_one_opset_import():
    relu = [helper.make_node("Relu", ["x"], ["y"], name="r")]
    one = C.preflight(_model(relu, [_vi("x")], [_vi("y")]), "Ascend910B1")
    assert "E16005" not in _codes(one) and one.keys == {"ai.onnx::18::Relu": 1}
    two = C.preflight(_model(relu, [_vi("x")], [_vi("y")], imports=(("", 18), ("npuq", 1))), "Ascend910B1")
    assert "E16005" in _codes(two)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_bf16_custom_op_on_a_soc_without_bf16(layout):
    class _Bf16(torch.nn.Module):
        def forward(self, x):
            return defs.quant_dequant(x, "mxfp8e4m3")

    rows = {0: torch.export.Dim.AUTO}
    model = quiet(to_onnx, _Bf16(), (torch.randn(4, 64).bfloat16(),), dynamic_shapes=(rows,))
    laid_out, _ = C.atc_model(model, layout)
    assert C.preflight(laid_out, "Ascend910B1").full
    for soc in ("Ascend310P3", "Ascend910A"):
        report = C.preflight(laid_out, soc)
        ez = [f for f in report.errors if f.code == "EZ3002"]
        assert ez and {f.op for f in ez} == {"QuantDequant"} and soc in ez[0].message, report.lines()


def test_npuq_ops_need_a_soc_custom_ops_builds_for(sequential):
    laid_out, _ = C.atc_model(sequential["int8sym"], "default")
    for soc in ("Ascend910B1", "Ascend910B3"):
        assert "EZ3003" not in _codes(C.preflight(laid_out, soc))
    for soc in ("Ascend310P1", "Ascend310P3", "Ascend310B1", "Ascend910A"):
        report = C.preflight(laid_out, soc)
        ez = [f for f in report.errors if f.code == "EZ3003"]
        assert {f.op for f in ez} == {"QuantDequant", "Dequantize"}, soc
        assert "No supported Ops kernel and engine are found" in ez[0].message and soc in ez[0].message
        # the standard nodes are not blamed
        assert not [f for f in report.errors if f.code != "EZ3003"], report.lines()
    # 310P: why, in one line (what the AscendC sources say), and what to do instead
    (line,) = [x for x in C.preflight(laid_out, "Ascend310P3").lines() if x.startswith("EZ3003")][:1]
    assert "custom_ops builds no kernels for ascend310p: " in line and "bfloat16" in line and "int8" in line
    assert "\n" not in line
    assert C.CUSTOM_OP_FAMILIES == ("ascend910b",)


def test_broken_layout_metadata_is_reported(sequential):
    laid_out, _ = C.atc_model(sequential["hif8"], "default")
    broken = onnx.ModelProto()
    broken.CopyFrom(laid_out)
    broken.opset_import.add(domain="npuq", version=1)  # the default layout has exactly one import
    report = C.preflight(broken, "Ascend910B1")
    assert any(f.code == "LAYOUT" and "opset_import" in f.message for f in report.errors)
    assert any(f.code == "E16005" for f in report.errors)


def test_inferred_versions_and_documented_limits_are_unconfirmed_not_errors():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Gemm", ["x", "w"], ["g"], name="gemm_plain", transB=1),
             helper.make_node("Gemm", ["x", "w", "b"], ["gb"], name="gemm_bias", transB=1),
             helper.make_node("Add", ["x", "x"], ["a"], name="add")]
    m = _model(nodes, [_vi("x"), _vi("w", T.FLOAT, (3, 4)), _vi("b", T.FLOAT, (3,))],
               [_vi("r"), _vi("g", T.FLOAT, (2, 3)), _vi("gb", T.FLOAT, (2, 3)), _vi("a")],
               metadata={"onnx_npuq.layout": "default", "onnx_npuq.opset": "18"})
    report = C.preflight(m, "Ascend910B1")
    assert report.full and not report.errors
    assert {f.node for f in report.unconfirmed} == {"relu", "gemm_bias"}  # Add, plain Gemm: documented at 18
    relu = next(f for f in report.unconfirmed if f.node == "relu")
    assert relu.inferred == 18 and relu.severity == "unconfirmed"
    assert any(line.startswith("UNCONFIRMED ai.onnx::18: ") and "Relu" in line for line in report.lines())
    m13 = _model(nodes[:1], [_vi("x")], [_vi("r")], imports=(("", 13),),
                 metadata={"onnx_npuq.layout": "default", "onnx_npuq.opset": "13"})
    assert not C.preflight(m13, "Ascend910B1").findings  # Relu-13: documented


def test_unknown_soc():
    with pytest.raises(C.SocVersionError):
        C.preflight(_model([], [], []), "Ascend950")


# ---------------------------------------------------------------- the data


def test_onnx_ops_json():
    data = json.loads(resources.files("onnx_npuq.atc").joinpath("onnx_ops.json").read_text(encoding="utf-8"))
    about = data["_about"]
    assert {"what", "how", "documented", "inferred", "uncertain", "sources"} <= set(about)
    ops = C.onnx_ops()
    assert len(ops) == len(data["ops"]) > 120
    for name, op in ops.items():
        assert onnx.defs.has(name), name  # a standard ONNX op, spelled as ONNX spells it
        assert op.documented and op.sources
        assert not op.documented & op.inferred
        assert all(1 <= v <= 18 for v in op.documented | op.inferred)
        assert all(s.split(":")[0] in about["sources"] for s in op.sources)
    # spot checks against the pages read
    assert ops["Add"].documented == frozenset(range(8, 19)) and not ops["Add"].inferred
    assert ops["IsNaN"].documented == frozenset(range(9, 19))
    assert ops["LessOrEqual"].documented == frozenset(range(12, 19))
    assert ops["Unsqueeze"].documented == frozenset(range(8, 13)) and ops["Unsqueeze"].inferred == frozenset(
        range(14, 19))
    assert ops["Resize"].documented == frozenset({10, 11, 12}) and not ops["Resize"].inferred
    assert "QuantizeLinear" not in ops and "LayerNormalization" not in ops  # not read: reported as missing
