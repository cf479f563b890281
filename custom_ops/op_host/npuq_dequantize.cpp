/**
 * NpuqDequantize: the GE operator behind ONNX npuq::Dequantize (onnx_npuq.ops.defs.DEQUANTIZE).
 * Packed rows -> float32 (rows, length), exactly onnx_npuq.formats decode: codes and scale bytes
 * (uint8, 2-D), the optional float32 tensor scale (nvf4 / nvfp4). OpDef, InferShape /
 * InferDataType and the TilingFunc that fills npuq::DequantizeParams (kernels/include/npuq/params.h).
 *
 * The GE type is NpuqDequantize: CANN already has an operator named Dequantize (TensorFlow's),
 * and a custom operator of the same type would take its place.
 *
 * Modelled on: Ascend/samples (read in its copy tjulitianyi1997/AscendProjects) operator/AddCustomSample/FrameworkLaunch/AddCustom/op_host/add_custom.cpp
 * (TilingFunc / InferShape / OpDef / OP_ADD); optional input as in hicann/ops-nn
 * quant/quantize/op_host/quantize_def.cpp (ParamType(OPTIONAL)), GetOptionalInputShape as in
 * the hicann/ops-nn tilings.
 */
#include <cstdint>

#include "npuq_dequantize_tiling.h"
#include "register/op_def_registry.h"
#include "tiling/platform/platform_ascendc.h"

#include "npuq_common.h"
#include "npuq/params.h"

namespace optiling {
// Inputs and attributes: the order of this->Input / this->Attr below (= onnx_npuq.ops.defs.DEQUANTIZE).
constexpr size_t INPUT_CODES = 0;
constexpr size_t INPUT_SCALES = 1;
constexpr size_t INPUT_TENSOR_SCALE = 2;
constexpr size_t ATTR_FORMAT = 0;
constexpr size_t ATTR_BLOCK = 1;
constexpr size_t ATTR_LENGTH = 2;

static ge::graphStatus RefuseNpuqDequantize(const char *why)
{
    return npuq_host::Refuse("NpuqDequantize (ONNX npuq::Dequantize)", why);
}

static ge::graphStatus TilingNpuqDequantize(gert::TilingContext *context)
{
    const gert::StorageShape *codesShape = context->GetInputShape(INPUT_CODES);
    const gert::StorageShape *scalesShape = context->GetInputShape(INPUT_SCALES);
    const gert::RuntimeAttrs *attrs = context->GetAttrs();
    if (codesShape == nullptr || scalesShape == nullptr || attrs == nullptr) {
        return RefuseNpuqDequantize("no input shapes or attributes");
    }
    const gert::Shape &codes = codesShape->GetStorageShape();
    const gert::Shape &scales = scalesShape->GetStorageShape();
    if (codes.GetDimNum() != 2 || scales.GetDimNum() != 2 || codes.GetDim(0) != scales.GetDim(0)) {
        return RefuseNpuqDequantize("codes and scales must be 2-D with the same number of rows");
    }
    const int64_t rows = codes.GetDim(0);
    const int64_t codeBytes = codes.GetDim(1);
    const int64_t scaleBytes = scales.GetDim(1);
    if (rows < 0 || codeBytes < 0 || scaleBytes < 0 || rows > UINT32_MAX || codeBytes > UINT32_MAX ||
        scaleBytes > UINT32_MAX) {
        return RefuseNpuqDequantize("unknown or too large dimension");
    }

    const npuq_host::FormatInfo *format = npuq_host::FindFormat(attrs->GetStr(ATTR_FORMAT));
    const int64_t *block = attrs->GetInt(ATTR_BLOCK);
    const int64_t *length = attrs->GetInt(ATTR_LENGTH);
    if (format == nullptr) {
        return RefuseNpuqDequantize("unknown format (expected one of onnx_npuq.formats.names())");
    }
    if (block == nullptr || length == nullptr || *block < 0 || *length < 0 || *block > UINT32_MAX ||
        *length > UINT32_MAX) {
        return RefuseNpuqDequantize("block and length must be >= 0");
    }
    // HiF8: block 1 without scale bytes, or scaled (scale "row" / "tensor": formats.encode gives
    // the whole row as the block, length or 0) with one float32 scale per row.
    const bool scaledHif8 = format->id == npuq::FormatId::HIF8 && scaleBytes != 0 && (*block == 0 || *block == *length);
    if (format->block != 0 && static_cast<uint64_t>(*block) != format->block && !scaledHif8) {
        return RefuseNpuqDequantize("block differs from the format's block size");
    }
    // The packed widths must be those formats.encode writes (onnx_npuq.ops.defs.packed_widths).
    uint64_t wantCodes = 0;
    uint64_t wantScales = 0;
    const uint64_t elemsPerBlock = *block != 0 ? static_cast<uint64_t>(*block) : static_cast<uint64_t>(*length);
    npuq_host::PackedWidths(*format, elemsPerBlock, static_cast<uint64_t>(*length), wantCodes, wantScales);
    if (scaledHif8 && *length != 0) {
        wantScales = 4;
    }
    if (wantCodes != static_cast<uint64_t>(codeBytes) || wantScales != static_cast<uint64_t>(scaleBytes)) {
        return RefuseNpuqDequantize("codes / scales widths do not match format, block and length");
    }
    const gert::StorageShape *tensorScale = context->GetOptionalInputShape(INPUT_TENSOR_SCALE);
    const uint32_t hasTensorScale = tensorScale != nullptr ? 1U : 0U;

    npuq::DequantizeParams p;
    p.rows = static_cast<uint32_t>(rows);
    p.length = static_cast<uint32_t>(*length);
    p.block = static_cast<uint32_t>(*block);
    p.codeBytes = static_cast<uint32_t>(codeBytes);
    p.scaleBytes = static_cast<uint32_t>(scaleBytes);
    p.hasTensorScale = hasTensorScale;
    p.rowsPerCore = 0;
    p.tileRows = 0;
    p.format = static_cast<uint32_t>(format->id);

    // Rows over the vector cores; tile rows and user workspace from the kernel's own UB plan
    // (npuq/workspace.h): a row longer than a tile is cut into pieces by the kernel.
    auto ascendcPlatform = platform_ascendc::PlatformAscendC(context->GetPlatformInfo());
    const uint32_t coreNum = ascendcPlatform.GetCoreNumAiv();
    uint32_t blockDim = 1;
    uint64_t userWorkspace = 0;
    const char *bad = npuq_host::TileDequantize(p, coreNum, blockDim, userWorkspace);
    if (bad != nullptr) {
        return RefuseNpuqDequantize(bad);
    }

    NpuqDequantizeTilingData tiling;
    tiling.set_rows(p.rows);
    tiling.set_length(p.length);
    tiling.set_block(p.block);
    tiling.set_codeBytes(p.codeBytes);
    tiling.set_scaleBytes(p.scaleBytes);
    tiling.set_hasTensorScale(p.hasTensorScale);
    tiling.set_rowsPerCore(p.rowsPerCore);
    tiling.set_tileRows(p.tileRows);
    tiling.set_format(p.format);

    return npuq_host::SaveTiling(context, ascendcPlatform, tiling, blockDim, userWorkspace);
}
}  // namespace optiling

namespace ge {
static graphStatus InferShapeNpuqDequantize(gert::InferShapeContext *context)
{
    const gert::Shape *codesShape = context->GetInputShape(0);
    gert::Shape *yShape = context->GetOutputShape(0);
    const gert::RuntimeAttrs *attrs = context->GetAttrs();
    if (codesShape == nullptr || yShape == nullptr || attrs == nullptr || codesShape->GetDimNum() != 2) {
        return GRAPH_FAILED;
    }
    const int64_t *length = attrs->GetInt(2);  // "length"
    if (length == nullptr || *length < 0) {
        return GRAPH_FAILED;
    }
    yShape->SetDimNum(2);
    yShape->SetDim(0, codesShape->GetDim(0));
    yShape->SetDim(1, *length);
    return GRAPH_SUCCESS;
}

static graphStatus InferDataTypeNpuqDequantize(gert::InferDataTypeContext *context)
{
    context->SetOutputDataType(0, ge::DT_FLOAT);
    return GRAPH_SUCCESS;
}
}  // namespace ge

namespace ops {
class NpuqDequantize : public OpDef {
public:
    explicit NpuqDequantize(const char *name) : OpDef(name)
    {
        this->Input("codes").ParamType(REQUIRED).DataType({ge::DT_UINT8}).Format({ge::FORMAT_ND});
        this->Input("scales").ParamType(REQUIRED).DataType({ge::DT_UINT8}).Format({ge::FORMAT_ND});
        this->Input("tensor_scale").ParamType(OPTIONAL).DataType({ge::DT_FLOAT}).Format({ge::FORMAT_ND});
        this->Output("Y").ParamType(REQUIRED).DataType({ge::DT_FLOAT}).Format({ge::FORMAT_ND});
        this->Attr("format").AttrType(REQUIRED).String();
        this->Attr("block").AttrType(REQUIRED).Int();
        this->Attr("length").AttrType(REQUIRED).Int();

        this->SetInferShape(ge::InferShapeNpuqDequantize).SetInferDataType(ge::InferDataTypeNpuqDequantize);

        this->AICore().SetTiling(optiling::TilingNpuqDequantize);
        // ascend910b only: the kernels are not ported to ascend310p (custom_ops/README.md)
        this->AICore().AddConfig("ascend910b");
    }
};

OP_ADD(NpuqDequantize);
}  // namespace ops
