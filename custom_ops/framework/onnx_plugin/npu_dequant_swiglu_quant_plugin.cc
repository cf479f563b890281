/**
 * ONNX parser plugin of npu::NPUDequantSwigluQuant (onnx_npuq.ops.npu_ops.NPU_DEQUANT_SWIGLU_QUANT:
 * torch_npu.npu_dequant_swiglu_quant, which torch_npu has no ONNX exporter for and CANN no ONNX
 * plugin for -- hicann/ops-nn quant/dequant_swiglu_quant has no framework/ directory).
 *
 * This plugin maps the node to CANN's OWN operator DequantSwigluQuant (the one
 * torch_npu.npu_dequant_swiglu_quant runs, and the one Ascend/torchair's GE converter
 * ge_converter/custom/npu_dequant_swiglu_quant.py emits): its IR and its ascend910b / ascend910_93
 * kernels ship with CANN, so this package declares no OpDef and no kernel for it (an OpDef named
 * DequantSwigluQuant here would replace CANN's). CANN's IR (hicann/ops-nn quant/dequant_swiglu_quant/
 * op_graph/dequant_swiglu_quant_proto.h) has the inputs of the ONNX op in the same order (x,
 * weight_scale, activation_scale, bias, quant_scale, quant_offset, group_index; ATC maps inputs by
 * position) and the outputs y, scale. Attributes, ONNX -> CANN:
 *   activate_left int (0)        -> activate_left Bool (false)
 *   quant_mode    int (0)        -> quant_mode String: 0 "static", 1 "dynamic" (as torchair does)
 *   swiglu_mode   int (0)        -> swiglu_mode Int (0)
 *   clamp_limit / glu_alpha / glu_bias float (7.0 / 1.702 / 1.0) -> the same names and defaults
 * dst_type / round_mode / activate_dim stay at CANN's defaults (Ascend 950 only).
 *
 * Keys: exactly onnx_npuq.passes.atc.OUR_KEYS for NPUDequantSwigluQuant, both layouts:
 * "npu::1::NPUDequantSwigluQuant" (layout "domain") and "ai.onnx::11..18::NPUDequantSwigluQuant"
 * (layout "default"); tests/test_custom_ops.py checks the list against OUR_KEYS.
 *
 * Modelled on: Ascend/samples operator/ascendc/0_introduction/9_leakyrelu_frameworklaunch/
 * LeakyReluCustom/framework/onnx_plugin/leaky_relu_custom_plugin.cc (ParseParamsByOperatorFn,
 * "attribute" JSON), and hicann/ops-nn quant/quantize/framework/npu_quantize_onnx_plugin.cpp (a
 * plugin of CANN's registering a torch_npu ONNX name, "npu::1::NPUQuantize", onto a built-in
 * GE type, "Quantize", converting the attributes on the way).
 */
#include <cstdint>
#include <cstdio>
#include <string>

#include "npuq_onnx_attrs.h"

namespace domi {
Status ParseOnnxParamsNpuDequantSwigluQuant(const ge::Operator &op_src, ge::Operator &op_dest)
{
    npuq_plugin::OnnxAttrs attrs("DequantSwigluQuant");
    int64_t activateLeft = 0;
    int64_t quantMode = 0;
    int64_t swigluMode = 0;
    float clampLimit = 7.0F;
    float gluAlpha = 1.702F;
    float gluBias = 1.0F;
    if (!attrs.Load(op_src) ||
        !attrs.Int("activate_left", 0, activateLeft) ||
        !attrs.Int("quant_mode", 0, quantMode) ||
        !attrs.Int("swiglu_mode", 0, swigluMode) ||
        !attrs.Float("clamp_limit", 7.0F, clampLimit) ||
        !attrs.Float("glu_alpha", 1.702F, gluAlpha) ||
        !attrs.Float("glu_bias", 1.0F, gluBias)) {
        return FAILED;
    }
    attrs.WarnUnread();
    if (quantMode != 0 && quantMode != 1) {
        std::fprintf(stderr, "[npuq] DequantSwigluQuant: quant_mode must be 0 (static) or 1 (dynamic)\n");
        return FAILED;
    }
    op_dest.SetAttr("activate_left", activateLeft != 0);
    op_dest.SetAttr("quant_mode", quantMode == 1 ? "dynamic" : "static");
    // swiglu_mode and the GLU constants came to CANN's IR with aclnnDequantSwigluQuantV2; an older
    // CANN's IR does not have them. Refuse a non-default swiglu_mode there rather than drop it.
    int64_t irSwigluMode = 0;
    if (op_dest.GetAttr("swiglu_mode", irSwigluMode) != ge::GRAPH_SUCCESS) {
        if (swigluMode != 0) {
            std::fprintf(stderr, "[npuq] DequantSwigluQuant: this CANN's DequantSwigluQuant has no swiglu_mode; "
                                 "swiglu_mode=%lld needs a newer CANN\n", static_cast<long long>(swigluMode));
            return FAILED;
        }
        return SUCCESS;
    }
    op_dest.SetAttr("swiglu_mode", swigluMode);
    op_dest.SetAttr("clamp_limit", clampLimit);
    op_dest.SetAttr("glu_alpha", gluAlpha);
    op_dest.SetAttr("glu_bias", gluBias);
    return SUCCESS;
}

REGISTER_CUSTOM_OP("DequantSwigluQuant")
    .FrameworkType(ONNX)
    .OriginOpType({ge::AscendString("npu::1::NPUDequantSwigluQuant"), ge::AscendString("ai.onnx::11::NPUDequantSwigluQuant"),
                   ge::AscendString("ai.onnx::12::NPUDequantSwigluQuant"), ge::AscendString("ai.onnx::13::NPUDequantSwigluQuant"),
                   ge::AscendString("ai.onnx::14::NPUDequantSwigluQuant"), ge::AscendString("ai.onnx::15::NPUDequantSwigluQuant"),
                   ge::AscendString("ai.onnx::16::NPUDequantSwigluQuant"), ge::AscendString("ai.onnx::17::NPUDequantSwigluQuant"),
                   ge::AscendString("ai.onnx::18::NPUDequantSwigluQuant")})
    .ParseParamsByOperatorFn(ParseOnnxParamsNpuDequantSwigluQuant)
    .ImplyType(ImplyType::TVM);
}  // namespace domi
