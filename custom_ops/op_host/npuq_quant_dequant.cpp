/**
 * NpuqQuantDequant: the GE operator behind ONNX npuq::QuantDequant (onnx_npuq.ops.defs.QUANT_DEQUANT).
 * y = fake_quant(x, format) along the last axis; x and y share one dtype (float / float16 /
 * bfloat16). OpDef, InferShape / InferDataType, and the TilingFunc: npuq_common.h's
 * TilingFormatOp (shared with NpuqQuantize), which fills npuq::QuantDequantParams
 * (kernels/include/npuq/params.h) with the QuantDequant kernel's plan (TileQuantDequant).
 *
 * The GE type is NpuqQuantDequant, not QuantDequant: custom operators take precedence over
 * CANN's, so a custom type must not reuse a built-in name (CANN has Quantize / Dequantize).
 *
 * Modelled on: Ascend/samples (read in its copy tjulitianyi1997/AscendProjects) operator/AddCustomSample/FrameworkLaunch/AddCustom/op_host/add_custom.cpp
 * (TilingFunc / InferShape / OpDef / OP_ADD).
 */
#include <cstdint>

#include "npuq_quant_dequant_tiling.h"
#include "register/op_def_registry.h"

#include "npuq_common.h"

namespace optiling {
static ge::graphStatus TilingNpuqQuantDequant(gert::TilingContext *context)
{
    return npuq_host::TilingFormatOp<NpuqQuantDequantTilingData>(context, "NpuqQuantDequant (ONNX npuq::QuantDequant)",
                                                                 npuq_host::TileQuantDequant);
}
}  // namespace optiling

namespace ge {
static graphStatus InferShapeNpuqQuantDequant(gert::InferShapeContext *context)
{
    const gert::Shape *xShape = context->GetInputShape(0);
    gert::Shape *yShape = context->GetOutputShape(0);
    if (xShape == nullptr || yShape == nullptr) {
        return GRAPH_FAILED;
    }
    *yShape = *xShape;
    return GRAPH_SUCCESS;
}

static graphStatus InferDataTypeNpuqQuantDequant(gert::InferDataTypeContext *context)
{
    context->SetOutputDataType(0, context->GetInputDataType(0));
    return GRAPH_SUCCESS;
}
}  // namespace ge

namespace ops {
class NpuqQuantDequant : public OpDef {
public:
    explicit NpuqQuantDequant(const char *name) : OpDef(name)
    {
        this->Input("X")
            .ParamType(REQUIRED)
            .DataType({ge::DT_FLOAT, ge::DT_FLOAT16, ge::DT_BF16})
            .Format({ge::FORMAT_ND, ge::FORMAT_ND, ge::FORMAT_ND});
        this->Output("Y")
            .ParamType(REQUIRED)
            .DataType({ge::DT_FLOAT, ge::DT_FLOAT16, ge::DT_BF16})
            .Format({ge::FORMAT_ND, ge::FORMAT_ND, ge::FORMAT_ND});
        npuq_host::DeclareFormatAttrs(*this);  // format, rounding, scale_rule, saturate, variant, group

        this->SetInferShape(ge::InferShapeNpuqQuantDequant).SetInferDataType(ge::InferDataTypeNpuqQuantDequant);

        this->AICore().SetTiling(optiling::TilingNpuqQuantDequant);
        // ascend910b only: the kernels are not ported to ascend310p (custom_ops/README.md)
        this->AICore().AddConfig("ascend910b");
    }
};

OP_ADD(NpuqQuantDequant);
}  // namespace ops
