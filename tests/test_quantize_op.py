"""npuq::Quantize: X -> (codes, scales) == formats.encode(X, fmt, axis=-1), in torch (the
custom op) and in onnxruntime (the function body), byte for byte; Quantize -> Dequantize
inside one exported model reproduces formats.fake_quant."""
from __future__ import annotations

import functools

import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import FORMAT_CONFIGS, assert_same, config_id
from onnx import helper

from onnx_npuq import formats as F
from onnx_npuq.exporter import to_onnx
from onnx_npuq.ops import bodies as B
from onnx_npuq.ops import defs

TORCH_CONFIGS = [c for c in FORMAT_CONFIGS if c[0] != "nvfp4"]
BODY_CONFIGS = [c for c in TORCH_CONFIGS if c[0] in B.QUANTIZE_FORMATS]
NO_BODY = sorted({c[0] for c in TORCH_CONFIGS} - set(B.QUANTIZE_FORMATS))
LENGTHS = (1, 7, 33, 64, 70, 130)  # ragged: not block multiples, odd int4 rows


def data(shape, seed: int, wide: bool = False) -> torch.Tensor:
    """Rows at scales 2^-20..2^20 (2^-140..2^120 with `wide`: subnormal and huge scales);
    an all-zero row, a NaN row, an -Inf row and a -0.0 where there are rows enough."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = (-140, 120) if wide else (-20, 20)
    x = torch.randn(shape, generator=g)
    x = x * torch.exp2(torch.randint(lo, hi, shape[:-1] + (1,), generator=g).float())
    rows, n = x.view(-1, shape[-1]), shape[-1]
    rows[0] = 0.0
    if rows.shape[0] > 3:
        rows[1, min(3, n - 1)] = float("nan")
        rows[2, min(1, n - 1)] = float("-inf")
        rows[3, 0] = -0.0
    if rows.shape[0] > 4:
        rows[4, -1] = float("inf")
    return x


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


@functools.cache
def body_session(name: str, opts: tuple, rank: int, elem=onnx.TensorProto.FLOAT):
    fn = B.quantize_function(name, **dict(opts))
    node = helper.make_node(fn.name, ["X"], ["codes", "scales"], domain=B.DOMAIN)
    u8 = onnx.TensorProto.UINT8
    graph = helper.make_graph(
        [node], "quantize",
        [helper.make_tensor_value_info("X", elem, [f"d{i}" for i in range(rank)])],
        [helper.make_tensor_value_info("codes", u8, ["r", "c"]),
         helper.make_tensor_value_info("scales", u8, ["r", "s"])],
    )
    model = B._model(graph, [fn])
    onnx.checker.check_model(model, full_check=True)
    return session(model)


def run_body(name, opts, x: torch.Tensor):
    elem = {torch.float32: onnx.TensorProto.FLOAT, torch.float16: onnx.TensorProto.FLOAT16}[x.dtype]
    s = body_session(name, tuple(sorted(opts.items())), x.dim(), elem)
    codes, scales = s.run(None, {"X": x.numpy()})
    return torch.from_numpy(codes), torch.from_numpy(scales)


def assert_packed(codes, scales, p: F.Packed, msg=""):
    assert codes.dtype == scales.dtype == torch.uint8
    assert codes.shape == p.codes.shape and scales.shape == p.scales.shape, msg
    for got, want, what in ((codes, p.codes, "codes"), (scales, p.scales, "scales")):
        if not torch.equal(got, want):
            bad = torch.nonzero(got != want)[:5].tolist()
            raise AssertionError(f"{msg} {what} differ at {bad}: "
                                 f"{[got[tuple(i)].item() for i in bad]} != {[want[tuple(i)].item() for i in bad]}")


# ------------------------------------------------------------------ torch custom op


@pytest.mark.parametrize("cfg", TORCH_CONFIGS, ids=config_id)
def test_torch_op_is_encode(cfg):
    name, opts = cfg
    for n in (7, 70):
        x = data((2, 5, n), n)
        codes, scales = defs.quantize(x, name, **opts)
        assert_packed(codes, scales, F.encode(x, name, **opts), f"{name} n={n}")


@pytest.mark.parametrize("cfg", TORCH_CONFIGS, ids=config_id)
def test_fake_shapes_match(cfg):
    from torch._subclasses.fake_tensor import FakeTensorMode

    name, opts = cfg
    for n in (1, 33, 70):
        x = data((3, 2, n), n)
        codes, scales = defs.quantize(x, name, **opts)
        with FakeTensorMode() as mode:
            fc, fs = defs.quantize(mode.from_tensor(x), name, **opts)
        assert tuple(fc.shape) == tuple(codes.shape) and fc.dtype == torch.uint8
        assert tuple(fs.shape) == tuple(scales.shape) and fs.dtype == torch.uint8


def test_two_level_format_is_rejected():
    with pytest.raises(ValueError, match="nvfp4.*two-level"):
        defs.quantize(torch.randn(2, 32), "nvfp4")
    with pytest.raises(ValueError, match="nvfp4"):
        B.quantize_function("nvfp4")


def test_every_one_level_format_has_a_body():
    assert not NO_BODY, f"no Quantize body for {NO_BODY}"


# ------------------------------------------------------------------ function bodies


@pytest.mark.parametrize("cfg", BODY_CONFIGS, ids=config_id)
@pytest.mark.parametrize("wide", [False, True], ids=["normal", "wide"])
def test_body_is_encode(cfg, wide):
    name, opts = cfg
    for n in LENGTHS:
        x = data((2, 5, n), 100 * n + wide, wide)
        assert_packed(*run_body(name, opts, x), F.encode(x, name, **opts), f"{name} n={n}")


@pytest.mark.parametrize("cfg", BODY_CONFIGS, ids=config_id)
def test_body_ranks_and_float16(cfg):
    name, opts = cfg
    x = data((70,), 3)
    assert_packed(*run_body(name, opts, x), F.encode(x, name, **opts), "rank 1")
    x = data((2, 3, 2, 40), 4).to(torch.float16)
    assert_packed(*run_body(name, opts, x), F.encode(x, name, **opts), "float16")


def test_hif8_body_on_every_code_value():
    """Each finite HiF8 value (and its neighbours' midpoints) encodes to the reference byte."""
    vals = F.codecs.HIF8.decode(torch.arange(256, dtype=torch.int32).to(torch.uint8))
    vals = vals[torch.isfinite(vals)]
    x = torch.cat((vals, vals * 1.0625, vals * 0.96875, torch.tensor([40960.0, -40959.0, 2.0**-23, 2.0**-24])))
    for opts in ({}, {"saturate": True}):
        x2 = x.reshape(1, -1)
        assert_packed(*run_body("hif8", opts, x2), F.encode(x2, "hif8", **opts), str(opts))


# ------------------------------------------------------------------ export


class Quantize(torch.nn.Module):
    def __init__(self, fmt, options):
        super().__init__()
        self.fmt, self.options = fmt, options

    def forward(self, x):
        return defs.quantize(x, self.fmt, **self.options)


class RoundTrip(torch.nn.Module):
    """Quantize then Dequantize (npuq ops both) back to x's shape."""

    def __init__(self, fmt, options):
        super().__init__()
        self.fmt = F.get_format(fmt, **options)

    def forward(self, x):
        a = defs.format_attrs(self.fmt)
        codes, scales = defs.quantize(x, self.fmt)
        n = x.shape[-1]
        y = torch.ops.npuq.dequantize(codes, scales, None, a["format"], self.fmt.block_for(n), n)
        return y.reshape(x.shape)


@pytest.mark.parametrize("cfg", BODY_CONFIGS, ids=config_id)
def test_export_runs_in_onnxruntime(cfg):
    name, opts = cfg
    proto = to_onnx(Quantize(name, opts), (data((3, 70), 0),), dynamic=True)
    onnx.checker.check_model(proto, full_check=True)
    node = next(n for n in proto.graph.node if n.domain == "npuq")
    assert node.op_type == "Quantize" and node.overload == defs.overload_name(F.get_format(name, **opts))
    s = session(proto)
    for rows in (3, 11):  # dynamic rows
        x = data((rows, 70), rows)
        codes, scales = (torch.from_numpy(o) for o in s.run(None, {s.get_inputs()[0].name: x.numpy()}))
        assert_packed(codes, scales, F.encode(x, name, **opts), f"rows={rows}")


@pytest.mark.parametrize("cfg", BODY_CONFIGS, ids=config_id)
def test_quantize_dequantize_round_trip_is_fake_quant(cfg):
    name, opts = cfg
    x = data((2, 6, 70), 7)
    auto = torch.export.Dim.AUTO  # leading dimensions dynamic, the length (an attribute) not
    proto = to_onnx(RoundTrip(name, opts), (x,), dynamic_shapes=({0: auto, 1: auto},))
    assert {n.op_type for n in proto.graph.node if n.domain == "npuq"} == {"Quantize", "Dequantize"}
    s = session(proto)
    y = torch.from_numpy(s.run(None, {s.get_inputs()[0].name: x.numpy()})[0])
    assert_same(y, F.fake_quant(x, name, **opts))
    x2 = data((5, 6, 70), 8)  # other leading dimensions, same length
    y2 = torch.from_numpy(s.run(None, {s.get_inputs()[0].name: x2.numpy()})[0])
    assert_same(y2, F.fake_quant(x2, name, **opts))
