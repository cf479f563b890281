"""torch -> ONNX with the npuq ops; stock onnxruntime runs the result like torch does."""
import onnx
import pytest
import torch

from onnx_npuq import formats as F
from onnx_npuq.exporter import ExportError, export, save, to_onnx
from onnx_npuq.ops import bodies, defs, functions
from onnx_npuq.runtime import OrtSession

from conftest import FORMAT_CONFIGS, FullDisk, assert_same, config_id


def run(proto: onnx.ModelProto, *inputs: torch.Tensor) -> list[torch.Tensor]:
    return OrtSession(proto).run(*inputs)


class PackedWeight(torch.nn.Module):
    """Outputs a weight decoded from packed buffers, plus x to give the graph an input."""

    def __init__(self, p: F.Packed):
        super().__init__()
        self.meta = p
        self.register_buffer("codes", p.codes)
        self.register_buffer("scales", p.scales)
        self.register_buffer("ts", p.tensor_scale)

    def forward(self, x):
        p = F.Packed(**{**self.meta.__dict__, "codes": self.codes, "scales": self.scales,
                        "tensor_scale": self.ts})
        return defs.dequantize(p).float(), x + 1  # onnxruntime returns no bf16 to numpy


class FakeQuant(torch.nn.Module):
    def __init__(self, fmt, axis, options):
        super().__init__()
        self.fmt, self.axis, self.options = fmt, axis, options

    def forward(self, x):
        return defs.quant_dequant(x, self.fmt, self.axis, **self.options)


def weight(rows=24, cols=72, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * torch.exp2(torch.randint(-12, 12, (rows, 1), generator=g).float())
    w[1] = 0.0
    return w


@pytest.mark.parametrize("name", F.names())
@pytest.mark.parametrize("axis, dtype", [(1, torch.float32), (0, torch.bfloat16)])
def test_dequantize_exports_bit_exact(name, axis, dtype):
    p = F.encode(weight().to(dtype), name, axis=axis)
    proto = to_onnx(PackedWeight(p), (torch.zeros(2),))
    onnx.checker.check_model(proto, full_check=True)
    node = next(n for n in proto.graph.node if n.domain == "npuq")
    rows = bodies.rows_scaled(F.get_format(name), p.block, p.length)  # one float32 scale a row: its own body
    assert node.op_type == "Dequantize" and node.overload == name + (functions.ROWS if rows else "")
    assert rows == (name in ("int8sym", "fp8e4m3", "fp8e5m2"))
    codes = next(i for i in proto.graph.initializer if i.name.endswith("codes"))
    assert codes.data_type == onnx.TensorProto.UINT8  # the file holds the packed bytes
    assert_same(run(proto, torch.zeros(2))[0], F.decode(p).float())


@pytest.mark.parametrize("cfg", FORMAT_CONFIGS, ids=config_id)
def test_quant_dequant_exports_bit_exact_with_dynamic_batch(cfg):
    name, opts = cfg
    proto = to_onnx(FakeQuant(name, -1, opts), (torch.randn(3, 80),), dynamic=True)
    node = next(n for n in proto.graph.node if n.domain == "npuq")
    assert node.op_type == "QuantDequant"
    for rows in (3, 11):
        x = weight(rows, 80, seed=rows)
        x[0, 5] = float("nan")
        assert_same(run(proto, x)[0], F.fake_quant(x, name, **opts))


def test_quant_dequant_on_another_axis_exports_as_transposes():
    proto = to_onnx(FakeQuant("mxfp4", 0, {}), (torch.randn(64, 5),))
    assert [n.op_type for n in proto.graph.node].count("Transpose") == 2
    x = weight(64, 5)
    assert_same(run(proto, x)[0], F.fake_quant(x, "mxfp4", axis=0))


def test_model_is_pinned_and_functions_are_overloads(tmp_path):
    class Two(torch.nn.Module):
        def forward(self, x):
            y = defs.quant_dequant(x, "mxfp4")
            return defs.quant_dequant(y, "mxfp4", rounding="even") + defs.quant_dequant(x, "mxfp4")

    proto = export(Two(), (torch.randn(2, 32),), tmp_path / "m.onnx")
    assert proto.ir_version == 10
    assert {(o.domain, o.version) for o in proto.opset_import} == {("", 21), ("npuq", 1)}
    assert sorted((f.name, f.overload) for f in proto.functions) == [
        ("QuantDequant", "mxfp4"), ("QuantDequant", "mxfp4.rounding=even")]
    loaded = onnx.load(tmp_path / "m.onnx")
    onnx.checker.check_model(loaded, full_check=True)
    x = torch.randn(2, 32)
    y = F.fake_quant(x, "mxfp4")
    assert_same(run(loaded, x)[0], F.fake_quant(y, "mxfp4", rounding="even") + y)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temp files left


@pytest.mark.parametrize("external", [False, True])
def test_save_leaves_nothing_behind_on_failure(tmp_path, monkeypatch, external):
    from onnx_npuq import exporter

    def boom(*a, **k):
        raise OSError("No space left on device")

    proto = to_onnx(FakeQuant("hif8", -1, {}), (torch.randn(2, 4),))
    monkeypatch.setattr(exporter, "open", FullDisk, raising=False)  # inline: save() writes the file itself
    monkeypatch.setattr(onnx, "save", boom)  # external: the graph's file
    with pytest.raises(OSError, match="No space left"):
        save(proto, tmp_path / "out.onnx", external_data=external)
    assert list(tmp_path.iterdir()) == []


def _tensor_zoo() -> onnx.ModelProto:
    """Initializers as producers write them (raw, typed fields, empty, scalar, with metadata),
    a Constant node's tensor, a function, model metadata."""
    import numpy as np
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    raw = numpy_helper.from_array(rng.standard_normal((64, 300)).astype(np.float32), "w")
    typed = helper.make_tensor("t", onnx.TensorProto.INT64, [3], [1, 2, 3])  # int64_data, not raw
    empty = numpy_helper.from_array(np.zeros((0, 4), np.float32), "e")
    scalar = numpy_helper.from_array(np.array(2.5, np.float32), "s")
    raw.metadata_props.add(key="k", value="v")
    raw.doc_string = "weights"
    nodes = [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones(5, np.float32))),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 64])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 300])],
                          [raw, typed, empty, scalar])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], producer_name="zoo")
    m.ir_version = 10
    m.metadata_props.add(key="a", value="b")
    return m


def test_inline_save_is_the_model_onnx_save_writes(tmp_path):
    """Written one initializer at a time, byte for byte the model's serialization."""
    import numpy as np

    proto = _tensor_zoo()
    before = proto.SerializeToString()
    save(proto, tmp_path / "m.onnx", external_data=False)
    assert proto.SerializeToString() == before
    assert (tmp_path / "m.onnx").read_bytes() == before
    # tensors from external data are read in as they are written: the same bytes again
    save(proto, tmp_path / "x.onnx", external_data=True)
    save(onnx.load(tmp_path / "x.onnx", load_external_data=False), tmp_path / "y.onnx", external_data=False,
         data_dir=tmp_path)
    assert (tmp_path / "y.onnx").read_bytes() == before
    onnx.checker.check_model(tmp_path / "m.onnx")
    x = torch.randn(2, 64)
    (y,) = OrtSession(str(tmp_path / "m.onnx")).run(x)
    w = torch.from_numpy(onnx.numpy_helper.to_array(proto.graph.initializer[0]).copy())
    assert np.array_equal(y.numpy(), OrtSession(proto).run(x)[0].numpy()) and torch.allclose(y, x @ w, atol=1e-4)


_SAVE_PEAK = """
import sys, numpy as np, onnx
from onnx import helper, numpy_helper
from onnx_npuq.exporter import save
inits = [numpy_helper.from_array(np.full((8 << 20,), i, np.float32), f"w{i}") for i in range(4)]  # 4 x 32 MiB
g = helper.make_graph([helper.make_node("Identity", ["w0"], ["y"])], "g", [],
                      [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
del inits, g
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) >> 10
open("/proc/self/clear_refs", "w").write("5")  # peak := now
before = hwm()
save(m, sys.argv[1], external_data=False)
print(hwm() - before)
"""


def test_inline_save_holds_one_weight_at_a_time(tmp_path):
    """onnx.save serializes the whole model (protobuf's buffer, then Python's bytes: 2x the
    weights more at its peak); save() serializes one initializer at a time."""
    import subprocess
    import sys

    env = {**__import__("os").environ, "MALLOC_MMAP_THRESHOLD_": "65536"}  # freed blocks go back at once
    out = subprocess.run([sys.executable, "-c", _SAVE_PEAK, str(tmp_path / "m.onnx")], capture_output=True,
                         text=True, env=env, check=True)
    grew = int(out.stdout.split()[-1])
    assert grew < 48, f"saving 128 MiB of weights grew the peak by {grew} MiB"  # one 32 MiB tensor + slack
    loaded = onnx.load(tmp_path / "m.onnx")
    assert [onnx.numpy_helper.to_array(t)[-1] for t in loaded.graph.initializer] == [0, 1, 2, 3]


def _external_model():
    from onnx_npuq.nn import quantize_model

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64))
    return quantize_model(model, weights="mxfp4")


@pytest.mark.parametrize("how", ["forced", "past_threshold"])
def test_external_data(tmp_path, monkeypatch, how):
    import onnxruntime as ort

    from onnx_npuq import exporter

    model, x = _external_model(), torch.randn(3, 256)
    proto = to_onnx(model, (x,))
    before = proto.SerializeToString()
    if how == "forced":
        save(proto, tmp_path / "m.onnx", external_data=True)
    else:
        monkeypatch.setattr(exporter, "EXTERNAL_DATA_THRESHOLD", len(before) - 1)
        save(proto, tmp_path / "m.onnx")
    assert proto.SerializeToString() == before  # the caller's model keeps its tensors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]
    data = (tmp_path / "m.onnx.data").stat().st_size
    assert (tmp_path / "m.onnx").stat().st_size < 8192 < data  # the weights left the .onnx

    shallow = onnx.load(tmp_path / "m.onnx", load_external_data=False)
    ext = [t for t in shallow.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert len(ext) >= 2
    for t in ext:
        info = {e.key: e.value for e in t.external_data}
        assert info["location"] == "m.onnx.data" and int(info["offset"]) % 64 == 0
    onnx.checker.check_model(str(tmp_path / "m.onnx"), full_check=True)
    loaded = onnx.load(tmp_path / "m.onnx")
    for t in loaded.graph.initializer:
        t.ClearField("data_location")  # onnx.load sets it to DEFAULT explicitly
    assert loaded.SerializeToString() == before
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    assert_same(torch.from_numpy(got), run(proto, x)[0])


def test_external_data_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full")

    proto = to_onnx(_external_model(), (torch.randn(3, 256),))
    before = proto.SerializeToString()
    monkeypatch.setattr(onnx, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save(proto, tmp_path / "out.onnx", external_data=True)
    assert list(tmp_path.iterdir()) == []
    assert proto.SerializeToString() == before


def test_shapes_are_the_examples_unless_dynamic():
    """Static by default (as torch.onnx.export, and as ATC's --input_shape fixes them);
    dynamic=True leaves symbolic what torch.export does not prove constant (the feature
    axis here: a Linear's in_features)."""
    model, x = torch.nn.Linear(16, 8), torch.randn(3, 16)

    def dims(proto):
        return [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                for v in (*proto.graph.input, *proto.graph.output)]

    assert dims(to_onnx(model, (x,))) == [[3, 16], [3, 8]]
    dynamic = to_onnx(model, (x,), dynamic=True)
    (rows, _), _ = dims(dynamic)
    assert isinstance(rows, str) and dims(dynamic) == [[rows, 16], [rows, 8]]
    other = torch.randn(5, 16)
    assert torch.allclose(run(dynamic, other)[0], model(other).detach(), atol=1e-6)
    assert dims(to_onnx(model, (x,), dynamic_shapes=({0: torch.export.Dim("n")},)))[0] == ["n", 16]
    with pytest.raises(ValueError, match="not both"):
        to_onnx(model, (x,), dynamic=True, dynamic_shapes=({0: torch.export.Dim("n")},))


def test_export_errors_are_typed():
    with pytest.raises(TypeError, match="tuple of example inputs"):
        to_onnx(FakeQuant("hif8", -1, {}), torch.randn(2, 4))

    class Bad(torch.nn.Module):
        def forward(self, x):
            return torch.nonzero(x).float().sum() if x.sum() > 0 else x  # data-dependent branch

    with pytest.raises(ExportError, match="torch.onnx.export failed"):
        to_onnx(Bad(), (torch.randn(2, 4),))


def test_torch_npu_ops_export_through_the_same_entry_point(tmp_path):
    from onnx_npuq.ops import npu_ops

    class Q(torch.nn.Module):
        def forward(self, x):
            scales = torch.full((x.shape[1],), 0.05)
            zeros = torch.zeros(x.shape[1], dtype=torch.int8)
            return npu_ops.npu_quantize(x, scales, zeros, torch.qint8, axis=1, div_mode=True)

    x = torch.randn(4, 16) * 3
    proto = export(Q(), (x,), tmp_path / "q.onnx")
    node = next(n for n in proto.graph.node if n.domain == "npu")
    assert node.op_type == "NPUQuantize" and len(node.input) == 3
    assert any(f.domain == "npu" and f.name == "NPUQuantize" for f in proto.functions)
    assert torch.equal(run(proto, x)[0], Q()(x))


def test_onnx_npuq_npu_functions_export_as_npu_nodes(tmp_path):
    """The public onnx_npuq.npu names run eagerly, and become npu:: nodes in an export."""
    from onnx_npuq import npu

    class Dyn(torch.nn.Module):
        def forward(self, x):
            return npu.npu_dynamic_quant(x)

    x = (torch.randn(6, 32) * 4).half()
    y, scale = Dyn()(x)
    proto = export(Dyn(), (x,), tmp_path / "d.onnx")
    node = next(n for n in proto.graph.node if n.domain == "npu")
    assert node.op_type == "NPUDynamicQuant"
    got_y, got_scale = run(proto, x)
    assert torch.equal(got_y, y) and torch.equal(got_scale, scale)
