"""How each quantized layer would run on the NPU, read from the graph, and the limits ATC
documents for quantized deploy models.

    for layer in quantized_layers(model, "Ascend910B1"): print(layer.line())
    for w in deploy_warnings(model, dynamic_batch="1,2,4"): print(w)

A layer is a MatMul / Gemm / Conv / ConvTranspose fed something quantized, or a quantized
matmul op itself. Its kind:
  native int8 cube    AMCT's deploy chain AscendQuant -> int8 op -> AscendDequant, or CANN's
                      QuantBatchMatMul (QuantBatchMatmulV3): int8 x int8 on the cube
  weight-only matmul  (NPU)WeightQuantBatchMatmulV2: low-bit weights dequantized inside CANN's
                      matmul kernel, float activations
  custom kernel       an npuq-domain node (our custom-op package) decodes the weight or
                      fake-quantizes the activation on the vector unit; the matmul is float
  folded              the weight was decoded at conversion (an initializer marked
                      `npuq.folded_from=<format>`): a plain float layer
Works on portable and ATC-layout models (the layout's origin map names the custom ops).
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx

from ..ops.fold_order import stands_for
from .soc import CUSTOM_OP_FAMILIES, soc_info

LAYER_OPS = {"MatMul", "Gemm", "Conv", "ConvTranspose"}
NATIVE, WEIGHT_ONLY, CUSTOM, FOLDED = "native int8 cube", "weight-only matmul", "custom kernel", "folded"
FOLDED_KEY = "npuq.folded_from"
# AMCT's deploy ops (default domain; CANN's plugins in hicann/ops-nn quant/ascend_*)
DEPLOY_OPS = {"AscendQuant", "AscendDequant", "AscendAntiQuant", "AscendRequant", "AscendDequantS16",
              "AscendRequantS16"}
QUANT_MATMULS = {"QuantBatchMatMul"}
WEIGHT_ONLY_MATMULS = {"NPUWeightQuantBatchMatmulV2", "WeightQuantBatchMatmulV2"}
# CANN 7.0 AMCT guide, quick start (hiascend.com canncommercial/700 auxiliarydevtool_0026): an
# AMCT deploy model converted by ATC "cannot use dynamic-shape options such as
# --dynamic_batch_size and --dynamic_image_size, or conversion fails" (no DT_INT8 input in
# dynamic shape), and "cannot use high-precision features: --precision_mode force_fp32 /
# must_keep_origin_dtype, --precision_mode_v2 origin" (nor --op_precision_mode high_precision)
HIGH_PRECISION = {"precision_mode": {"force_fp32", "must_keep_origin_dtype"}, "precision_mode_v2": {"origin"}}


@dataclass(frozen=True)
class Layer:
    node: str
    op: str
    kind: str
    why: str

    def line(self) -> str:
        return f"{self.node} ({self.op}): {self.kind}: {self.why}"


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            v = onnx.helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def _portable(model: onnx.ModelProto):
    """node -> (portable domain, op) via the ATC layout's origin map (ours and CANN's names)."""
    from ..passes.atc import _portable_name, origin_map
    from ..passes.pipeline import LAYOUT_KEY

    meta = {p.key: p.value for p in model.metadata_props}
    if LAYOUT_KEY not in meta:
        return lambda n: (n.domain, n.op_type)
    origin = origin_map(meta)
    return lambda n: _portable_name(n.domain, n.op_type, origin)


def _folded_from(model: onnx.ModelProto, name: str, consumer: onnx.NodeProto) -> str | None:
    for t in model.graph.initializer:
        if t.name == name:
            if t.doc_string.startswith(FOLDED_KEY + "="):
                return t.doc_string.split("=", 1)[1].split()[0] if "=" in t.doc_string else ""
            for p in getattr(t, "metadata_props", ()):
                if p.key == FOLDED_KEY:
                    return p.value
    for p in getattr(consumer, "metadata_props", ()):
        if p.key == FOLDED_KEY:
            return p.value
    return None


_PASS_THROUGH = {"Transpose", "Reshape", "Cast", "Identity", "Squeeze", "Unsqueeze", "Flatten"}


def _source(tensor: str, producer: dict, portable, depth: int = 4):
    """The node producing `tensor`, looking through layout-only ops (a transposed or cast weight)."""
    node = producer.get(tensor)
    while node is not None and depth and portable(node)[1] in _PASS_THROUGH and node.input:
        node, depth = producer.get(node.input[0]), depth - 1
    return node


def quantized_layers(model: onnx.ModelProto, soc_version: str | None = None) -> list[Layer]:
    """Every quantized layer of `model` (main graph) and how it would run (module doc)."""
    soc = soc_info(soc_version) if soc_version else None
    portable = _portable(model)
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    out = []
    for n in model.graph.node:
        domain, op = portable(n)
        who = n.name or n.output[0]
        matmul = stands_for(n)  # an export's Gemm form of MatMul (ops.fold_order): named as the user's layer
        if matmul is not None:
            op, who = "MatMul", matmul or who
        if op in QUANT_MATMULS and domain in ("", "ai.onnx", "npu"):  # npu:: in the portable form
            dtype = _attr(n, "dtype", 1)
            out.append(Layer(who, op, NATIVE, f"CANN's QuantBatchMatmulV3 (int8 x int8 on the cube, output dtype "
                                              f"code {dtype}; plugin keys ai.onnx::8..16::QuantBatchMatMul)"))
            continue
        if op in WEIGHT_ONLY_MATMULS:
            group = _attr(n, "antiquant_group_size", 0)
            out.append(Layer(who, op, WEIGHT_ONLY, "CANN's WeightQuantBatchMatmulV2: the weight dequantized inside "
                                                   "the matmul kernel, float activations"
                                                   + (f", groups of {group}" if group else ", per channel")))
            continue
        if op not in LAYER_OPS or domain not in ("", "ai.onnx"):
            continue
        inputs = [_source(i, producer, portable) for i in n.input]
        after = [portable(c)[1] for o in n.output for c in consumers.get(o, [])]
        if (inputs[0] is not None and portable(inputs[0])[1] == "AscendQuant") or "AscendDequant" in after:
            out.append(Layer(who, op, NATIVE, f"AMCT deploy chain AscendQuant -> int8 {op} -> AscendDequant "
                                              "(int8 x int8 on the cube, per-channel dequant scale)"))
            continue
        custom = [(i, p) for i, p in enumerate(inputs) if p is not None and portable(p)[0] == "npuq"]
        if custom:
            used = "; ".join(f"{'::'.join(portable(p))} (format {_attr(p, 'format', '?')}) on the "
                             f"{('activation', 'weight')[i] if i < 2 else f'input {i}'}" for i, p in custom)
            where = ""
            if soc is not None:
                where = (f"; {soc.name} ({soc.family}) has the package's kernel" if soc.family in CUSTOM_OP_FAMILIES
                         else f"; no kernel for {soc.name} ({soc.family}): the package builds "
                              f"{', '.join(CUSTOM_OP_FAMILIES)}")
            out.append(Layer(who, op, CUSTOM, f"{used}: onnx_npuq's custom kernel on the vector unit, then a float "
                                              f"{op} on the cube{where}"))
            continue
        folded = next((f for f in (_folded_from(model, i, n) for i in n.input[1:2]) if f is not None), None)
        if folded is not None:
            out.append(Layer(who, op, FOLDED, f"weights stored as {folded or 'a packed format'}, decoded to float "
                                              "at conversion: a plain float layer, no quantized compute"))
    return out


def deploy_warnings(model: onnx.ModelProto, *, dynamic_batch=None, dynamic_image_size=None, dynamic_dims=None,
                    precision_mode=None, precision_mode_v2=None) -> list[str]:
    """The ATC limits a quantized deploy model (AMCT deploy ops in the graph) would hit."""
    deploy = sorted({n.op_type for n in model.graph.node if n.op_type in DEPLOY_OPS})
    if not deploy:
        return []
    what = f"the model has quantized deploy ops ({', '.join(deploy)})"
    out = []
    for flag, value in (("--dynamic_batch_size", dynamic_batch), ("--dynamic_image_size", dynamic_image_size),
                        ("--dynamic_dims", dynamic_dims)):
        if value:
            out.append(f"{flag}={value}: {what}; CANN's AMCT guide: ATC fails on a quantized deploy model with "
                       "dynamic-shape options (no int8 input in dynamic shape): convert at fixed shapes")
    for flag, value in (("precision_mode", precision_mode), ("precision_mode_v2", precision_mode_v2)):
        if value in HIGH_PRECISION[flag]:
            out.append(f"--{flag}={value}: {what}; CANN's AMCT guide: no high-precision modes with a quantized "
                       "deploy model (neither the quantized speed-up nor the float precision): use the default")
    return out
