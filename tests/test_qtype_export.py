"""quant_cy_npu-style models (QType, quant_dequant_float, quant_func in a forward) export to
ONNX: one npuq::QuantDequant per activation call, the weights a forward fake-quantizes stored
packed (npuq::Dequantize over uint8 codes and scales), a plain onnxruntime session computing
what torch computes; eagerly the calls never touch the custom op."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from conftest import FORMAT_CONFIGS, assert_same
from onnx_npuq import QType, formats, quant_dequant_float, quant_func
from onnx_npuq.exporter import export, to_onnx
from onnx_npuq.ops import functions
from onnx_npuq.ops.defs import overload_name
from onnx_npuq.passes import run_pass
from onnx_npuq.passes.compress import has_work
from onnx_npuq.runtime import OrtSession

FLOATS = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
QUANTIZED_AXIS = 64  # every quantized weight axis below: a whole number of blocks of every format


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def float_weights(model: onnx.ModelProto) -> list[str]:
    """Float initializers of more than one element (nvfp4's tensor scale is one)."""
    return [t.name for t in model.graph.initializer if t.data_type in FLOATS and np.prod(t.dims) > 1]


def ort_run(path, *inputs: torch.Tensor) -> list[torch.Tensor]:
    """A plain onnxruntime session on the saved file (float32 / float16 inputs)."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: x.numpy() for i, x in zip(sess.get_inputs(), inputs, strict=True)}
    return [torch.from_numpy(y) for y in sess.run(None, feeds)]


def randn(*shape, seed=0, scale=1.0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale


class Net(torch.nn.Module):
    """quant_cy_npu style: conv, linear and matmul with fake-quantized weights and activations,
    in one format. Each op reads the inputs directly (no quantized activation depends on a
    product), so torch and onnxruntime differ only in the products' rounding, never by a
    quantization step. `wide`: the linear and matmul weights' other axis (1 << 14: 2^20
    elements each, so the file is mostly weight bits)."""

    def __init__(self, fmt: str, wide: int = 64, fake_quant=quant_dequant_float):
        super().__init__()
        self.fmt, self.fake_quant = fmt, fake_quant
        self.conv = torch.nn.Parameter(randn(16, QUANTIZED_AXIS, 3, 3, seed=1, scale=0.05))  # along dim 1
        self.lin = torch.nn.Parameter(randn(wide, QUANTIZED_AXIS, seed=2, scale=0.1))  # (out, in): along -1
        self.mat = torch.nn.Parameter(randn(QUANTIZED_AXIS, wide, seed=3, scale=0.1))  # (K, N): along -2

    def forward(self, image, tokens):
        q, fq = QType(self.fmt), self.fake_quant
        conv = F.conv2d(fq(image, q.dim(1)), fq(self.conv, q.dim(1)), padding=1)  # NCHW along C
        t = fq(tokens, q.dim(-1))
        lin = F.linear(t, fq(self.lin, q.dim(-1)))
        mat = torch.matmul(t, fq(self.mat, q.dim(-2)))
        scores = torch.matmul(t, fq(tokens.transpose(-1, -2), q.dim(-2)))  # two activations
        return conv, lin, mat, scores


def net_inputs():
    return randn(2, QUANTIZED_AXIS, 5, 4, seed=4), randn(2, 6, QUANTIZED_AXIS, seed=5)


def weight_bits_bytes(model: Net) -> float:
    f = formats.get_format(model.fmt)
    return sum(w.numel() for w in model.parameters()) * f.bits_per_element(QUANTIZED_AXIS) / 8


# ------------------------------------------------------------------ the model, every format


@pytest.mark.parametrize("fmt", formats.names())
def test_net_exports_packed_and_runs_as_torch(fmt, tmp_path):
    model, args = Net(fmt, wide=1 << 14), net_inputs()
    path = tmp_path / "net.onnx"
    proto = quiet(export, model, args, path)
    counts = {op: ops(proto).count(op) for op in ("QuantDequant", "Dequantize")}
    assert counts == {"QuantDequant": 3, "Dequantize": 3}  # image, tokens, tokens^T; three weights
    assert float_weights(proto) == []
    # the packed bytes are the format's bits, and the file is little more
    packed = sum(len(t.raw_data) for t in proto.graph.initializer if t.data_type == onnx.TensorProto.UINT8)
    bits = weight_bits_bytes(model)
    assert packed == bits
    assert bits <= path.stat().st_size <= 1.05 * bits
    with torch.no_grad():
        want = model(*args)
    for name, w, g in zip(("conv", "linear", "matmul", "scores"), want, ort_run(path, *args), strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        err = (g - w).abs().max() / w.abs().max()
        assert err <= 1e-5, f"{fmt} {name}: relative error {err:.3g}"


def test_compress_false_and_quant_func():
    """compress=False keeps QuantDequant on the float weights; quant_func exports as
    quant_dequant_float; all three compute the same, bit for bit (decode(encode(w)) ==
    fake_quant(w))."""
    args = net_inputs()
    plain = quiet(to_onnx, Net("hif4"), args, compress=False)
    packed = quiet(to_onnx, Net("hif4"), args, keep_metadata=True)
    ste = quiet(to_onnx, Net("hif4", fake_quant=quant_func), args, keep_metadata=True)
    assert ops(plain).count("QuantDequant") == 6 and "Dequantize" not in ops(plain)
    kinds = {t.name: t.data_type for t in plain.graph.initializer}
    assert [kinds[n] for n in float_weights(plain)] == [onnx.TensorProto.FLOAT] * 3
    assert ops(packed).count("QuantDequant") == 3 and ops(packed).count("Dequantize") == 3
    assert ops(ste) == ops(packed) and ste.graph.initializer == packed.graph.initializer
    conv = next(n for n in packed.graph.node if n.op_type == "Conv")  # keep_metadata survives the pass
    assert any(e.key == "pkg.torch.onnx.name_scopes" for e in conv.metadata_props)
    want = OrtSession(plain).run(*args)
    for model in (packed, ste):
        for a, b in zip(want, OrtSession(model).run(*args), strict=True):
            assert torch.equal(a, b)


def test_nothing_to_pack_leaves_the_export_as_torch_gave_it(monkeypatch):
    from onnx_npuq import exporter

    class Act(torch.nn.Module):
        def forward(self, x):
            return quant_dequant_float(x, QType("mxfp4").dim(1)) * 2

    monkeypatch.setattr(exporter, "_compress", lambda *a, **k: pytest.fail("compress ran"))
    x = randn(3, 64, 2)
    proto = quiet(to_onnx, Act(), (x,))
    assert not has_work(proto)
    assert ops(proto) == ["Transpose", "QuantDequant", "Transpose", "Mul"]  # the axis moves, as standard ops
    assert_same(OrtSession(proto).run(x)[0], formats.fake_quant(x, "mxfp4", 1) * 2)


# ------------------------------------------------------------------ fake-quant bit-exact


class EveryConfig(torch.nn.Module):
    """One output per format configuration and axis: the activation fake-quantized, then a
    weight of the model's dtype fake-quantized (packed in the export)."""

    AXES = (1, -2, -1, 0, 2, -3)

    def __init__(self, dtype, configs):
        super().__init__()
        self.configs = configs
        binades = torch.randint(-8, 8, (6, 1, 1), generator=torch.Generator().manual_seed(6))
        w = randn(6, 64, 5, seed=7) * torch.exp2(binades.float())
        w[1] = 0.0
        self.w = torch.nn.Parameter(w.to(dtype))

    def forward(self, x):
        out = []
        for i, (name, opts) in enumerate(self.configs):
            q = QType(name, **opts)
            out.append(quant_dequant_float(x, q.dim(self.AXES[i % 6])))
            out.append(quant_dequant_float(self.w, q.dim(self.AXES[(i + 3) % 6])))
        return tuple(out)


def hard_input(dtype):
    """Values over 16 binades, an all-zero slice, NaN, +-Inf."""
    binades = torch.randint(-8, 8, (3, 1, 5), generator=torch.Generator().manual_seed(9))
    x = randn(3, 64, 5, seed=8) * torch.exp2(binades.float())
    x[0, :, 1] = 0.0
    x[1, 3, 2] = float("nan")
    x[2, 10, 0] = float("inf")
    x[2, 11, 4] = -float("inf")
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_every_config_fake_quant_is_bit_exact_in_onnxruntime(dtype):
    """Every option configuration in float32; every format in the half types."""
    configs = FORMAT_CONFIGS if dtype == torch.float32 else [(name, {}) for name in formats.names()]
    model, x = EveryConfig(dtype, configs), hard_input(dtype)
    proto = quiet(to_onnx, model, (x,))
    n = len(configs)
    assert ops(proto).count("QuantDequant") == n and ops(proto).count("Dequantize") == n
    assert float_weights(proto) == []
    # each node names its configuration (format and options) in its overload
    overloads = sorted(n.overload for n in proto.graph.node if n.op_type == "QuantDequant")
    assert overloads == sorted(overload_name(formats.get_format(name, **opts)) for name, opts in configs)
    got = OrtSession(proto).run(x)
    for i, (name, opts) in enumerate(configs):
        f = formats.get_format(name, **opts)
        assert_same(got[2 * i], f.fake_quant(x, EveryConfig.AXES[i % 6]), f"{name} {opts} activation")
        assert_same(got[2 * i + 1], f.fake_quant(model.w.detach(), EveryConfig.AXES[(i + 3) % 6]),
                    f"{name} {opts} weight")


class Ranks(torch.nn.Module):
    """Every axis of rank 3, 4 and 5 inputs, positive and negative, the formats in turn; and
    weights of those ranks along negative axes."""

    def __init__(self):
        super().__init__()
        self.w3, self.w4, self.w5 = (torch.nn.Parameter(randn(*s, seed=i)) for i, s in
                                     enumerate([(3, 64, 4), (2, 3, 64, 4), (2, 2, 3, 4, 32)]))

    def forward(self, x3, x4, x5):
        names, out = formats.names(), []
        for x in (x3, x4, x5):
            for axis in range(-x.dim(), x.dim()):
                out.append(quant_dequant_float(x, QType(names[len(out) % 12]).dim(axis)))
        for w, axis in ((self.w3, -2), (self.w4, -2), (self.w5, -1)):
            out.append(quant_dequant_float(w, QType(names[len(out) % 12]).dim(axis)))
        return tuple(out)


def test_ranks_3_4_5_and_negative_axes():
    model = Ranks()
    args = (randn(3, 64, 4, seed=10), randn(2, 3, 64, 4, seed=11), randn(2, 2, 3, 4, 32, seed=12))
    proto = quiet(to_onnx, model, args)
    assert ops(proto).count("QuantDequant") == 24 and ops(proto).count("Dequantize") == 3
    assert set(ops(proto)) <= {"QuantDequant", "Transpose", "Dequantize", "Reshape"}  # axis moves: Transposes
    assert float_weights(proto) == []
    for got, want in zip(OrtSession(proto).run(*args), model(*args), strict=True):
        assert_same(got, want)


# ------------------------------------------------------------------ packing through layout ops


def test_compress_sees_a_weight_through_layout_ops():
    """QuantDequant on Identity(Cast(Squeeze(Unsqueeze(Reshape(Transpose(W)))))): packed, the
    float weight and the chain dropped, outputs bit-identical (run_pass verifies)."""
    h, TP = onnx.helper, onnx.TensorProto
    w = randn(32, 6, 2, seed=13).numpy()
    nodes = [
        h.make_node("Transpose", ["w"], ["t"], perm=[2, 1, 0]),  # (2, 6, 32)
        h.make_node("Reshape", ["t", "shape"], ["r"]),  # (12, 32)
        h.make_node("Unsqueeze", ["r", "zero"], ["u"]),  # (1, 12, 32)
        h.make_node("Squeeze", ["u", "zero"], ["s"]),
        h.make_node("Cast", ["s"], ["c"], to=TP.FLOAT16),
        h.make_node("Identity", ["c"], ["i"]),
        h.make_node("QuantDequant", ["i"], ["q"], domain="npuq", format="mxfp4"),
        h.make_node("Add", ["q", "x"], ["y"]),
    ]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT16, [12, 32])],
                         [h.make_tensor_value_info("y", TP.FLOAT16, [12, 32])],
                         [onnx.numpy_helper.from_array(w, "w"),
                          onnx.numpy_helper.from_array(np.array([12, 32], np.int64), "shape"),
                          onnx.numpy_helper.from_array(np.array([0], np.int64), "zero")])
    model = functions.attach(h.make_model(graph, opset_imports=[h.make_opsetid("", 21), h.make_opsetid("npuq", 1)],
                                          ir_version=10))
    assert has_work(model)
    out, report = run_pass(model, "compress")  # verify: onnxruntime before == after, bit for bit
    assert report.mismatches == 0 and "QuantDequant" not in ops(out) and "Dequantize" in ops(out)
    assert float_weights(out) == [] and not {"Squeeze", "Unsqueeze", "Identity"} & set(ops(out))
    x = torch.zeros(12, 32, dtype=torch.float16)
    want = formats.fake_quant(torch.from_numpy(w).permute(2, 1, 0).reshape(12, 32).half(), "mxfp4")
    assert_same(OrtSession(out).run(x)[0], want)


# ------------------------------------------------------------------ streamed export


def test_streamed_export_packs_the_weights_with_dynamic_shapes(tmp_path):
    import onnx_npuq

    model, args = Net("int4sym", wide=256), net_inputs()
    in_memory = quiet(to_onnx, model, args, dynamic=True)  # every input dimension dynamic but the quantized ones
    path = tmp_path / "net.onnx"
    proto = quiet(export, model, args, path, external_data=True, dynamic=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx", "net.onnx.data"]  # no scratch left
    assert ops(proto) == ops(in_memory) and ops(proto).count("Dequantize") == 3
    ext = [t for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert ext and all(t.data_type == onnx.TensorProto.UINT8 for t in ext)  # no float weight in the data
    assert (tmp_path / "net.onnx.data").stat().st_size <= weight_bits_bytes(model) + 64 * len(ext)
    assert len(onnx_npuq.verify(model, args, path)) == 4
    other = (randn(3, QUANTIZED_AXIS, 2, 7, seed=14), randn(1, 9, QUANTIZED_AXIS, seed=15))
    for w, a, b in zip(model(*other), ort_run(path, *other), OrtSession(in_memory).run(*other), strict=True):
        assert torch.equal(a, b) and a.shape == w.shape
        assert (a - w).abs().max() <= 1e-5 * w.abs().max()


# ------------------------------------------------------------------ tracing and eager


def test_torch_export_holds_one_custom_op_per_call():
    model, args = Net("hif8"), net_inputs()
    for strict in (False, True):
        with torch.no_grad():
            ep = quiet(torch.export.export, model, args, strict=strict)
        calls = [n for n in ep.graph.nodes if n.op == "call_function"]
        custom = [n for n in calls if n.target == torch.ops.npuq.quant_dequant.default]
        assert len(custom) == 6, strict
        # the op's input is contiguous: its fake gives the input's strides, its kernel a
        # contiguous result, and inductor checks that they agree
        assert all(n.args[0].meta["val"].is_contiguous() for n in custom)
        assert not any("round" in str(n.target) or "frexp" in str(n.target) for n in calls)


class Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func.namespace)
        return func(*args, **(kwargs or {}))


def test_eager_calls_do_not_go_through_the_custom_op():
    import onnx_npuq.ops.defs  # noqa: F401  (registers torch.ops.npuq, as an export would)

    model, args = Net("mxfp4"), net_inputs()
    with Recorder() as rec:
        model(*args)
        Net("mxfp4", fake_quant=quant_func)(*args)
    assert "aten" in rec.ops and "npuq" not in rec.ops
    x = randn(4, 64, 3)
    q = QType("mxfp4", rounding="even").dim(-2)
    assert torch.equal(quant_dequant_float(x, q), q.format.fake_quant(x, -2))
    assert torch.equal(quant_func(x, q), q.format.fake_quant(x, -2))


@pytest.mark.slow
def test_torch_compile_matches_eager_on_strided_inputs():
    """torch.compile traces the format's own arithmetic (not the export's custom op) and
    gives eager's values, strided input included (a cold compile takes ~15 s)."""
    x = randn(2, 64, 3).transpose(1, 2)  # not contiguous
    fn = torch.compile(lambda x: quant_dequant_float(x, QType("mxfp4").dim(1)) * 2)
    assert torch.equal(fn(x), formats.fake_quant(x, "mxfp4", 1) * 2)
