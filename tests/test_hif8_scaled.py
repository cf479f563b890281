"""Scaled HiF8 (`hif8` with scale="row" / "tensor"): torchao's HiFloat8 workflow on the NPU.

scale = amax / 32768 in float32 (per row of the quantization axis, or per tensor), codes =
hif8(x / scale) clamped to +-32768, value = code * scale. Checked bit for bit against an
independent numpy re-derivation of the spec, a torch emulation of torchao's Float8 primitives
with 32768 as the maximum, onnxruntime (QuantDequant, Quantize and Dequantize bodies) and the
AscendC kernels' host build (QuantDequant and Dequantize).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import helper

from onnx_npuq import formats as F
from onnx_npuq.errors import NodeError
from onnx_npuq.ops import bodies as B
from onnx_npuq.ops import defs, functions
from test_kernels_host import assert_bits as assert_kernel_bits
from test_kernels_host import decode_kernel, fake_quant_kernel, kernel_host  # noqa: F401 (fixture)

DATA = Path(__file__).parent / "data"
SCALES = ("row", "tensor")
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
ONNX_TYPE = {torch.float32: onnx.TensorProto.FLOAT, torch.float16: onnx.TensorProto.FLOAT16,
             torch.bfloat16: onnx.TensorProto.BFLOAT16}
MAX = np.float32(32768.0)


# ------------------------------------------------------------------ independent numpy reference


def _hif8_table() -> tuple[np.ndarray, dict]:
    """Every byte's value from the spec's bit layout (formats.md "HiF8"), and value -> byte."""
    values = np.empty(256, np.float64)
    for b in range(256):
        s, r = b >> 7, b & 0x7F
        if b == 0x80:
            v = np.nan
        elif r == 0:
            v = 0.0
        elif r == 0x6F:
            v = np.inf
        elif r >= 0x60:  # dot 11: exponent sign b4, |E| = 8 + b3b2b1, 1 mantissa bit
            e, m, bits = 8 + ((r >> 1) & 7), r & 1, 1
            v = 2.0 ** (-e if (r >> 4) & 1 else e) * (1 + m / 2**bits)
        elif r >= 0x40:  # dot 10: |E| = 4 + b3b2, 2 bits
            e, m, bits = 4 + ((r >> 2) & 3), r & 3, 2
            v = 2.0 ** (-e if (r >> 4) & 1 else e) * (1 + m / 2**bits)
        elif r >= 0x20:  # dot 01: |E| = 2 + b3, 3 bits
            e, m = 2 + ((r >> 3) & 1), r & 7
            v = 2.0 ** (-e if (r >> 4) & 1 else e) * (1 + m / 8)
        elif r >= 0x10:  # dot 001: |E| = 1, sign b3
            v = 2.0 ** (-1 if (r >> 3) & 1 else 1) * (1 + (r & 7) / 8)
        elif r >= 0x08:  # dot 0001: E = 0
            v = 1 + (r & 7) / 8
        else:  # denormal: 2^(M - 23)
            v = 2.0 ** ((r & 7) - 23)
        values[b] = -v if s and b != 0x80 else v
    code_of = {float(v): b for b, v in enumerate(values) if np.isfinite(v) and not (v == 0 and b)}
    return values, code_of


HIF8_VALUES, HIF8_CODE = _hif8_table()


def hif8_round(t: np.ndarray) -> np.ndarray:
    """The spec's encode rule (ties away) on float64 magnitudes, any finite or NaN t."""
    a = np.abs(t)
    _, e = np.frexp(a)
    e = np.maximum(e - 1, -22)  # floor_log2, E = -23 rounds on the 2^-22 grid
    ae = np.abs(e)
    p = np.where(ae <= 3, 3, np.where(ae <= 7, 2, np.where(ae <= 15, 1, 0)))
    step = np.ldexp(1.0, e - p)
    with np.errstate(invalid="ignore"):
        v = np.floor(a / step + 0.5) * step
        v = np.where(a >= 40960.0, np.inf, v)
        v = np.where(a < 2.0**-23, 0.0, v)
    return np.copysign(v, t) + 0.0


def reference(x: torch.Tensor, scale: str, axis: int = -1):
    """(fake-quant values float32 in x's dtype, codes uint8 (rows, n), scales float32 (rows,))
    of numpy arrays: the issue's definition, step by step in float32."""
    xf = x.float().movedim(axis, -1).numpy()
    rows = xf.reshape(-1, xf.shape[-1])
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        amax = np.abs(rows).max(axis=1, keepdims=True) if scale == "row" else np.abs(rows).max(keepdims=True)
        s = (amax / MAX).astype(np.float32) * np.ones((rows.shape[0], 1), np.float32)
        div = np.where(s > 0, s, np.float32(1)).astype(np.float32)
        t = np.clip(rows / div, -MAX, MAX).astype(np.float32)  # torchao's clamp to +-max
        q = hif8_round(t.astype(np.float64)).astype(np.float32)
        q = np.where(np.isfinite(s), q, np.float32(np.nan))
        y = (q * s).astype(np.float32)
    codes = np.array([0x80 if np.isnan(v) else HIF8_CODE[float(v)] for v in q.reshape(-1)], np.uint8)
    out = torch.from_numpy(y).reshape(xf.shape).movedim(-1, axis).to(x.dtype)
    return out, codes.reshape(rows.shape), s.reshape(-1)


def torchao_draft(x: torch.Tensor, scale: str) -> torch.Tensor:
    """torchao's Float8 primitives as the HiF8 draft uses them (quant_primitives.py:
    _choose_scale_float8, _quantize_affine_float8, _dequantize_affine_float8) with hif8_max =
    32768: amax and amax / max in x's dtype, x.float() / scale, clamp, HiF8 cast (ties away),
    q.float() * scale cast to x's dtype. PerRow = the last dimension."""
    amax = x.abs().amax(-1, keepdim=True) if scale == "row" else x.abs().amax().reshape(1, 1)
    s = (amax / 32768.0).to(torch.float32)
    t = (x.to(torch.float32) / s).clamp(-32768.0, 32768.0)
    q = torch.from_numpy(hif8_round(t.double().numpy())).float()
    return (q * s).to(x.dtype)


# ------------------------------------------------------------------ data


def sample(shape, seed=0, dtype=torch.float32, specials=True, axis=-1) -> torch.Tensor:
    """Rows (along `axis`) of randn * 2^k, exact zeros, -0.0, values on HiF8 ties after
    scaling; with `specials` (and rows enough): an all-zero row, a NaN row, +Inf and -Inf
    rows, rows whose scale is a float32 subnormal or underflows to 0, a row near float32's
    maximum (the last three for float32 only)."""
    g = torch.Generator().manual_seed(seed)
    n = shape[axis]
    rows = int(np.prod(shape)) // n
    kmax = 8 if dtype == torch.float16 else 30
    k = torch.randint(-kmax, kmax + 1, (rows, 1), generator=g).float()
    x = torch.randn(rows, n, generator=g) * torch.exp2(k)
    u = torch.rand(rows, n, generator=g)
    # ties: amax 2^k (scale 2^(k-15)), elements HiF8 value + half a step, times the scale
    grid = torch.from_numpy(HIF8_VALUES[np.isfinite(HIF8_VALUES)].astype(np.float32))
    pick = grid[torch.randint(0, grid.numel(), (rows, n), generator=g)].abs().clamp(max=16384.0)
    half = torch.from_numpy(np.ldexp(1.0, np.frexp(pick.double().numpy())[1] - 1 - 4).astype(np.float32))
    ties = (pick + half * (pick >= 2.0**-22)) * torch.exp2(k - 15)
    x = torch.where(u < 0.15, ties, x)
    x = torch.where((u >= 0.15) & (u < 0.2), torch.zeros(()), x)
    x = torch.where((u >= 0.2) & (u < 0.23), torch.tensor(-0.0), x)
    has_ties = (u < 0.15).any(1, keepdim=True)
    x[:, :1] = torch.where(has_ties, torch.exp2(k), x[:, :1])
    if specials and rows >= 9:
        x[1] = 0.0
        x[2, n // 2] = float("nan")
        x[3, n - 1] = float("inf")
        x[4, 0] = float("-inf")
        if dtype == torch.float32:
            x[5] = torch.randn(n, generator=g) * 2.0**-130  # scale: a float32 subnormal
            x[6] = torch.randn(n, generator=g) * 2.0**-136  # scale underflows (to 0 or 2^-149)
            x[7] = torch.randn(n, generator=g).clamp(-1.9, 1.9) * 2.0**126
    moved = [d for i, d in enumerate(shape) if i != axis % len(shape)] + [n]
    return x.reshape(moved).movedim(-1, axis).contiguous().to(dtype)


def same(a: torch.Tensor, b: torch.Tensor, msg: str = "") -> None:
    """torch.equal with NaN in the same places (+0.0 == -0.0)."""
    assert a.shape == b.shape and a.dtype == b.dtype, msg
    na, nb = torch.isnan(a), torch.isnan(b)
    assert torch.equal(na, nb), f"{msg}: NaN positions differ at {torch.nonzero(na != nb)[:5].tolist()}"
    a, b = a.masked_fill(na, 0), b.masked_fill(nb, 0)
    if not torch.equal(a, b):
        idx = torch.nonzero(a != b)[:5].tolist()
        raise AssertionError(f"{msg}: {int((a != b).sum())} differ, e.g. "
                             f"{[(i, a[tuple(i)].item(), b[tuple(i)].item()) for i in idx]}")


# ------------------------------------------------------------------ the format in torch


def test_options_and_default_unchanged():
    plain = F.get_format("hif8")
    assert plain.options == {} and plain.block == 1 and plain.scale_bytes == 0 and plain.scale is None
    for sc in SCALES:
        f = F.get_format("hif8", scale=sc)
        assert f.options == {"scale": sc} and f.block is None and f.scale_bytes == 4 and f.scale_type == "float32"
        assert defs.overload_name(f) == f"hif8.scale={sc}"
        assert defs.format_attrs(f)["scale"] == sc and defs.format_attrs(plain)["scale"] == "none"
        assert defs.format_from_attrs(defs.format_attrs(f)).options == f.options
        assert B.function_name("QuantDequant", "hif8", scale=sc) == f"QuantDequant_hif8_scale_{sc}"
        assert defs.packed_widths(f, 70) == (70, 4)
    with pytest.raises(ValueError, match="scale must be"):
        F.get_format("hif8", scale="column")
    with pytest.raises(ValueError, match="saturate does not combine"):
        F.get_format("hif8", scale="row", saturate=True)
    with pytest.raises(ValueError, match="unknown option"):
        F.get_format("mxfp4", scale="row")
    assert "scale='row' | 'tensor'" in next(r for r in F.describe() if r["format"] == "hif8")["options"]
    # the unscaled default is the spec's element-wise rule, scales empty
    x = sample((12, 70), 1)
    p = F.encode(x, "hif8")
    assert p.scales.shape == (12, 0) and p.block == 1
    from onnx_npuq.formats.hif8 import quantize_reference
    same(F.fake_quant(x, "hif8"), quantize_reference(x))
    same(F.decode(p), quantize_reference(x))


def test_hand_vectors():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0],        # scale 2^-13: x / scale = 8192 .. 32768, all exact
                      [0.1, -5.3, 7.0, 0.0],       # 0.1 / s = 468.1 -> 512; -5.3 / s = -24809.9 -> -24576
                      [0.0, 0.0, 0.0, -0.0],       # scale 0: zeros (torchao: 0 / 0 = NaN)
                      [1.0, float("inf"), 2.0, 3.0],
                      [1.0, float("nan"), 2.0, 3.0]])
    s7 = np.float32(7.0) / np.float32(32768.0)
    want = torch.tensor([[1.0, 2.0, 3.0, 4.0],
                         [float(np.float32(512.0) * s7), float(np.float32(-24576.0) * s7), 7.0, 0.0],
                         [0.0, 0.0, 0.0, 0.0]] + [[float("nan")] * 4] * 2)
    same(F.fake_quant(x, "hif8", scale="row"), want)
    p = F.encode(x, "hif8", scale="row")
    # 8192 = 2^13: dot 11, |E| - 8 = 5 in b3b2b1 -> 0x6A; 16384 0x6C; 24576 = 1.5 * 2^14 0x6D;
    # 32768 0x6E; 512 = 2^9 0x62; -24576 0xED
    assert p.codes[:3].tolist() == [[0x6A, 0x6C, 0x6D, 0x6E], [0x62, 0xED, 0x6E, 0x00], [0, 0, 0, 0]]
    assert p.codes[3:].tolist() == [[0x80] * 4] * 2  # a row holding NaN or Inf: NaN codes
    assert p.scales.view(torch.float32).reshape(-1).tolist()[:4] == [2.0**-13, float(s7), 0.0, float("inf")]
    assert np.isnan(p.scales[4].view(torch.float32).item())
    same(F.decode(p), want)
    # tensor: one scale, amax over everything (a NaN anywhere makes the whole tensor NaN)
    # amax 7: 1 / s = 4681.1 -> 4096, 2 / s -> 8192, 3 / s = 14043.4 -> 12288, 4 / s -> 16384
    t = F.fake_quant(x[:3], "hif8", scale="tensor")
    same(t[0], torch.tensor([4096.0, 8192.0, 12288.0, 16384.0]) * float(s7))
    same(t[1:], want[1:3])
    assert torch.isnan(F.fake_quant(x, "hif8", scale="tensor")).all()
    pt = F.encode(x[:3], "hif8", scale="tensor")
    assert pt.tensor_scale is None and pt.scales.view(torch.float32).reshape(-1).tolist() == [float(s7)] * 3


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,axis", [((12, 70), -1), ((70, 12), 0), ((3, 33, 4), 1), ((1, 1), -1)])
def test_numpy_reference(scale, dtype, shape, axis):
    x = sample(shape, shape[axis], dtype, axis=axis)
    want, codes, scales = reference(x, scale, axis)
    same(F.fake_quant(x, "hif8", axis=axis, scale=scale), want, "fake_quant")
    p = F.encode(x, "hif8", axis=axis, scale=scale)
    assert torch.equal(p.codes, torch.from_numpy(codes)), "codes"
    got = p.scales.view(torch.float32).reshape(-1)
    same(got, torch.from_numpy(scales), "scales")
    same(F.decode(p), want, "decode")


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_round_trip_and_layout(scale, dtype):
    x = sample((4, 5, 67), 3, dtype, axis=1)
    p = F.encode(x, "hif8", axis=1, scale=scale)
    assert p.codes.shape == (4 * 67, 5) and p.scales.shape == (4 * 67, 4) and p.block == 5
    assert p.tensor_scale is None and p.nbytes == 4 * 67 * (5 + 4) and p.options == {"scale": scale}
    if scale == "tensor":
        assert (p.scales == p.scales[:1]).all()
    y = F.fake_quant(x, "hif8", axis=1, scale=scale)
    assert y.dtype == dtype and y.shape == x.shape
    same(F.decode(p), y)
    # Dequantize is option-free: the custom op decodes the rows with the format name alone
    rows = defs.dequantize(dataclasses.replace(p, options={}))
    same(rows, y)


def test_matches_torchao_primitives():
    """torchao's draft: equal for float32 and bfloat16 (amax / 2^15 is exact in both); the
    deliberate differences: an all-zero row (torchao 0 / 0 = NaN, ours 0) and float16 inputs
    whose amax / 32768 is an fp16 subnormal (torchao divides in the input dtype, we in float32)."""
    for dtype in (torch.float32, torch.bfloat16):
        for scale in SCALES:
            x = sample((16, 96), 5, dtype, specials=False)
            same(F.fake_quant(x, "hif8", scale=scale), torchao_draft(x, scale), f"{dtype} {scale}")
    zero = torch.zeros(2, 8)
    assert torch.isnan(torchao_draft(zero, "row")).all() and torch.equal(F.fake_quant(zero, "hif8", scale="row"), zero)
    x16 = torch.tensor([[0.0123, 0.5, -0.25, 1.0009765625]], dtype=torch.float16)
    ours, theirs = F.fake_quant(x16, "hif8", scale="row"), torchao_draft(x16, "row")
    same(ours, reference(x16, "row")[0])
    assert not torch.equal(ours, theirs)  # fp16 scale 1.0009765625 / 32768 is rounded to 2^-15


finite_rows = hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
                         elements=st.floats(-2.0**100, 2.0**100, width=32, allow_subnormal=True))


@given(finite_rows, st.sampled_from(SCALES))
def test_property_reference(x, scale):
    xt = torch.from_numpy(x)
    want, codes, _ = reference(xt, scale)
    same(F.fake_quant(xt, "hif8", scale=scale), want)
    p = F.encode(xt, "hif8", scale=scale)
    assert torch.equal(p.codes, torch.from_numpy(codes))
    same(F.decode(p), want)


@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 8), st.integers(1, 40)),
                  elements=st.floats(-2.0**20, 2.0**20, width=32)),
       st.sampled_from(SCALES), st.integers(-20, 20))
def test_property_scaling(x, scale, k):
    """Bounded by amax, odd in x, and invariant under exact power-of-two scaling (the scale
    absorbs 2^k) for values away from float32's subnormals; idempotent there."""
    xt = torch.from_numpy(x)
    xt = torch.where(xt.abs() < 2.0**-60, torch.zeros(()), xt)
    y = F.fake_quant(xt, "hif8", scale=scale)
    amax = xt.abs().amax(-1, keepdim=True) if scale == "row" else xt.abs().amax()
    assert (y.abs() <= amax).all()
    same(F.fake_quant(-xt, "hif8", scale=scale), -y)
    same(F.fake_quant(xt * 2.0**k, "hif8", scale=scale), y * 2.0**k)
    same(F.fake_quant(y, "hif8", scale=scale), y)


# ------------------------------------------------------------------ onnxruntime


def _ortvalue(t: torch.Tensor):
    if t.dtype == torch.bfloat16:
        raw = t.contiguous().view(torch.int16).numpy().view(np.uint16)
        return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(raw, onnx.TensorProto.BFLOAT16)
    return ort.OrtValue.ortvalue_from_numpy(t.contiguous().numpy())


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _run(sess, feeds: dict, out_shape, out_dtype, out="Y") -> torch.Tensor:
    binding = sess.io_binding()
    for key, t in feeds.items():
        binding.bind_ortvalue_input(key, _ortvalue(t))
    y = torch.empty(out_shape, dtype=out_dtype)
    binding.bind_ortvalue_output(out, _ortvalue(y))
    sess.run_with_iobinding(binding)
    return y


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_onnx_quant_dequant_and_dequantize(scale, dtype):
    for shape, axis in (((12, 70), -1), ((70, 12), 0), ((3, 33, 4), 1)):
        x = sample(shape, 7, dtype, axis=axis)
        model = B.model_for_fake_quant("hif8", [f"d{i}" for i in range(len(shape))], axis, dtype, scale=scale)
        onnx.checker.check_model(model, full_check=True)
        same(_run(_session(model), {"X": x}, x.shape, dtype), F.fake_quant(x, "hif8", axis=axis, scale=scale),
             f"QuantDequant {shape} {axis}")
        p = F.encode(x, "hif8", axis=axis, scale=scale)
        for as_inputs in (False, True):
            feeds = {"codes": p.codes, "scales": p.scales} if as_inputs else {}
            got = _run(_session(B.model_for_decode(p, as_inputs=as_inputs)), feeds, x.shape, dtype)
            same(got, F.decode(p), f"Dequantize {shape} {axis}")


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_onnx_quantize_body(scale, dtype):
    fn = B.quantize_function("hif8", scale=scale)
    node = helper.make_node(fn.name, ["X"], ["codes", "scales"], domain=B.DOMAIN)
    u8 = onnx.TensorProto.UINT8
    graph = helper.make_graph([node], "q", [helper.make_tensor_value_info("X", ONNX_TYPE[dtype], ["a", "b", "n"])],
                              [helper.make_tensor_value_info("codes", u8, ["r", "c"]),
                               helper.make_tensor_value_info("scales", u8, ["r", "s"])])
    sess = _session(B._model(graph, [fn]))
    x = sample((2, 6, 70), 11, dtype)
    codes, scales = (torch.from_numpy(a) for a in sess.run(None, {"X": x.numpy()}))
    p = F.encode(x, "hif8", scale=scale)
    assert torch.equal(codes, p.codes) and torch.equal(scales, p.scales)


@pytest.mark.parametrize("scale", SCALES)
def test_export_through_the_npuq_ops(scale):
    """torch custom ops -> npuq::QuantDequant / Quantize + Dequantize nodes carrying
    scale=...; attach gives them the bodies above; onnxruntime equals torch."""
    from onnx_npuq.exporter import to_onnx

    class M(torch.nn.Module):
        def forward(self, x):
            codes, scales = defs.quantize(x, "hif8", scale=scale)
            n = x.shape[-1]
            w = torch.ops.npuq.dequantize(codes, scales, None, "hif8", n, n).reshape(x.shape)
            return defs.quant_dequant(x, "hif8", scale=scale) + w

    x = sample((9, 70), 13, specials=False)
    proto = to_onnx(M(), (x,), dynamic_shapes=({0: torch.export.Dim.AUTO},))  # the length stays static
    nodes = [n for n in proto.graph.node if n.domain == "npuq"]
    assert {n.op_type for n in nodes} == {"Quantize", "Dequantize", "QuantDequant"}
    for n in nodes:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type != "Dequantize":
            assert attrs["scale"] == scale.encode() and n.overload == f"hif8.scale={scale}"
    sess = _session(proto)
    for rows in (9, 4):
        xr = sample((rows, 70), rows, specials=False)
        y = torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: xr.numpy()})[0])
        fq = F.fake_quant(xr, "hif8", scale=scale)
        same(y, fq + fq)


def test_dequantize_node_validation():
    """npuq::Dequantize of hif8: block 1 and no scale bytes, or the whole row (length or 0)
    with 4 scale bytes per row; anything else is refused before onnxruntime sees it."""
    def model(block, length, scale_width):
        node = helper.make_node("Dequantize", ["codes", "scales"], ["Y"], domain="npuq",
                                format="hif8", block=block, length=length)
        u8 = onnx.TensorProto.UINT8
        g = helper.make_graph([node], "g", [helper.make_tensor_value_info("codes", u8, [3, length]),
                                            helper.make_tensor_value_info("scales", u8, [3, scale_width])],
                              [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [3, length])])
        return helper.make_model(g)

    for ok in ((1, 70, 0), (70, 70, 4), (0, 70, 4), (1, 1, 0), (1, 1, 4)):
        functions.validate(model(*ok))
    for bad in ((1, 70, 4), (70, 70, 0), (7, 70, 4), (70, 70, 8)):
        with pytest.raises(NodeError):
            functions.validate(model(*bad))


# ------------------------------------------------------------------ kernel host build


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_kernel_quant_dequant_and_dequantize(kernel_host, tmp_path, scale, dtype):
    """Rows in one tile, rows cut into runs (a second amax pass for "row"; pieces in the
    tensor-amax pass), ragged lengths, 1 and 5 cores, a forced small tile."""
    cases = [((12, 70), 1, 0), ((40, 33), 5, 3), ((9, 5000), 5, 0), ((3, 9001), 1, 0), ((1, 1), 1, 0),
             ((17, 8), 5, 2)]
    for shape, cores, tile_rows in cases:
        for specials in (True, False):  # "tensor" with a NaN anywhere is NaN throughout
            x = sample(shape, shape[1] + cores, dtype, specials=specials)
            got = fake_quant_kernel(kernel_host, tmp_path, x, "hif8", {"scale": scale}, cores, tile_rows)
            assert_kernel_bits(got, F.fake_quant(x, "hif8", scale=scale), f"QuantDequant {shape} {cores}")
            p = dataclasses.replace(F.encode(x, "hif8", scale=scale), dtype=torch.float32)
            assert_kernel_bits(decode_kernel(kernel_host, tmp_path, p, cores, tile_rows), F.decode(p),
                               f"Dequantize {shape} {cores}")


def test_kernel_default_hif8_unchanged(kernel_host, tmp_path):
    x = sample((12, 5000), 2)
    assert_kernel_bits(fake_quant_kernel(kernel_host, tmp_path, x, "hif8", {}, 3), F.fake_quant(x, "hif8"))
    sat = fake_quant_kernel(kernel_host, tmp_path, x * 1e4, "hif8", {"saturate": True}, 2)
    assert_kernel_bits(sat, F.fake_quant(x * 1e4, "hif8", saturate=True))
    p = F.encode(x, "hif8")
    assert_kernel_bits(decode_kernel(kernel_host, tmp_path, p, 2), F.decode(p))


def test_spec_table_is_the_reference_table():
    """The numpy decoder above agrees with tests/data/hif8_decode_table.json (the spec's)."""
    raw = json.loads((DATA / "hif8_decode_table.json").read_text())
    vals = [np.nan if v is None else float(v) for v in raw["values"]]
    assert raw["codes"] == list(range(256))
    np.testing.assert_array_equal(np.array(vals), HIF8_VALUES)
