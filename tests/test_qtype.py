"""The quant_cy / quant_cy_npu call shapes over the formats."""
import pytest
import torch

import onnx_npuq
from onnx_npuq import QType, formats, print_status, quant_dequant_float, quant_func

from conftest import assert_same

NAMES = formats.names() + ["hifx4"]


@pytest.mark.parametrize("name", NAMES)
def test_qtype_matches_formats(name):
    x = torch.randn(3, 70, 5)
    for dim in (-1, 1, 0):
        q = QType(name).dim(dim)
        assert q.desc == name and q.q_dim == dim
        assert_same(quant_dequant_float(x, q), formats.fake_quant(x, name, axis=dim))


def test_dim_returns_a_copy_and_dim_underscore_mutates():
    base = QType("mxfp4")
    moved = base.dim(0)
    assert base.q_dim == -1 and moved.q_dim == 0
    assert base.dim_(1) is base and base.q_dim == 1
    assert base.copy() == base and base.copy() is not base


def test_copy_shares_the_format_but_not_the_options():
    # a deep copy would clone the format's code tables, which torch.export cannot trace
    q = QType("mxfp4", rounding="even")
    moved = q.dim(1)
    assert moved.format is q.format and moved.options == q.options and moved.options is not q.options


def test_repr_blk_size_and_options():
    q = QType("mxfp4").dim(-1)
    assert repr(q) == "QType: mxfp4   Dim: -1"
    assert q.blk_size == 32 and QType("hif8").blk_size == 1 and QType("int8sym").blk_size == 1
    even = QType("mxfp8e4m3", rounding="even")
    x = torch.randn(4, 64)
    assert_same(quant_dequant_float(x, even), formats.fake_quant(x, "mxfp8e4m3", rounding="even"))


def test_hifx4_v12_as_in_the_seed_readme():
    x = torch.randn(2, 128)
    assert_same(quant_dequant_float(x, QType("hifx4_v12").dim(-1)), formats.fake_quant(x, "hifx4_v12"))


@pytest.mark.parametrize("desc", ["fp32", "fp16", "bf16"])
def test_passthrough_types_return_the_input(desc):
    x = torch.randn(4, 8)
    assert quant_dequant_float(x, QType(desc)) is x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_dtypes_in_and_out_and_extra_kwargs(dtype):
    x = torch.randn(5, 96).to(dtype)
    y = quant_dequant_float(x, QType("hif4"), force_py=True, force_fp32=True, anything=1)
    assert y.dtype == dtype and y.shape == x.shape
    assert_same(y, formats.fake_quant(x, "hif4"))


def test_string_is_accepted_in_place_of_a_qtype():
    x = torch.randn(2, 32)
    assert_same(quant_dequant_float(x, "nvf4"), formats.fake_quant(x, "nvf4"))


def test_quant_func_has_a_straight_through_gradient():
    x = torch.randn(4, 64, requires_grad=True)
    y = quant_func(x, QType("mxfp4").dim(-1))
    assert_same(y.detach(), formats.fake_quant(x.detach(), "mxfp4"))
    g = torch.randn_like(x)
    y.backward(g)
    assert torch.equal(x.grad, g)


def test_quant_dequant_float_does_not_track_gradients():
    x = torch.randn(4, 32, requires_grad=True)
    assert not quant_dequant_float(x, QType("mxfp4")).requires_grad


def test_bad_inputs_raise_typed_errors():
    with pytest.raises(ValueError, match="unknown format 'mxfp5'"):
        QType("mxfp5")
    with pytest.raises(TypeError, match="format name string"):
        QType(4)
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        quant_dequant_float(torch.randn(2, 2), QType("mxfp4").dim(3))
    with pytest.raises(TypeError, match="int32"):
        quant_dequant_float(torch.ones(2, 32, dtype=torch.int32), QType("mxfp4"))


def test_print_status(capsys):
    print_status()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"onnx_npuq v{onnx_npuq.__version__}"
    assert out[1] == "NPU Operators Available: no"  # no torch_npu here
    assert out[2] == "Supported Formats: " + ", ".join(formats.names())
    assert onnx_npuq.get_status()["available"] is False
