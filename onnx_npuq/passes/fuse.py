"""`fuse-npu`: patterns the NPU runs as one torch_npu-compatible kernel.

- W8A8 (int8sym weights, int8 activations): passes/w8a8.py (QuantBatchMatMul for per-token
  activations, AMCT's AscendQuant / AscendDequant form for static per-tensor ones);
- weight-only int8 / int4: npuq::Dequantize (int8sym / int4sym, per channel or group) ->
  [Cast] -> Transpose -> MatMul [-> Add bias]  =>  npu::NPUWeightQuantBatchMatmulV2 over
  x cast to float16 (or bfloat16), weights int8 (K, N) / int4 packed int32 (K, N / 8);
- int32 dequant -> SwiGLU -> int8 quant: Cast(int32) -> Mul(weight scale) -> Mul(activation
  scale) -> Split -> silu(A) * B -> npu::NPUDynamicQuant  =>  npu::NPUDequantSwigluQuant;
- QuantDequant -> QuantDequant of one idempotent format configuration: the second goes.

The first two change rounding (float16 weights and activations; the fused SwiGLU's own
order of operations), so this pass is verified with a tolerance, not bit for bit.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs
import torch

from .. import formats, npu
from ..ops import npu_ops
from ..ops.defs import DOMAIN, format_from_attrs
from .graph import constant, constant_array, detach_outputs, replace_uses
from . import w8a8
from .pipeline import Context, register

COMPUTE_DTYPES = {"float16": (np.float16, 10), "bfloat16": (None, 16)}  # numpy type, ONNX code


def _only_consumer(t: gs.Tensor, graph: gs.Graph) -> gs.Node | None:
    """The single node reading `t`, if `t` is not also a graph output."""
    if len(t.outputs) != 1 or t in graph.outputs:
        return None
    return t.outputs[0]


def _producer(t: gs.Tensor, op: str) -> gs.Node | None:
    return t.inputs[0] if len(t.inputs) == 1 and t.inputs[0].op == op else None


# ------------------------------------------------------------------ weight-only matmul


def _weight_int(dq: gs.Node) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """(int8 values (N, K), float32 scales (N, blocks), group or 0) of a constant
    int8sym / int4sym Dequantize, else None."""
    codes, scales = (constant(t) for t in dq.inputs[:2])
    if codes is None or scales is None or len(dq.inputs) > 2:
        return None
    fmt = dq.attrs.get("format")
    if fmt not in ("int8sym", "int4sym"):
        return None
    length, block = int(dq.attrs["length"]), int(dq.attrs.get("block", 0))
    c = torch.from_numpy(np.array(constant_array(codes), np.uint8))
    p = formats.Packed(format=fmt, codes=c, scales=torch.from_numpy(np.array(constant_array(scales), np.uint8)),
                       shape=(c.shape[0], length), axis=1, dtype=torch.float32, block=block or None)
    if fmt == "int4sym":
        q = torch.stack(((c & 0xF), (c >> 4)), -1).reshape(c.shape[0], -1)[:, :length].to(torch.int8)
        q = torch.where(q >= 8, q - 16, q)
    else:
        q = c.view(torch.int8)[:, :length]
    s = p.scales.contiguous().view(torch.float32).reshape(c.shape[0], -1)
    return q, s, (block if block and block < length else 0)


def _wqbmm_inputs(q: torch.Tensor, s: torch.Tensor, group: int, int4: bool, np_dtype, onnx_dtype, name: str):
    n, k = q.shape
    if int4:
        weight = npu._pack_int4(q.t().contiguous()).numpy()  # (K, N / 8), packed along N
    else:
        weight = q.t().contiguous().numpy()  # (K, N) int8
    scale = s.t().contiguous() if group else s.reshape(n)  # (groups, N) or (N,)
    if np_dtype is not None:
        scale_np = scale.numpy().astype(np_dtype)
    else:
        scale_np = scale.to(torch.bfloat16)  # numpy has no bfloat16: gs takes raw ml_dtypes
        import ml_dtypes

        scale_np = scale_np.view(torch.uint16).numpy().view(ml_dtypes.bfloat16)
    return gs.Constant(f"{name}.weight", weight), gs.Constant(f"{name}.antiquant_scale", scale_np)


def fuse_weight_matmul(graph: gs.Graph, ctx: Context) -> int:
    compute = ctx.options.get("compute_dtype", "float16")
    if compute not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {compute!r}")
    np_dtype, onnx_dtype = COMPUTE_DTYPES[compute]
    done, skipped = 0, []
    for dq in [n for n in graph.nodes if n.op == "Dequantize" and n.domain == DOMAIN]:
        w = _weight_int(dq)
        if w is None:
            continue
        chain = [dq]
        t = dq.outputs[0]
        nxt = _only_consumer(t, graph)
        if nxt is not None and nxt.op == "Cast":
            chain.append(nxt)
            nxt = _only_consumer(nxt.outputs[0], graph)
        if nxt is None or nxt.op != "Transpose" or list(nxt.attrs.get("perm", [1, 0])) != [1, 0]:
            continue
        chain.append(nxt)
        mm = _only_consumer(nxt.outputs[0], graph)
        if mm is None or mm.op != "MatMul" or mm.inputs[1] is not nxt.outputs[0]:
            continue
        q, s, group = w
        n, k = q.shape
        int4 = dq.attrs["format"] == "int4sym"
        why = None
        if group and not (group % 32 == 0 and 32 <= group <= k - 1):
            why = f"group {group} (WQBMM needs a multiple of 32 in [32, K-1])"
        elif int4 and n % 8:
            why = f"N = {n} (int4 weights pack 8 per int32 along N)"
        if why:
            skipped.append(f"{mm.name}: {why}")
            continue
        out = mm.outputs[0]
        bias = None
        add = _only_consumer(out, graph)
        if add is not None and add.op == "Add":
            other = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
            b = constant(other)
            if b is not None and constant_array(b).shape == (n,):
                bias, out = b, add.outputs[0]
                detach_outputs(add)
        name = mm.name or out.name
        weight, scale = _wqbmm_inputs(q, s, group, int4, np_dtype, onnx_dtype, name)
        x = mm.inputs[0]
        xs = _tensor(graph, name, "x", "Cast", [x], to=onnx_dtype)
        shape = _tensor(graph, name, "shape", "Shape", [x])
        x2 = _tensor(graph, name, "x2", "Reshape", [xs, gs.Constant(f"{name}.flat", np.array([-1, k], np.int64))])
        ins = [x2, weight, scale, gs.Variable.empty(), gs.Variable.empty(), gs.Variable.empty()]
        if bias is not None:
            bdt = np.float16 if compute == "float16" else np.float32
            ins.append(gs.Constant(f"{name}.bias", np.asarray(constant_array(bias), np.float32).astype(bdt)))
        y2 = gs.Variable(f"{name}.y2", dtype=None)
        graph.nodes.append(gs.Node("NPUWeightQuantBatchMatmulV2", name=f"{name}.wqbmm", domain=npu_ops.DOMAIN,
                                   inputs=ins, outputs=[y2],
                                   attrs={"antiquant_group_size": group, "dtype": npu_ops.DT_FLOAT16}))
        lead = _tensor(graph, name, "lead", "Slice", [shape, _i64(f"{name}.zero", [0]), _i64(f"{name}.m1", [-1])])
        oshape = _tensor(graph, name, "oshape", "Concat", [lead, _i64(f"{name}.n", [n])], axis=0)
        y = _tensor(graph, name, "y", "Reshape", [y2, oshape])
        graph.nodes.append(gs.Node("Cast", name=f"{name}.cast_out", inputs=[y], outputs=[out],
                                   attrs={"to": _elem_type(mm.outputs[0]) or 1}))
        detach_outputs(mm)
        done += 1
    if done:
        ctx.note(f"{done} weight-only MatMul -> NPUWeightQuantBatchMatmulV2 ({compute})")
    for s in skipped:
        ctx.note(f"kept {s}")
    return done


def _i64(name: str, v) -> gs.Constant:
    return gs.Constant(name, np.array(v, np.int64))


def _tensor(graph: gs.Graph, base: str, what: str, op: str, inputs, **attrs) -> gs.Variable:
    out = gs.Variable(f"{base}.{what}")
    graph.nodes.append(gs.Node(op, name=f"{base}.{op}_{what}", inputs=list(inputs), outputs=[out], attrs=attrs))
    return out


def _elem_type(t: gs.Tensor) -> int | None:
    if t.dtype is None:
        return None
    from onnx import helper

    try:
        return helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype))
    except (TypeError, KeyError):
        return None


# ------------------------------------------------------------------ dequant -> SwiGLU -> quant


def _silu_input(t: gs.Tensor) -> gs.Tensor | None:
    """z where t = z * Sigmoid(z) (torch's export of F.silu), else None."""
    mul = _producer(t, "Mul")
    if mul is None:
        return None
    for z, sig in (mul.inputs, mul.inputs[::-1]):
        s = _producer(sig, "Sigmoid")
        if s is not None and s.inputs[0] is z:
            return z
    return None


def _dequant(t: gs.Tensor) -> tuple[gs.Tensor, gs.Tensor | None, gs.Tensor] | None:
    """(int32 x, weight_scale or None, activation_scale) where t = Cast(x) [* ws] * act, with
    ws a constant of the channels, else None."""
    mul = _producer(t, "Mul")
    if mul is None:
        return None
    for inner, act in (mul.inputs, mul.inputs[::-1]):
        ws = None
        m2 = _producer(inner, "Mul")
        if m2 is not None:
            for v, w in (m2.inputs, m2.inputs[::-1]):
                if constant(w) is not None and _producer(v, "Cast") is not None:
                    inner, ws = v, w
                    break
        cast = _producer(inner, "Cast")
        if cast is not None and _elem_type(cast.inputs[0]) == 6 and constant(act) is None:
            return cast.inputs[0], ws, act
    return None


def fuse_dequant_swiglu_quant(graph: gs.Graph, ctx: Context) -> int:
    """Cast(int32) -> [Mul(weight scale)] -> Mul(activation scale) -> Split -> silu(A) * B
    -> [Cast] -> npu::NPUDynamicQuant (int8)  =>  npu::NPUDequantSwigluQuant (dynamic)."""
    done = 0
    for dynq in [n for n in graph.nodes if n.op == "NPUDynamicQuant" and n.domain == npu_ops.DOMAIN]:
        if any(t.name for t in dynq.inputs[1:]) or dynq.attrs.get("dst_type", npu_ops.DT_INT8) != npu_ops.DT_INT8:
            continue
        t = dynq.inputs[0]
        cast = _producer(t, "Cast")
        if cast is not None:
            t = cast.inputs[0]
        mul = _producer(t, "Mul")
        if mul is None:
            continue
        match = None
        for act, other in (mul.inputs, mul.inputs[::-1]):
            z = _silu_input(act)
            split = _producer(z, "Split") if z is not None else None
            if split is None or len(split.outputs) != 2 or other not in split.outputs or z is other:
                continue
            rank = len(split.inputs[0].shape or ())
            if int(split.attrs.get("axis", 0)) not in (-1, rank - 1) or (len(split.inputs) > 1 and split.inputs[1].name):
                continue  # two equal halves of the last axis only
            match = (split, split.outputs.index(z) == 0)
            break
        if match is None:
            continue
        split, activate_left = match
        deq = _dequant(split.inputs[0])
        if deq is None:
            continue
        x, ws, act = deq
        ins = [x, ws if ws is not None else gs.Variable.empty(), act]
        graph.nodes.append(gs.Node("NPUDequantSwigluQuant", name=f"{dynq.name}.fused", domain=npu_ops.DOMAIN,
                                   inputs=ins, outputs=list(dynq.outputs),
                                   attrs={"activate_left": int(activate_left), "quant_mode": 1}))
        detach_outputs(dynq)
        done += 1
    if done:
        ctx.note(f"{done} dequant -> SwiGLU -> quant chains -> NPUDequantSwigluQuant")
    return done


# ------------------------------------------------------------------ QuantDequant chains


def drop_repeated_quant_dequant(graph: gs.Graph, ctx: Context) -> int:
    """QD(QD(x)) == QD(x) for an idempotent format configuration (float32 / bfloat16 x)."""
    done = 0
    for second in [n for n in graph.nodes if n.op == "QuantDequant" and n.domain == DOMAIN]:
        first = _producer(second.inputs[0], "QuantDequant")
        if first is None or first.domain != DOMAIN or first.attrs != second.attrs:
            continue
        if not format_from_attrs(second.attrs).idempotent:
            continue
        if _elem_type(second.inputs[0]) not in (1, 16):  # float32, bfloat16
            continue
        y = second.outputs[0]
        replace_uses(y, first.outputs[0])
        if y in graph.outputs:  # keep the output's name: let `first` write it
            graph.outputs[graph.outputs.index(y)] = first.outputs[0]
        detach_outputs(second)
        done += 1
    if done:
        ctx.note(f"{done} repeated QuantDequant removed")
    return done


@register("fuse-npu", exact=False)
def fuse_npu(graph: gs.Graph, ctx: Context) -> None:
    """Weight-only MatMuls and dequant-SwiGLU-quant into torch_npu kernels; repeated fake-quant out."""
    drop_repeated_quant_dequant(graph, ctx)
    w8a8.fuse_dynamic(graph, ctx)  # before the weight-only fusion takes the same weights
    w8a8.fuse_static(graph, ctx)
    w8a8.fuse_requant(graph, ctx)
    fuse_weight_matmul(graph, ctx)
    fuse_dequant_swiglu_quant(graph, ctx)
