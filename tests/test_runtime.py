"""onnxruntime sessions over torch tensors, and the torch-vs-onnxruntime comparison."""
import pytest
import torch
from onnx import TensorProto, helper

import onnx_npuq
from onnx_npuq import formats as F
from onnx_npuq.ops import defs
from onnx_npuq.runtime import OrtSession, compare


def _square(dtype):
    nodes = [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["xf", "xf"], ["yf"]),
             helper.make_node("Cast", ["yf"], ["y"], to=dtype)]
    io = [helper.make_tensor_value_info(n, dtype, [None, 3]) for n in ("x", "y")]
    g = helper.make_graph(nodes, "g", io[:1], io[1:])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


@pytest.mark.parametrize("dtype, tp", [(torch.bfloat16, TensorProto.BFLOAT16),
                                       (torch.float16, TensorProto.FLOAT16),
                                       (torch.float32, TensorProto.FLOAT)])
def test_session_takes_and_returns_torch_tensors(dtype, tp):
    x = torch.randn(4, 3).to(dtype)
    (y,) = OrtSession(_square(tp)).run(x)
    assert y.dtype == dtype and torch.equal(y, (x.float() * x.float()).to(dtype))


def test_session_checks_the_input_count():
    with pytest.raises(ValueError, match=r"takes 1 input\(s\) \['x'\], got 2"):
        OrtSession(_square(TensorProto.FLOAT)).run(torch.ones(1, 3), torch.ones(1, 3))


def test_compare_counts_bit_mismatches_and_treats_nan_as_equal():
    a = torch.tensor([1.0, float("nan"), 3.0, 4.0])
    b = torch.tensor([1.0, float("nan"), 3.5, 4.0])
    c = compare("y", a, b)
    assert (c.mismatches, c.max_abs, c.exact) == (1, 0.5, False)
    assert c.max_rel == pytest.approx(0.5 / 3)
    assert compare("y", a, a.clone()).exact
    with pytest.raises(ValueError, match="shape"):
        compare("y", a, b[:2])


def test_verify_a_quantized_model_end_to_end(tmp_path):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = F.encode(torch.randn(8, 64), "mxfp4", axis=1)
            self.register_buffer("codes", self.p.codes)
            self.register_buffer("scales", self.p.scales)

        def forward(self, x):
            p = F.Packed(**{**self.p.__dict__, "codes": self.codes, "scales": self.scales})
            return defs.quant_dequant(x, "hif8"), defs.dequantize(p) * 2

    net, x = Net(), torch.randn(3, 64)
    onnx_npuq.export(net, (x,), tmp_path / "net.onnx")
    report = onnx_npuq.verify(net, (torch.randn(3, 64),), tmp_path / "net.onnx")  # other values, same shape
    assert [c.exact for c in report] == [True, True]
    assert report[0].shape == (3, 64)


def test_verify_per_layer(tmp_path):
    import onnx

    from onnx_npuq import models
    from onnx_npuq.exporter import LAYERS_KEY
    from onnx_npuq.nn import QuantLinear, quantize_model
    from onnx_npuq.runtime import verify

    model = models.get("tiny-llama")
    quantize_model(model, weights="mxfp4", activations="hif8", recipe={"exclude": ["lm_head"]})
    path = tmp_path / "m.onnx"
    onnx_npuq.export(model, models.example_inputs("tiny-llama"), path, dynamic=True)  # verified at 3 x 13
    recorded = {p.key for p in onnx.load(path).metadata_props}
    assert LAYERS_KEY in recorded
    results = verify(model, models.example_inputs("tiny-llama", 3, 13, seed=1), path, layers=True)
    names = [r.name for r in results]
    assert len(results) == 1 + 16 and names[0] == onnx.load(path).graph.output[0].name
    # every weight layer: the 14 quantized Linears, the float lm_head and the embedding
    assert set(names[1:]) == {f"layer:{n}" for n, m in model.named_modules()
                              if isinstance(m, (torch.nn.Linear, torch.nn.Embedding, QuantLinear))}
    first = next(r for r in results if r.name == "layer:layers.0.self_attn.q_proj")
    assert first.shape == (3, 13, 128) and first.exact  # before any accumulation-order difference
    assert all(r.cosine > 0.99999 for r in results)
    # without layers: the outputs only, as before
    assert [r.name for r in verify(model, models.example_inputs("tiny-llama"), path)] == names[:1]
