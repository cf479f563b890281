/**
 * NpuqQuantize: the GE operator behind ONNX npuq::Quantize (onnx_npuq.ops.defs.QUANTIZE).
 * x (float / float16 / bfloat16) -> Packed codes and scale bytes,
 * uint8, 2-D (rows = all dimensions but the last), the inputs of npuq::Dequantize.
 *
 * The kernel is npuq::Quantize (kernels/include/npuq/quantize.h, bit-exact to formats.encode on
 * the CPU host build): the TilingFunc is QuantDequant's (npuq_common.h's TilingFormatOp), with
 * the tile rows and workspace of the Quantize kernel's own plan (npuq_host::TileQuantize).
 * Refused: nvfp4 (two-level: no tensor-scale output, as onnx_npuq.ops.defs refuses it).
 *
 * The GE type is NpuqQuantize: CANN has its own Quantize (hicann/ops-nn quant/quantize), which
 * a custom operator of the same type would replace.
 *
 * Modelled on: Ascend/samples (read in its copy tjulitianyi1997/AscendProjects) operator/AddCustomSample/FrameworkLaunch/AddCustom/op_host/add_custom.cpp
 * (TilingFunc / InferShape / OpDef / OP_ADD).
 */
#include <cstdint>

#include "npuq_quantize_tiling.h"
#include "register/op_def_registry.h"

#include "npuq_common.h"

namespace optiling {
static ge::graphStatus TilingNpuqQuantize(gert::TilingContext *context)
{
    return npuq_host::TilingFormatOp<NpuqQuantizeTilingData>(context, "NpuqQuantize (ONNX npuq::Quantize)",
                                                             npuq_host::TileQuantize);
}
}  // namespace optiling

namespace ge {
static graphStatus InferShapeNpuqQuantize(gert::InferShapeContext *context)
{
    const gert::Shape *xShape = context->GetInputShape(0);
    gert::Shape *codesShape = context->GetOutputShape(0);
    gert::Shape *scalesShape = context->GetOutputShape(1);
    const gert::RuntimeAttrs *attrs = context->GetAttrs();
    if (xShape == nullptr || codesShape == nullptr || scalesShape == nullptr || attrs == nullptr ||
        xShape->GetDimNum() == 0) {
        return GRAPH_FAILED;
    }
    npuq_host::FormatOptions o;
    if (npuq_host::ParseFormatAttrs(*attrs, o) != nullptr) {
        return GRAPH_FAILED;
    }
    const size_t rank = xShape->GetDimNum();
    int64_t rows = 1;
    for (size_t i = 0; i + 1 < rank; ++i) {
        const int64_t d = xShape->GetDim(i);
        rows = (d < 0 || rows < 0) ? -1 : rows * d;  // -1: unknown
    }
    const int64_t length = xShape->GetDim(rank - 1);
    int64_t codeBytes = -1;
    int64_t scaleBytes = -1;
    if (length >= 0) {
        uint64_t cw = 0;
        uint64_t sw = 0;
        const uint64_t n = static_cast<uint64_t>(length);
        npuq_host::PackedWidths(o, n, cw, sw);
        codeBytes = static_cast<int64_t>(cw);
        scaleBytes = static_cast<int64_t>(sw);
    }
    codesShape->SetDimNum(2);
    codesShape->SetDim(0, rows);
    codesShape->SetDim(1, codeBytes);
    scalesShape->SetDimNum(2);
    scalesShape->SetDim(0, rows);
    scalesShape->SetDim(1, scaleBytes);
    return GRAPH_SUCCESS;
}

static graphStatus InferDataTypeNpuqQuantize(gert::InferDataTypeContext *context)
{
    context->SetOutputDataType(0, ge::DT_UINT8);
    context->SetOutputDataType(1, ge::DT_UINT8);
    return GRAPH_SUCCESS;
}
}  // namespace ge

namespace ops {
class NpuqQuantize : public OpDef {
public:
    explicit NpuqQuantize(const char *name) : OpDef(name)
    {
        this->Input("X")
            .ParamType(REQUIRED)
            .DataType({ge::DT_FLOAT, ge::DT_FLOAT16, ge::DT_BF16})
            .Format({ge::FORMAT_ND, ge::FORMAT_ND, ge::FORMAT_ND});
        this->Output("codes")
            .ParamType(REQUIRED)
            .DataType({ge::DT_UINT8, ge::DT_UINT8, ge::DT_UINT8})
            .Format({ge::FORMAT_ND, ge::FORMAT_ND, ge::FORMAT_ND});
        this->Output("scales")
            .ParamType(REQUIRED)
            .DataType({ge::DT_UINT8, ge::DT_UINT8, ge::DT_UINT8})
            .Format({ge::FORMAT_ND, ge::FORMAT_ND, ge::FORMAT_ND});
        npuq_host::DeclareFormatAttrs(*this);  // format, rounding, scale_rule, saturate, variant, group

        this->SetInferShape(ge::InferShapeNpuqQuantize).SetInferDataType(ge::InferDataTypeNpuqQuantize);

        this->AICore().SetTiling(optiling::TilingNpuqQuantize);
        // ascend910b only: the kernels are not ported to ascend310p (custom_ops/README.md)
        this->AICore().AddConfig("ascend910b");
    }
};

OP_ADD(NpuqQuantize);
}  // namespace ops
