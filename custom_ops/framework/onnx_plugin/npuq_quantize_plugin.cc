/**
 * ONNX parser plugin of npuq::Quantize (packed codes and scale bytes; the plugin and host side
 * are complete, the kernel is not written yet: see op_host/npuq_quantize.cpp).
 * Maps the ONNX node to the GE operator NpuqQuantize and reads every attribute of
 * onnx_npuq.ops.defs.QUANTIZE into the operator's attributes.
 *
 * Keys: exactly onnx_npuq.passes.atc.OUR_KEYS for Quantize, both layouts: "npuq::1::Quantize"
 * (layout "domain") and "ai.onnx::11..18::Quantize" (layout "default"); tests/test_custom_ops.py
 * checks the list against OUR_KEYS.
 *
 * Modelled on: Ascend/samples operator/ascendc/0_introduction/9_leakyrelu_frameworklaunch/
 * LeakyReluCustom/framework/onnx_plugin/leaky_relu_custom_plugin.cc (REGISTER_CUSTOM_OP(...)
 * .FrameworkType(ONNX).OriginOpType({ge::AscendString(...), ...}).ParseParamsByOperatorFn(...)
 * .ImplyType(ImplyType::TVM)); the key lists as in hicann/ops-nn quant/quantize/framework/
 * npu_quantize_onnx_plugin.cpp ("npu::1::NPUQuantize", "ai.onnx::11..18::NPUQuantize").
 */
#include "npuq_onnx_attrs.h"

namespace domi {
Status ParseOnnxParamsNpuqQuantize(const ge::Operator &op_src, ge::Operator &op_dest)
{
    return npuq_plugin::ParseFormatAttrs("NpuqQuantize", op_src, op_dest) ? SUCCESS : FAILED;
}

REGISTER_CUSTOM_OP("NpuqQuantize")
    .FrameworkType(ONNX)
    .OriginOpType({ge::AscendString("npuq::1::Quantize"), ge::AscendString("ai.onnx::11::Quantize"),
                   ge::AscendString("ai.onnx::12::Quantize"), ge::AscendString("ai.onnx::13::Quantize"),
                   ge::AscendString("ai.onnx::14::Quantize"), ge::AscendString("ai.onnx::15::Quantize"),
                   ge::AscendString("ai.onnx::16::Quantize"), ge::AscendString("ai.onnx::17::Quantize"),
                   ge::AscendString("ai.onnx::18::Quantize")})
    .ParseParamsByOperatorFn(ParseOnnxParamsNpuqQuantize)
    .ImplyType(ImplyType::TVM);
}  // namespace domi
