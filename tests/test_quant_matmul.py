"""npu_quant_matmul (torch_npu's int8 x int8 quantized matmul): the CPU reference against
the formulas of its docs and CANN's kernel golden, the torch custom op, its export as
npu::QuantBatchMatMul (GE input order, CANN's ONNX plugin attributes) and the onnxruntime
body, bit-exact against the reference for every dtype combination of the A2 / A3 table."""
from __future__ import annotations

import zlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper

from onnx_npuq import npu
from onnx_npuq.ops import npu_ops as N
from onnx_npuq.passes import atc

from test_npu_onnx import _attrs, _cast_like, _export, _npu_node, _run, _same
from test_npu_ops import pack_quant_param


def _args(case: str, g: torch.Generator):
    """(x1, x2, scale, kwargs) of one dtype combination."""
    m, k, n = 6, 96, 20
    batch = (2,) if "batch" in case else ()
    x1 = torch.randint(-128, 128, (*batch, m, k), generator=g, dtype=torch.int8)
    x2 = torch.randint(-128, 128, (k, n), generator=g, dtype=torch.int8)
    per = 1 if "tensor" in case else n
    scale = torch.rand(per, generator=g) * 2e-5 + 1e-6
    kw = {}
    if "int8" in case:
        scale = scale * 150  # about the int8 range, some values saturating
        kw["output_dtype"] = None
    if "offset" in case:
        kw["offset"] = torch.randn(per, generator=g) * 40
    if "int64" in case:
        off = kw.pop("offset", None)
        scale = torch.from_numpy(pack_quant_param(scale.numpy(), None if off is None else off.numpy()))
    if "intbias" in case:
        kw["bias"] = torch.randint(-50000, 50000, (n,), generator=g, dtype=torch.int32)
    if "floatbias" in case:
        kw["bias"] = torch.randn(n, generator=g)
    if "pertoken" in case:
        kw["pertoken_scale"] = torch.rand(m, generator=g) + 0.5
    for name, dt in (("fp16", torch.float16), ("bf16", torch.bfloat16), ("i32", torch.int32)):
        if case.startswith(name):
            kw["output_dtype"] = dt
    return x1, x2, scale, kw


CASES = ["int8_channel_offset_intbias", "int8_tensor_int64", "int8_channel_int64_offset_batch",
         "fp16_channel_int64_intbias", "fp16_tensor_batch", "fp16_pertoken_channel_floatbias",
         "bf16_pertoken_tensor_intbias", "bf16_tensor", "bf16_channel_floatbias", "i32_intbias"]


def _acc(x1, x2, bias=None) -> torch.Tensor:
    acc = torch.matmul(x1.double(), x2.double())  # exact: |acc| < 2**53
    return acc + bias.double() if bias is not None and bias.dtype == torch.int32 else acc


def _formula(x1, x2, scale, kw) -> torch.Tensor:
    """The docs' formulas, written independently of the reference (float64 where exact)."""
    out = kw.get("output_dtype")
    acc = _acc(x1, x2, kw.get("bias"))
    bias = kw.get("bias")
    fbias = bias.double() if bias is not None and bias.dtype != torch.int32 else 0.0
    if out == torch.int32:
        return acc.to(torch.int32)
    pt = kw.get("pertoken_scale")
    if pt is not None:  # (x1 @ x2 + bias) * scale * pertoken_scale [+ float bias]
        v = acc.float() * scale.float() * pt.float().unsqueeze(-1)
        return (v + fbias.float() if torch.is_tensor(fbias) else v).to(out)
    if scale.dtype == torch.int64:
        bits = scale.numpy().astype(np.uint64)
        s = torch.from_numpy(((bits & 0xFFFFE000).astype(np.uint32)).view(np.float32))
        o9 = ((bits >> 37) & 0x1FF).astype(np.int64)
        o = torch.from_numpy(np.where(o9 >= 256, o9 - 512, o9).astype(np.float32))
    else:
        s = scale if out == torch.bfloat16 and (scale.numel() > 1 or torch.is_tensor(fbias)) else npu._trunc_fp19(scale)
        off = kw.get("offset")
        o = torch.zeros(1) if off is None else (torch.sign(off) * torch.floor(off.abs() + 0.5)).clamp(-256, 255)
    if out is None:  # requant: s9(rint(acc * scale)) + s9(offset), saturated
        r = torch.round(acc.float() * s).clamp(-256, 255) + o
        return r.clamp(-128, 127).to(torch.int8)
    v = acc.float() * s
    return (v + fbias.float() if torch.is_tensor(fbias) else v).to(out)


EXPORTED = {"int8_channel_offset_intbias", "fp16_channel_int64_intbias", "bf16_pertoken_tensor_intbias"}


def _node_model(args: dict, code: int) -> onnx.ModelProto:
    """One npu::QuantBatchMatMul node on graph inputs (GE order), its body attached; a
    bfloat16 output cast to float32 (onnxruntime returns no bfloat16)."""
    order = ["x1", "x2", "scale", "offset", "bias", "pertoken_scale"]
    ins = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(args[k].numpy().dtype), args[k].shape)
           for k in order if k in args]
    node = helper.make_node("QuantBatchMatMul", [k if k in args else "" for k in order], ["y"], domain="npu",
                            dtype=code, transpose_x1=0, transpose_x2=0)
    nodes, out, elem = [node], "y", N._GE_TYPES[code]
    if code == N.DT_BF16:
        nodes.append(helper.make_node("Cast", ["y"], ["yf"], to=onnx.TensorProto.FLOAT))
        out, elem = "yf", onnx.TensorProto.FLOAT
    graph = helper.make_graph(nodes, "qbmm", ins, [helper.make_tensor_value_info(out, elem, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("npu", 1)],
                              ir_version=10)
    return N.attach_functions(model)


@pytest.mark.parametrize("case", CASES)
def test_quant_matmul_reference_export_and_body(case):
    g = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    x1, x2, scale, kw = _args(case, g)
    ref = npu.npu_quant_matmul(x1, x2, scale, **kw)
    _same(ref, _formula(x1, x2, scale, kw))
    if ref.dtype == torch.int8:
        assert ref.unique().numel() > 50 and ((ref == 127) | (ref == -128)).any()  # saturates too
    _same(N.npu_quant_matmul(x1, x2, scale, **kw), ref)
    code = npu.QUANT_MATMUL_OUT[kw.get("output_dtype") or torch.int8]
    named = {"x1": x1, "x2": x2, "scale": scale, **{k: v for k, v in kw.items() if k != "output_dtype"}}
    model = _node_model(named, code)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y = torch.from_numpy(sess.run(None, {k: v.numpy() for k, v in named.items()})[0])
    _same(_cast_like(y, ref), ref)
    if case not in EXPORTED:
        return

    names = [k for k in ("offset", "pertoken_scale", "bias") if k in kw]
    args = (x1, x2, scale, *(kw[k] for k in names))

    def fn(a, b, s, *rest):
        y = N.npu_quant_matmul(a, b, s, output_dtype=kw.get("output_dtype"), **dict(zip(names, rest)))
        return y.float() if y.dtype == torch.bfloat16 else y  # onnxruntime returns no bfloat16

    model = _export(fn, args)
    node = _npu_node(model)
    assert node.op_type == "QuantBatchMatMul"
    ins = list(node.input) + [""] * (6 - len(node.input))
    # GE order: x1, x2, scale, offset, bias, pertoken_scale
    assert [bool(i) for i in ins] == [True, True, True, "offset" in kw, "bias" in kw, "pertoken_scale" in kw]
    assert _attrs(node) == {"dtype": code, "transpose_x1": 0, "transpose_x2": 0}
    _same(_cast_like(_run(model, args)[0], ref), ref)


def test_quant_matmul_refuses_what_the_npu_does_not_take():
    x1, x2 = torch.zeros(2, 8, dtype=torch.int8), torch.zeros(8, 4, dtype=torch.int8)
    s = torch.ones(4)
    with pytest.raises(TypeError, match="x1 must have dtype"):
        npu.npu_quant_matmul(x1.float(), x2, s)
    with pytest.raises(ValueError, match="disagree on K"):
        npu.npu_quant_matmul(x1, x2[:4], s)
    with pytest.raises(ValueError, match="scale must be 1-D"):
        npu.npu_quant_matmul(x1, x2, torch.ones(3))
    with pytest.raises(TypeError, match="unsupported combination"):  # pertoken needs a float output
        npu.npu_quant_matmul(x1, x2, s, pertoken_scale=torch.ones(2))
    with pytest.raises(TypeError, match="unsupported combination"):  # float16 takes no float bias
        npu.npu_quant_matmul(x1, x2, s, bias=torch.ones(4), output_dtype=torch.float16)
    with pytest.raises(ValueError, match="group_sizes"):
        npu.npu_quant_matmul(x1, x2, s, group_sizes=[1, 1, 128])
    with pytest.raises(TypeError, match="output_dtype"):
        npu.npu_quant_matmul(x1, x2, s, output_dtype=torch.float32)


def test_quant_batch_matmul_atc_keys_are_cann_plugin():
    """CANN's plugin registers ai.onnx::8..16::QuantBatchMatMul only (default domain)."""
    keys = {k for k, src in atc.CANN_KEYS.items() if k.endswith("::QuantBatchMatMul")}
    assert keys == {f"ai.onnx::{v}::QuantBatchMatMul" for v in range(8, 17)}
    assert all("quant_batch_matmulV3_onnx_plugin.cpp" in atc.CANN_KEYS[k] for k in keys)


@pytest.mark.parametrize("layout", atc.LAYOUTS)
def test_atc_lays_quant_batch_matmul_out_at_opset_16(layout):
    """Both layouts put it in the standard domain at an opset CANN registers (16, chosen when
    no opset is asked for; asking for 17 or 18 is refused); `portable` runs it again."""
    from onnx_npuq.passes import PassError, run_passes

    g = torch.Generator().manual_seed(5)
    x1, x2, scale, kw = _args("fp16_pertoken_channel_floatbias", g)

    def fn(a, pt):
        return N.npu_quant_matmul(a, x2, scale, pertoken_scale=pt, bias=kw["bias"], output_dtype=torch.float16)

    model = N.attach_functions(_export(fn, (x1, kw["pertoken_scale"])))
    out, (rep,) = run_passes(model, ["atc"], layout=layout)  # verified: bit-exact through `portable`
    assert rep.mismatches == 0
    node = next(n for n in out.graph.node if n.op_type == "QuantBatchMatMul")
    assert node.domain == ("" if layout == "default" else "ai.onnx")
    meta = {p.key: p.value for p in out.metadata_props}
    assert meta[atc.KEYS_KEY] == "ai.onnx::16::QuantBatchMatMul" and meta[atc.OPSET_KEY] == "16"
    atc.check(out)
    with pytest.raises(PassError, match="up to 16 only"):
        run_passes(model, ["atc"], layout=layout, opset=18, verify=False)


# ------------------------------------------------------------------ AscendQuant / AscendDequant


def test_ascend_quant_float16_steps_and_body():
    """rint(fp16(fp16(x) * fp16(scale)) + fp16(offset)) saturated, bit-exact in onnxruntime."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 5, 7, generator=g) * 30
    x.view(-1)[:4] = torch.tensor([float("nan"), 1e6, -1e6, 0.0])
    scale, offset = 1 / 0.173, -3.0
    ref = npu.ascend_quant(x, scale, offset)
    want = (x.half() * torch.tensor(scale).half() + torch.tensor(offset).half()).float()
    _same(ref, torch.round(want).nan_to_num(0.0).clamp(-128, 127).to(torch.int8))
    assert (ref == 127).any() and (ref == -128).any()
    model = _export(lambda t: N.ascend_quant(t, scale, offset), (x,))
    node = _npu_node(model)
    assert (node.op_type, _attrs(node)) == ("AscendQuant", {"scale": pytest.approx(scale), "offset": offset,
                                                            "sqrt_mode": 0, "round_mode": b"Round",
                                                            "dst_type": b"INT8"})
    _same(_run(model, (x,))[0], ref)


@pytest.mark.parametrize("shape", [(3, 6), (2, 6, 4, 5)])
def test_ascend_dequant_per_channel_and_body(shape):
    g = torch.Generator().manual_seed(8)
    x = torch.randint(-2**20, 2**20, shape, generator=g, dtype=torch.int32)
    deq = torch.rand(6, generator=g) * 1e-4
    packed = npu.pack_deq_scale(deq, torch.full((6,), -3))
    assert torch.equal((packed >> 40) & 0xFF, torch.full((6,), 253)) and ((packed >> 32) & 0xFF == 0).all()
    ref = npu.ascend_dequant(x, packed, relu_flag=True)
    chan = (-1,) + (1,) * (len(shape) - 2)
    _same(ref, torch.relu(x.float() * npu._trunc_fp19(deq).reshape(chan)))
    model = _export(lambda t, d: N.ascend_dequant(t, d, relu_flag=True), (x, packed))
    assert _npu_node(model).op_type == "AscendDequant"
    _same(_run(model, (x, packed))[0], ref)


def test_ascend_anti_quant_body():
    """(x - offset) * scale: the ONNX attribute's sign (CANN's plugin negates it for the GE op)."""
    x = torch.arange(-128, 128, dtype=torch.int8).reshape(16, 16)
    ref = npu.ascend_anti_quant(x, 0.037, 3.0)
    _same(ref, (x.float() - 3.0) * torch.tensor(0.037))
    model = _export(lambda t: N.ascend_anti_quant(t, 0.037, 3.0), (x,))
    assert _npu_node(model).op_type == "AscendAntiQuant"
    _same(_run(model, (x,))[0], ref)
