"""`compress`: quantized constant weights stored as their format's bits."""
from __future__ import annotations

import onnx_graphsurgeon as gs

from ..ops.defs import DOMAIN, format_from_attrs
from .graph import constant_torch, dequantize_packed, detach_outputs
from .pipeline import Context, PassError, register
from .qdq import fold_qdq, import_dq


def pack_quant_dequant(graph: gs.Graph, ctx: Context) -> int:
    """npuq::QuantDequant on a constant X -> npuq::Dequantize of formats.encode(X): the
    same values (decode(encode(x)) == fake_quant(x)), in the format's bits."""
    done = 0
    for node in list(graph.nodes):
        if node.op != "QuantDequant" or node.domain != DOMAIN:
            continue
        x = constant_torch(node.inputs[0])
        if x is None:
            continue
        y = node.outputs[0]
        fmt = format_from_attrs(node.attrs)
        try:
            packed = fmt.encode(x, axis=-1)
        except (ValueError, TypeError) as err:  # e.g. a zero-size constant: nothing to pack
            raise PassError(f"compress: node {node.name or '<unnamed>'} (npuq::QuantDequant): {err}") from None
        detach_outputs(node)
        dequantize_packed(graph, packed, y.name, out=y)
        done += 1
    if done:
        ctx.note(f"{done} QuantDequant on constants packed")
    return done


@register("compress")
def compress(graph: gs.Graph, ctx: Context) -> None:
    """Quantized constant weights (QuantDequant, Q->DQ) -> packed uint8 initializers + npuq::Dequantize."""
    pack_quant_dequant(graph, ctx)
    fold_qdq(graph, ctx)  # standard QuantizeLinear -> DequantizeLinear pairs on constants
    import_dq(graph, ctx)
