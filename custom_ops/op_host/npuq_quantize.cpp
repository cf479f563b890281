/**
 * NpuqQuantize: the GE operator behind ONNX npuq::Quantize (onnx_npuq.ops.defs.QUANTIZE).
 * x (float / float16 / bfloat16) -> Packed codes and scale bytes,
 * uint8, 2-D (rows = all dimensions but the last), the inputs of npuq::Dequantize.
 *
 * The kernel is npuq::Quantize (kernels/include/npuq/quantize.h, bit-exact to formats.encode on
 * the CPU host build): the tiling is QuantDequant's fields, with the tile rows and workspace of
 * the kernel's own plan (npuq_host::TileQuantize). Refused: nvfp4 (two-level: no tensor-scale
 * output, as onnx_npuq.ops.defs refuses it).
 *
 * The GE type is NpuqQuantize: CANN has its own Quantize (hicann/ops-nn quant/quantize), which
 * a custom operator of the same type would replace.
 *
 * Modelled on: Ascend/samples (read in its copy tjulitianyi1997/AscendProjects) operator/AddCustomSample/FrameworkLaunch/AddCustom/op_host/add_custom.cpp
 * (TilingFunc / InferShape / OpDef / OP_ADD).
 */
#include <cstdint>
#include <cstdio>

#include "npuq_quantize_tiling.h"
#include "register/op_def_registry.h"
#include "tiling/platform/platform_ascendc.h"

#include "npuq_common.h"
#include "npuq/params.h"
#include "npuq/workspace.h"

namespace optiling {
static ge::graphStatus RefuseNpuqQuantize(const char *why)
{
    std::fprintf(stderr, "[npuq] NpuqQuantize (ONNX npuq::Quantize) tiling: %s\n", why);
    return ge::GRAPH_FAILED;
}

static ge::graphStatus TilingNpuqQuantize(gert::TilingContext *context)
{
    const gert::StorageShape *xShape = context->GetInputShape(0);
    const auto xDesc = context->GetInputDesc(0);
    const gert::RuntimeAttrs *attrs = context->GetAttrs();
    if (xShape == nullptr || xDesc == nullptr || attrs == nullptr) {
        return RefuseNpuqQuantize("no input shape, dtype or attributes");
    }
    uint64_t rows = 0;
    uint64_t cols = 0;
    const char *bad = npuq_host::RowsAndCols(xShape->GetStorageShape(), rows, cols);
    if (bad != nullptr) {
        return RefuseNpuqQuantize(bad);
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
            return RefuseNpuqQuantize("x must be float, float16 or bfloat16");
    }

    npuq_host::FormatOptions o;
    bad = npuq_host::ParseFormatAttrs(*attrs, o);
    if (bad != nullptr) {
        return RefuseNpuqQuantize(bad);
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

    // Rows over the vector cores; tile rows and user workspace from the kernel's own UB plan
    // (npuq/workspace.h): a row longer than a tile is cut into pieces by the kernel.
    auto ascendcPlatform = platform_ascendc::PlatformAscendC(context->GetPlatformInfo());
    const uint32_t coreNum = ascendcPlatform.GetCoreNumAiv();
    uint32_t blockDim = 1;
    uint64_t userWorkspace = 0;
    bad = npuq_host::TileQuantize(p, typeSize, coreNum, blockDim, userWorkspace);
    if (bad != nullptr) {
        return RefuseNpuqQuantize(bad);
    }

    NpuqQuantizeTilingData tiling;
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
    // HiF8 scale="tensor"'s tensor amax meets every core in SyncAll: all cores must start
    // together (batch mode), as in npuq_quant_dequant.cpp
    if (npuq::NeedsTensorAmax(p) && context->SetScheduleMode(1) != ge::GRAPH_SUCCESS) {
        return RefuseNpuqQuantize("SetScheduleMode(1): batch mode, which SyncAll needs, was refused");
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
