"""onnx_npuq.atc.preflight: the parser keys ATC would build and what it would say about them,
and onnx_op_keys.json (the keys CANN's ONNX parser plugins register) with its generator.
ATC itself is not run."""
from __future__ import annotations

import json
import re
import subprocess
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
from onnx_npuq.atc import build_op_table
from onnx_npuq.passes.atc import CANN_KEYS, DEFAULT_OPSET, KNOWN_KEYS

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
            assert report.layout == layout and report.opset == DEFAULT_OPSET == 17
            # the custom nodes resolve to keys CANN or custom_ops/ registers
            custom = [k for k in report.keys if "Dequantize" in k or "QuantDequant" in k]
            assert custom and all(k in KNOWN_KEYS for k in custom)
            # Relu-17 is registered; Gemm with a bias (a documented limit) is reported, not hidden
            assert {f.op for f in report.unconfirmed} == {"Gemm"}, fmt


def test_tiny_llama_is_fully_covered():
    model = llama_onnx("mxfp4")
    for layout in LAYOUTS:
        laid_out, _ = C.atc_model(model, layout)
        report = C.preflight(laid_out, "Ascend910B1")
        assert report.full, report.lines()
        assert report.nodes > 200
        assert not report.unconfirmed, report.lines()  # every key is in a released plugin
        assert report.keys["ai.onnx::17::IsNaN"] == 2  # "" is spelled ai.onnx in either layout


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
    # ReduceL2: CANN's plugin lists ai.onnx::8..17 only; DequantizeLinear: no plugin at all
    m = _model([helper.make_node("ReduceL2", ["x", "a"], ["y"], name="l2"),
                helper.make_node("DequantizeLinear", ["q", "s"], ["z"], name="dq")],
               [_vi("x"), _vi("a", T.INT64, (1,)), _vi("q", T.INT8), _vi("s", T.FLOAT, ())],
               [_vi("y", T.FLOAT, (2, 1)), _vi("z")],
               metadata={"onnx_npuq.layout": "default", "onnx_npuq.opset": "18", "onnx_npuq.atc_keys": ""})
    report = C.preflight(m, "Ascend910B1")
    assert not report.full and report.covered == 0
    by_op = {f.op: f for f in report.errors if f.code == "E19010"}
    assert by_op["ReduceL2"].key == "ai.onnx::18::ReduceL2"
    assert by_op["ReduceL2"].message.startswith("No parser is registered for Op [..., optype [ai.onnx::18::ReduceL2]]")
    assert "CANN's plugins register ai.onnx::ReduceL2 at opsets 8..17, not 18" in by_op["ReduceL2"].message
    assert "no plugin in CANN's operator repositories registers DequantizeLinear" in by_op["DequantizeLinear"].message
    lines = report.lines()
    assert any(line.startswith("E19010 ") and "[1 node(s): l2]" in line for line in lines)
    m17 = _model(m.graph.node[:1], list(m.graph.input)[:2], list(m.graph.output)[:1], imports=(("", 17),))
    assert "E19010" not in _codes(C.preflight(m17, "Ascend910B1"))


def test_constant_needs_no_plugin():
    c = helper.make_node("Constant", [], ["c"], name="c", value=helper.make_tensor("v", T.FLOAT, [], [1.0]))
    m = _model([c, helper.make_node("Add", ["x", "c"], ["y"], name="add")], [_vi("x")], [_vi("y")])
    report = C.preflight(m, "Ascend910B1")
    assert _codes(report) == {"LAYOUT"} and "Constant" in C.PARSER_OPS and report.keys == {"ai.onnx::18::Add": 1}


def test_custom_key_not_registered():
    # npuq at version 2: nobody registers npuq::2::QuantDequant
    m = _model([helper.make_node("QuantDequant", ["x"], ["y"], domain="npuq", name="qd", format="hif8")],
               [_vi("x")], [_vi("y")], imports=(("ai.onnx", 18), ("npuq", 2)),
               metadata={"onnx_npuq.layout": "domain", "onnx_npuq.opset": "18"})
    report = C.preflight(m, "Ascend910B1")
    f = [f for f in report.errors if f.code == "E19010"]
    assert f and f[0].key == "npuq::2::QuantDequant" and "passes.atc.OUR_KEYS" in f[0].message
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


def test_experimental_keys_and_documented_limits_are_unconfirmed_not_errors():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu", domain="ai.onnx"),
             helper.make_node("Gemm", ["x", "w"], ["g"], name="gemm_plain", transB=1, domain="ai.onnx"),
             helper.make_node("Gemm", ["x", "w", "b"], ["gb"], name="gemm_bias", transB=1, domain="ai.onnx"),
             helper.make_node("NPUFusedAddRmsNorm", ["x", "x", "x"], ["n"], name="rms", domain="npu")]
    m = _model(nodes, [_vi("x"), _vi("w", T.FLOAT, (3, 4)), _vi("b", T.FLOAT, (3,))],
               [_vi("r"), _vi("g", T.FLOAT, (2, 3)), _vi("gb", T.FLOAT, (2, 3)), _vi("n")],
               imports=(("ai.onnx", 18), ("npu", 1)), metadata={"onnx_npuq.layout": "domain", "onnx_npuq.opset": "18"})
    report = C.preflight(m, "Ascend910B1")
    assert report.full and not report.errors
    assert {f.node for f in report.unconfirmed} == {"gemm_bias", "rms"}  # Relu, plain Gemm: registered
    rms = next(f for f in report.unconfirmed if f.node == "rms")
    assert rms.severity == "unconfirmed" and "only an experimental plugin registers it" in rms.message
    assert "experimental/" in rms.message and "hicann/ops-nn" in rms.message


def test_unknown_soc():
    with pytest.raises(C.SocVersionError):
        C.preflight(_model([], [], []), "Ascend950")


# ---------------------------------------------------------------- the data


def test_op_keys_json_is_well_formed():
    data = json.loads(resources.files("onnx_npuq.atc").joinpath("onnx_op_keys.json").read_text(encoding="utf-8"))
    about, files = data["_about"], data["files"]
    assert {"what", "how", "format", "repositories"} <= set(about)
    assert {"hicann/ops-nn", "hicann/ops-math", "hicann/ops-cv"} <= set(about["repositories"])
    for f in files:
        assert f["commit"] == about["repositories"][f["repo"]] and re.fullmatch(r"[0-9a-f]{40}", f["commit"])
        assert "framework/" in f["path"] and "onnx_plugin" in f["path"].rsplit("/", 1)[-1]
    used = set()
    for k, entries in data["keys"].items():
        assert entries and k == k.strip() and ("::" in k or "." in k), k
        for index, op in entries:
            assert 0 <= index < len(files) and re.fullmatch(r"\w+", op), (k, op)
            used.add(index)
    assert used == set(range(len(files)))  # no file without a key
    keys = C.parser_keys()
    assert len(keys) == len(data["keys"]) > 2000
    # what the sources say, spot-checked (the macro-built list of ops-math's similar_opp plugin too)
    div = keys["ai.onnx::11::Div"]
    assert [(p.repo, p.path, p.op) for p in div] == [
        ("hicann/ops-math", "common/src/framework/similar_opp_onnx_plugin.cpp", "RealDiv")]
    from onnx_npuq.atc.ops import registered_versions
    assert registered_versions("ai.onnx", "QuantBatchMatMul") == tuple(range(8, 17))
    assert registered_versions("ai.onnx", "ReduceL2") == tuple(range(8, 18))
    assert registered_versions("ai.onnx", "NPUWeightQuantBatchMatmulV2") == tuple(range(11, 20))
    assert registered_versions("ai.onnx", "LayerNormalization") == (17, 18)
    assert registered_versions("ai.onnx", "Gelu") == () and registered_versions("ai.onnx", "QuantizeLinear") == ()
    assert C.plugins("npu::1::WeightQuantBatchMatmulV2") and not C.plugins("npu::1::NPUWeightQuantBatchMatmulV2")
    # the npu keys the atc pass relies on are all in the table
    assert all(C.plugins(k) for k in CANN_KEYS)


_PLUGIN = r"""
#include "onnx_common.h"
namespace domi {
// REGISTER_CUSTOM_OP("Commented").FrameworkType(ONNX).OriginOpType("ai.onnx::1::Commented");
#define MY_OP(ONNX_OPP, ATC_OPP, FUN) \
    static Status Parse##FUN(const Message* src, ge::Operator& dst) { return SUCCESS; } \
    REGISTER_CUSTOM_OP(#ATC_OPP).FrameworkType(ONNX).OriginOpType(#ONNX_OPP).ParseParamsFn(Parse##FUN)
MY_OP(ai.onnx::11::Neg, Neg, NegV11);
REGISTER_CUSTOM_OP("Mx")
    .FrameworkType(ONNX)
    .OriginOpType({ge::AscendString("ai.onnx::8::Max"), /* odd // comment */
                   ge::AscendString("ai.onnx::9::Max")})
    .ParseParamsFn(ParseMax);
REGISTER_CUSTOM_OP("OnlyTf").FrameworkType(TENSORFLOW).OriginOpType("Max");
REGISTER_CUSTOM_OP("Single").FrameworkType(ONNX).OriginOpType("npu::1::NPUSingle");
}
"""


def test_build_op_table_reads_a_mirror(tmp_path):
    repo = tmp_path / "acme+ops-x"
    plugin = repo / "math" / "max" / "framework" / "max_onnx_plugin.cpp"
    plugin.parent.mkdir(parents=True)
    plugin.write_text(_PLUGIN)
    (repo / "math" / "max" / "framework" / "max_tf_plugin.cpp").write_text(_PLUGIN.replace("ONNX)", "X)"))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    out = tmp_path / "keys.json"
    assert build_op_table.main([str(repo), "-o", str(out)]) == 0
    table = json.loads(out.read_text())
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    path = "math/max/framework/max_onnx_plugin.cpp"
    assert table["files"] == [{"repo": "acme/ops-x", "path": path, "commit": commit}]
    assert table["keys"] == {"ai.onnx::8::Max": [[0, "Mx"]], "ai.onnx::9::Max": [[0, "Mx"]],
                             "ai.onnx::11::Neg": [[0, "Neg"]], "npu::1::NPUSingle": [[0, "Single"]]}
    # a key list that is not literals after expansion stops the script instead of guessing
    plugin.write_text('REGISTER_CUSTOM_OP("V").FrameworkType(ONNX).OriginOpType(kKeys);')
    subprocess.run([*git, "commit", "-qam", "y"], check=True)
    assert build_op_table.main([str(repo), "-o", str(out)]) == 2
