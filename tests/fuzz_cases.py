"""Generated hostile inputs for tests/test_fuzz.py: every case is built in code into a
folder (nothing binary is committed).

    for case in MODEL_CASES + RECIPE_CASES + SPEC_CASES:
        path = case.build(folder)          # writes the input (and what it needs) into `folder`
        ... every tool must refuse it with a ValueError whose message matches case.match

SPEC_CASES are MODEL specs for `export` and `verify` (cli.models.load_model): their build
returns the spec, a string.

A model case's folder is `<tmp>/in`; `<tmp>/outside/secret.bin` (SECRET) is a file outside
it that external-data cases point at and that nothing may open. `tools` says which tools
must refuse the input: "all" (load_model, the passes, the ATC preflight and command,
onnxruntime, verify) or a subset, for inputs that are only bad for some of them (a graph
input of 2^40 elements is fine for the ATC preflight, not for random test inputs).
"""
from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from onnx_npuq import formats as F
from onnx_npuq.ops import functions

SECRET = "secret.bin"  # in <tmp>/outside, next to the model folder <tmp>/in
ALL = ("load", "passes", "preflight", "plan", "ort", "verify")
FP = TensorProto.FLOAT


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    build: Callable[[Path], Path | str]  # folder -> the path (for SPEC_CASES: the MODEL spec) to give the tools
    match: str  # a regular expression the error message must contain
    tools: tuple[str, ...] = ALL


# ------------------------------------------------------------------ base models


def _w(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def make_model(nodes, inits=(), inputs=(("x", FP, [2, 64]),), outputs=(("y", FP, [2, 64]),),
               opsets=(("", 21),), ir=10, attach=True, value_info=()) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes, "fuzz",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=list(inits),
        value_info=[helper.make_tensor_value_info(n, t, s) for n, t, s in value_info])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    m.ir_version = ir
    if attach and any(n.domain in ("npuq", "npu") for n in nodes):
        functions.attach(m)
    return m


def plain() -> onnx.ModelProto:
    """y = Relu(x + w)."""
    return make_model([helper.make_node("Add", ["x", "w"], ["s"], name="add"),
                       helper.make_node("Relu", ["s"], ["y"], name="relu")],
                      [numpy_helper.from_array(_w((2, 64)), "w")])


QD_ATTRS = {"format": "mxfp4", "rounding": "away", "scale_rule": "floor", "saturate": 0, "variant": "quant_cy",
            "group": 0}


def quant_dequant(**attrs) -> onnx.ModelProto:
    """y = npuq::QuantDequant(x) (mxfp4 unless attrs say otherwise), with its body."""
    a = {**QD_ATTRS, **attrs}
    return make_model([helper.make_node("QuantDequant", ["x"], ["y"], name="qd", domain="npuq", **a)],
                      opsets=(("", 21), ("npuq", 1)))


def dequantize(fmt="mxfp4", rows=8, length=64, **opts) -> onnx.ModelProto:
    """y = x + npuq::Dequantize(codes, scales[, tensor_scale]) of F.encode(w, fmt)."""
    p = F.encode(torch.from_numpy(_w((rows, length), 3)), fmt, **opts)
    inits = [numpy_helper.from_array(p.codes.numpy(), "codes"), numpy_helper.from_array(p.scales.numpy(), "scales")]
    ins = ["codes", "scales"]
    if p.tensor_scale is not None:
        inits.append(numpy_helper.from_array(p.tensor_scale.reshape(()).numpy(), "ts"))
        ins.append("ts")
    nodes = [helper.make_node("Dequantize", ins, ["rows"], name="dq", domain="npuq", format=p.format,
                              block=p.block, length=p.length),
             helper.make_node("Add", ["x", "rows"], ["y"], name="add")]
    return make_model(nodes, inits, inputs=(("x", FP, [rows, length]),), outputs=(("y", FP, [rows, length]),),
                      opsets=(("", 21), ("npuq", 1)))


def npu_quantize(**attrs) -> onnx.ModelProto:
    """y = npu::NPUQuantize(x, scales) to int8 (per channel along axis 1)."""
    a = {"dtype": 2, "axis": 1, "div_mode": 1, **attrs}
    return make_model([helper.make_node("NPUQuantize", ["x", "scales"], ["y"], name="nq", domain="npu", **a)],
                      [numpy_helper.from_array(np.full(64, 0.05, np.float32), "scales")],
                      outputs=(("y", TensorProto.INT8, [2, 64]),), opsets=(("", 21), ("npu", 1)))


def npu_op(op, inputs, attrs, inits=(), x_type=TensorProto.FLOAT16, attach=True) -> onnx.ModelProto:
    """One npu-domain node on x (2, 64) with the given initializers; outputs untyped."""
    node = helper.make_node(op, ["x", *inputs], ["y"], name="n", domain="npu", **attrs)
    m = make_model([node], inits, inputs=(("x", x_type, [2, 64]),), outputs=(("y", TensorProto.UNDEFINED, None),),
                   opsets=(("", 21), ("npu", 1)), attach=attach)
    return m


BASES = {"plain": plain, "quant_dequant": quant_dequant, "dequantize": dequantize, "npu_quantize": npu_quantize,
         "dequantize_nvfp4": lambda: dequantize("nvfp4"), "dequantize_int4": lambda: dequantize("int4sym", group=7),
         "dequantize_hif8": lambda: dequantize("hif8", length=70)}


# ------------------------------------------------------------------ writing and mutating


def save_bytes(folder: Path, data: bytes, name: str = "model.onnx") -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def save(folder: Path, model: onnx.ModelProto, name: str = "model.onnx") -> Path:
    return save_bytes(folder, model.SerializeToString(), name)


def node(m: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in m.graph.node if n.name == name)


def set_attr(n: onnx.NodeProto, name: str, value) -> None:
    drop_attr(n, name)
    n.attribute.append(helper.make_attribute(name, value))


def drop_attr(n: onnx.NodeProto, name: str) -> None:
    keep = [a for a in n.attribute if a.name != name]
    del n.attribute[:]
    n.attribute.extend(keep)


def init(m: onnx.ModelProto, name: str) -> TensorProto:
    return next(t for t in m.graph.initializer if t.name == name)


def mutated(base: Callable[[], onnx.ModelProto], fn: Callable[[onnx.ModelProto], object]):
    """A builder: the base model, changed by fn (in place), saved."""
    def build(folder: Path) -> Path:
        m = base()
        fn(m)
        return save(folder, m)
    return build


# ------------------------------------------------------------------ A. protobuf / file level


def _garbage(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _truncated(fraction: float):
    def build(folder):
        data = dequantize().SerializeToString()
        return save_bytes(folder, data[: int(len(data) * fraction)])
    return build


def _fifo(folder):
    path = folder / "model.onnx"
    os.mkfifo(path)
    return path


def _symlink_to(target: str):
    def build(folder):
        path = folder / "model.onnx"
        path.symlink_to(target)
        return path
    return build


def _directory(folder):
    path = folder / "model.onnx"
    path.mkdir()
    return path


READ = r"model\.onnx: "  # the message names the file
FILE_CASES = [
    Case("empty-file", "protobuf", lambda d: save_bytes(d, b""), "the file is empty"),
    Case("one-byte", "protobuf", lambda d: save_bytes(d, b"\x08"), READ),
    Case("text-file", "protobuf", lambda d: save_bytes(d, b"hello, I am not a model\n"), READ),
    Case("json-file", "protobuf", lambda d: save_bytes(d, b'{"ir_version": 10, "graph": {}}'), READ),
    Case("png-header", "protobuf", lambda d: save_bytes(d, b"\x89PNG\r\n\x1a\n" + bytes(64)), READ),
    Case("zeros-1k", "protobuf", lambda d: save_bytes(d, bytes(1024)), READ),
    Case("ff-1k", "protobuf", lambda d: save_bytes(d, b"\xff" * 1024), READ),
    Case("tensor-proto", "protobuf",
         lambda d: save_bytes(d, numpy_helper.from_array(_w((4, 4)), "t").SerializeToString()), READ),
    Case("graph-proto", "protobuf", lambda d: save_bytes(d, plain().graph.SerializeToString()), READ),
    Case("node-proto", "protobuf", lambda d: save_bytes(d, plain().graph.node[0].SerializeToString()), READ),
    Case("no-graph", "protobuf", lambda d: save(d, onnx.ModelProto(ir_version=10)), "no graph"),
    Case("directory", "protobuf", _directory, "not a regular file|is a directory"),
    Case("fifo", "protobuf", _fifo, "not a regular file"),
    Case("char-device", "protobuf", _symlink_to("/dev/zero"), "not a regular file"),
    Case("dangling-symlink", "protobuf", _symlink_to("/nonexistent/model.onnx"), "(?i)no such file"),
    Case("missing-file", "protobuf", lambda d: d / "model.onnx", "(?i)no such file"),
    *[Case(f"garbage-{n}-seed{s}", "protobuf", lambda d, s=s, n=n: save_bytes(d, _garbage(s, n)), READ)
      for s, n in [(0, 16), (1, 100), (2, 1000), (3, 4096), (4, 33), (5, 7), (6, 257), (7, 65536)]],
    *[Case(f"truncated-{int(f * 1000)}", "protobuf", _truncated(f), READ)
      for f in (0.05, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999)],
    Case("truncated-minus-1", "protobuf",
         lambda d: save_bytes(d, dequantize().SerializeToString()[:-1]), READ),
    Case("doubled-garbage-tail", "protobuf",
         lambda d: save_bytes(d, plain().SerializeToString() + b"\xff\xff\xff"), READ),
]


# ------------------------------------------------------------------ B. versions


def _opsets(*pairs):
    def fn(m):
        del m.opset_import[:]
        m.opset_import.extend(helper.make_opsetid(d, v) for d, v in pairs)
    return fn


def _ir(v):
    def fn(m):
        m.ir_version = v
    return fn


NEWEST = onnx.defs.onnx_opset_version()
VERSION_CASES = [
    Case("ir-99", "versions", mutated(plain, _ir(99)), "IR version 99 is newer"),
    Case("ir-next", "versions", mutated(plain, _ir(onnx.IR_VERSION + 1)), "is newer than this onnx"),
    Case("ir-missing", "versions", mutated(plain, lambda m: m.ClearField("ir_version")), "IR version 0"),
    Case("ir-2", "versions", mutated(plain, _ir(2)), "IR version 2 is not supported"),
    Case("ir-negative", "versions", mutated(plain, _ir(-7)), "IR version -7"),
    Case("opset-99", "versions", mutated(plain, _opsets(("", 99))), "opset 99 of the standard domain"),
    Case("opset-next", "versions", mutated(plain, _opsets(("", NEWEST + 1))), f"opset {NEWEST + 1}"),
    Case("opset-0", "versions", mutated(plain, _opsets(("", 0))), "version 0"),
    Case("opset-negative", "versions", mutated(plain, _opsets(("", -3))), "version -3"),
    Case("opset-missing", "versions", mutated(plain, _opsets()), "no opset_import"),
    Case("opset-twice", "versions", mutated(plain, _opsets(("", 21), ("", 18))), "listed twice"),
    Case("opset-ai-onnx-twice", "versions", mutated(plain, _opsets(("", 21), ("ai.onnx", 21))), "listed twice"),
    Case("opset-npuq-2", "versions", mutated(quant_dequant, _opsets(("", 21), ("npuq", 2))),
         "'npuq' version 2"),
    Case("opset-npu-7", "versions", mutated(npu_quantize, _opsets(("", 21), ("npu", 7))), "'npu' version 7"),
    Case("opset-npuq-missing", "versions", mutated(quant_dequant, _opsets(("", 21))),
         "No opset import for domain 'npuq'"),
    Case("opset-custom-domain-missing", "versions",
         mutated(plain, lambda m: setattr(m.graph.node[1], "domain", "com.example")),
         "No opset import for domain 'com.example'"),
    Case("function-opset-99", "versions",
         mutated(quant_dequant, lambda m: setattr(m.functions[0].opset_import[0], "version", 99)),
         "function .* opset 99"),
]


# ------------------------------------------------------------------ C. graph structure


def _add_node(*args, at=None, **kw):
    def fn(m):
        n = helper.make_node(*args, **kw)
        if at is None:
            m.graph.node.append(n)
        else:
            m.graph.node.insert(at, n)
    return fn


def _set_input(node_name, index, value):
    def fn(m):
        node(m, node_name).input[index] = value
    return fn


def _cycle(m):
    # add reads relu's output: add -> relu -> add
    node(m, "add").input[1] = "y"


def _out_of_order(m):
    nodes = list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(reversed(nodes))


def _subgraph_reads_ghost(m):
    then = helper.make_graph([helper.make_node("Identity", ["ghost"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", FP, [2, 64])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", FP, [2, 64])])
    m.graph.initializer.append(numpy_helper.from_array(np.array(True), "cond"))
    m.graph.node.append(helper.make_node("If", ["cond"], ["z"], name="if", then_branch=then, else_branch=other))
    m.graph.output.append(helper.make_tensor_value_info("z", FP, [2, 64]))


GRAPH_CASES = [
    Case("dangling-input", "graph", mutated(plain, _set_input("relu", 0, "ghost")), "reads 'ghost'"),
    Case("dangling-second-input", "graph", mutated(plain, _set_input("add", 1, "nowhere")), "reads 'nowhere'"),
    Case("output-not-produced", "graph",
         mutated(plain, lambda m: setattr(m.graph.output[0], "name", "phantom")), "graph output 'phantom'"),
    Case("cycle", "graph", mutated(plain, _cycle), "cycle"),
    Case("self-loop", "graph", mutated(plain, _set_input("relu", 0, "y")), "cycle"),
    Case("three-node-cycle", "graph",
         mutated(plain, lambda m: (_add_node("Neg", ["y"], ["n"], name="neg")(m), _set_input("add", 0, "n")(m))),
         "cycle"),
    Case("out-of-order", "graph", mutated(plain, _out_of_order), "not in topological order"),
    Case("duplicate-output", "graph", mutated(plain, _add_node("Neg", ["x"], ["s"], name="dup")),
         "tensor 's' is the output of both"),
    Case("output-shadows-initializer", "graph", mutated(plain, _add_node("Neg", ["x"], ["w"], name="shadow", at=0)),
         "already an initializer"),
    Case("output-shadows-input", "graph", mutated(plain, _add_node("Neg", ["s"], ["x"], name="shadow2")),
         "already a graph input"),
    Case("duplicate-graph-input", "graph",
         mutated(plain, lambda m: m.graph.input.append(m.graph.input[0])), "graph input 'x' is listed twice"),
    Case("nameless-graph-input", "graph",
         mutated(plain, lambda m: m.graph.input.append(helper.make_tensor_value_info("", FP, [1]))), "no name"),
    Case("duplicate-initializer", "graph",
         mutated(plain, lambda m: m.graph.initializer.append(numpy_helper.from_array(_w((2, 64)), "w"))),
         "initializer 'w' is defined twice"),
    Case("empty-op-type", "graph", mutated(plain, lambda m: setattr(m.graph.node[1], "op_type", "")),
         "has no op_type"),
    Case("unknown-standard-op", "graph",
         mutated(plain, lambda m: setattr(m.graph.node[1], "op_type", "Frobnicate")), "onnx.checker.*Frobnicate"),
    Case("add-one-input", "graph", mutated(plain, lambda m: m.graph.node[0].input.pop()), "onnx.checker"),
    Case("bad-standard-attribute", "graph",
         mutated(plain, lambda m: m.graph.node[1].attribute.append(helper.make_attribute("alpha", 1.0))),
         "onnx.checker"),
    Case("subgraph-dangling", "graph", mutated(plain, _subgraph_reads_ghost), "subgraph 'then'.*reads 'ghost'"),
    Case("node-in-unknown-domain", "graph",  # valid ONNX; onnxruntime has no kernel for it
         mutated(plain, lambda m: (setattr(m.graph.node[1], "domain", "my.ops"),
                                   m.opset_import.append(helper.make_opsetid("my.ops", 1)))),
         "onnxruntime cannot load", tools=("ort", "passes")),
]


# ------------------------------------------------------------------ D. custom nodes


def _qd(fn):
    return mutated(quant_dequant, lambda m: fn(node(m, "qd")))


def _dq(fn, base=dequantize):
    return mutated(base, lambda m: fn(m, node(m, "dq")))


def _nq(fn):
    return mutated(npu_quantize, lambda m: fn(node(m, "nq")))


def _replace_init(name, array):
    def fn(m, _n):
        t = init(m, name)
        t.CopyFrom(numpy_helper.from_array(array, name))
    return fn


def _codes(m) -> np.ndarray:
    return numpy_helper.to_array(init(m, "codes"))


def _scales(m) -> np.ndarray:
    return numpy_helper.to_array(init(m, "scales"))


def _shrink(name, cols=-1, rows=0):
    """Drop (negative) or add (positive) columns, drop rows of a packed initializer."""
    def fn(m, _n):
        a = numpy_helper.to_array(init(m, name))
        if cols < 0:
            a = a[:, :cols]
        elif cols > 0:
            a = np.concatenate([a, np.zeros((a.shape[0], cols), a.dtype)], axis=1)
        if rows < 0:
            a = a[:rows]
        init(m, name).CopyFrom(numpy_helper.from_array(np.ascontiguousarray(a), name))
    return fn


def _add_tensor_scale(m, n):
    m.graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), "ts"))
    n.input.append("ts")


def _ts_shape(m, n):
    t = init(m, "ts")
    t.CopyFrom(numpy_helper.from_array(np.ones(4, np.float32), "ts"))


def _npu_model(op, inputs, attrs, inits, x_type=TensorProto.FLOAT16):
    return lambda d: save(d, npu_op(op, inputs, attrs, inits, x_type, attach=False))


_F16 = [numpy_helper.from_array(np.ones(64, np.float16), "s16")]
_WQ = [numpy_helper.from_array(np.ones((64, 8), np.int8), "w8"), numpy_helper.from_array(np.ones(8, np.float16), "as")]
_SW = [numpy_helper.from_array(np.ones(64, np.float32), "wsc"), numpy_helper.from_array(np.ones(2, np.float32), "asc")]

CUSTOM_CASES = [
    # npuq::QuantDequant attributes
    Case("qd-format-missing", "custom", _qd(lambda n: drop_attr(n, "format")), r"node qd .*'format'.*missing"),
    Case("qd-format-int", "custom", _qd(lambda n: set_attr(n, "format", 4)), "node qd .*'format' must be a string"),
    Case("qd-format-float", "custom", _qd(lambda n: set_attr(n, "format", 4.5)), "'format' must be a string"),
    Case("qd-format-strings", "custom", _qd(lambda n: set_attr(n, "format", ["mxfp4"])), "'format' must be a string"),
    Case("qd-format-unknown", "custom", _qd(lambda n: set_attr(n, "format", "mxfp5")), "node qd .*unknown format"),
    Case("qd-format-empty", "custom", _qd(lambda n: set_attr(n, "format", "")), "node qd .*unknown format"),
    Case("qd-format-not-utf8", "custom", _qd(lambda n: set_attr(n, "format", b"\xff\xfe")), "not UTF-8"),
    Case("qd-format-huge", "custom", _qd(lambda n: set_attr(n, "format", "x" * 100_000)), "unknown format"),
    Case("qd-rounding-up", "custom", _qd(lambda n: set_attr(n, "rounding", "up")), "rounding must be one of"),
    Case("qd-rounding-int", "custom", _qd(lambda n: set_attr(n, "rounding", 1)), "'rounding' must be a string"),
    Case("qd-scale-rule-ceil", "custom", _qd(lambda n: set_attr(n, "scale_rule", "ceil")), "scale_rule"),
    Case("qd-saturate-7", "custom", _qd(lambda n: set_attr(n, "saturate", 7)), "'saturate' is 7"),
    Case("qd-saturate-string", "custom", _qd(lambda n: set_attr(n, "saturate", "yes")), "'saturate' must be an int"),
    Case("qd-variant-for-mxfp4", "custom", _qd(lambda n: set_attr(n, "variant", "amct")), "unknown option"),
    Case("qd-variant-int", "custom", _qd(lambda n: set_attr(n, "variant", 3)), "'variant' must be a string"),
    Case("qd-group-for-mxfp4", "custom", _qd(lambda n: set_attr(n, "group", 32)), "unknown option"),
    Case("qd-group-negative", "custom",
         mutated(lambda: quant_dequant(format="int4sym", group=32), lambda m: set_attr(node(m, "qd"), "group", -32)),
         "group"),
    Case("qd-hif4-variant-bad", "custom",
         mutated(lambda: quant_dequant(format="hif4"), lambda m: set_attr(node(m, "qd"), "variant", "x")), "variant"),
    Case("qd-unknown-attribute", "custom", _qd(lambda n: set_attr(n, "bogus", 1)), "unknown attribute 'bogus'"),
    Case("qd-attribute-twice", "custom", _qd(lambda n: n.attribute.append(helper.make_attribute("format", "hif8"))),
         "'format' is given twice"),
    Case("qd-two-inputs", "custom", _qd(lambda n: n.input.append("x")), "2 inputs"),
    Case("qd-no-inputs", "custom", _qd(lambda n: n.ClearField("input")), "required input 'X' is missing"),
    Case("qd-empty-input", "custom", _qd(lambda n: n.input.__setitem__(0, "")), "required input 'X' is missing"),
    Case("qd-two-outputs", "custom", _qd(lambda n: n.output.append("y2")), "2 outputs"),
    Case("qd-int-input", "custom",
         lambda d: save(d, make_model([helper.make_node("QuantDequant", ["x"], ["y"], name="qd", domain="npuq",
                                                        **QD_ATTRS)], inputs=(("x", TensorProto.INT64, [2, 64]),),
                                      opsets=(("", 21), ("npuq", 1)), attach=False)),
         "input 'X' .* is TensorProto.INT64"),
    Case("npuq-unknown-op", "custom", _qd(lambda n: setattr(n, "op_type", "Frobnicate")),
         "'Frobnicate' is not an op of the npuq domain"),
    Case("quantize-nvfp4", "custom",
         _qd(lambda n: (setattr(n, "op_type", "Quantize"), set_attr(n, "format", "nvfp4"), n.output.append("sc"))),
         "two-level"),
    Case("quantize-format-missing", "custom",
         _qd(lambda n: (setattr(n, "op_type", "Quantize"), drop_attr(n, "format"), n.output.append("sc"))),
         "'format'.*missing"),
    # npuq::Dequantize: attributes and packed byte counts
    Case("dq-format-missing", "custom", _dq(lambda m, n: drop_attr(n, "format")), r"node dq .*'format'.*missing"),
    Case("dq-block-missing", "custom", _dq(lambda m, n: drop_attr(n, "block")), "'block'.*missing"),
    Case("dq-length-missing", "custom", _dq(lambda m, n: drop_attr(n, "length")), "'length'.*missing"),
    Case("dq-format-int", "custom", _dq(lambda m, n: set_attr(n, "format", 7)), "'format' must be a string"),
    Case("dq-format-unknown", "custom", _dq(lambda m, n: set_attr(n, "format", "fp3")), "unknown format 'fp3'"),
    Case("dq-block-string", "custom", _dq(lambda m, n: set_attr(n, "block", "32")), "'block' must be an int"),
    Case("dq-length-0", "custom", _dq(lambda m, n: set_attr(n, "length", 0)), "length 0"),
    Case("dq-length-negative", "custom", _dq(lambda m, n: set_attr(n, "length", -64)), "length -64"),
    Case("dq-length-huge", "custom", _dq(lambda m, n: set_attr(n, "length", 2**40)), "codes .* bytes per row"),
    Case("dq-length-off-by-block", "custom", _dq(lambda m, n: set_attr(n, "length", 96)), "codes .* bytes per row"),
    Case("dq-block-16-for-mxfp4", "custom", _dq(lambda m, n: set_attr(n, "block", 16)), "blocks of 32"),
    Case("dq-block-0-for-mxfp4", "custom", _dq(lambda m, n: set_attr(n, "block", 0)), "blocks of 32"),
    Case("dq-int-block-negative", "custom", _dq(lambda m, n: set_attr(n, "block", -7), BASES["dequantize_int4"]),
         "block -7"),
    Case("dq-int-block-changed", "custom", _dq(lambda m, n: set_attr(n, "block", 8), BASES["dequantize_int4"]),
         "bytes per row"),
    Case("dq-codes-short", "custom", _dq(_shrink("codes", -1)), r"codes .* has 31 bytes per row.* packs 32"),
    Case("dq-codes-long", "custom", _dq(_shrink("codes", 3)), "codes .* has 35 bytes per row"),
    Case("dq-scales-short", "custom", _dq(_shrink("scales", -1)), "scales .* has 1 bytes per row.* packs 2"),
    Case("dq-scales-long", "custom", _dq(_shrink("scales", 1)), "scales .* has 3 bytes per row"),
    Case("dq-rows-differ", "custom", _dq(_shrink("scales", 0, -1)), "codes has 8 rows, scales 7"),
    Case("dq-codes-1d", "custom", _dq(lambda m, n: _replace_init("codes", _codes(m).reshape(-1))(m, n)),
         "packed rows are 2-D"),
    Case("dq-codes-3d", "custom", _dq(lambda m, n: _replace_init("codes", _codes(m).reshape(8, 2, 16))(m, n)),
         "packed rows are 2-D"),
    Case("dq-codes-float", "custom",
         _dq(lambda m, n: _replace_init("codes", _codes(m).astype(np.float32))(m, n)), "is TensorProto.FLOAT"),
    Case("dq-scales-int8", "custom",
         _dq(lambda m, n: _replace_init("scales", _scales(m).astype(np.int8))(m, n)), "is TensorProto.INT8"),
    Case("dq-hif8-codes-short", "custom", _dq(_shrink("codes", -2), BASES["dequantize_hif8"]), "68 bytes per row"),
    Case("dq-int4-scales-short", "custom", _dq(_shrink("scales", -4), BASES["dequantize_int4"]), "scales .*"),
    Case("dq-nvfp4-no-tensor-scale", "custom", _dq(lambda m, n: n.input.pop(), BASES["dequantize_nvfp4"]),
         "tensor_scale input is required"),
    Case("dq-nvfp4-tensor-scale-shape", "custom", _dq(_ts_shape, BASES["dequantize_nvfp4"]), "tensor_scale has shape"),
    Case("dq-mxfp4-with-tensor-scale", "custom", _dq(_add_tensor_scale), "has no tensor scale"),
    Case("dq-unknown-attribute", "custom", _dq(lambda m, n: set_attr(n, "rounding", "even")),
         "unknown attribute 'rounding'"),
    Case("dq-four-inputs", "custom", _dq(lambda m, n: (_add_tensor_scale(m, n), n.input.append("x"))), "4 inputs"),
    # npu ops
    Case("npu-quantize-dtype-missing", "custom", _nq(lambda n: drop_attr(n, "dtype")), "dtype is required"),
    Case("npu-quantize-dtype-99", "custom", _nq(lambda n: set_attr(n, "dtype", 99)), "dtype 99"),
    Case("npu-quantize-dtype-string", "custom", _nq(lambda n: set_attr(n, "dtype", "int8")),
         "'dtype' must be an int"),
    Case("npu-quantize-div-mode-5", "custom", _nq(lambda n: set_attr(n, "div_mode", 5)), "div_mode is 5"),
    Case("npu-quantize-axis-float", "custom", _nq(lambda n: set_attr(n, "axis", 1.0)), "'axis' must be an int"),
    Case("npu-quantize-unknown-attribute", "custom", _nq(lambda n: set_attr(n, "scale", 1.0)),
         "unknown attribute 'scale'"),
    Case("npu-quantize-int-input", "custom",
         lambda d: save(d, npu_op("NPUQuantize", ["s16"], {"dtype": 2}, _F16, TensorProto.INT64, attach=False)),
         "input 'input' .* is TensorProto.INT64"),
    Case("npu-quantize-no-scales", "custom", _nq(lambda n: n.input.__delitem__(slice(1, None))),
         "required input 'scales'"),
    Case("npu-unknown-op", "custom", _nq(lambda n: setattr(n, "op_type", "NPUFoo")),
         "'NPUFoo' is not an op of the npu domain"),
    Case("npu-dynamic-quant-dst-7", "custom", _npu_model("NPUDynamicQuant", [], {"dst_type": 7}, []), "dst_type 7"),
    Case("npu-wqbmm-group-negative", "custom",
         _npu_model("NPUWeightQuantBatchMatmulV2", ["w8", "as"], {"antiquant_group_size": -3}, _WQ),
         "antiquant_group_size is -3"),
    Case("npu-swiglu-quant-mode-9", "custom",
         _npu_model("NPUDequantSwigluQuant", ["wsc", "asc"], {"quant_mode": 9}, _SW, TensorProto.INT32),
         "quant_mode is 9"),
    Case("npu-swiglu-clamp-int", "custom",
         _npu_model("NPUDequantSwigluQuant", ["wsc", "asc"], {"clamp_limit": 7}, _SW, TensorProto.INT32),
         "'clamp_limit' must be a float"),
    Case("npu-swiglu-clamp-nan", "custom",
         _npu_model("NPUDequantSwigluQuant", ["wsc", "asc"], {"clamp_limit": float("nan")}, _SW, TensorProto.INT32),
         "clamp_limit must be a finite float"),
]


# ------------------------------------------------------------------ E. tensors and dimensions


def _raw(name, data: bytes):
    def fn(m):
        init(m, name).raw_data = data
    return fn


def _dims(name, dims):
    def fn(m):
        t = init(m, name)
        del t.dims[:]
        t.dims.extend(dims)
    return fn


def _typed_w(m):
    t = init(m, "w")
    t.ClearField("raw_data")
    t.float_data.extend([1.0] * 100)


def _constant_bad(m):
    t = numpy_helper.from_array(_w((2, 64)), "c")
    t.raw_data = t.raw_data[:-4]
    m.graph.node.insert(0, helper.make_node("Constant", [], ["c"], name="const", value=t))
    node(m, "add").input[1] = "c"


def _huge_input_model() -> onnx.ModelProto:
    """y = Relu(x) with x of 2^40 x 64: fine to check, no random test input for it."""
    return make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                      inputs=(("x", FP, [2**40, 64]),), outputs=(("y", FP, [2**40, 64]),))


def _zero_size_qd(m):
    """QuantDequant of a zero-size constant: fine for ONNX, nothing to quantize for compress."""
    m.graph.initializer.append(numpy_helper.from_array(np.zeros((0, 64), np.float32), "wz"))
    m.graph.node.insert(0, helper.make_node("QuantDequant", ["wz"], ["q"], name="qz", domain="npuq", **QD_ATTRS))
    m.graph.output.append(helper.make_tensor_value_info("q", FP, [0, 64]))
    functions.attach(m)


TENSOR_CASES = [
    Case("raw-data-short", "tensors", mutated(plain, _raw("w", bytes(100))), r"initializer 'w'.*need 512 bytes"),
    Case("raw-data-long", "tensors", mutated(plain, _raw("w", bytes(4096))), "raw_data holds 4.0 KiB"),
    Case("raw-data-empty", "tensors", mutated(plain, _raw("w", b"")), "holds 0"),
    Case("typed-data-count", "tensors", mutated(plain, _typed_w), "float_data holds 100"),
    Case("negative-dim", "tensors", mutated(plain, _dims("w", [-2, 64])), "negative dimension"),
    Case("dim-2-40", "tensors", mutated(plain, _dims("w", [2**40, 64])), "need 256.0 TiB"),
    Case("dims-overflow-int64", "tensors", mutated(plain, _dims("w", [2**62, 2**62])), "need"),
    Case("undefined-data-type", "tensors", mutated(plain, lambda m: setattr(init(m, "w"), "data_type", 0)),
         "data type 0"),
    Case("data-type-999", "tensors", mutated(plain, lambda m: setattr(init(m, "w"), "data_type", 999)),
         "data type 999"),
    Case("string-raw-data", "tensors",
         mutated(plain, lambda m: setattr(init(m, "w"), "data_type", TensorProto.STRING)),
         "string tensor cannot have raw_data"),
    Case("constant-raw-data-short", "tensors", mutated(plain, _constant_bad),
         r"node const \(Constant\) attribute 'value'.*raw_data"),
    Case("uint8-codes-wrong-size", "tensors",
         mutated(dequantize, lambda m: setattr(init(m, "codes"), "raw_data", bytes(10))), "initializer 'codes'"),
    Case("input-dim-2-40", "tensors", lambda d: save(d, _huge_input_model()), "too many for a random test input",
         tools=("passes",)),
    Case("zero-size-qd-weight", "tensors", mutated(quant_dequant, _zero_size_qd), "empty tensor",
         tools=("passes",)),
]


# ------------------------------------------------------------------ F. external data


def external(locations: dict[str, str] | None = None, entries: dict[str, dict] | None = None,
             files: dict[str, bytes] | None = None, links: dict[str, str] | None = None, base=plain):
    """A builder: `base` with initializer w (512 bytes) in external data. By default w is in
    w.bin (a 512-byte file next to the model); `entries` overrides the key/values of w's
    external_data, `files` adds files (relative to the model's folder), `links` adds
    symlinks (name -> target, relative targets resolved from the model's folder)."""
    def build(folder: Path) -> Path:
        m = base()
        t = init(m, "w")
        data = t.raw_data
        (folder / "w.bin").write_bytes(data)
        for name, content in (files or {}).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(content)
        for name, target in (links or {}).items():
            (folder / name).symlink_to(target)
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        kv = {"location": "w.bin", "offset": "0", "length": str(len(data))}
        kv.update((entries or {}).get("w", {}))
        for k, v in kv.items():
            if v is not None:
                t.external_data.add(key=k, value=v)
        return save(folder, m)
    return build


def _ext(**kv):
    return external(entries={"w": kv})


def _external_in_constant(folder: Path) -> Path:
    m = plain()
    t = numpy_helper.from_array(_w((2, 64)), "c")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", f"../outside/{SECRET}"), ("offset", "0"), ("length", "512")):
        t.external_data.add(key=k, value=v)
    m.graph.node.insert(0, helper.make_node("Constant", [], ["c"], name="const", value=t))
    node(m, "add").input[1] = "c"
    return save(folder, m)


def _external_in_subgraph(folder: Path) -> Path:
    m = plain()
    t = numpy_helper.from_array(_w((2, 64)), "sw")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value=f"../outside/{SECRET}")
    then = helper.make_graph([helper.make_node("Identity", ["sw"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", FP, [2, 64])], initializer=[t])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", FP, [2, 64])])
    m.graph.initializer.append(numpy_helper.from_array(np.array(True), "cond"))
    m.graph.node.append(helper.make_node("If", ["cond"], ["z"], name="if", then_branch=then, else_branch=other))
    m.graph.output.append(helper.make_tensor_value_info("z", FP, [2, 64]))
    return save(folder, m)


def _external_huge(folder: Path) -> Path:
    build = external(entries={"w": {"length": str(2**42)}})
    path = build(folder)
    m = onnx.load(path, load_external_data=False)
    t = init(m, "w")
    del t.dims[:]
    t.dims.extend([2**40, 4])
    return save(folder, m)


def _retype(m, name, data_type):
    init(m, name).data_type = data_type
    return m


def _duplicate_key(folder: Path) -> Path:
    path = external()(folder)
    m = onnx.load(path, load_external_data=False)
    init(m, "w").external_data.add(key="location", value=OUTSIDE)
    return save(folder, m)


OUTSIDE = f"../outside/{SECRET}"
EXTERNAL_CASES = [
    Case("ext-dotdot", "external", _ext(location=OUTSIDE), r"contains '\.\.'"),
    Case("ext-dotdot-deep", "external", _ext(location="../../../../../../etc/passwd"), r"contains '\.\.'"),
    Case("ext-dotdot-inner", "external", _ext(location="sub/../../outside/secret.bin"), r"contains '\.\.'"),
    Case("ext-dotdot-backslash", "external", _ext(location="..\\outside\\secret.bin"), r"contains '\.\.'"),
    Case("ext-absolute-secret", "external", lambda d: _ext(location=str(d.parent / "outside" / SECRET))(d),
         "is an absolute path"),
    Case("ext-absolute-etc", "external", _ext(location="/etc/passwd"), "is an absolute path"),
    Case("ext-windows-drive", "external", _ext(location="C:\\Windows\\win.ini"), "is an absolute path"),
    Case("ext-unc", "external", _ext(location="\\\\server\\share\\x"), "is an absolute path"),
    Case("ext-symlink-out", "external",
         external(entries={"w": {"location": "link.bin"}}, links={"link.bin": OUTSIDE}),
         "resolves .*outside the model's folder"),
    Case("ext-symlink-absolute", "external",
         lambda d: external(entries={"w": {"location": "link.bin"}},
                            links={"link.bin": str(d.parent / "outside" / SECRET)})(d),
         "resolves .*outside the model's folder"),
    Case("ext-symlinked-dir-out", "external",
         external(entries={"w": {"location": f"linkdir/{SECRET}"}}, links={"linkdir": "../outside"}),
         "resolves .*outside the model's folder"),
    Case("ext-symlink-chain-out", "external",
         external(entries={"w": {"location": "a.bin"}}, links={"a.bin": "b.bin", "b.bin": OUTSIDE}),
         "resolves .*outside the model's folder"),
    Case("ext-folder-itself", "external", _ext(location="."), "is the model's folder itself"),
    Case("ext-empty-location", "external", _ext(location=""), "without a location"),
    Case("ext-no-location", "external", _ext(location=None), "without a location"),
    Case("ext-nul-in-location", "external", _ext(location="w.bin\0../x"), "NUL"),
    Case("ext-missing-file", "external", _ext(location="nope.bin"), "(?i)no such file"),
    Case("ext-tilde", "external", _ext(location="~/.bashrc"), "(?i)no such file"),
    Case("ext-directory", "external", external(entries={"w": {"location": "sub"}}, files={"sub/x": b""}),
         "not a regular file"),
    Case("ext-fifo", "external",
         lambda d: (os.mkfifo(d / "pipe"), _ext(location="pipe")(d))[1], "not a regular file"),
    Case("ext-dev-zero-link", "external", external(entries={"w": {"location": "z"}}, links={"z": "/dev/zero"}),
         "outside the model's folder"),
    Case("ext-offset-past-end", "external", _ext(offset="4096"), "offset 4096 is past the end"),
    Case("ext-length-past-end", "external", _ext(length="4096"), r"offset 0 \+ length 4096 is past the end"),
    Case("ext-offset-plus-length", "external", _ext(offset="256"), r"offset 256 \+ length 512 is past the end"),
    Case("ext-negative-offset", "external", _ext(offset="-512"), "offset -512 is negative"),
    Case("ext-negative-length", "external", _ext(length="-1"), "length -1 is negative"),
    Case("ext-offset-not-int", "external", _ext(offset="abc"), "offset 'abc' is not an integer"),
    Case("ext-length-float", "external", _ext(length="5.12e2"), "length '5.12e2' is not an integer"),
    Case("ext-length-short", "external", _ext(length="256"), "need 512 bytes.* has 256 bytes"),
    Case("ext-length-missing-short-file", "external",
         external(entries={"w": {"location": "short.bin", "length": None}}, files={"short.bin": bytes(100)}),
         "has 100 bytes"),
    Case("ext-duplicate-key", "external", lambda d: _duplicate_key(d), "'location' is given twice"),
    Case("ext-unknown-key", "external", _ext(basepath="/"), "unknown external data key 'basepath'"),
    Case("ext-huge-dims", "external", _external_huge, "past the end"),
    Case("ext-in-constant", "external", _external_in_constant, r"node const \(Constant\).*contains '\.\.'"),
    Case("ext-in-subgraph", "external", _external_in_subgraph, r"subgraph 'then'.*contains '\.\.'"),
    Case("ext-string-tensor", "external",
         external(base=lambda: _retype(plain(), "w", TensorProto.STRING)), "string tensor cannot have external data"),
]


MODEL_CASES = FILE_CASES + VERSION_CASES + GRAPH_CASES + CUSTOM_CASES + TENSOR_CASES + EXTERNAL_CASES


# ------------------------------------------------------------------ G. recipes


def _text(text: str):
    def build(folder: Path) -> Path:
        path = folder / "recipe.yaml"
        path.write_text(text)
        return path
    return build


def _bytes(data: bytes):
    def build(folder: Path) -> Path:
        path = folder / "recipe.yaml"
        path.write_bytes(data)
        return path
    return build


def _laughs(levels: int = 9, width: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    lines.append(f"exclude: *a{levels}")
    return "\n".join(lines) + "\n"


def _laughs_mapping() -> str:
    lines = ["x0: &x0 {weights: mxfp4}"]
    for i in range(1, 10):
        lines.append(f"x{i}: &x{i} {{{', '.join(f'k{j}: *x{i - 1}' for j in range(9))}}}")
    lines.append("default: *x9")
    return "\n".join(lines) + "\n"


def _recipe_dir(folder: Path) -> Path:
    path = folder / "recipe.yaml"
    path.mkdir()
    return path


def _recipe_fifo(folder: Path) -> Path:
    path = folder / "recipe.yaml"
    os.mkfifo(path)
    return path


RECIPE_CASES = [
    Case("yaml-unclosed-bracket", "recipe", _text("rules:\n  - match: [a, b\n    weights: hif4\n"), "invalid YAML"),
    Case("yaml-bad-indent", "recipe", _text("default: {weights: mxfp4}\n  rules: x: y\n"), "invalid YAML"),
    Case("yaml-tab", "recipe", _text("default:\n\tweights: mxfp4\n"), "invalid YAML"),
    Case("yaml-two-documents", "recipe", _text("default: {}\n---\nrules: []\n"), "invalid YAML"),
    Case("yaml-unknown-alias", "recipe", _text("default: *nothing\n"), "invalid YAML"),
    Case("yaml-python-tag", "recipe", _text("default: !!python/object/apply:os.system ['echo pwned']\n"),
         "invalid YAML"),
    Case("yaml-python-name", "recipe", _text("rules: !!python/name:os.system\n"), "invalid YAML"),
    Case("yaml-unhashable-key", "recipe", _text("? [a, b]\n: 1\n"), "invalid YAML"),
    Case("not-utf8", "recipe", _bytes(b"default:\n  weights: \xff\xfe\n"), "not UTF-8"),
    Case("binary-garbage", "recipe", _bytes(_garbage(11, 512)), "recipe"),
    Case("nul-bytes", "recipe", _bytes(b"default: {weights: mxfp4}\0\0\n"), "invalid YAML"),
    Case("top-level-list", "recipe", _text("- a\n- b\n"), "a recipe is a YAML mapping"),
    Case("top-level-string", "recipe", _text("mxfp4\n"), "a recipe is a YAML mapping"),
    Case("top-level-int", "recipe", _text("42\n"), "a recipe is a YAML mapping"),
    Case("unknown-top-key", "recipe", _text("defaults: {weights: mxfp4}\n"), "unknown key.*'defaults'"),
    Case("default-list", "recipe", _text("default: [mxfp4]\n"), "default: expected a mapping"),
    Case("default-string", "recipe", _text("default: mxfp4\n"), "default: expected a mapping"),
    Case("default-empty-list", "recipe", _text("default: []\n"), "default: expected a mapping"),
    Case("default-zero", "recipe", _text("default: 0\n"), "default: expected a mapping"),
    Case("default-unknown-key", "recipe", _text("default: {weight: mxfp4}\n"), "unknown key.*'weight'"),
    Case("weights-int", "recipe", _text("default: {weights: 4}\n"), "name or a dict"),
    Case("weights-list", "recipe", _text("default: {weights: [mxfp4]}\n"), "name or a dict"),
    Case("weights-no-format", "recipe", _text("default: {weights: {rounding: even}}\n"), "no 'format' key"),
    Case("weights-unknown-format", "recipe", _text("default: {weights: mxfp9}\n"), "unknown format 'mxfp9'"),
    Case("weights-format-list", "recipe", _text("default: {weights: {format: [mxfp4]}}\n"), "must be a string"),
    Case("weights-unknown-option", "recipe", _text("default: {weights: {format: mxfp4, round: even}}\n"),
         "unknown option"),
    Case("weights-bad-rounding", "recipe", _text("default: {weights: {format: mxfp4, rounding: up}}\n"),
         "rounding must be one of"),
    Case("weights-rounding-list", "recipe", _text("default: {weights: {format: mxfp4, rounding: [1, 2]}}\n"),
         "rounding"),
    Case("weights-group-negative", "recipe", _text("default: {weights: {format: int4sym, group: -3}}\n"), "group"),
    Case("weights-group-float", "recipe", _text("default: {weights: {format: int4sym, group: 1.5}}\n"), "group"),
    Case("weights-group-huge", "recipe", _text("default: {weights: {format: int4sym, group: 1e400}}\n"), "group"),
    Case("weights-option-int-key", "recipe", _text("default: {weights: {format: mxfp4, 1: 2}}\n"),
         "option names must be strings"),
    Case("weights-option-null-key", "recipe", _text("default: {weights: {format: mxfp4, ~: 2}}\n"),
         "option names must be strings"),
    Case("activations-unknown", "recipe", _text("default: {activations: fp3}\n"), "unknown format 'fp3'"),
    Case("rules-mapping", "recipe", _text("rules: {match: a}\n"), "rules: expected a list"),
    Case("rules-string", "recipe", _text("rules: a\n"), "rules: expected a list"),
    Case("rule-not-mapping", "recipe", _text("rules: [a]\n"), r"rules\[0\]: expected a mapping"),
    Case("rule-no-match", "recipe", _text("rules: [{weights: mxfp4}]\n"), "missing 'match'"),
    Case("rule-match-int", "recipe", _text("rules: [{match: 3}]\n"), "expected a glob"),
    Case("rule-match-list-int", "recipe", _text("rules: [{match: [a, 3]}]\n"), "expected a glob"),
    Case("rule-unknown-key", "recipe", _text("rules: [{match: a, wieghts: mxfp4}]\n"), "unknown key.*'wieghts'"),
    Case("rule-bad-format", "recipe", _text("rules: [{match: '*', weights: hif5}]\n"), r"rules\[0\].*'hif5'"),
    Case("exclude-int", "recipe", _text("exclude: 3\n"), "exclude: expected a glob"),
    Case("exclude-mapping", "recipe", _text("exclude: {a: b}\n"), "exclude: expected a glob"),
    Case("billion-laughs", "recipe", _text(_laughs()), "alias"),
    Case("billion-laughs-mapping", "recipe", _text(_laughs_mapping()), "alias"),
    Case("laughs-in-rules", "recipe",
         _text(_laughs().replace("exclude: *a9", "rules: [{match: *a9}]")), "alias"),
    Case("recursive-alias", "recipe", _text("exclude: &a [*a]\n"), "recursive YAML alias"),
    Case("recursive-mapping", "recipe", _text("default: &d {weights: *d}\n"), "recursive YAML alias"),
    Case("deep-nesting", "recipe", _text("exclude: " + "[" * 5000 + "]" * 5000 + "\n"), "nested"),
    Case("deep-block-nesting", "recipe",
         _text("default:\n" + "".join("  " * (i + 1) + "a:\n" for i in range(300)) + "  " * 301 + "b\n"), "nested"),
    Case("deep-mapping", "recipe", _text("default: " + "{a: " * 200 + "b" + "}" * 200 + "\n"), "nested"),
    Case("huge-file", "recipe", _text("# " + "x" * (2 << 20) + "\n"), "limit"),
    Case("huge-exclude-list", "recipe", _text("exclude: [" + ", ".join(["a"] * 10_001) + "]\n"), "nodes"),
    Case("recipe-directory", "recipe", _recipe_dir, "recipe.yaml"),
    Case("recipe-fifo", "recipe", _recipe_fifo, "recipe.yaml"),
    Case("recipe-missing-file", "recipe", lambda d: d / "recipe.yaml", "recipe.yaml"),
]


# ------------------------------------------------------------------ H. example inputs (export --input)

# (id, --input value, message): parsed by onnx_npuq.cli.models.parse_inputs
INPUT_SPECS = [
    ("example-input-dim-2-40", "x:1099511627776,64", "more than an example input may have"),
    ("example-input-product-huge", "x:65536,65536,64", "more than an example input may have"),
    ("example-input-dim-zero", "x:0,64", "positive integers"),
    ("example-input-dim-negative", "x:-2,64", "positive integers"),
    ("example-input-dim-word", "x:two,64", "positive integers"),
    ("example-input-dim-float", "x:2.5,64", "positive integers"),
    ("example-input-no-dims", "x:", "positive integers"),
    ("example-input-no-colon", "x", "expected NAME:D1,D2"),
    ("example-input-too-many-parts", "x:2,64:float32:extra", "expected NAME:D1,D2"),
    ("example-input-dtype-unknown", "x:2,64:float128", "dtype must be one of"),
    ("example-input-dtype-int3", "x:2,64:int3", "dtype must be one of"),
    ("example-input-dim-unicode-digit", "x:\u0662,64", "positive integers"),
]


# ------------------------------------------------------------------ I. `run --inputs` files


def _npz(arrays: dict) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npy(array) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


_GOOD_NPZ = _npz({"x": np.ones((2, 4), np.float32)})

# (id, bytes of inputs.npz, message)
NPZ_FILES = [
    ("npz-empty", b"", "not a readable .npz"),
    ("npz-truncated", _GOOD_NPZ[: len(_GOOD_NPZ) // 2], "not a readable .npz"),
    ("npz-garbage", _garbage(21, 300), "not a readable .npz"),
    ("npz-pickle", b"\x80\x04\x95" + _garbage(22, 40), "not a readable .npz"),
    ("npz-object-array", _npz({"x": np.array([{"a": 1}], dtype=object)}), "not a readable .npz"),
    ("npz-single-npy", _npy(np.ones(3)), "a single array"),
    ("npz-wrong-names", _npz({"nope": np.ones((2, 4), np.float32)}), "the model's inputs are"),
    ("npz-corrupt-member", _GOOD_NPZ.replace(b"NUMPY", b"NUMPZ"), "not a readable .npz"),
]


# ------------------------------------------------------------------ J. MODEL specs (export, verify)

# A case's build writes what the spec needs into the folder and returns the spec (a str); the
# folder is on sys.path, so `npuq_fuzz_NAME:factory` imports <folder>/npuq_fuzz_NAME.py.
SPEC_MODULE = "npuq_fuzz_"
_LINEAR = "import torch\n\n\ndef model():\n    return torch.nn.Linear(4, 4)\n"


def _spec_file(source: str | bytes, factory: str | None = None, name: str = "user_model.py"):
    """A builder: source as <folder>/name; the spec is that path (with :factory if given)."""
    def build(folder: Path) -> str:
        path = folder / name
        path.write_bytes(source if isinstance(source, bytes) else source.encode())
        return f"{path}:{factory}" if factory else str(path)
    return build


def _spec_module(name: str, source: str, factory: str = "model"):
    """A builder: source as <folder>/npuq_fuzz_<name>.py; the spec is npuq_fuzz_<name>:factory."""
    def build(folder: Path) -> str:
        (folder / f"{SPEC_MODULE}{name}.py").write_text(source)
        return f"{SPEC_MODULE}{name}:{factory}"
    return build


def _spec_factory(body: str):
    """A builder: a file whose model() runs body (torch and sys imported)."""
    indented = "".join(f"    {line}\n" for line in body.splitlines())
    return _spec_file(f"import sys\n\nimport torch\n\n\ndef model():\n{indented}")


def _spec_special(make: Callable[[Path], None], name: str = "user_model.py"):
    """A builder: make(<folder>/name) creates something that is not a readable file there."""
    def build(folder: Path) -> str:
        make(folder / name)
        return str(folder / name)
    return build


SPEC = ("load_model", "export", "verify")
SPEC_CASES = [Case(cid, "model-spec", build, match, SPEC) for cid, build, match in [
    # the module does not import
    ("spec-missing-module", lambda d: f"{SPEC_MODULE}nosuchmod:model",
     f"importing '{SPEC_MODULE}nosuchmod' raised ModuleNotFoundError: No module named '{SPEC_MODULE}nosuchmod'"),
    ("spec-missing-package", lambda d: f"{SPEC_MODULE}nopkg.sub:model", f"No module named '{SPEC_MODULE}nopkg'"),
    ("spec-module-missing-dependency", _spec_module("needs_dep", f"import {SPEC_MODULE}not_installed\n"),
     f"importing '{SPEC_MODULE}needs_dep' raised ModuleNotFoundError: No module named '{SPEC_MODULE}not_installed'"),
    ("spec-file-missing-dependency", _spec_file(f"import {SPEC_MODULE}not_installed\n" + _LINEAR),
     rf"importing '.*user_model\.py' raised ModuleNotFoundError: No module named '{SPEC_MODULE}not_installed'"),
    ("spec-module-import-name-error", _spec_module("bad_from", "from torch import npuq_no_such_name\n"),
     "ImportError: cannot import name 'npuq_no_such_name'"),
    ("spec-module-raises-at-import", _spec_module("raises", 'raise RuntimeError("top-level boom")\n'),
     f"importing '{SPEC_MODULE}raises' raised RuntimeError: top-level boom"),
    ("spec-file-raises-at-import", _spec_file('raise RuntimeError("top-level boom")\n'),
     r"importing '.*user_model\.py' raised RuntimeError: top-level boom"),
    ("spec-file-exits-at-import", _spec_file("import sys\nsys.exit(3)\n"), r"raised SystemExit\(3\)"),
    ("spec-module-exits-at-import", _spec_module("exits", "raise SystemExit\n"), r"raised SystemExit\(None\)"),
    ("spec-file-name-error-at-import", _spec_file("model = undefined_name\n"),
     "NameError: name 'undefined_name' is not defined"),
    ("spec-file-multiline-error", _spec_file('raise ValueError("first line\\nsecond line")\n'),
     "ValueError: first line second line$"),
    ("spec-file-huge-error", _spec_file('raise ValueError("x" * 1_000_000)\n'), r"ValueError: x+ \.\.\.$"),
    # the source does not compile: the file and the line
    ("spec-file-syntax-error", _spec_file("import torch\ndef model(:\n    pass\n"),
     r"SyntaxError in /.*user_model\.py line 2: invalid syntax"),
    ("spec-file-indentation-error", _spec_file("def model():\nreturn 1\n"),
     r"IndentationError in /.*user_model\.py line 2: expected an indented block"),
    ("spec-module-syntax-error", _spec_module("syntax", "import torch\n\n\ndef model(:\n"),
     rf"SyntaxError in /.*{SPEC_MODULE}syntax\.py line 4"),
    ("spec-file-not-utf8", _spec_file(b'x = "\xff\xfe"\n'), r"SyntaxError in /.*user_model\.py line 1: .*utf-8"),
    ("spec-file-nul-bytes", _spec_file(b"x = 1\n\0\n"),
     r"importing '.*user_model\.py' raised SyntaxError: .*null bytes"),
    ("spec-file-binary-garbage", _spec_file(_garbage(31, 300)), r"importing '.*user_model\.py' raised SyntaxError"),
    # no file
    ("spec-file-missing", lambda d: str(d / "missing.py"), r"no such file: /.*missing\.py$"),
    ("spec-file-missing-with-factory", lambda d: f"{d / 'missing.py'}:model", r"no such file: /.*missing\.py$"),
    ("spec-file-dangling-symlink", _spec_special(lambda p: p.symlink_to("/nonexistent/user_model.py")),
     "no such file"),
    ("spec-file-directory", _spec_special(Path.mkdir), r"user_model\.py is not a file"),
    ("spec-file-fifo", _spec_special(os.mkfifo), r"user_model\.py is not a file"),
    # the factory raises (the exception's type and message)
    ("spec-factory-raises", _spec_factory('raise RuntimeError("factory boom")'),
     r"user_model\.py:model\(\) raised RuntimeError: factory boom"),
    ("spec-factory-raises-empty", _spec_factory("raise RuntimeError"), r"model\(\) raised RuntimeError$"),
    ("spec-factory-raises-keyerror", _spec_factory('raise KeyError("weights")'), "raised KeyError: 'weights'"),
    ("spec-factory-raises-oserror", _spec_factory('open("/nonexistent/npuq/weights.bin")'),
     r"raised FileNotFoundError: .*/nonexistent/npuq/weights\.bin"),
    ("spec-factory-raises-import-error", _spec_factory(f"import {SPEC_MODULE}not_installed"),
     rf"model\(\) raised ModuleNotFoundError: No module named '{SPEC_MODULE}not_installed'"),
    ("spec-factory-exits", _spec_factory('sys.exit("bye")'), r"model\(\) raised SystemExit\('bye'\)"),
    ("spec-factory-needs-argument", _spec_file("def model(size):\n    return size\n"),
     r"raised TypeError: model\(\) missing 1 required positional argument"),
    ("spec-factory-recursion", _spec_factory("return model()"), "raised RecursionError"),
    ("spec-factory-class-needs-arguments", _spec_file("import torch\nmodel = torch.nn.Linear\n"),
     r"model\(\) raised TypeError: .*missing 2 required positional arguments"),
    ("spec-module-factory-raises", _spec_module("factory_raises", 'def build():\n    raise ValueError("bad config")\n',
                                                "build"),
     rf"{SPEC_MODULE}factory_raises:build\(\) raised ValueError: bad config"),
    # the factory returns no nn.Module
    ("spec-returns-none", _spec_factory("pass"), r"model\(\) returned NoneType, not a torch\.nn\.Module"),
    ("spec-returns-int", _spec_factory("return 3"), "returned int, not a torch.nn.Module"),
    ("spec-returns-tuple-first-not-module", _spec_factory("return 3, (torch.zeros(2, 4),)"),
     "returned a tuple whose first item is int, not a torch.nn.Module"),
    ("spec-returns-tuple-first-tensor", _spec_factory("return torch.zeros(2, 4), torch.nn.Linear(4, 4)"),
     "returned a tuple whose first item is Tensor"),
    ("spec-returns-three-tuple", _spec_factory("return torch.nn.Linear(4, 4), torch.zeros(2, 4), 0"),
     "returned tuple, not a torch.nn.Module"),
    ("spec-returns-class", _spec_factory("return torch.nn.Linear"), "returned type, not a torch.nn.Module"),
    ("spec-returns-state-dict", _spec_factory("return torch.nn.Linear(4, 4).state_dict()"),
     "returned OrderedDict, not a torch.nn.Module"),
    ("spec-module-returns-none", _spec_module("returns_none", "def model():\n    return None\n"),
     rf"{SPEC_MODULE}returns_none:model\(\) returned NoneType"),
    ("spec-stdlib-returns-str", lambda d: "os:getcwd", r"os:getcwd\(\) returned str"),
    # no such factory, or not callable
    ("spec-no-such-factory", _spec_file(_LINEAR, "nothing"), r"user_model\.py has no 'nothing'$"),
    ("spec-no-default-factory", _spec_file(_LINEAR.replace("def model", "def build")),
     r"user_model\.py has no 'model' \(the factory to call"),
    ("spec-module-no-such-factory", _spec_module("linear", _LINEAR, "nothing"),
     f"{SPEC_MODULE}linear has no 'nothing'$"),
    ("spec-factory-not-callable", _spec_file("model = 3\n"), r"user_model\.py:model is not callable \(int\)"),
    ("spec-module-attribute-not-callable", _spec_module("consts", 'WIDTH = "wide"\n', "WIDTH"),
     rf"{SPEC_MODULE}consts:WIDTH is not callable \(str\)"),
    ("spec-stdlib-attribute-not-callable", lambda d: "os:sep", r"os:sep is not callable \(str\)"),
    # not a spec at all
    ("spec-no-factory-not-py", lambda d: f"{SPEC_MODULE}pkg.mod", "unknown model: give a built-in name"),
    ("spec-builtin-typo", lambda d: "tiny-lama", "unknown model: give a built-in name"),
    ("spec-empty", lambda d: "", "unknown model"),
    ("spec-colon-only", lambda d: ":", "unknown model"),
    ("spec-empty-module-name", lambda d: ":model", "importing '' raised ValueError: Empty module name"),
    ("spec-relative-module", lambda d: f".{SPEC_MODULE}rel:model", "raised TypeError: .*relative import"),
]]
