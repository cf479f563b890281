"""`fold-weights`: packed weights the target SoC cannot compute natively -> plain constants.

A packed weight (npuq::Dequantize over constant codes and scales, what `compress` writes) is
decoded on the NPU by onnx_npuq's custom Dequantize kernel: once per weight per inference.
Where the SoC has no kernel of its own for the format (HiF8, HiF4, MX, NV, FP8 on 910B / 310P:
onnx_npuq.soc.native_weight) that is the slow path, so this pass decodes the weight once,
here, with the op's own numerics (ops.defs.dequantize_rows, i.e. onnx_npuq.formats), carries
it through the pure layout ops that follow (Reshape, Transpose, Cast: graph.layout_step) and
stores the result as a plain initializer:

  - the dtype the graph computes with, when the chain casts to float16 / bfloat16 itself;
  - else (float32) float16 + Cast to float32 when every value is exact in float16 (the Cast
    gives back the same float32 bits), float32 otherwise.

Nothing the graph computes changes (the pass is verified bit for bit). The initializer's
doc_string is "npuq.folded_from=<format>" (FOLDED_PREFIX), which the preflight reads to class
the layer as folded. Weights in a format the SoC computes natively (int8sym, int4sym: weight-
only matmul, the fuse-npu pass) are kept packed unless `fold_native=True`; QuantDequant on
activations is not a weight and stays. Both are said in the notes, as is every folded layer.

Options: soc (an ATC --soc_version; none: keep only what some SoC computes natively),
fold_native (fold every packed weight).
"""
from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import torch
from onnx_graphsurgeon.ir.tensor import LazyValues

from ..soc import native_weight, soc_info
from ..ops.defs import DOMAIN, dequantize_rows
from .graph import ONNX_FLOAT, constant, constant_array, detach_outputs, layout_chain, layout_step, replace_uses
from .pipeline import LAYOUT_KEY, Context, PassError, register

FOLDED_PREFIX = "npuq.folded_from="


def folded_from(t: onnx.TensorProto) -> str | None:
    """The format an initializer was folded from (fold-weights' mark), else None."""
    doc = t.doc_string
    return doc[len(FOLDED_PREFIX):] if doc.startswith(FOLDED_PREFIX) else None


def _is_op(node: gs.Node, op: str) -> bool:
    return node.op == op and node.domain == DOMAIN


def _packed(node: gs.Node, graph: gs.Graph) -> tuple[list[np.ndarray], int] | None:
    """(codes, scales[, tensor_scale] as arrays, their bytes) of a Dequantize on constants."""
    ins = [t for t in node.inputs if t.name]  # an omitted optional input has no name
    cs = [constant(t, graph) for t in ins]
    if any(c is None for c in cs):
        return None
    arrays = [np.array(constant_array(c)) for c in cs]  # writable, for torch
    return arrays, sum(a.nbytes for a in arrays)


def _chain(t: gs.Variable, graph: gs.Graph) -> tuple[gs.Variable, list]:
    """(the last tensor, the steps to it) of the pure layout ops that alone read `t` in turn."""
    steps = []
    while len(t.outputs) == 1 and t not in graph.outputs:
        node = t.outputs[0]
        step = layout_step(node)
        if step is None or node.inputs[0] is not t:
            break
        steps.append(step)
        t = node.outputs[0]
    return t, steps


def _fp16_exact(x: torch.Tensor) -> bool:
    """Whether float32 `x` goes through float16 and back to the same bits (NaN as NaN)."""
    back = x.to(torch.float16).to(torch.float32)
    return bool(((back.view(torch.int32) == x.view(torch.int32)) | (back.isnan() & x.isnan())).all())


def _initializer(name: str, value: torch.Tensor, fmt: str) -> gs.Constant:
    """A gs constant exported as a TensorProto marked as folded from `fmt`."""
    raw = value.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    t = onnx.helper.make_tensor(name, ONNX_FLOAT[value.dtype], list(value.shape), raw, raw=True)
    t.doc_string = FOLDED_PREFIX + fmt
    return gs.Constant(name, LazyValues(t))  # gs exports a LazyValues' TensorProto as it is


def _free_name(graph: gs.Graph, base: str) -> str:
    names = set(graph.tensors())
    name, i = base, 1
    while name in names:
        name, i = f"{base}.folded" + (f".{i}" if i > 1 else ""), i + 1
    return name


def _base_name(node: gs.Node) -> str:
    codes = node.inputs[0].name
    for suffix in ("_codes", ".codes"):
        if codes.endswith(suffix):
            return codes[: -len(suffix)]
    return f"{node.name or codes}.folded"


def _label(out: gs.Variable, name: str) -> str:
    users = [n.name for n in out.outputs if n.name]
    return f"{name} ({', '.join(users)})" if users else name


def fold(graph: gs.Graph, soc, fold_native: bool) -> tuple[int, list[str], list[str]]:
    """Fold the Dequantize nodes on constants (see the module doc); (how many, a note per
    folded layer, a note per kept one)."""
    done, folded, kept = 0, [], []
    where = soc.name if soc is not None else "any SoC"
    for node in [n for n in graph.nodes if _is_op(n, "Dequantize")]:
        fmt, block, length = node.attrs["format"], int(node.attrs["block"]), int(node.attrs["length"])
        grouped = 0 < block < length
        if not fold_native and native_weight(soc, fmt, grouped):
            kept.append(f"kept {node.name or node.outputs[0].name} packed: {fmt}{' per group' if grouped else ''} "
                        f"is native on {where} once fuse-npu makes it a weight-only matmul "
                        "(NPUWeightQuantBatchMatmulV2); unfused, the Dequantize kernel decodes it")
            continue
        packed = _packed(node, graph)
        if packed is None:
            kept.append(f"kept {node.name or node.outputs[0].name}: {fmt} codes or scales are not constants")
            continue
        arrays, before = packed
        codes, scales = (torch.from_numpy(a) for a in arrays[:2])
        ts = torch.from_numpy(arrays[2]) if len(arrays) > 2 else None
        value = dequantize_rows(codes, scales, ts, fmt, block, length)
        out, steps = _chain(node.outputs[0], graph)
        last = out.inputs[0]
        for step in steps:
            value = step(value)
        name = _free_name(graph, _base_name(node))
        cast = value.dtype == torch.float32 and _fp16_exact(value)
        stored = value.to(torch.float16) if cast else value.contiguous()
        c = _initializer(name, stored, fmt)
        label = _label(out, name)
        detach_outputs(last)
        if cast:
            graph.nodes.append(gs.Node("Cast", name=f"{name}.Cast", inputs=[c], outputs=[out],
                                       attrs={"to": onnx.TensorProto.FLOAT}))
        else:
            replace_uses(out, c)
            if out in graph.outputs:  # a graph output keeps its name
                graph.nodes.append(gs.Node("Identity", name=f"{name}.Identity", inputs=[c], outputs=[out]))
        dtype = str(stored.dtype).removeprefix("torch.") + (" + Cast to float32" if cast else "")
        folded.append(f"{label}: {fmt} -> {dtype}, {before} -> {stored.numel() * stored.element_size()} bytes")
        done += 1
    return done, folded, kept


@register("fold-weights")
def fold_weights(graph: gs.Graph, ctx: Context) -> None:
    """Packed weights the SoC cannot compute natively -> plain fp16 / fp32 constants (no decode per inference)."""
    if LAYOUT_KEY in ctx.metadata:
        raise PassError("fold-weights: the model is in an ATC layout; fold its weights before the atc pass "
                        "(or run `portable` first)")
    name = ctx.options.get("soc")
    soc = soc_info(name) if name else None
    done, folded, kept = fold(graph, soc, bool(ctx.options.get("fold_native", False)))
    ctx.note(f"{done} packed weight(s) folded" + (f" for {soc.name}" if soc else " (no SoC: every format no SoC "
                                                                                  "computes natively)"))
    ctx.notes.extend(folded)
    ctx.notes.extend(kept)
    acts = [n for n in graph.nodes if _is_op(n, "QuantDequant")]
    on_constants = [n for n in acts if layout_chain(n.inputs[0]) is not None]  # what compress packs
    if acts:
        ctx.note(f"left {len(acts) - len(on_constants)} QuantDequant on activations (computed per input, not "
                 "weights)" + (f" and {len(on_constants)} on constants (run compress first)" if on_constants else ""))
