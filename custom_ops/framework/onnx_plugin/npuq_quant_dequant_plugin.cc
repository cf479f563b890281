/**
 * ONNX parser plugin of npuq::QuantDequant (fake quantization along the last axis).
 * Maps the ONNX node to the GE operator NpuqQuantDequant and reads every attribute of
 * onnx_npuq.ops.defs.QUANT_DEQUANT into the operator's attributes.
 *
 * Keys: exactly onnx_npuq.passes.atc.OUR_KEYS for QuantDequant, both layouts: "npuq::1::QuantDequant"
 * (layout "domain") and "ai.onnx::11..18::QuantDequant" (layout "default"); tests/test_custom_ops.py
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
Status ParseOnnxParamsNpuqQuantDequant(const ge::Operator &op_src, ge::Operator &op_dest)
{
    return npuq_plugin::ParseFormatAttrs("NpuqQuantDequant", op_src, op_dest) ? SUCCESS : FAILED;
}

REGISTER_CUSTOM_OP("NpuqQuantDequant")
    .FrameworkType(ONNX)
    .OriginOpType({ge::AscendString("npuq::1::QuantDequant"), ge::AscendString("ai.onnx::11::QuantDequant"),
                   ge::AscendString("ai.onnx::12::QuantDequant"), ge::AscendString("ai.onnx::13::QuantDequant"),
                   ge::AscendString("ai.onnx::14::QuantDequant"), ge::AscendString("ai.onnx::15::QuantDequant"),
                   ge::AscendString("ai.onnx::16::QuantDequant"), ge::AscendString("ai.onnx::17::QuantDequant"),
                   ge::AscendString("ai.onnx::18::QuantDequant")})
    .ParseParamsByOperatorFn(ParseOnnxParamsNpuqQuantDequant)
    .ImplyType(ImplyType::TVM);
}  // namespace domi
