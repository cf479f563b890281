/**
 * NpuqQuantDequant: the GE operator behind ONNX npuq::QuantDequant (onnx_npuq.ops.defs.QUANT_DEQUANT).
 * y = fake_quant(x, format) along the last axis; x and y share one dtype (float / float16 /
 * bfloat16). OpDef, InferShape / InferDataType and the TilingFunc that
 * fills npuq::QuantDequantParams (kernels/include/npuq/params.h).
 *
 * The GE type is NpuqQuantDequant, not QuantDequant: custom operators take precedence over
 * CANN's, so a custom type must not reuse a built-in name (CANN has Quantize / Dequantize).
 *
 * Modelled on: Ascend/samples (read in its copy tjulitianyi1997/AscendProjects) operator/AddCustomSample/FrameworkLaunch/AddCustom/op_host/add_custom.cpp
 * (TilingFunc / InferShape / OpDef / OP_ADD);
 * platform_ascendc::PlatformAscendC as the hicann/ops-nn tilings use it (GetCoreNumAiv,
 * GetLibApiWorkSpaceSize). The UB tiling is the kernels' (kernels/include/npuq/workspace.h).
 */
#include <cstdint>
#include <cstdio>

#include "npuq_quant_dequant_tiling.h"
#include "register/op_def_registry.h"
#include "tiling/platform/platform_ascendc.h"

#include "npuq_common.h"
#include "npuq/params.h"
#include "npuq/workspace.h"

namespace optiling {
static ge::graphStatus RefuseNpuqQuantDequant(const char *why)
{
    std::fprintf(stderr, "[npuq] NpuqQuantDequant (ONNX npuq::QuantDequant) tiling: %s\n", why);
    return ge::GRAPH_FAILED;
}

static ge::graphStatus TilingNpuqQuantDequant(gert::TilingContext *context)
{
    const gert::StorageShape *xShape = context->GetInputShape(0);
    const auto xDesc = context->GetInputDesc(0);
    const gert::RuntimeAttrs *attrs = context->GetAttrs();
    if (xShape == nullptr || xDesc == nullptr || attrs == nullptr) {
        return RefuseNpuqQuantDequant("no input shape, dtype or attributes");
    }
    uint64_t rows = 0;
    uint64_t cols = 0;
    const char *bad = npuq_host::RowsAndCols(xShape->GetStorageShape(), rows, cols);
    if (bad != nullptr) {
        return RefuseNpuqQuantDequant(bad);
    }

    uint32_t typeSize = 0;
    switch (xDesc->GetDataType()) {
        case ge::DT_FLOAT:
            typeSize = 4;
            break;
        case ge::DT_FLOAT16:
        case ge::DT_BF16:
            typeSize = 2;
            break;
        default:
            return RefuseNpuqQuantDequant("x must be float, float16 or bfloat16");
    }

    npuq_host::FormatOptions o;
    bad = npuq_host::ParseFormatAttrs(*attrs, o);
    if (bad != nullptr) {
        return RefuseNpuqQuantDequant(bad);
    }

    npuq::QuantDequantParams p;
    p.rows = static_cast<uint32_t>(rows);
    p.cols = static_cast<uint32_t>(cols);
    p.rowsPerCore = 0;
    p.tileRows = 0;
    p.format = static_cast<uint32_t>(o.format->id);
    p.rounding = o.rounding;
    p.scaleRule = o.scaleRule;
    p.saturate = o.saturate;
    p.variant = o.variant;
    p.group = o.group;
    p.scale = o.scale;

    // Rows over the vector cores; tile rows and user workspace from the kernels' own UB plan
    // (npuq/workspace.h): a row longer than a tile is cut into pieces by the kernel.
    auto ascendcPlatform = platform_ascendc::PlatformAscendC(context->GetPlatformInfo());
    const uint32_t coreNum = ascendcPlatform.GetCoreNumAiv();
    uint32_t blockDim = 1;
    uint64_t userWorkspace = 0;
    bad = npuq_host::TileQuantDequant(p, typeSize, coreNum, blockDim, userWorkspace);
    if (bad != nullptr) {
        return RefuseNpuqQuantDequant(bad);
    }

    NpuqQuantDequantTilingData tiling;
    tiling.set_rows(p.rows);
    tiling.set_cols(p.cols);
    tiling.set_rowsPerCore(p.rowsPerCore);
    tiling.set_tileRows(p.tileRows);
    tiling.set_format(p.format);
    tiling.set_rounding(p.rounding);
    tiling.set_scaleRule(p.scaleRule);
    tiling.set_saturate(p.saturate);
    tiling.set_variant(p.variant);
    tiling.set_group(p.group);
    tiling.set_scale(p.scale);

    context->SetBlockDim(blockDim);
    // NVFP4's and HiF8 scale="tensor"'s tensor amax meets every core in SyncAll: all cores
    // must start together (batch mode), or the barrier may wait on a core not yet launched
    // (CANN's SyncAll doc; ops-nn kernels with SyncAll set it the same way)
    if (npuq::NeedsTensorAmax(p) && context->SetScheduleMode(1) != ge::GRAPH_SUCCESS) {
        return RefuseNpuqQuantDequant("SetScheduleMode(1): batch mode, which SyncAll needs, was refused");
    }
    tiling.SaveToBuffer(context->GetRawTilingData()->GetData(), context->GetRawTilingData()->GetCapacity());
    context->GetRawTilingData()->SetDataSize(tiling.GetDataSize());

    size_t *currentWorkspace = context->GetWorkspaceSizes(1);
    currentWorkspace[0] = static_cast<size_t>(ascendcPlatform.GetLibApiWorkSpaceSize()) +
                          static_cast<size_t>(userWorkspace);
    return ge::GRAPH_SUCCESS;
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
