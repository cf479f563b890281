"""`compress`: quantized constant weights stored as their format's bits."""
from __future__ import annotations

import onnx
import onnx_graphsurgeon as gs

from ..ops.defs import DOMAIN, format_from_attrs
from .graph import constant, constant_through_layout, dequantize_packed, detach_outputs, layout_chain
from .pipeline import Context, PassError, register
from .pipeline import _quiet_graphsurgeon as quiet_graphsurgeon  # noqa: PLC2701
from .qdq import import_all, is_qdq


def _is_quant_dequant(node: gs.Node) -> bool:
    return node.op == "QuantDequant" and node.domain == DOMAIN


def pack_quant_dequant(graph: gs.Graph, ctx: Context) -> int:
    """npuq::QuantDequant on a constant X -> npuq::Dequantize of formats.encode(X): the
    same values (decode(encode(x)) == fake_quant(x)), in the format's bits.

    X may be seen through pure layout ops (Identity, Transpose, Reshape, Squeeze, Unsqueeze,
    Cast to a float type: graph.layout_chain), as torch's export leaves a weight fake-quantized
    along another axis than the last (Transpose -> QuantDequant -> Transpose): the chain is
    evaluated on the constant's values and the result packed, so cleanup drops the float
    constant and the chain unless something else reads them."""
    done = 0
    for node in list(graph.nodes):
        if not _is_quant_dequant(node):
            continue
        x = constant_through_layout(node.inputs[0])
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


def has_work(model: onnx.ModelProto) -> bool:
    """Whether `compress` would rewrite anything in `model`: a QuantDequant on a constant
    (through layout ops), or a QuantizeLinear / DequantizeLinear (standard or com.microsoft)
    on a constant.
    Reads no weights; what the exporter asks before running the pass."""
    with quiet_graphsurgeon():
        graph = gs.import_onnx(model)
    for node in graph.nodes:
        if _is_quant_dequant(node) and layout_chain(node.inputs[0]) is not None:
            return True
        if (is_qdq(node, "QuantizeLinear") or is_qdq(node, "DequantizeLinear")) \
                and constant(node.inputs[0], graph) is not None:
            return True
    return False


@register("compress")
def compress(graph: gs.Graph, ctx: Context) -> None:
    """Quantized constant weights (QuantDequant, Q->DQ) -> packed uint8 initializers + npuq::Dequantize."""
    pack_quant_dequant(graph, ctx)
    import_all(graph, ctx)  # Q -> DQ pairs on constants folded, constant DQs imported
