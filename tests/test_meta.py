"""Format metadata: block sizes, bits per element, Packed sizes and layout."""
from __future__ import annotations

import pytest
import torch

from conftest import assert_same
from onnx_npuq import formats as F

BITS = {
    "hif8": 8.0,
    "hif4": 4.5,
    "hifx4": 4.5,
    "hifx4_v12": 4.5,
    "mxfp4": 4.25,
    "mxfp8e4m3": 8.25,
    "mxfp8e5m2": 8.25,
    "nvf4": 4.5,
    "nvfp4": 4.5,  # the 32-bit tensor scale is not counted per element
}
LAYOUT = {
    # name: (block, elem_bits, scale_bytes)
    "hif8": (1, 8, 0),
    "hif4": (64, 4, 4),
    "hifx4_v12": (64, 4, 4),
    "mxfp4": (32, 4, 1),
    "mxfp8e4m3": (32, 8, 1),
    "mxfp8e5m2": (32, 8, 1),
    "nvf4": (16, 4, 1),
    "nvfp4": (16, 4, 1),
}


@pytest.mark.parametrize("name", sorted(BITS))
def test_bits_per_element(name):
    fmt = F.get_format(name)
    assert fmt.bits_per_element() == BITS[name]
    assert fmt.bits_per_element(4096) == BITS[name]


@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_layout_attributes(name):
    fmt = F.get_format(name)
    assert (fmt.block, fmt.elem_bits, fmt.scale_bytes) == LAYOUT[name]


@pytest.mark.parametrize("name,bits", [("int8sym", 8), ("int4sym", 4), ("fp8e4m3", 8), ("fp8e5m2", 8)])
def test_int_bits_per_element(name, bits):
    assert F.get_format(name, group=128).bits_per_element() == bits + 32 / 128
    assert F.get_format(name, group=32).bits_per_element() == bits + 1
    per_channel = F.get_format(name)
    assert per_channel.block is None
    assert per_channel.bits_per_element(4096) == bits + 32 / 4096
    with pytest.raises(ValueError):
        per_channel.bits_per_element()


def test_int8_group128_is_8_25():
    assert F.get_format("int8sym", group=128).bits_per_element() == 8.25


@pytest.fixture(scope="module")
def big():
    return torch.randn(4096, 4096, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", sorted(LAYOUT) + ["int8sym-g128", "int4sym-g32", "fp8e4m3-g128", "fp8e5m2-g32"])
def test_packed_nbytes_4096(big, name):
    opts = {}
    if "-g" in name:
        name, g = name.split("-g")
        opts = {"group": int(g)}
    fmt = F.get_format(name, **opts)
    p = F.encode(big, name, **opts)
    bits = fmt.bits_per_element()
    expect = big.numel() * bits / 8 + (4 if name == "nvfp4" else 0)
    assert p.nbytes == expect
    assert p.codes.numel() == big.numel() * fmt.elem_bits // 8
    assert p.scales.numel() == big.numel() // fmt.block * fmt.scale_bytes


def test_packed_nbytes_per_channel():
    x = torch.randn(64, 1000)
    p = F.encode(x, "int8sym")
    assert p.nbytes == 64 * 1000 + 64 * 4
    assert p.nbytes == x.numel() * F.get_format("int8sym").bits_per_element(1000) / 8


@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_packed_padding_layout(name):
    fmt = F.get_format(name)
    x = torch.randn(3, 5, 100)
    p = F.encode(x, name, axis=1)
    padded = -(-5 // fmt.block) * fmt.block
    assert p.shape == (3, 5, 100) and p.axis == 1 and p.length == 5 and p.block == fmt.block
    assert p.codes.shape == (300, padded * fmt.elem_bits // 8)
    assert p.scales.shape == (300, padded // fmt.block * fmt.scale_bytes)
    assert p.dtype == torch.float32 and p.format == name
    assert_same(F.decode(p), F.fake_quant(x, name, axis=1))


def test_packed_row_order():
    """Rows are all dimensions but the axis, in order: row r of a (2, 64, 3) tensor
    quantized along axis 1 is x[r // 3, :, r % 3]."""
    x = torch.randn(2, 64, 3)
    p = F.encode(x, "mxfp8e4m3", axis=1)
    for r in range(6):
        row = x[r // 3, :, r % 3].contiguous()
        q = F.encode(row, "mxfp8e4m3")
        assert torch.equal(p.codes[r], q.codes[0]) and torch.equal(p.scales[r], q.scales[0])


@pytest.mark.parametrize(
    "name,opts",
    [("mxfp4", {"rounding": "even"}), ("mxfp8e4m3", {"scale_rule": "rceil"}), ("hif8", {"saturate": True}),
     ("hif4", {"variant": "amct"}), ("int8sym", {"group": 64})],
)
def test_packed_remembers_options(name, opts):
    x = torch.randn(4, 128) * 1e5
    p = F.encode(x, name, **opts)
    assert p.options == opts
    assert_same(F.decode(p), F.fake_quant(x, name, **opts))


def test_packed_dtype_roundtrip():
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        x = torch.randn(4, 64).to(dtype)
        p = F.encode(x, "mxfp4")
        assert p.dtype == dtype
        assert F.decode(p).dtype == dtype


def test_nvfp4_tensor_scale():
    x = torch.randn(8, 64)
    p = F.encode(x, "nvfp4")
    amax = x.abs().max()
    assert p.tensor_scale.item() == (amax / (6 * 448)).item()
    assert F.encode(x, "nvf4").tensor_scale is None
    # an all-zero tensor gets a harmless scale (not 0, not NaN) and decodes to zeros
    z = F.encode(torch.zeros(2, 16), "nvfp4")
    assert torch.isfinite(z.tensor_scale).all() and z.tensor_scale.item() > 0
    assert_same(F.decode(z), torch.zeros(2, 16))


@pytest.mark.parametrize("group,n", [(None, 1), (None, 3), (None, 33), (3, 6), (5, 10)])
def test_int4sym_odd_length_encode(group, n):
    """int4sym packs two codes per byte; an odd block (per-channel with an odd axis
    length, or an odd group) must either round-trip exactly or be refused with a clear
    ValueError -- never a RuntimeError from inside, nor a Packed that cannot be decoded."""
    x = torch.linspace(-1, 1, 2 * n).reshape(2, n)
    try:
        fmt = F.get_format("int4sym", group=group)
    except ValueError:
        assert group is not None  # refusing odd groups up front is fine
        return
    want = fmt.fake_quant(x)
    try:
        p = fmt.encode(x)
    except ValueError:
        return
    assert_same(F.decode(p), want)
