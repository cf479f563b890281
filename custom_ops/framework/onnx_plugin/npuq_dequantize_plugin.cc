/**
 * ONNX parser plugin of npuq::Dequantize (packed rows to float32).
 * Maps the ONNX node to the GE operator NpuqDequantize and reads every attribute of
 * onnx_npuq.ops.defs.DEQUANTIZE into the operator's attributes.
 *
 * Keys: exactly onnx_npuq.passes.atc.OUR_KEYS for Dequantize, both layouts: "npuq::1::Dequantize"
 * (layout "domain") and "ai.onnx::11..18::Dequantize" (layout "default"); tests/test_custom_ops.py
 * checks the list against OUR_KEYS.
 *
 * Modelled on: Ascend/samples operator/ascendc/0_introduction/9_leakyrelu_frameworklaunch/
 * LeakyReluCustom/framework/onnx_plugin/leaky_relu_custom_plugin.cc (REGISTER_CUSTOM_OP(...)
 * .FrameworkType(ONNX).OriginOpType({ge::AscendString(...), ...}).ParseParamsByOperatorFn(...)
 * .ImplyType(ImplyType::TVM)); the key lists as in hicann/ops-nn quant/quantize/framework/
 * npu_quantize_onnx_plugin.cpp ("npu::1::NPUQuantize", "ai.onnx::11..18::NPUQuantize").
 */
#include <cstdint>
#include <string>

#include "npuq_onnx_attrs.h"

namespace domi {
Status ParseOnnxParamsNpuqDequantize(const ge::Operator &op_src, ge::Operator &op_dest)
{
    npuq_plugin::OnnxAttrs attrs("NpuqDequantize");
    std::string format;
    int64_t block = 0;
    int64_t length = 0;
    if (!attrs.Load(op_src) ||
        !attrs.RequiredStr("format", format) ||
        !attrs.RequiredInt("block", block) ||
        !attrs.RequiredInt("length", length)) {
        return FAILED;
    }
    attrs.WarnUnread();
    op_dest.SetAttr("format", format.c_str());
    op_dest.SetAttr("block", block);
    op_dest.SetAttr("length", length);
    return SUCCESS;
}

REGISTER_CUSTOM_OP("NpuqDequantize")
    .FrameworkType(ONNX)
    .OriginOpType({ge::AscendString("npuq::1::Dequantize"), ge::AscendString("ai.onnx::11::Dequantize"),
                   ge::AscendString("ai.onnx::12::Dequantize"), ge::AscendString("ai.onnx::13::Dequantize"),
                   ge::AscendString("ai.onnx::14::Dequantize"), ge::AscendString("ai.onnx::15::Dequantize"),
                   ge::AscendString("ai.onnx::16::Dequantize"), ge::AscendString("ai.onnx::17::Dequantize"),
                   ge::AscendString("ai.onnx::18::Dequantize")})
    .ParseParamsByOperatorFn(ParseOnnxParamsNpuqDequantize)
    .ImplyType(ImplyType::TVM);
}  // namespace domi
