"""Public test vectors: the stored fake-quant pairs and the inline examples of formats.md."""
from __future__ import annotations


import pytest
import torch

from conftest import VECTOR_SETS, assert_same, f32_from_bits
from onnx_npuq import formats as F
from onnx_npuq.formats.codecs import HIF8
from onnx_npuq.formats.hif8 import quantize_reference

SETS = sorted(VECTOR_SETS)


# ---------------------------------------------------------------- stored vector sets


@pytest.mark.parametrize("prefix", SETS)
def test_vector_fake_quant(vectors, prefix):
    x, y = vectors[prefix]
    assert_same(F.fake_quant(x, VECTOR_SETS[prefix]), y, prefix)
    assert_same(F.fake_quant(x, VECTOR_SETS[prefix], axis=1), y, prefix)


@pytest.mark.parametrize("prefix", SETS)
def test_vector_encode_decode(vectors, prefix):
    x, y = vectors[prefix]
    p = F.encode(x, VECTOR_SETS[prefix])
    assert p.codes.dtype == torch.uint8 and p.scales.dtype == torch.uint8
    assert_same(F.decode(p), y, prefix)
    assert_same(p.decode(), y, prefix)


@pytest.mark.parametrize("prefix", SETS)
def test_vector_moved_axis(vectors, prefix):
    """The same data laid out along axis 0 (and in higher rank) gives the same values."""
    x, y = vectors[prefix]
    fmt = VECTOR_SETS[prefix]
    xt = x.t()  # non-contiguous view (192, 32): quantize along axis 0
    assert_same(F.fake_quant(xt, fmt, axis=0).t(), y, f"{prefix} transposed view")
    assert_same(F.fake_quant(xt.contiguous(), fmt, axis=0).t(), y, f"{prefix} transposed")
    assert_same(F.fake_quant(xt.contiguous(), fmt, axis=-2).t(), y, f"{prefix} axis=-2")
    assert_same(F.decode(F.encode(xt.contiguous(), fmt, axis=0)).t(), y, f"{prefix} packed axis 0")
    # rank 3: (4, 192, 8) with the quantized axis in the middle
    x3 = x.reshape(4, 8, 192).permute(0, 2, 1).contiguous()
    y3 = y.reshape(4, 8, 192).permute(0, 2, 1).contiguous()
    assert_same(F.fake_quant(x3, fmt, axis=1), y3, f"{prefix} rank-3 axis 1")
    assert_same(F.decode(F.encode(x3, fmt, axis=1)), y3, f"{prefix} rank-3 packed")


@pytest.mark.parametrize("prefix", SETS)
def test_vector_rows_independent(vectors, prefix):
    """Quantizing a subset of rows (a different chunking) gives the same rows."""
    x, y = vectors[prefix]
    fmt = VECTOR_SETS[prefix]
    for rows in (slice(0, 1), slice(5, 17), slice(31, 32)):
        assert_same(F.fake_quant(x[rows], fmt), y[rows], f"{prefix} rows {rows}")


@pytest.mark.parametrize("prefix", SETS)
def test_vector_tiled_chunked(vectors, prefix):
    """Tiled to 2^19 elements: larger than one CPU chunk, so the chunked driver runs."""
    x, y = vectors[prefix]
    reps = (1 << 19) // x.numel() + 1
    xt, yt = x.repeat(reps, 1), y.repeat(reps, 1)
    fmt = VECTOR_SETS[prefix]
    assert_same(F.fake_quant(xt, fmt), yt)
    assert_same(F.decode(F.encode(xt, fmt)), yt)


@pytest.mark.slow  # 2^20+ elements, may compile kernels: make test-slow
@pytest.mark.parametrize("prefix", SETS)
def test_vector_tiled_large(vectors, prefix):
    """Tiled past 2^20 elements, where a fast (e.g. compiled) backend may take over."""
    x, y = vectors[prefix]
    reps = (1 << 20) // x.numel() + 1
    xt, yt = x.repeat(reps, 1), y.repeat(reps, 1)
    fmt = VECTOR_SETS[prefix]
    assert_same(F.fake_quant(xt, fmt), yt)
    assert_same(F.fake_quant(xt.t(), fmt, axis=0).t(), yt)
    assert_same(F.decode(F.encode(xt, fmt)), yt)


def test_hif8_vectors_match_reference(vectors):
    x, y = vectors["hif8"]
    assert_same(quantize_reference(x), y)


# ---------------------------------------------------------------- HiF8 inline vectors

# (fp32 input, byte, decoded value) from formats.md
HIF8_VECTORS = [
    (0.0, 0x00, 0.0),
    (-0.0, 0x00, 0.0),
    (1.0, 0x08, 1.0),
    (1.0625, 0x09, 1.125),
    (-1.0625, 0x89, -1.125),
    (1.0624998807907104, 0x08, 1.0),
    (0.75, 0x1C, 0.75),
    (5.3, 0x23, 5.5),
    (18.0, 0x41, 20.0),
    (15.5, 0x40, 16.0),
    (1280.0, 0x65, 1536.0),
    (-0.1, 0xD2, -0.09375),
    (40959.996, 0x6E, 32768.0),
    (40960.0, 0x6F, float("inf")),
    (-1e6, 0xEF, float("-inf")),
    (2.0**-15, 0x7E, 2.0**-15),
    (1.5 * 2.0**-16, 0x7E, 2.0**-15),
    (1.5 * 2.0**-20, 0x04, 2.0**-19),
    (2.0**-23, 0x01, 2.0**-22),
    (-(2.0**-24), 0x00, 0.0),
]


@pytest.mark.parametrize("x,byte,value", HIF8_VECTORS, ids=[f"{v[0]!r}" for v in HIF8_VECTORS])
def test_hif8_inline_vector(x, byte, value):
    t = torch.tensor([x], dtype=torch.float32)
    p = F.encode(t, "hif8")
    assert p.codes.shape == (1, 1) and p.scales.numel() == 0
    assert p.codes.item() == byte, f"encode({x!r}) = {p.codes.item():#04x}, expected {byte:#04x}"
    want = torch.tensor([value], dtype=torch.float32)
    assert_same(F.fake_quant(t, "hif8"), want)
    assert_same(F.decode(p), want)
    assert_same(HIF8.decode(torch.tensor([byte], dtype=torch.uint8)), want)
    assert_same(quantize_reference(t), want)
    # only one zero: the result never carries a sign
    if value == 0:
        assert not torch.signbit(F.fake_quant(t, "hif8")).item()


def test_hif8_inline_vectors_batched():
    x = torch.tensor([v[0] for v in HIF8_VECTORS], dtype=torch.float32)
    p = F.encode(x, "hif8")
    assert p.codes.reshape(-1).tolist() == [v[1] for v in HIF8_VECTORS]
    assert_same(F.fake_quant(x, "hif8"), torch.tensor([v[2] for v in HIF8_VECTORS]))


def test_hif8_saturate_vectors():
    x = torch.tensor([40959.996, 40960.0, -1e6, 1280.0, 0.75], dtype=torch.float32)
    want = torch.tensor([32768.0, 32768.0, -32768.0, 1536.0, 0.75])
    assert_same(F.fake_quant(x, "hif8", saturate=True), want)
    assert F.encode(x, "hif8", saturate=True).codes.reshape(-1).tolist() == [0x6E, 0x6E, 0xEE, 0x65, 0x1C]


# ---------------------------------------------------------------- MX inline vectors

MX4_IN = [0.75, 2.5, 5.0, 7.0, -0.25, 0.3, 1.2, -3.1]
MX4_OUT = [1.0, 3.0, 6.0, 6.0, -0.5, 0.5, 1.0, -3.0]
MX8_IN = [75.0, 250.0, 500.0, 700.0, -25.0, 30.0, 120.0, -310.0]
MX8_OUT = [72.0, 256.0, 512.0, 704.0, -26.0, 30.0, 120.0, -320.0]


@pytest.mark.parametrize(
    "fmt,xs,ys,scale_byte",
    [("mxfp4", MX4_IN, MX4_OUT, 127), ("mxfp8e4m3", MX8_IN, MX8_OUT, 128)],
)
@pytest.mark.parametrize("full_block", [False, True])
def test_mx_inline_example(fmt, xs, ys, scale_byte, full_block):
    pad = [0.0] * (32 - len(xs)) if full_block else []
    x = torch.tensor(xs + pad, dtype=torch.float32)
    want = torch.tensor(ys + pad, dtype=torch.float32)
    assert_same(F.fake_quant(x, fmt), want)
    p = F.encode(x, fmt)
    assert p.scales.reshape(-1).tolist() == [scale_byte]
    assert p.length == len(x) and p.block == 32
    assert_same(F.decode(p), want)


def test_mxfp4_inline_codes():
    """E2M1 nibble `s e1 e0 m`, element 2k in the low nibble of byte k."""
    x = torch.tensor(MX4_IN + [0.0] * 24, dtype=torch.float32)
    codes = F.encode(x, "mxfp4").codes.reshape(-1).tolist()
    # 1 -> 2, 3 -> 5, 6 -> 7, 6 -> 7, -0.5 -> 9, 0.5 -> 1, 1 -> 2, -3 -> 13
    nib = [2, 5, 7, 7, 9, 1, 2, 13] + [0] * 24
    assert codes == [nib[2 * k] | (nib[2 * k + 1] << 4) for k in range(16)]


def test_mxfp8e4m3_inline_codes():
    x = torch.tensor(MX8_IN, dtype=torch.float32)
    p = F.encode(x, "mxfp8e4m3")
    # elements are x / 2 rounded: 36, 128, 256, 352, -13, 15, 60, -160 as E4M3FN bytes
    want = torch.tensor([36.0, 128.0, 256.0, 352.0, -13.0, 15.0, 60.0, -160.0] + [0.0] * 24)
    want_codes = want.to(torch.float8_e4m3fn).view(torch.uint8)
    assert torch.equal(p.codes.reshape(-1), want_codes)


# ---------------------------------------------------------------- HiF4 worked example


def _hif4_example():
    x = torch.zeros(64)
    x[0:8] = torch.tensor([7, -3.3, 0.1, 0, 1, 0.5, 0.24, -0.26])
    x[8:16] = 0.3
    x[16] = -1.9
    y = torch.zeros(64)
    y[0:8] = torch.tensor([7, -3, 0, 0, 1, 0.5, 0, -0.5])
    y[8:16] = 0.25
    y[16] = -1.75
    return x, y


@pytest.mark.parametrize("fmt", ["hif4", "hifx4"])
def test_hif4_worked_example(fmt):
    x, y = _hif4_example()
    assert_same(F.fake_quant(x, fmt), y)
    assert_same(F.fake_quant(x.view(1, 64), fmt), y.view(1, 64))
    p = F.encode(x, fmt)
    assert_same(F.decode(p), y)
    # sf = 1.0 -> E6M2 byte (0 + 48) * 4 = 0xC0; sub-group of 8 #0 has s8 = 2 (MSB);
    # sub-group of 4 #0 (7, -3.3, 0.1, 0) has s4 = 2 (MSB), all others 1.
    assert p.scales.reshape(-1).tolist() == [0xC0, 0x80, 0x80, 0x00]
    # S1P2 nibbles `s c2 c1 c0`; element 2k in the low nibble
    nib = [0x7, 0xB, 0x0, 0x0, 0x2, 0x1, 0x0, 0x9] + [0x1] * 8 + [0xF] + [0] * 47
    assert p.codes.reshape(-1).tolist() == [nib[2 * k] | (nib[2 * k + 1] << 4) for k in range(32)]


def test_hif4_worked_example_amct_same():
    """The example has no value whose bf16 rounding matters: the AMCT variant agrees."""
    x, y = _hif4_example()
    assert_same(F.fake_quant(x, "hif4", variant="amct"), y)


def test_hif4_example_negated_and_scaled():
    """Scaling by a power of two that keeps every step in range scales the result."""
    x, y = _hif4_example()
    assert_same(F.fake_quant(-x, "hif4"), -y)
    for k in (-8, -3, 4, 10):
        assert_same(F.fake_quant(x * 2.0**k, "hif4"), y * 2.0**k, f"2^{k}")


def test_f32_from_bits_helper():
    assert_same(f32_from_bits([0x3F800000, 0xBF800000]), torch.tensor([1.0, -1.0]))
