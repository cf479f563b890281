"""onnx_npuq.nn: QuantLinear, recipes and quantize_model, all checked bit-exactly against
the formats API (decode(encode(w)) weights, fake-quantized activations)."""
from __future__ import annotations

import copy
import io
import re

import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from onnx_npuq import formats
from onnx_npuq.nn import (
    QuantizationError, QuantLinear, Recipe, RecipeError, quantize_, quantize_model,
)

NAMES = formats.names()
OPTION_SPECS = [
    {"format": "mxfp4", "rounding": "even"},
    {"format": "mxfp8e4m3", "scale_rule": "rceil"},
    {"format": "hif8", "saturate": True},
    {"format": "hif4", "variant": "amct"},
    {"format": "int4sym", "group": 32},
]


def _fmt(spec):
    if isinstance(spec, dict):
        spec = dict(spec)
        return formats.get_format(spec.pop("format"), **spec)
    return formats.get_format(spec)


def _linear(i, o, bias=True, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    lin = nn.Linear(i, o, bias=bias).to(dtype)
    if bias:  # default init makes biases tiny; give them some weight
        with torch.no_grad():
            lin.bias.normal_()
    return lin


def _reference(x, lin, w_spec, a_spec):
    w = formats.decode(formats.encode(lin.weight.detach(), _fmt(w_spec), axis=1))
    if a_spec is not None:
        x = formats.fake_quant(x, _fmt(a_spec), axis=-1)
    return TF.linear(x, w.to(x.dtype), lin.bias)


# -- QuantLinear -------------------------------------------------------------------------

@pytest.mark.parametrize("in_features", [64, 81])  # 81: ragged blocks, odd int4 nibbles
@pytest.mark.parametrize("name", NAMES)
def test_quantlinear_matches_reference(name, in_features):
    lin = _linear(in_features, 24, seed=1)
    q = QuantLinear.from_linear(lin, name, activation=name)
    x = torch.randn(3, 5, in_features)
    with torch.no_grad():
        assert torch.equal(q(x), _reference(x, lin, name, name))
    p = formats.encode(lin.weight.detach(), name, axis=1)
    assert torch.equal(q.dequantized_weight(), formats.decode(p))
    assert torch.equal(q.dequantized_weight(), formats.fake_quant(lin.weight, name, axis=1))
    assert q.weight_codes.dtype == q.weight_scales.dtype == torch.uint8
    assert torch.equal(q.weight_codes, p.codes) and torch.equal(q.weight_scales, p.scales)
    assert (q.weight_tensor_scale is not None) == (name == "nvfp4")
    assert q.weight_bytes == p.nbytes
    rp = q.packed_weight()
    assert (rp.format, rp.shape, rp.axis, rp.dtype, rp.block) == (name, (24, in_features), 1,
                                                                  torch.float32, p.block)


@pytest.mark.parametrize("spec", OPTION_SPECS, ids=lambda s: "-".join(map(str, s.values())))
def test_quantlinear_format_options(spec):
    lin = _linear(96, 16, seed=2)
    q = QuantLinear.from_linear(lin, spec, activation=spec)
    x = torch.randn(4, 96)
    with torch.no_grad():
        assert torch.equal(q(x), _reference(x, lin, spec, spec))
    assert q.packed_weight().options == {k: v for k, v in spec.items() if k != "format"}


def test_quantlinear_alias_no_bias_and_weight_only():
    lin = _linear(64, 8, bias=False, seed=3)
    q = QuantLinear.from_linear(lin, "HiFX4")  # alias, any case -> hif4
    assert q.weight_format.name == "hif4" and q.bias is None and q.act_format is None
    x = torch.randn(2, 64)
    with torch.no_grad():
        assert torch.equal(q(x), _reference(x, lin, "hif4", None))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_quantlinear_half_weights(dtype):
    lin = _linear(64, 16, seed=4, dtype=dtype)
    q = QuantLinear.from_linear(lin, "mxfp4", "mxfp8e4m3")
    assert q.dequantized_weight().dtype == dtype
    x = torch.randn(3, 64, dtype=dtype)
    with torch.no_grad():
        y = q(x)
        assert y.dtype == dtype and torch.equal(y, _reference(x, lin, "mxfp4", "mxfp8e4m3"))


@settings(max_examples=15)
@given(i=st.integers(1, 130), o=st.integers(1, 20), name=st.sampled_from(NAMES),
       seed=st.integers(0, 2**16))
def test_quantlinear_any_shape(i, o, name, seed):
    lin = _linear(i, o, seed=seed)
    q = QuantLinear.from_linear(lin, name, activation="mxfp8e4m3")
    x = torch.randn(2, i)
    with torch.no_grad():
        assert torch.equal(q(x), _reference(x, lin, name, "mxfp8e4m3"))


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name):
    q = QuantLinear.from_linear(_linear(72, 12, seed=5), name, activation="hif8")
    buf = io.BytesIO()
    torch.save(q.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in sd.values())
    fresh = [QuantLinear.from_linear(_linear(72, 12, seed=6), name, activation="hif8"),
             QuantLinear.empty(72, 12, bias=True, weight=name, activation="hif8")]
    x = torch.randn(4, 72)
    with torch.no_grad():
        want = q(x)
        for f in fresh:
            assert not torch.equal(f(x), want)
            f.load_state_dict(sd)  # strict: same keys and shapes
            assert torch.equal(f(x), want)


def test_forward_routes_through_the_npuq_custom_ops(monkeypatch):
    # the custom ops are what an export turns into npuq::QuantDequant / npuq::Dequantize
    from onnx_npuq.nn import weight

    q = QuantLinear.from_linear(_linear(32, 4), "mxfp4", activation="mxfp8e4m3")
    calls = []
    real_dq, real_qd = weight.ops.dequantize, weight.ops.quant_dequant
    monkeypatch.setattr(weight.ops, "dequantize", lambda p: calls.append("w") or real_dq(p))
    monkeypatch.setattr(weight.ops, "quant_dequant",
                        lambda *a, **k: calls.append("x") or real_qd(*a, **k))
    q(torch.randn(1, 32))
    assert calls == ["x", "w"]


def test_extra_repr_and_bytes():
    q = QuantLinear.from_linear(_linear(64, 32), "nvfp4", activation="mxfp8e4m3")
    r = repr(q)
    for part in ("in_features=64", "out_features=32", "weight=nvfp4",
                 "activation=mxfp8e4m3", "bits_per_weight=4.5"):
        assert part in r, r
    assert q.weight_bytes == 32 * 64 // 2 + 32 * 4 + 4
    assert q.bits_per_weight == pytest.approx(4.5 + 32 / 2048)


def test_from_linear_errors():
    with pytest.raises(TypeError, match="nn.Linear"):
        QuantLinear.from_linear(nn.Conv1d(2, 2, 1), "mxfp4")
    with pytest.raises(ValueError, match="mxfp5"):
        QuantLinear.from_linear(_linear(8, 8), "mxfp5")
    with pytest.raises(ValueError, match="'format'"):
        QuantLinear.from_linear(_linear(8, 8), {"rounding": "even"})


# -- Recipe ------------------------------------------------------------------------------

RECIPE = {
    "default": {"weights": "mxfp4", "activations": None},
    "rules": [
        {"match": "model.layers.0.mlp.*", "weights": "nvfp4"},
        {"match": "model.layers.*.mlp.*", "weights": "hif4", "activations": "mxfp8e4m3"},
        {"match": ["*.q_proj", "*.k_proj"], "activations": "hif8"},
        {"match": "*.v_proj", "weights": None},
    ],
    "exclude": ["lm_head", "*.embed*", "model.layers.0.mlp.down_proj"],
}


def test_recipe_resolve():
    r = Recipe.from_dict(RECIPE)
    assert r.resolve("model.layers.0.mlp.up_proj") == ("nvfp4", None)  # first match wins
    assert r.resolve("model.layers.3.mlp.up_proj") == ("hif4", "mxfp8e4m3")
    assert r.resolve("model.layers.3.self_attn.q_proj") == ("mxfp4", "hif8")  # inherits
    assert r.resolve("model.layers.3.self_attn.v_proj") == (None, None)  # explicit null
    assert r.resolve("model.layers.3.self_attn.o_proj") == ("mxfp4", None)  # default
    assert r.resolve("lm_head") == (None, None)
    assert r.resolve("model.embed_tokens") == (None, None)
    assert r.resolve("model.layers.0.mlp.down_proj") == (None, None)  # exclude beats rules
    assert r.resolve("Model.Layers.3.mlp.up_proj") == ("mxfp4", None)  # case-sensitive


def test_recipe_defaults_and_specs():
    assert Recipe().resolve("x") == ("mxfp4", None)
    assert Recipe.load(None).resolve("x") == ("mxfp4", None)
    r = Recipe.from_dict({"rules": [{"match": "a", "weights": {"format": "MXFP4",
                                                                "rounding": "even"}},
                                    {"match": "b", "weights": "int4"}]})
    assert r.resolve("a") == ({"format": "mxfp4", "rounding": "even"}, None)
    assert r.resolve("b") == ("int4sym", None)  # aliases canonicalized
    # with_defaults only fills what the recipe left unset
    assert r.with_defaults("hif8", "mxfp8e4m3").resolve("z") == ("hif8", "mxfp8e4m3")
    r2 = Recipe.from_dict({"default": {"weights": "nvfp4"}}).with_defaults("hif8", "hif8")
    assert r2.resolve("z") == ("nvfp4", "hif8")


def test_recipe_yaml_text_file_and_load(tmp_path):
    text = """
default: {weights: mxfp4, activations: null}
rules:
  - match: "model.layers.*.mlp.*"
    weights: hif4
    activations: mxfp8e4m3
exclude: [lm_head, "*.embed*"]
"""
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    for r in (Recipe.from_yaml(text), Recipe.from_yaml(path), Recipe.from_yaml(str(path)),
              Recipe.load(text), Recipe.load(path), Recipe.load(Recipe.from_yaml(text))):
        assert r.resolve("model.layers.1.mlp.gate_proj") == ("hif4", "mxfp8e4m3")
        assert r.resolve("model.layers.1.self_attn.o_proj") == ("mxfp4", None)
        assert r.resolve("lm_head") == (None, None)


@pytest.mark.parametrize("recipe, pattern", [
    ({"rules": [{"match": "a.*", "weights": "mxfp4"}, {"match": "b.*", "weights": "mxfp5"}]},
     r"rules\[1\] \(match 'b\.\*'\)\.weights: unknown format 'mxfp5'"),
    ({"rules": [{"match": "a", "activations": "fp3"}]},
     r"rules\[0\] \(match 'a'\)\.activations: unknown format 'fp3'"),
    ({"default": {"weights": "nope4"}}, r"default\.weights: unknown format 'nope4'"),
    ({"rules": [{"match": "a", "weights": {"format": "mxfp4", "round": "even"}}]},
     r"rules\[0\].*unknown option.*round"),
    ({"rules": [{"match": "a", "weights": {"rounding": "even"}}]}, r"rules\[0\].*'format'"),
    ({"rules": [{"match": "a", "weights": 4}]}, r"rules\[0\].*name or a dict"),
    ({"defaults": {}}, r"recipe: unknown key.*'defaults'"),
    ({"default": {"weight": "mxfp4"}}, r"default: unknown key.*'weight'"),
    ({"rules": [{"match": "a", "wieghts": "mxfp4"}]}, r"rules\[0\]: unknown key.*'wieghts'"),
    ({"rules": [{"weights": "mxfp4"}]}, r"rules\[0\]: missing 'match'"),
    ({"rules": {"match": "a"}}, r"rules: expected a list"),
    ({"rules": [{"match": 3}]}, r"rules\[0\]\.match: expected a glob"),
    ({"exclude": [1]}, r"exclude: expected a glob"),
])
def test_recipe_errors(recipe, pattern):
    with pytest.raises(RecipeError, match=pattern):
        Recipe.from_dict(recipe)
    assert issubclass(RecipeError, ValueError)


def test_recipe_yaml_errors():
    bad = "default:\n  weights: mxfp4\nrules:\n  - match: [a, b\n    weights: hif4\n"
    with pytest.raises(RecipeError, match=r"invalid YAML at line 5, column \d+: .*line 4"):
        Recipe.from_yaml(bad)
    with pytest.raises(RecipeError, match="line 2"):
        Recipe.from_yaml("default: {weights: mxfp4}\n  rules: x: y\n")
    with pytest.raises(RecipeError, match="YAML mapping"):
        Recipe.from_yaml("- just\n- a list\n")
    with pytest.raises(RecipeError, match="YAML mapping"):
        Recipe.load("no_such_recipe.yaml")  # neither a file nor a mapping
    with pytest.raises(RecipeError, match=r"rules\[0\].*'mxfp9'"):
        Recipe.from_yaml("rules:\n  - {match: '*', weights: mxfp9}\n")
    with pytest.raises(RecipeError, match="cannot make a recipe"):
        Recipe.load(42)


# -- quantize_model ----------------------------------------------------------------------

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.features = nn.Sequential(nn.Linear(48, 96), nn.GELU(), nn.Linear(96, 96))
        self.head = nn.Linear(96, 10)

    def forward(self, x):
        return self.head(torch.relu(self.features(x)))


def _manual(model, resolve):
    """A copy of `model` with each Linear's weight replaced by decode(encode(w)) and its
    input fake-quantized by a forward pre-hook: what quantize_model must reproduce."""
    ref = copy.deepcopy(model)
    for name, m in ref.named_modules():
        w_spec, a_spec = resolve(name)
        if not isinstance(m, nn.Linear) or w_spec is None:
            continue
        with torch.no_grad():
            m.weight.copy_(formats.decode(formats.encode(m.weight, _fmt(w_spec), axis=1)))
        if a_spec is not None:
            fmt = _fmt(a_spec)
            m.register_forward_pre_hook(
                lambda mod, args, fmt=fmt: (formats.fake_quant(args[0], fmt, axis=-1), *args[1:]))
    return ref


def test_quantize_mlp():
    model = MLP().eval()
    recipe = {"rules": [{"match": "head", "weights": "nvfp4", "activations": "mxfp8e4m3"}],
              "exclude": ["features.0"]}
    ref = _manual(model, Recipe.load(recipe).with_defaults("hif4", "hif8").resolve)
    untouched = copy.deepcopy(model)
    out = quantize_model(model, weights="hif4", activations="hif8", recipe=recipe)
    assert out is model
    assert type(model.features[0]) is nn.Linear
    assert isinstance(model.features[2], QuantLinear) and isinstance(model.head, QuantLinear)
    x = torch.randn(5, 48)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
        assert not torch.equal(model(x), untouched(x))
    assert model.npuq_report.layers == [
        {"name": "features.2", "type": "Linear", "format": "hif4", "activation": "hif8", "shape": [96, 96],
         "layout": "96 rows of 96", "fp32_bytes": 96 * 96 * 4, "packed_bytes": 96 * 128 // 2 + 96 * 2 * 4},
        {"name": "head", "type": "Linear", "format": "nvfp4", "activation": "mxfp8e4m3", "shape": [10, 96],
         "layout": "10 rows of 96", "fp32_bytes": 96 * 10 * 4, "packed_bytes": 10 * 48 + 10 * 6 + 4},
    ]
    assert model.npuq_report.left_float == [
        {"name": "features.0", "type": "Linear", "reason": "excluded by the recipe"}]
    assert model.npuq_summary is model.npuq_report.layers


def test_quantize_defaults_not_inplace_and_alias():
    model = MLP()
    q = quantize_model(model, inplace=False)
    assert q is not model and type(model.head) is nn.Linear
    assert all(isinstance(m, QuantLinear) for m in (q.features[0], q.features[2], q.head))
    assert {row["format"] for row in q.npuq_summary} == {"mxfp4"}
    assert q.head.training and q.features[0].training  # mode carried over
    x = torch.randn(2, 48)
    with torch.no_grad():
        assert torch.equal(q(x), _manual(model, lambda n: ("mxfp4", None))(x))
    # the recipe's own default overrides the weights= argument
    mlp = MLP()
    report = quantize_(mlp, weights="hif8", recipe={"default": {"weights": "int8"}})
    assert report is mlp.npuq_report and {row["format"] for row in report.layers} == {"int8sym"}
    assert "3 layers quantized, 0 weight layers left float" in str(report)


def test_quantize_mha_out_proj_left_alone():
    model = nn.Sequential(nn.Linear(16, 16), nn.MultiheadAttention(16, 2, batch_first=True))
    with pytest.warns(UserWarning, match=r"2 weight layers left float: 1 \(MultiheadAttention\), "
                                         r"1.out_proj \(NonDynamicallyQuantizableLinear\)"):
        quantize_model(model)
    assert isinstance(model[0], QuantLinear) and type(model[1].out_proj) is not QuantLinear
    reasons = {r["name"]: r["reason"] for r in model.npuq_report.left_float}
    assert reasons["1"].startswith("unsupported module type MultiheadAttention")
    assert reasons["1.out_proj"] == "inside nn.MultiheadAttention, which reads its .weight instead of calling it"
    with pytest.raises(QuantizationError, match=r"layer '1.out_proj' .*inside nn.MultiheadAttention"):
        quantize_model(copy.deepcopy(model), recipe={"rules": [{"match": "1.out_proj", "weights": "hif8"}]})


class Custom(nn.Module):
    """A module with a matrix parameter of its own, used through matmul: not a known layer."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 4))
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x @ self.w)


def test_quantize_unsupported_module_names_layer():
    model = nn.Sequential(Custom())
    recipe = {"rules": [{"match": "0", "weights": "mxfp4"}]}
    with pytest.raises(QuantizationError, match=r"layer '0' \(Custom\): unsupported module type Custom"):
        quantize_model(model, recipe=recipe)
    assert type(model[0].fc) is nn.Linear  # nothing replaced after an error
    # a glob that only happens to cover it is fine: it is left float, and said so
    with pytest.warns(UserWarning, match=r"1 weight layers left float: 0 \(Custom\)"):
        quantize_model(model, recipe={"rules": [{"match": "0*", "weights": "hif4"}]})
    assert isinstance(model[0].fc, QuantLinear)
    assert issubclass(QuantizationError, ValueError)


def test_recipe_rule_that_matches_nothing_is_an_error():
    for rule in ({"match": "feature.0", "weights": "hif4"}, {"types": ["Conv*"], "weights": "hif4"},
                 {"match": "features.*", "types": "Embedding", "weights": "hif4"}):
        model = MLP()
        with pytest.raises(QuantizationError, match=r"recipe rule 0 \(.*\) matches no module of MLP"):
            quantize_model(model, recipe={"rules": [rule]})
        assert type(model.head) is nn.Linear


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize("make, pattern", [
    (lambda: nn.Linear(8, 4).double(), r"layer 'fc' \(Linear\): weight dtype torch.float64"),
    (lambda: nn.Linear(0, 4), r"layer 'fc' \(Linear\): cannot quantize an empty weight"),
    (lambda: nn.Linear(8, 0), r"layer 'fc' \(Linear\): cannot quantize an empty weight"),
])
def test_quantize_layer_errors(make, pattern):
    def build():
        model = nn.Sequential()
        model.add_module("ok", nn.Linear(8, 8))
        model.add_module("fc", make())
        return model

    # named by a rule: an error, and nothing is replaced
    model = build()
    with pytest.raises(QuantizationError, match=pattern):
        quantize_model(model, recipe={"rules": [{"match": "fc", "weights": "mxfp4"}]})
    assert type(model.ok) is nn.Linear
    # covered by the default: left float, with the reason, and a warning
    model = build()
    with pytest.warns(UserWarning, match=r"1 weight layers left float: fc \(Linear\)"):
        quantize_model(model)
    assert isinstance(model.ok, QuantLinear) and type(model.fc) is nn.Linear
    [left] = model.npuq_report.left_float
    assert left["name"] == "fc" and re.search(pattern.partition(": ")[2], left["reason"])


def test_quantize_int_weight_and_bad_recipe():
    model = nn.Sequential(nn.Linear(8, 8))
    model[0].weight = nn.Parameter(torch.ones(8, 8, dtype=torch.int8), requires_grad=False)
    with pytest.raises(QuantizationError, match=r"layer '0' \(Linear\): weight dtype torch.int8"):
        quantize_model(model, recipe={"rules": [{"match": "0", "weights": "hif4"}]})
    with pytest.raises(RecipeError, match="mxfp5"):
        quantize_model(nn.Linear(4, 4), weights="mxfp5")


# -- a Hugging Face LLaMA, built offline from a config --------------------------------------

def test_quantize_llama():
    import transformers
    config = transformers.LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=256, max_position_embeddings=64,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    recipe = Recipe.from_yaml("""
default: {weights: mxfp4, activations: mxfp8e4m3}
rules:
  - {match: "model.layers.*.mlp.down_proj", weights: hif4, activations: hif8}
  - {match: "model.layers.*.mlp.*", weights: nvfp4, activations: null}
  - {match: "model.layers.1.self_attn.*", weights: int4sym}
exclude: [lm_head, "*.embed*"]
""")
    ref = _manual(model, recipe.resolve)
    ids = torch.randint(0, config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = model(ids).logits
    quantize_model(model, recipe=recipe)

    linears = {n: m for n, m in model.named_modules() if n.startswith("model.layers.")
               and isinstance(m, (nn.Linear, QuantLinear))}
    assert len(linears) == 2 * 7 and all(isinstance(m, QuantLinear) for m in linears.values())
    assert type(model.lm_head) is nn.Linear and type(model.model.embed_tokens) is nn.Embedding
    with torch.no_grad():
        got = model(ids).logits
        assert torch.equal(got, ref(ids).logits)
        assert not torch.equal(got, plain)

    assert [row["name"] for row in model.npuq_summary] == list(linears)
    for name, q in linears.items():
        w_spec, _ = recipe.resolve(name)
        fmt = formats.get_format(w_spec)
        assert q.weight_format.name == fmt.name
        bits = q.in_features * q.out_features * fmt.bits_per_element(q.in_features)
        assert q.weight_bytes * 8 == bits + (32 if fmt.name == "nvfp4" else 0), name
