"""onnx_npuq.atc.layers: how each quantized layer would run on the NPU, read from the graph
(hand-built graphs of each kind, and a real export), and the ATC limits of deploy models."""
from __future__ import annotations

import copy
import warnings

import numpy as np
import torch
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from onnx_npuq import models
from onnx_npuq.atc import atc_model
from onnx_npuq.atc.layers import CUSTOM, FOLDED, NATIVE, WEIGHT_ONLY, deploy_warnings, quantized_layers
from onnx_npuq.exporter import to_onnx
from onnx_npuq.nn import quantize_model


def _model(nodes, inits=(), imports=(("", 17),)):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", T.FLOAT, [2, 8])],
                          [helper.make_tensor_value_info("y", T.FLOAT, [2, 4])], initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid(d, v) for d, v in imports], ir_version=10)


def _w(name, dtype=np.float32, shape=(8, 4)):
    return numpy_helper.from_array(np.ones(shape, dtype), name)


def test_amct_deploy_chain_is_native_int8():
    m = _model([helper.make_node("AscendQuant", ["x"], ["xq"], name="q", scale=2.0, offset=0.0),
                helper.make_node("MatMul", ["xq", "w"], ["acc"], name="mm"),
                helper.make_node("AscendDequant", ["acc", "deq"], ["y"], name="dq")],
               [_w("w", np.int8), numpy_helper.from_array(np.ones(4, np.uint64), "deq")])
    (layer,) = quantized_layers(m, "Ascend910B1")
    assert (layer.node, layer.op, layer.kind) == ("mm", "MatMul", NATIVE)
    assert "AscendQuant -> int8 MatMul -> AscendDequant" in layer.why


def test_quant_batch_matmul_and_weight_only_matmul():
    m = _model([helper.make_node("QuantBatchMatMul", ["x", "w", "s"], ["y"], name="qbmm", dtype=1),
                helper.make_node("NPUWeightQuantBatchMatmulV2", ["x", "w", "s"], ["z"], name="wq",
                                 antiquant_group_size=32)])
    by = {x.node: x for x in quantized_layers(m)}
    assert by["qbmm"].kind == NATIVE and "QuantBatchMatmulV3" in by["qbmm"].why
    assert by["wq"].kind == WEIGHT_ONLY and "groups of 32" in by["wq"].why


def test_custom_kernel_names_the_op_format_and_soc():
    m = _model([helper.make_node("Dequantize", ["p", "sc"], ["w"], name="deq", domain="npuq", format="mxfp4"),
                helper.make_node("Transpose", ["w"], ["wt"], name="t"),
                helper.make_node("MatMul", ["x", "wt"], ["y"], name="mm")], imports=(("", 17), ("npuq", 1)))
    (layer,) = quantized_layers(m, "Ascend910B1")
    assert layer.kind == CUSTOM and "npuq::Dequantize (format mxfp4) on the weight" in layer.why
    assert "Ascend910B1 (ascend910b) has the package's kernel" in layer.why
    assert "no kernel for Ascend910A" in quantized_layers(m, "Ascend910A")[0].why


def test_folded_weights():
    w = _w("w")
    w.doc_string = "npuq.folded_from=nvfp4"
    m = _model([helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")], [w])
    (layer,) = quantized_layers(m)
    assert (layer.kind, layer.node) == (FOLDED, "fc") and "weights stored as nvfp4" in layer.why
    plain = _model([helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")], [_w("w")])
    assert quantized_layers(plain) == []  # a float layer is not listed


def test_deploy_warnings_only_for_deploy_models():
    m = _model([helper.make_node("AscendQuant", ["x"], ["y"], name="q", scale=1.0, offset=0.0)])
    w = deploy_warnings(m, dynamic_batch="1,2", precision_mode="force_fp32", precision_mode_v2="fp16")
    assert len(w) == 2
    assert w[0].startswith("--dynamic_batch_size=1,2: the model has quantized deploy ops (AscendQuant)")
    assert w[1].startswith("--precision_mode=force_fp32") and "high-precision" in w[1]
    w = deploy_warnings(m, dynamic_dims="4;8", precision_mode_v2="origin")
    assert w[1].startswith("--precision_mode_v2=origin")
    assert deploy_warnings(m) == []
    plain = _model([helper.make_node("Relu", ["x"], ["y"])])
    assert deploy_warnings(plain, dynamic_batch="1,2", precision_mode="force_fp32") == []


def test_a_real_export_in_both_layouts():
    base = models.get("digits-cnn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = to_onnx(quantize_model(copy.deepcopy(base), weights="int4sym"), models.example_inputs("digits-cnn"))
    for layout in ("default", "domain"):
        laid, _ = atc_model(proto, layout=layout)
        layers = quantized_layers(laid, "Ascend310P3")
        weighted = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in base.modules())
        assert len(layers) == weighted, [x.line() for x in layers]  # every conv and the head
        assert {x.kind for x in layers} == {CUSTOM}
        assert all("npuq::Dequantize (format int4sym) on the weight" in x.why for x in layers)
