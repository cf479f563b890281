"""quantize_model on every weight layer: convolutions of every kind, GPT-2's Conv1D and
embeddings, bit-exact against the formats API in torch, exact in onnxruntime, and stored
at their format's bits."""
from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import onnx_npuq
import onnx_npuq.exporter
from onnx_npuq import formats
from onnx_npuq.nn import QuantConv, QuantEmbedding, QuantizationError, QuantLinear, QuantWeight, quantize_model
from onnx_npuq.nn.conv import conv_layout
from onnx_npuq.nn.weight import MAX_PADDING, Layout, fit
from onnx_npuq.runtime.ort import OrtSession

NAMES = formats.names()

CONVS = {
    "conv1d": (lambda: nn.Conv1d(6, 8, 3, padding=1), (2, 6, 20)),
    "conv2d-stem": (lambda: nn.Conv2d(3, 16, 7, stride=2, padding=3), (2, 3, 24, 24)),
    "conv2d-grouped": (lambda: nn.Conv2d(8, 12, 3, groups=4, padding="same"), (2, 8, 10, 10)),
    "conv2d-depthwise": (lambda: nn.Conv2d(16, 16, 3, groups=16, padding=1), (2, 16, 9, 9)),
    "conv2d-reflect": (lambda: nn.Conv2d(4, 8, 3, padding=1, padding_mode="reflect", bias=False), (1, 4, 7, 7)),
    "conv3d": (lambda: nn.Conv3d(2, 4, 3, padding=1, dilation=1), (1, 2, 5, 6, 6)),
    "convT1d": (lambda: nn.ConvTranspose1d(8, 6, 4, stride=2, groups=2), (2, 8, 11)),
    "convT2d": (lambda: nn.ConvTranspose2d(32, 8, 2, stride=2, output_padding=0), (1, 32, 5, 5)),
    "convT2d-depthwise": (lambda: nn.ConvTranspose2d(8, 8, 3, stride=2, groups=8, output_padding=1),
                          (1, 8, 4, 4)),
}


def _conv(key, seed=0):
    torch.manual_seed(seed)
    make, shape = CONVS[key]
    conv = make().eval()
    if conv.bias is not None:
        with torch.no_grad():
            conv.bias.normal_()
    return conv, torch.randn(shape)


def _reference_conv(conv, x, w_fmt, a_fmt):
    """The float conv with its weight replaced by decode(encode(...)) along its layout, and
    its input fake-quantized along the channels: what QuantConv must compute bit for bit."""
    ref = copy.deepcopy(conv)
    layout = fit(conv_layout(conv), formats.get_format(w_fmt), conv.weight.shape)
    w = formats.fake_quant(layout.to_matrix(conv.weight.detach()), w_fmt, axis=1)
    with torch.no_grad():
        ref.weight.copy_(layout.from_matrix(w, conv.weight.shape))
    if a_fmt is not None:
        x = formats.fake_quant(x, a_fmt, axis=1)
    with torch.no_grad():
        return ref(x)


@pytest.mark.parametrize("key", list(CONVS))
@pytest.mark.parametrize("name", ["mxfp4", "hif8", "int8sym", "nvfp4"])
def test_quantconv_matches_reference(key, name):
    conv, x = _conv(key)
    q = QuantConv.from_conv(conv, name, activation="mxfp8e4m3")
    with torch.no_grad():
        assert torch.equal(q(x), _reference_conv(conv, x, name, "mxfp8e4m3"))
    assert q.weight_codes.dtype == torch.uint8 and q.dequantized_weight().shape == conv.weight.shape


@pytest.mark.parametrize("name", NAMES)
def test_quantconv_every_format(name):
    conv, x = _conv("conv2d-grouped", seed=1)
    q = QuantConv.from_conv(conv, name, activation=name)
    with torch.no_grad():
        assert torch.equal(q(x), _reference_conv(conv, x, name, name))


def test_conv_rows_run_along_what_each_output_sums():
    conv, _ = _conv("conv2d-stem")
    assert conv_layout(conv).matrix == (16, 3 * 7 * 7)  # no padding of 3 channels to a block
    # a transposed conv sums over its input channels, per group
    t = nn.ConvTranspose2d(12, 6, 3, groups=3)  # weight (12, 2, 3, 3)
    layout = conv_layout(t)
    assert layout.matrix == (3 * 2 * 9, 4)
    w = t.weight.detach()
    m = layout.to_matrix(w)
    # row (group 1, out 0, tap 0) holds in channels 4..7 of that group
    assert torch.equal(m[1 * 18 + 0], w[4:8, 0, 0, 0])
    assert torch.equal(layout.from_matrix(m, w.shape), w)


def test_depthwise_rows_are_not_padded_to_a_block():
    conv, x = _conv("conv2d-depthwise")  # rows of 9: a 32-block would pad each 3.6x
    q = QuantConv.from_conv(conv, "mxfp4")
    assert q.weight_layout == Layout.flat(conv.weight.shape)
    # one block of padding at most, for the whole weight: 144 -> 5 blocks of 32 (4-bit + E8M0)
    assert q.weight_bytes == math.ceil(conv.weight.numel() / 32) * (32 // 2 + 1)
    # per-row formats keep their rows: they have no block to pad
    assert QuantConv.from_conv(conv, "int8sym").weight_layout == conv_layout(conv)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=5), data=st.data())
def test_layout_round_trip(shape, data):
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    view = tuple(shape)
    layout = Layout(view, perm, data.draw(st.integers(1, len(shape))))
    w = torch.randn(math.prod(shape))
    m = layout.to_matrix(w)
    assert m.shape == layout.matrix and m.dim() == 2
    assert torch.equal(layout.from_matrix(m, w.shape), w)
    assert torch.equal(Layout.flat(view).from_matrix(Layout.flat(view).to_matrix(w.reshape(view)), view),
                       w.reshape(view))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_quantconv_half(dtype):
    conv, x = _conv("conv2d-grouped", seed=2)
    conv, x = conv.to(dtype), x.to(dtype)
    q = QuantConv.from_conv(conv, "hif4", activation="hif8")
    with torch.no_grad():
        y = q(x)
    assert y.dtype == dtype and torch.equal(y, _reference_conv(conv, x, "hif4", "hif8"))


def test_quantconv_output_size_and_unbatched():
    conv, x = _conv("convT2d-depthwise")
    q = QuantConv.from_conv(conv, "mxfp4")
    ref = copy.deepcopy(conv)
    with torch.no_grad():
        ref.weight.copy_(q.dequantized_weight())
        assert torch.equal(q(x, output_size=[10, 10]), ref(x, output_size=[10, 10]))
        assert q(x, output_size=[10, 10]).shape[-2:] == (10, 10)
        c, xc = _conv("conv1d")
        qc = QuantConv.from_conv(c, "hif8", activation="hif8")
        assert torch.equal(qc(xc[0]), qc(xc[:1])[0])  # (C, L) input: channels are axis 0


def test_quantconv_state_dict_round_trip():
    conv, x = _conv("conv3d")
    q = QuantConv.from_conv(conv, "nvfp4", activation="mxfp8e4m3")
    buf = io.BytesIO()
    torch.save(q.state_dict(), buf)
    buf.seek(0)
    fresh = QuantConv.from_conv(_conv("conv3d", seed=9)[0], "nvfp4", activation="mxfp8e4m3")
    with torch.no_grad():
        assert not torch.equal(fresh(x), q(x))
        fresh.load_state_dict(torch.load(buf, weights_only=True))
        assert torch.equal(fresh(x), q(x))


# -- embeddings ------------------------------------------------------------------------------

def test_quantembedding_gathers_packed_rows():
    torch.manual_seed(0)
    emb = nn.Embedding(50, 40, padding_idx=0)
    ids = torch.randint(0, 50, (3, 7))
    for name in ("int4sym", "nvfp4", "hif4"):
        q = QuantEmbedding.from_embedding(emb, name)
        want = formats.fake_quant(emb.weight.detach(), name, axis=1)[ids]
        assert torch.equal(q(ids), want)
        assert q.weight_bytes == formats.encode(emb.weight.detach(), name, axis=1).nbytes
    with pytest.raises(ValueError, match="max_norm"):
        QuantEmbedding.from_embedding(nn.Embedding(4, 4, max_norm=1.0), "int4sym")


class Mixed(nn.Module):
    """Every layer kind quantize_model takes, in one model."""

    def __init__(self, vocab=64):
        super().__init__()
        self.embed = nn.Embedding(vocab, 32)
        self.c1 = nn.Conv1d(32, 32, 3, padding=1)
        self.stem = nn.Conv2d(3, 16, 7, stride=2, padding=3)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pw = nn.Conv2d(16, 32, 1)
        self.up = nn.ConvTranspose2d(32, 8, 2, stride=2)
        self.c3 = nn.Conv3d(2, 4, 3, padding=1)
        self.t1 = nn.ConvTranspose1d(32, 32, 3, padding=1)
        self.head = nn.Linear(32 + 8 + 4, 10)

    def forward(self, ids, img, vol):
        t = self.t1(self.c1(self.embed(ids).transpose(1, 2))).mean(-1)
        i = self.up(self.pw(torch.relu(self.dw(self.stem(img))))).mean((-1, -2))
        v = self.c3(vol).mean((-1, -2, -3))
        return self.head(torch.cat([t, i, v], -1))


def _mixed_args():
    g = torch.Generator().manual_seed(3)
    return (torch.randint(0, 64, (2, 12), generator=g), torch.randn(2, 3, 32, 32, generator=g),
            torch.randn(2, 2, 6, 6, 6, generator=g))


def test_quantize_model_every_layer_and_report():
    torch.manual_seed(0)
    model = Mixed().eval()
    with torch.no_grad():
        plain = model(*_mixed_args())
    quantize_model(model, weights="mxfp4", activations="mxfp8e4m3")
    report = model.npuq_report
    assert [r["name"] for r in report.layers] == ["c1", "stem", "dw", "pw", "up", "c3", "t1", "head"]
    assert report.left_float == [{"name": "embed", "type": "Embedding", "reason":
                                  "embeddings are opt-in: select them with a recipe rule (types: [Embedding])"}]
    assert not any(type(m) in (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.Linear)
                   for m in model.modules())
    with torch.no_grad():
        assert not torch.equal(model(*_mixed_args()), plain)
    assert "stem (Conv2d 16x3x7x7): mxfp4, activations mxfp8e4m3, 16 rows of 147" in str(report)


def test_recipe_by_type():
    torch.manual_seed(0)
    model = Mixed().eval()
    recipe = {"rules": [{"types": ["Embedding"], "weights": "int4sym"},
                        {"types": "nn.Conv*", "match": "c*", "weights": "int8sym", "activations": None},
                        {"types": ["ConvTranspose*"], "weights": None}]}
    quantize_model(model, weights="hif4", activations="hif8", recipe=recipe)
    got = {r["name"]: (r["format"], r["activation"]) for r in model.npuq_report.layers}
    assert got == {"embed": ("int4sym", None), "c1": ("int8sym", None), "c3": ("int8sym", None),
                   "stem": ("hif4", "hif8"), "dw": ("hif4", "hif8"), "pw": ("hif4", "hif8"),
                   "head": ("hif4", "hif8")}
    assert {r["name"]: r["reason"] for r in model.npuq_report.left_float} == {
        "up": "the recipe says weights: null", "t1": "the recipe says weights: null"}
    with pytest.raises(QuantizationError, match="an embedding's input is indices"):
        quantize_model(Mixed(), recipe={"rules": [{"types": "Embedding", "weights": "int4sym",
                                                   "activations": "hif8"}]})


@pytest.mark.parametrize("name", ["mxfp4", "nvfp4", pytest.param("hif8", marks=pytest.mark.slow),
                                  pytest.param("int4sym", marks=pytest.mark.slow)])
def test_mixed_model_exports_exactly(name, tmp_path):
    torch.manual_seed(0)
    model = quantize_model(Mixed().eval(), weights=name, activations="mxfp8e4m3",
                           recipe={"rules": [{"types": "Embedding", "weights": name, "activations": None}]})
    args = _mixed_args()
    with torch.no_grad():
        want = model(*args)
    path = tmp_path / "m.onnx"
    proto = onnx_npuq.export(model, args, path)
    got = OrtSession(str(path)).run(*args)[0]
    scale = want.abs().max().item()
    assert (torch.as_tensor(got) - want).abs().max() <= 1e-5 * scale
    # the weights are stored as their format's bits: no float copy of any of them is left
    floats = [t for t in proto.graph.initializer if t.data_type == 1 and np.prod(t.dims) >= 64]
    assert all(np.prod(t.dims) <= 64 for t in floats), [t.name for t in floats]
    packed = sum(r["packed_bytes"] for r in model.npuq_report.layers)
    fmt = formats.get_format(name)
    bits = sum(math.prod(r["shape"]) * fmt.bits_per_element(r["shape"][1 if r["type"] != "Embedding" else 1])
               if fmt.block else 0 for r in model.npuq_report.layers)
    if fmt.block:  # convs padded at most MAX_PADDING; the rest not at all here
        assert 8 * packed <= (1 + MAX_PADDING) * bits + 64
    convs = [r for r in model.npuq_report.layers if "Conv" in r["type"]]
    for r in convs:
        elems = math.prod(r["shape"])
        fmt_bits = elems * fmt.bits_per_element() if fmt.block else None
        if fmt_bits:
            assert 8 * r["packed_bytes"] <= (1 + MAX_PADDING) * fmt_bits + 32, r


def test_mixed_model_passes_the_preflight(tmp_path):
    from onnx_npuq.atc import plan_command, preflight

    torch.manual_seed(0)
    model = quantize_model(Mixed().eval(), weights="mxfp4", activations="mxfp8e4m3",
                           recipe={"rules": [{"types": "Embedding", "weights": "int4sym", "activations": None}]})
    proto = onnx_npuq.export(model, _mixed_args(), tmp_path / "m.onnx")
    shapes = {i.name: list(a.shape) for i, a in zip(proto.graph.input, _mixed_args())}
    cmd = plan_command(proto, "Ascend910B1", tmp_path / "m", input_shapes=shapes, layout="default")
    report = preflight(cmd.model, "Ascend910B1")
    assert report.full, report.summary()
    assert {"npuq::1::Dequantize", "npuq::1::QuantDequant"} <= {k.split("::", 1)[1] for k in report.keys} or \
        any("Dequantize" in k for k in report.keys), sorted(report.keys)


# -- GPT-2 (transformers' Conv1D) ---------------------------------------------------------------

def _gpt2():
    import transformers
    config = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=128, n_positions=32)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config).eval()


def test_gpt2_conv1d_layers_are_quantized(tmp_path):
    model = _gpt2()
    ids = torch.randint(0, 128, (1, 10), generator=torch.Generator().manual_seed(1))
    conv1d = [n for n, m in model.named_modules() if type(m).__name__ == "Conv1D"]
    assert len(conv1d) == 8
    floats = {n: m.weight.detach().clone() for n, m in model.named_modules() if n in conv1d}
    quantize_model(model, weights="mxfp4", recipe={"exclude": ["lm_head"]})
    modules = dict(model.named_modules())
    for n in conv1d:
        q = modules[n]
        assert isinstance(q, QuantLinear)
        # GPT-2 keeps (in, out): the QuantLinear holds (out, in), blocked along in
        assert torch.equal(q.dequantized_weight(), formats.fake_quant(floats[n].t(), "mxfp4", axis=1))
    assert {r["name"] for r in model.npuq_report.left_float} == {"transformer.wte", "transformer.wpe", "lm_head"}
    wrapped = onnx_npuq.exporter.Logits(model)
    with torch.no_grad():
        want = wrapped(ids)
    path = tmp_path / "gpt2.onnx"
    onnx_npuq.export(wrapped, (ids,), path)
    got = OrtSession(str(path)).run(ids)[0]
    assert (torch.as_tensor(got) - want).abs().max() <= 1e-5 * want.abs().max()


def test_top_level_names():
    assert onnx_npuq.quantize_model is quantize_model
    report = onnx_npuq.quantize_(nn.Sequential(nn.Linear(8, 8)), weights="hif8")
    assert report.layers[0]["format"] == "hif8"
    assert issubclass(QuantConv, QuantWeight) and issubclass(QuantEmbedding, QuantWeight)
