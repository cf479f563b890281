"""W8A8 through CANN's int8 ops (part of `fuse-npu`; the ATC form is written by `atc`).

int8sym weights (npuq::Dequantize, a float32 scale per output channel) times int8
activations become what ATC fuses onto the int8 cube:

- dynamic per-token activations (npuq::QuantDequant int8sym along the last axis, our
  recipes' `activations: int8sym`) into MatMul / Gemm:
      Cast(float16) -> npu::NPUDynamicQuant -> npu::QuantBatchMatMul(q, W int8 (K, N),
      weight scale (N,), bias float32, pertoken_scale) -> Cast back
  (torch_npu's W8A8 recipe: npu_dynamic_quant + npu_quant_matmul);
- static per-tensor activations (a QuantizeLinear -> DequantizeLinear pair with one scale and
  a symmetric zero point, as onnxruntime's quantize_static or AMCT calibration leave them)
  into Conv / Gemm: AMCT's and msModelSlim's deploy form
      npu::AscendQuant(scale = 1 / s, offset 0) -> ConvInteger / MatMulInteger (int8 weights)
      -> Add(int32 bias = rint(b / deq)) -> npu::AscendDequant(UINT64 deq_scale = s x s_w)
  which `atc` writes as msModelSlim does: Conv(q, W, int32 bias) / Gemm(q, W (K, N), int32
  bias, transB=0) between AscendQuant and AscendDequant (to_atc_form / from_atc_form);
  the static Q -> DQ pairs left on other activations become AscendQuant -> AscendAntiQuant.

The integer products are exact in both forms; what changes is where the float steps
round: the float16 input of DynamicQuant and AscendQuant (a code can move by one step),
the float16 output of QuantBatchMatMul, the 19-bit deq_scale, the int32 bias. The pass is
verified with a tolerance; layer_report() measures each layer.
Sources: shared/spec/ascend.md "Int8 on the cube"; Ascend/msmodelslim
msmodelslim/onnx/squant_ptq/quant_deploy.py (_convert_quant / _convert_conv / _convert_gemm /
_convert_dequant / _calculate_int_bias), commit 3de0a3c4.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import torch

from .. import npu
from ..ops import npu_ops
from ..ops.defs import DOMAIN, format_from_attrs
from .graph import constant, constant_array, detach_outputs, is_standard, layout_step

T = onnx.TensorProto
COMPUTE = {"float16": (T.FLOAT16, npu_ops.DT_FLOAT16), "bfloat16": (T.BFLOAT16, npu_ops.DT_BF16)}


# ------------------------------------------------------------------ matching


def _consumer(t: gs.Tensor, graph: gs.Graph) -> gs.Node | None:
    if len(t.outputs) != 1 or t in graph.outputs:
        return None
    return t.outputs[0]


def int8_weight(t: gs.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(int8 codes, float32 scale of every element) of a weight `t` that is a constant int8sym
    npuq::Dequantize (per row, no groups) seen through pure layout ops, in `t`'s layout."""
    steps = []
    while not (len(t.inputs) == 1 and t.inputs[0].op == "Dequantize" and t.inputs[0].domain == DOMAIN):
        if not isinstance(t, gs.Variable) or len(t.inputs) != 1 or len(steps) > 16:
            return None
        node = t.inputs[0]
        step = layout_step(node)
        if step is None:
            return None
        if node.op == "Cast":
            step = lambda x: x  # noqa: E731 - int8 codes and float32 scales are exact in any float type
        steps.append(step)
        t = node.inputs[0]
    from .fuse import _weight_int  # (fuse imports this module)

    w = _weight_int(t.inputs[0])
    if w is None or w[2] or w[1].shape[1] != 1:  # per row (a scale per output channel) only
        return None
    q, s, _ = w
    s = s.expand(q.shape)
    for step in reversed(steps):
        q, s = step(q), step(s)
    return q.contiguous(), s.contiguous()


def channel_scale(s: torch.Tensor, axis: int) -> torch.Tensor | None:
    """The per-channel scale along `axis`, when every other index shares it."""
    moved = s.movedim(axis, 0).reshape(s.shape[axis], -1)
    return moved[:, 0].clone() if bool((moved == moved[:, :1]).all()) else None


def _int8sym_per_token(node: gs.Node) -> bool:
    if node.op != "QuantDequant" or node.domain != DOMAIN:
        return False
    fmt = format_from_attrs(node.attrs)
    return fmt.name == "int8sym" and not fmt.options


def _static_activation(t: gs.Tensor, graph: gs.Graph) -> tuple[gs.Tensor, float] | None:
    """(x, s) where t = DequantizeLinear(QuantizeLinear(x, s, z), s, z) with one float32 scale
    and z = 0 (int8) or 128 (uint8): int8 codes RNE(x / s) saturated, offset 0."""
    if len(t.inputs) != 1 or not is_standard(t.inputs[0], "DequantizeLinear"):
        return None
    dq = t.inputs[0]
    src = dq.inputs[0]
    if len(src.inputs) != 1 or not is_standard(src.inputs[0], "QuantizeLinear"):
        return None
    q = src.inputs[0]
    consts = []
    for node in (q, dq):
        s = constant(node.inputs[1], graph) if len(node.inputs) > 1 else None
        z = constant(node.inputs[2], graph) if len(node.inputs) > 2 and node.inputs[2].name else None
        if s is None or z is None:
            return None
        consts.append((constant_array(s), constant_array(z)))
    (s1, z1), (s2, z2) = consts
    if s1.size != 1 or s1.dtype != np.float32 or not np.array_equal(s1, s2) or not np.array_equal(z1, z2):
        return None
    if not (z1.dtype == np.int8 and int(z1.reshape(-1)[0]) == 0 or z1.dtype == np.uint8 and int(z1.reshape(-1)[0]) == 128):
        return None
    s = float(s1.reshape(-1)[0])
    return (q.inputs[0], s) if s > 0 and np.isfinite(s) else None


def _asymmetric(t: gs.Tensor, graph: gs.Graph) -> str | None:
    """Why a Q -> DQ activation pair is not taken, when it is one (else None)."""
    if len(t.inputs) != 1 or not is_standard(t.inputs[0], "DequantizeLinear"):
        return None
    src = t.inputs[0].inputs[0]
    if len(src.inputs) != 1 or not is_standard(src.inputs[0], "QuantizeLinear"):
        return None
    return ("the activation Q -> DQ is not per tensor with a symmetric zero point (int8 0 / uint8 128): AMCT's "
            "form here has offset 0 (quantize_static: ActivationSymmetric=True)")


# ------------------------------------------------------------------ building


def _var(graph: gs.Graph, base: str, what: str, op: str, inputs, outputs=1, domain: str = "", **attrs):
    outs = [gs.Variable(f"{base}.{what}" + (f"{i}" if outputs > 1 else "")) for i in range(outputs)]
    graph.nodes.append(gs.Node(op, name=f"{base}.{what}", domain=domain, inputs=list(inputs), outputs=outs,
                               attrs=attrs))
    return outs if outputs > 1 else outs[0]


def _elem_type(t: gs.Tensor) -> int:
    """The ONNX element type of a float tensor (float32 when gs does not know it)."""
    from .fuse import _elem_type as known

    return known(t) or T.FLOAT


def _i64(name: str, v) -> gs.Constant:
    return gs.Constant(name, np.array(v, np.int64))


def _bias_after(out: gs.Tensor, graph: gs.Graph, n: int):
    """(float32 bias (N,), the Add's output) when `out` only feeds Add(out, constant (N,))."""
    add = _consumer(out, graph)
    if add is None or not is_standard(add, "Add"):
        return None, out
    other = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
    b = constant(other, graph)
    if b is None or constant_array(b).shape not in ((n,), (1, n)):
        return None, out
    return np.asarray(constant_array(b), np.float32).reshape(n), add.outputs[0]


def _layer(node: gs.Node, graph: gs.Graph):
    """(activation input, int8 W (K, N), float32 scale (N,), float32 bias or None, output
    tensor, nodes to drop) of a MatMul / Gemm on a per-channel int8sym weight, else None."""
    if is_standard(node, "MatMul"):
        w = int8_weight(node.inputs[1])
        if w is None or w[0].dim() != 2:
            return None
        q, s = w
        scale = channel_scale(s, 1)
        bias, out = _bias_after(node.outputs[0], graph, q.shape[1])
        drop = [node] if out is node.outputs[0] else [node, out.inputs[0]]
        return (node.inputs[0], q, scale, bias, out, drop) if scale is not None else None
    if is_standard(node, "Gemm"):
        a = node.attrs
        if a.get("transA", 0) or float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0:
            return None
        w = int8_weight(node.inputs[1])
        if w is None or w[0].dim() != 2:
            return None
        q, s = w
        if a.get("transB", 0):
            q, s = q.t().contiguous(), s.t().contiguous()
        scale = channel_scale(s, 1)
        bias = None
        if len(node.inputs) > 2 and node.inputs[2].name:
            b = constant(node.inputs[2], graph)
            if b is None or constant_array(b).size != q.shape[1]:
                return None
            bias = np.asarray(constant_array(b), np.float32).reshape(-1)
        return (node.inputs[0], q, scale, bias, node.outputs[0], [node]) if scale is not None else None
    return None


# ------------------------------------------------------------------ dynamic per-token: QuantBatchMatMul


def fuse_dynamic(graph: gs.Graph, ctx) -> int:
    """QuantDequant(int8sym) -> MatMul / Gemm(int8sym weight) -> NPUDynamicQuant + QuantBatchMatMul."""
    compute = ctx.options.get("compute_dtype", "float16")
    if compute not in COMPUTE:
        raise ValueError(f"compute_dtype must be one of {', '.join(COMPUTE)}, got {compute!r}")
    half, out_code = COMPUTE[compute]
    done = []
    for node in list(graph.nodes):
        if not (is_standard(node, "MatMul") or is_standard(node, "Gemm")) or not node.outputs:
            continue
        a = node.inputs[0]
        if len(a.inputs) != 1 or not _int8sym_per_token(a.inputs[0]):
            continue
        layer = _layer(node, graph)
        if layer is None:
            continue
        _, q, scale, bias, out, drop = layer
        x = a.inputs[0].inputs[0]
        k, n = q.shape
        name = node.name or out.name
        xs = _var(graph, name, "x16", "Cast", [x], to=half)
        shape = _var(graph, name, "shape", "Shape", [x])
        x2 = _var(graph, name, "x2", "Reshape", [xs, _i64(f"{name}.flat", [-1, k])])
        codes, pertoken = _var(graph, name, "dynq", "NPUDynamicQuant", [x2, gs.Variable.empty(), gs.Variable.empty()],
                               outputs=2, domain=npu_ops.DOMAIN, dst_type=npu_ops.DT_INT8)
        ins = [codes, gs.Constant(f"{name}.x2_int8", q.numpy()), gs.Constant(f"{name}.scale", scale.numpy()),
               gs.Variable.empty(),
               gs.Constant(f"{name}.bias", bias) if bias is not None else gs.Variable.empty(), pertoken]
        y2 = _var(graph, name, "qbmm", "QuantBatchMatMul", ins, domain=npu_ops.DOMAIN, dtype=out_code,
                  transpose_x1=0, transpose_x2=0)
        lead = _var(graph, name, "lead", "Slice", [shape, _i64(f"{name}.zero", [0]), _i64(f"{name}.m1", [-1])])
        oshape = _var(graph, name, "oshape", "Concat", [lead, _i64(f"{name}.n", [n])], axis=0)
        y = _var(graph, name, "y16", "Reshape", [y2, oshape])
        graph.nodes.append(gs.Node("Cast", name=f"{name}.cast_out", inputs=[y], outputs=[out],
                                   attrs={"to": _elem_type(node.outputs[0])}))
        for d in drop:
            detach_outputs(d)
        done.append(name)
    if done:
        graph.cleanup()  # the rewritten layers go before other fusions look at their weights
        ctx.note(f"{len(done)} int8 per-token MatMul / Gemm -> NPUDynamicQuant + QuantBatchMatMul ({compute} "
                 f"activations and output): {', '.join(done[:8])}")
    return len(done)


# ------------------------------------------------------------------ static per-tensor: AMCT's deploy form


def _conv_weight(node: gs.Node) -> tuple[torch.Tensor, torch.Tensor] | None:
    w = int8_weight(node.inputs[1])
    if w is None or w[0].dim() < 3:
        return None
    scale = channel_scale(w[1], 0)
    return None if scale is None else (w[0], scale)


def fuse_static(graph: gs.Graph, ctx) -> int:
    """Q -> DQ (per tensor, symmetric) -> Conv / Gemm (int8sym weight) -> AscendQuant ->
    ConvInteger / MatMulInteger -> Add(int32 bias) -> AscendDequant."""
    done, kept = [], []
    for node in list(graph.nodes):
        conv = is_standard(node, "Conv")
        if not (conv or is_standard(node, "Gemm")) or not node.outputs:
            continue
        act = _static_activation(node.inputs[0], graph)
        name = node.name or node.outputs[0].name
        if act is None:
            why = _asymmetric(node.inputs[0], graph)
            if why:
                kept.append(f"{name}: {why}")
            continue
        x, s_x = act
        if conv:
            if node.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
                kept.append(f"{name}: auto_pad")
                continue
            w = _conv_weight(node)
            if w is None:
                kept.append(f"{name}: weight is not int8sym per output channel")
                continue
            q, s_w = w
            bias = None
            if len(node.inputs) > 2 and node.inputs[2].name:
                b = constant(node.inputs[2], graph)
                if b is None:
                    kept.append(f"{name}: bias is not a constant")
                    continue
                bias = np.asarray(constant_array(b), np.float32).reshape(-1)
            out, drop = node.outputs[0], [node]
        else:
            layer = _layer(node, graph)
            if layer is None:
                kept.append(f"{name}: weight is not int8sym per output channel")
                continue
            _, q, s_w, bias, out, drop = layer
        # msModelSlim: deq_scale = weight scale x input scale (float32); bias rint(b / deq) as int32
        deq = (s_w.numpy().astype(np.float32) * np.float32(s_x)).astype(np.float32)
        if bias is not None:
            b32 = np.round(np.true_divide(bias, deq))
            if np.abs(b32).max(initial=0) >= 2**31 - 1:
                kept.append(f"{name}: int32 bias out of range")
                continue
            b32 = b32.astype(np.int32)
        else:
            b32 = np.zeros(deq.shape, np.int32)
        cq = _var(graph, name, "quant", "AscendQuant", [x], domain=npu_ops.DOMAIN, scale=float(np.float32(1 / s_x)),
                  offset=0.0, sqrt_mode=0, round_mode="Round", dst_type="INT8")
        wc = gs.Constant(f"{name}.weight_int8", q.numpy())
        if conv:
            attrs = {k: v for k, v in node.attrs.items() if k in ("dilations", "group", "kernel_shape", "pads", "strides")}
            acc = _var(graph, name, "acc", "ConvInteger", [cq, wc], **attrs)
            bshape = (-1,) + (1,) * (q.dim() - 2)
        else:
            acc = _var(graph, name, "acc", "MatMulInteger", [cq, wc])
            bshape = (-1,)
        accb = _var(graph, name, "acc_bias", "Add", [acc, gs.Constant(f"{name}.bias_int32", b32.reshape(bshape))])
        packed = npu.pack_deq_scale(torch.from_numpy(deq)).numpy().astype(np.uint64)
        graph.nodes.append(gs.Node("AscendDequant", name=f"{name}.dequant", domain=npu_ops.DOMAIN,
                                   inputs=[accb, gs.Constant(f"{name}.deq_scale", packed)], outputs=[out],
                                   attrs={"sqrt_mode": 0, "relu_flag": 0,
                                          "dtype": npu_ops.DT_FLOAT16 if _elem_type(node.outputs[0]) == T.FLOAT16
                                          else npu_ops.DT_FLOAT}))
        for d in drop:
            detach_outputs(d)
        done.append(name)
    if done:
        graph.cleanup()
        ctx.note(f"{len(done)} static int8 Conv / Gemm -> AscendQuant + int8 weights + AscendDequant (AMCT's deploy "
                 f"form): {', '.join(done[:8])}")
    for k in kept:
        ctx.note(f"kept {k}")
    return len(done)


def fuse_requant(graph: gs.Graph, ctx) -> int:
    """The static Q -> DQ pairs left on activations (onnxruntime's QDQ requantizes every
    tensor) -> npu::AscendQuant -> npu::AscendAntiQuant: the same fake-quant in CANN's ops
    (ATC has no QuantizeLinear parser), the rounding in float16 steps as AscendQuant does."""
    done = 0
    for dq in [n for n in graph.nodes if is_standard(n, "DequantizeLinear")]:
        if not dq.outputs or not any(c.outputs for c in dq.outputs[0].outputs) and dq.outputs[0] not in graph.outputs:
            continue  # (unused: only layers fuse_static rewrote read it)
        act = _static_activation(dq.outputs[0], graph)
        if act is None:
            continue
        x, s_x = act
        name = dq.name or dq.outputs[0].name
        q = _var(graph, name, "quant", "AscendQuant", [x], domain=npu_ops.DOMAIN, scale=float(np.float32(1 / s_x)),
                 offset=0.0, sqrt_mode=0, round_mode="Round", dst_type="INT8")
        graph.nodes.append(gs.Node("AscendAntiQuant", name=f"{name}.antiquant", domain=npu_ops.DOMAIN, inputs=[q],
                                   outputs=list(dq.outputs), attrs={"scale": s_x, "offset": 0.0,
                                                                    "dtype": npu_ops.DT_FLOAT, "sqrt_mode": 0}))
        detach_outputs(dq)
        done += 1
    if done:
        ctx.note(f"{done} static activation QuantizeLinear -> DequantizeLinear pairs -> AscendQuant -> AscendAntiQuant")
    return done


# ------------------------------------------------------------------ the ATC form of the static layers


def _from_ascend_quant(t: gs.Tensor, names: tuple[str, ...]) -> bool:
    return len(t.inputs) == 1 and t.inputs[0].op == "AscendQuant" and t.inputs[0].domain in names


def to_atc_form(graph: gs.Graph, tensor_info) -> int:
    """ConvInteger / MatMulInteger on an npu::AscendQuant output, + Add(int32 constant) ->
    Conv(q, W, bias) / Gemm(q, W, bias, transB=0) (2-D) / MatMul + Add, as msModelSlim writes
    them (ATC's quant fusion reads the int8 weights and the int32 bias there). `tensor_info()`:
    name -> (element type, rank), asked for only when a layer is found."""
    done, info = 0, None
    for node in list(graph.nodes):
        conv = is_standard(node, "ConvInteger")
        if not (conv or is_standard(node, "MatMulInteger")) or len(node.inputs) != 2:
            continue
        if not _from_ascend_quant(node.inputs[0], (npu_ops.DOMAIN,)) or constant(node.inputs[1], graph) is None:
            continue
        add = _consumer(node.outputs[0], graph)
        bias = None if add is None or not is_standard(add, "Add") or add.inputs[0] is not node.outputs[0] \
            else constant(add.inputs[1], graph)
        if bias is None or constant_array(bias).dtype != np.int32:
            continue
        b = gs.Constant(bias.name + ".atc", np.ascontiguousarray(constant_array(bias).reshape(-1)))
        info = tensor_info() if info is None else info  # (shape inference: only when there is work)
        rank = info.get(node.inputs[0].name, (0, None))[1]
        if conv:
            new = gs.Node("Conv", name=node.name, inputs=[*node.inputs, b], outputs=list(add.outputs),
                          attrs=dict(node.attrs))
        elif rank == 2:
            new = gs.Node("Gemm", name=node.name, inputs=[*node.inputs, b], outputs=list(add.outputs),
                          attrs={"transB": 0})
        else:
            graph.nodes.append(gs.Node("MatMul", name=node.name, inputs=list(node.inputs), outputs=list(node.outputs)))
            detach_outputs(node)
            done += 1
            continue
        detach_outputs(add)
        detach_outputs(node)
        graph.nodes.append(new)
        done += 1
    return done


def from_atc_form(graph: gs.Graph) -> None:
    """The inverse: Conv / Gemm / MatMul reading an AscendQuant output (ATC's names: the
    default or ai.onnx domain) -> ConvInteger / MatMulInteger [+ Add(int32 bias)]."""
    for node in list(graph.nodes):
        if node.op not in ("Conv", "Gemm", "MatMul") or node.domain not in ("", "ai.onnx"):
            continue
        if not _from_ascend_quant(node.inputs[0], ("", "ai.onnx", npu_ops.DOMAIN)):
            continue
        w = node.inputs[1]
        bias = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2].name else None
        out = node.outputs[0]
        acc = gs.Variable(f"{node.name}.acc") if bias is not None else out
        detach_outputs(node)
        if node.op == "Conv":
            new = gs.Node("ConvInteger", name=node.name, domain=node.domain, inputs=[node.inputs[0], w],
                          outputs=[acc], attrs=dict(node.attrs))
            rank = len(constant_array(constant(w)).shape)
            bshape = (-1,) + (1,) * (rank - 2)
        else:
            if node.op == "Gemm" and node.attrs.get("transB", 0):
                w = gs.Constant(w.name + ".kn", np.ascontiguousarray(constant_array(constant(w)).T))
            new = gs.Node("MatMulInteger", name=node.name, domain=node.domain, inputs=[node.inputs[0], w],
                          outputs=[acc])
            bshape = (-1,)
        graph.nodes.append(new)
        if bias is not None:
            b = constant(bias)
            bc = gs.Constant(b.name.removesuffix(".atc"), np.ascontiguousarray(constant_array(b).reshape(bshape)))
            graph.nodes.append(gs.Node("Add", name=f"{node.name}.bias", domain=node.domain, inputs=[acc, bc],
                                       outputs=[out]))


# ------------------------------------------------------------------ per-layer verification


def int8_layers(graph: gs.Graph) -> list[tuple[str, str, str, float | None]]:
    """(layer name, activation input, output, static activation scale or None for per-token)
    of every layer fuse_dynamic / fuse_static rewrites in `graph` (the model before fuse-npu)."""
    out = []
    for node in graph.nodes:
        if not node.outputs:
            continue
        a = node.inputs[0] if node.inputs else None
        if (is_standard(node, "MatMul") or is_standard(node, "Gemm")) and a is not None and len(a.inputs) == 1 \
                and _int8sym_per_token(a.inputs[0]) and (layer := _layer(node, graph)) is not None:
            out.append((node.name, a.inputs[0].inputs[0].name, layer[4].name, None))
        elif (is_standard(node, "Conv") or is_standard(node, "Gemm")) and a is not None \
                and (act := _static_activation(a, graph)) is not None:
            ok = _conv_weight(node) if is_standard(node, "Conv") else _layer(node, graph)
            if ok is not None:
                out.append((node.name, act[0].name, node.outputs[0].name, act[1]))
    return out


def _cut(model: onnx.ModelProto, inp: str, out: str) -> onnx.ModelProto:
    """The part of `model` computing tensor `out` from tensor `inp` (a float32 graph input)."""
    from ..ops import functions

    g = gs.import_onnx(model)
    tensors = g.tensors()
    x = tensors[inp]
    x.dtype = x.dtype or np.float32
    g.inputs, g.outputs = [x], [tensors[out]]
    tensors[out].dtype = tensors[out].dtype or np.float32
    m = gs.export_onnx(g.cleanup(), do_type_check=False)
    m.ir_version = model.ir_version
    functions.attach(m)
    return m


def layer_report(before: onnx.ModelProto, after: onnx.ModelProto, feeds: list[torch.Tensor]) -> list[dict]:
    """Each int8 layer of `before` (see int8_layers) against the same layer in `after` (any
    form `after` is in; an ATC layout goes back to portable first), both fed the activation
    `before` computes from `feeds`. Per layer: `max_abs` |diff| and `max_ref` |output|;
    `ulp16`: max_abs in float16 ulps at max_ref; `codes_off`: the fraction of int8 activation
    codes that differ (int8sym / QuantizeLinear in float32 against DynamicQuant / AscendQuant
    on float16), and `code_step` the largest difference (one int8 step at most)."""
    from ..runtime.ort import OrtSession
    from .atc import to_portable
    from .pipeline import LAYOUT_KEY

    if any(p.key == LAYOUT_KEY for p in after.metadata_props):
        after = to_portable(after)
    layers = int8_layers(gs.import_onnx(before))
    probe = onnx.ModelProto()
    probe.CopyFrom(before)
    have = {o.name for o in probe.graph.output}
    for _, x, _, _ in layers:
        if x not in have:
            probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(x))
            have.add(x)
    sess = OrtSession(probe)
    values = dict(zip(sess.output_names, sess.run(*feeds)))
    rows = []
    for name, x, out, s_x in layers:
        xin = values[x].float()
        ref = OrtSession(_cut(before, x, out)).run(xin)[0]
        got = OrtSession(_cut(after, x, out)).run(xin)[0]
        diff = float((got.double() - ref.double()).abs().max())
        top = float(ref.abs().max())
        ulp = 2.0 ** (np.floor(np.log2(max(top, 2.0**-14))) - 10)  # float16's at max |ref|
        if s_x is None:  # int8sym along the last axis vs npu_dynamic_quant of the float16 input
            rows2 = xin.reshape(-1, xin.shape[-1])
            want = torch.round(rows2 / torch.where((m := rows2.abs().amax(-1, keepdim=True) / 127) > 0, m, 1.0))
            have = npu.npu_dynamic_quant(rows2.half())[0].float()
        else:
            want = torch.round(xin / np.float32(s_x)).clamp(-128, 127)
            have = npu.ascend_quant(xin, float(np.float32(1 / s_x))).float()
        step = (have - want).abs()
        rows.append({"layer": name, "kind": "per-token" if s_x is None else "static", "max_abs": diff, "max_ref": top,
                     "ulp16": float(diff / ulp), "codes_off": float((step > 0).float().mean()),
                     "code_step": int(step.max())})
    return rows
