/**
 * NpuqQuantize: the GE operator behind ONNX npuq::Quantize (onnx_npuq.ops.defs.QUANTIZE).
 * x (float / float16 / bfloat16) -> Packed codes and scale bytes,
 * uint8, 2-D (rows = all dimensions but the last), the inputs of npuq::Dequantize.
 *
 * STATUS: OpDef, InferShape / InferDataType and tiling are complete; there is NO KERNEL yet
 * (kernels/ has no npuq::Quantize entry). The TilingFunc therefore computes everything and then
 * refuses (QUANTIZE_KERNEL_IMPLEMENTED below), so ATC fails loudly on a model with
 * npuq::Quantize instead of running the empty op_kernel stub. The tiling fields are those of
 * npuq::QuantDequantParams, which a future npuq::Quantize entry should take.
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

namespace optiling {
// Flip to true once kernels/ provides npuq::Quantize and op_kernel/npuq_quantize.cpp calls it.
constexpr bool QUANTIZE_KERNEL_IMPLEMENTED = false;

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

    switch (xDesc->GetDataType()) {
        case ge::DT_FLOAT:
        case ge::DT_FLOAT16:
        case ge::DT_BF16:
            break;
        default:
            return RefuseNpuqQuantize("x must be float, float16 or bfloat16");
    }

    npuq_host::FormatOptions o;
    bad = npuq_host::ParseFormatAttrs(*attrs, o);
    if (bad != nullptr) {
        return RefuseNpuqQuantize(bad);
    }
    if (o.format->id == npuq::FormatId::NVFP4) {
        return RefuseNpuqQuantize("nvfp4 is two-level (a per-tensor scale besides the block scales); "
                                  "Quantize has no tensor-scale output");
    }
    // Rows over the vector cores. There is no npuq::Quantize kernel, so no UB plan to ask:
    // tileRows 0 ("as many as fit"), for the future kernel to clamp to its own plan (as
    // QuantDequant's does; op_host should then report that plan's tile rows, as
    // npuq_quant_dequant.cpp does with npuq::QuantDequantTileRows).
    auto ascendcPlatform = platform_ascendc::PlatformAscendC(context->GetPlatformInfo());
    const uint32_t coreNum = ascendcPlatform.GetCoreNumAiv();
    npuq_host::RowSplit split;
    if (!npuq_host::SplitRows(rows, coreNum, split)) {
        return RefuseNpuqQuantize("no AI vector core");
    }

    NpuqQuantizeTilingData tiling;
    tiling.set_rows(static_cast<uint32_t>(rows));
    tiling.set_cols(static_cast<uint32_t>(cols));
    tiling.set_rowsPerCore(split.rowsPerCore);
    tiling.set_tileRows(0);
    tiling.set_format(static_cast<uint32_t>(o.format->id));
    tiling.set_rounding(o.rounding);
    tiling.set_scaleRule(o.scaleRule);
    tiling.set_saturate(o.saturate);
    tiling.set_variant(o.variant);
    tiling.set_group(o.group);
    tiling.set_scale(o.scale);

    if (!QUANTIZE_KERNEL_IMPLEMENTED) {
        return RefuseNpuqQuantize("no AscendC kernel for npuq::Quantize yet (custom_ops/README.md); "
                                  "quantize ahead of time (onnx_npuq compress pass) or use QuantDequant");
    }

    context->SetBlockDim(split.blockDim);
    tiling.SaveToBuffer(context->GetRawTilingData()->GetData(), context->GetRawTilingData()->GetCapacity());
    context->GetRawTilingData()->SetDataSize(tiling.GetDataSize());
    size_t *currentWorkspace = context->GetWorkspaceSizes(1);
    currentWorkspace[0] = static_cast<size_t>(ascendcPlatform.GetLibApiWorkSpaceSize());
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
