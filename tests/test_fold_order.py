"""Fold-order gates (onnx_npuq.ops.fold_order): where they go, that the passes see through
them, and that an export carries them. The session peaks and the folding itself are in
tests/test_onnx_bodies.py (test_plain_session_peak_of_folded_weights,
test_gated_weights_all_fold_and_change_no_bit)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import onnx_npuq
from onnx_npuq import formats as F
from onnx_npuq.atc.layers import quantized_layers
from onnx_npuq.models import DecoderConfig, TinyDecoder
from onnx_npuq.nn import quantize_model
from onnx_npuq.ops import fold_order, functions
from onnx_npuq.passes import run_pass
from onnx_npuq.passes.graph import remove_gates


@given(st.lists(st.integers(1, 10**8), min_size=1, max_size=200))
def test_groups_are_contiguous_ordered_and_at_most_GROUPS(sizes):
    g = fold_order.groups(sizes)
    assert len(g) == len(sizes) and g[0] == 0
    assert all(b - a >= 0 for a, b in zip(g, g[1:]))
    assert len(set(g)) <= fold_order.GROUPS and max(g) < fold_order.GROUPS


def test_groups_shrink():
    g = fold_order.groups([1] * 1000)
    counts = [Counter(g)[k] for k in range(fold_order.GROUPS)]
    assert all(b < a for a, b in zip(counts, counts[1:])), counts
    assert counts[0] / 1000 == pytest.approx((1 - fold_order.SHRINK) / (1 - fold_order.SHRINK ** fold_order.GROUPS),
                                             abs=0.01)


def _packed_chain(n: int, fmt: str = "mxfp4") -> onnx.ModelProto:
    """n packed (64, 64) weights, Dequantize -> Transpose -> MatMul in a chain."""
    gen = torch.Generator().manual_seed(0)
    nodes, inits, cur = [], [], "x"
    for i in range(n):
        p = F.encode(torch.randn(64, 64, generator=gen), fmt)
        inits += [onnx.numpy_helper.from_array(p.codes.numpy(), f"c{i}"),
                  onnx.numpy_helper.from_array(p.scales.numpy(), f"s{i}")]
        nodes += [onnx.helper.make_node("Dequantize", [f"c{i}", f"s{i}"], [f"w{i}"], f"dq{i}", domain="npuq",
                                        format=fmt, block=p.block, length=64),
                  onnx.helper.make_node("Transpose", [f"w{i}"], [f"wt{i}"], f"t{i}", perm=[1, 0]),
                  onnx.helper.make_node("MatMul", [cur, f"wt{i}"], [f"y{i}"], f"mm{i}")]
        cur = f"y{i}"
    graph = onnx.helper.make_graph(nodes, "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 64])],
                                   [onnx.helper.make_tensor_value_info(cur, onnx.TensorProto.FLOAT, [2, 64])], inits)
    m = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 21), onnx.helper.make_opsetid("npuq", 1)])
    m.ir_version = 10
    return functions.attach(m)


def _gated(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    fold_order.add_gates(out)
    return out


def test_small_models_get_no_gates():
    m = _packed_chain(12)
    assert fold_order.add_gates(m) == 1 and "Where" not in {n.op_type for n in m.graph.node}


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 20))
def test_gates_feed_every_input_of_later_groups_and_come_off(n):
    """Later groups read codes and scales through gates, every Transpose -> MatMul of a weight
    is a Gemm(transB=1), and remove_gates gives back the exact nodes (names, inputs)."""
    plain = _packed_chain(n)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fold_order, "MIN_BYTES", 0)
        gated = _gated(plain)
    onnx.checker.check_model(gated, full_check=True)
    groups = fold_order.groups([64 * 64 * 4] * n)
    for i, node in enumerate(n for n in gated.graph.node if n.op_type == "Dequantize"):
        gated_inputs = [x.startswith(fold_order.PREFIX) for x in node.input]
        assert gated_inputs == [groups[i] > 0] * 2, (i, list(node.input))
    ops = Counter(n.op_type for n in gated.graph.node)
    assert ops["If"] == max(groups) and ops["Gemm"] == n and not ops["Transpose"] and not ops["MatMul"]
    graph = gs.import_onnx(gated)
    remove_gates(graph)
    graph.cleanup()
    back = gs.export_onnx(graph)
    assert [(n.op_type, n.name, list(n.input), list(n.output)) for n in back.graph.node] == \
        [(n.op_type, n.name, list(n.input), list(n.output)) for n in plain.graph.node]


def _one_weight(x_shape, opset: int = 21) -> onnx.ModelProto:
    """x (symbolic dims of x_shape's rank) -> MatMul(x, Transpose(Dequantize(64 x 48 packed)))."""
    p = F.encode(torch.randn(48, 64, generator=torch.Generator().manual_seed(0)), "mxfp4")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Dequantize", ["c", "s"], ["w"], "dq", domain="npuq", format="mxfp4", block=p.block,
                               length=64),
         onnx.helper.make_node("Transpose", ["w"], ["wt"], "t", perm=[1, 0]),
         onnx.helper.make_node("MatMul", ["x", "wt"], ["y"], "mm")], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [f"d{i}" for i in range(len(x_shape) - 1)] + [64])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(p.codes.numpy(), "c"), onnx.numpy_helper.from_array(p.scales.numpy(), "s")])
    m = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset), onnx.helper.make_opsetid("npuq", 1)])
    m.ir_version = 10
    return functions.attach(m)


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("shape", [(64,), (5, 64), (3, 5, 64), (2, 3, 5, 64), (0, 64), (2, 0, 64), (2, 3, 0, 64)],
                         ids=str)
def test_gemm_form_is_matmul_bit_for_bit_at_every_rank(shape, monkeypatch):
    """Flatten -> Gemm -> Reshape gives MatMul's shape and bits for a vector, a matrix, 3-D and
    4-D activations, and empty ones (a zero sequence length: Reshape must not copy dims)."""
    monkeypatch.setattr(fold_order, "MIN_BYTES", 0)
    plain = _one_weight(shape)
    gated = _gated(plain)
    assert "Gemm" in {n.op_type for n in gated.graph.node}
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    want, got = _run(plain, x), _run(gated, x)
    assert got.shape == want.shape and np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("opset", [13, 14, 15])
def test_gemm_form_only_where_the_opset_has_it(opset, monkeypatch):
    """Shape(start, end) is opset 15: older models (onnxruntime's quantizer writes 13) keep
    Transpose -> MatMul behind their gates, and run."""
    monkeypatch.setattr(fold_order, "MIN_BYTES", 0)
    plain = _one_weight((3, 5, 64), opset)
    gated = _gated(plain)
    assert ("Gemm" in {n.op_type for n in gated.graph.node}) == (opset >= 15)
    x = np.random.default_rng(0).standard_normal((3, 5, 64)).astype(np.float32)
    assert np.array_equal(_run(gated, x).view(np.uint32), _run(plain, x).view(np.uint32))


def test_a_transpose_read_in_a_subgraph_stays(monkeypatch):
    """An If branch reading the Transpose's output (outer scope) keeps the Transpose."""
    monkeypatch.setattr(fold_order, "MIN_BYTES", 0)
    plain = _one_weight((5, 64))
    branch = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["wt"], ["b"])], "b", [],
                                    [onnx.helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, None)])
    plain.graph.input.append(onnx.helper.make_tensor_value_info("c0", onnx.TensorProto.BOOL, []))
    plain.graph.node.append(onnx.helper.make_node("If", ["c0"], ["z"], "if", then_branch=branch, else_branch=branch))
    plain.graph.output.append(onnx.helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, None))
    gated = _gated(plain)
    assert "Transpose" in {n.op_type for n in gated.graph.node}
    feed = {"x": np.ones((5, 64), np.float32), "c0": np.array(True)}
    got = ort.InferenceSession(gated.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)
    want = ort.InferenceSession(plain.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_weights_sharing_an_input_get_a_gate_each(monkeypatch):
    monkeypatch.setattr(fold_order, "MIN_BYTES", 0)
    m = _packed_chain(12)
    for node in m.graph.node:
        if node.op_type == "Dequantize":
            node.input[1] = "s0"  # one scales tensor for all (values do not matter here)
    fold_order.add_gates(m)
    onnx.checker.check_model(m, full_check=True)
    ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])


def test_a_pass_sees_no_gates_and_its_output_has_them(monkeypatch):
    """fold-weights finds every Dequantize on constants behind the gates; compress (nothing
    to pack) writes the gates back and changes no output bit (run_pass verifies)."""
    monkeypatch.setattr(fold_order, "MIN_BYTES", 0)
    gated = _gated(_packed_chain(12))
    folded, report = run_pass(gated, "fold-weights")
    assert "12 packed weight(s) folded" in report.notes[0]
    assert not {"Dequantize", "Where", "If"} & {n.op_type for n in folded.graph.node}
    again, report = run_pass(gated, "compress")
    assert report.mismatches == 0
    assert Counter(n.op_type for n in again.graph.node) == Counter(n.op_type for n in gated.graph.node)


def test_an_export_carries_gates_that_a_default_session_folds(tmp_path):
    """A quantized decoder past MIN_BYTES exports with gates; onnxruntime's default session
    folds them and every decoding (no npuq, gate or decode op left), and gives the outputs of
    the same export with its gates removed."""
    torch.manual_seed(0)
    model = TinyDecoder(DecoderConfig(vocab_size=512, hidden=512, intermediate=1408, layers=2, heads=8,
                                      kv_heads=4)).eval()
    quantize_model(model, weights="mxfp4", recipe={"exclude": ["lm_head"]})
    ids = torch.randint(0, 512, (1, 16))
    proto = onnx_npuq.export(model, (ids,), tmp_path / "m.onnx")
    ops = Counter(n.op_type for n in proto.graph.node)
    assert ops["Dequantize"] == 14 and ops["If"] >= 4 and ops["Where"] > 14 and ops["Gemm"] == 14
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    got = ort.InferenceSession(tmp_path / "m.onnx", so, providers=["CPUExecutionProvider"]).run(None, {"input_ids": ids.numpy()})
    optimized = onnx.load(tmp_path / "optimized.onnx")
    left = {n.op_type for n in optimized.graph.node}
    assert not left & {"Dequantize", "If", "DequantizeLinear", "QuantizeLinear", "Size"}, left
    own_wheres = sum(n.op_type == "Where" and not n.name.startswith(fold_order.PREFIX) for n in proto.graph.node)
    assert Counter(n.op_type for n in optimized.graph.node)["Where"] <= own_wheres  # the attention mask's
    assert not [t.name for t in optimized.graph.initializer if t.data_type == onnx.TensorProto.UINT8]  # codes: decoded
    graph = gs.import_onnx(proto)
    remove_gates(graph)
    plain = gs.export_onnx(graph.cleanup())
    plain.functions.extend(proto.functions)
    assert not Counter(n.op_type for n in plain.graph.node)["Gemm"]  # Transpose -> MatMul again
    layers = quantized_layers(proto)  # what `atc check --as-is` lists: the user's MatMuls, as without gates
    assert len(layers) == 14 and layers == quantized_layers(plain)
    want = ort.InferenceSession(plain.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input_ids": ids.numpy()})
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
