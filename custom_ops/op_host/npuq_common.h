/**
 * npuq custom operators: what the op_host sources share.
 *
 *   - the format table: name -> npuq::FormatId (kernels/include/npuq/params.h), the order of
 *     onnx_npuq.formats.names(), with block / element bits / scale bytes / accepted options as
 *     onnx_npuq.formats defines them (tests/test_custom_ops.py checks every column);
 *   - the option value tables (QuantDequantParams.rounding / scaleRule / variant / scale);
 *   - packed row widths (onnx_npuq.ops.defs.packed_widths);
 *   - the row / core split, with the tile rows and workspace from the kernels' own UB plan;
 *   - what QuantDequant and Quantize share: their attributes (DeclareFormatAttrs, the attribute
 *     indexes, ParseFormatAttrs), the rows / cols of x (RowsAndCols) and their TilingFunc
 *     (TilingFormatOp, with the op's name and its Tile* as arguments);
 *   - what every TilingFunc does with CANN's context: Refuse, SaveTiling.
 *
 * All of it is plain C++ but the last part (DeclareFormatAttrs, Refuse, SaveTiling,
 * TilingFormatOp), which uses CANN's types and is compiled only where register/op_def_registry.h
 * is on the include path (opbuild's op_host build; the op_host harness with tests/stubs);
 * ParseFormatAttrs and RowsAndCols are templates over gert::RuntimeAttrs / gert::Shape, so the
 * common harness runs them on stand-ins.
 *
 * The kernels' headers are reached as "npuq/params.h" and "npuq/workspace.h" (plain C++, no
 * AscendC types; workspace.h brings plan.h): build.sh copies kernels/include/npuq next to the
 * op_host sources of the generated project, with a link npuq/npuq -> . for the headers' own
 * "npuq/..." includes (see README.md, "How the build is put together"); the tests compile this
 * file with -I kernels/include.
 */
#ifndef NPUQ_OP_HOST_COMMON_H
#define NPUQ_OP_HOST_COMMON_H

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "npuq/params.h"
#include "npuq/workspace.h"

namespace npuq_host {

// Options a format accepts (the keyword arguments of onnx_npuq.formats.get_format).
constexpr uint32_t OPT_ROUNDING = 1U;
constexpr uint32_t OPT_SCALE_RULE = 2U;
constexpr uint32_t OPT_SATURATE = 4U;
constexpr uint32_t OPT_VARIANT = 8U;
constexpr uint32_t OPT_GROUP = 16U;
constexpr uint32_t OPT_SCALE = 32U;

struct FormatInfo {
    const char *name;
    npuq::FormatId id;
    uint32_t block;       // elements per block; 0: one block per row, or `group` elements
    uint32_t elemBits;    // bits per code
    uint32_t scaleBytes;  // scale bytes per block
    uint32_t options;     // OPT_* bits
};

// name, id, block, elemBits, scaleBytes, options -- one row per onnx_npuq.formats.names() entry
static const FormatInfo FORMATS[] = {
    {"hif8", npuq::FormatId::HIF8, 1, 8, 0, OPT_SATURATE | OPT_SCALE},
    {"hif4", npuq::FormatId::HIF4, 64, 4, 4, OPT_VARIANT},
    {"hifx4_v12", npuq::FormatId::HIFX4_V12, 64, 4, 4, 0},
    {"mxfp4", npuq::FormatId::MXFP4, 32, 4, 1, OPT_ROUNDING | OPT_SCALE_RULE},
    {"mxfp8e4m3", npuq::FormatId::MXFP8E4M3, 32, 8, 1, OPT_ROUNDING | OPT_SCALE_RULE},
    {"mxfp8e5m2", npuq::FormatId::MXFP8E5M2, 32, 8, 1, OPT_ROUNDING | OPT_SCALE_RULE},
    {"nvf4", npuq::FormatId::NVF4, 16, 4, 1, 0},
    {"nvfp4", npuq::FormatId::NVFP4, 16, 4, 1, 0},
    {"int8sym", npuq::FormatId::INT8SYM, 0, 8, 4, OPT_GROUP},
    {"int4sym", npuq::FormatId::INT4SYM, 0, 4, 4, OPT_GROUP},
    {"fp8e4m3", npuq::FormatId::FP8E4M3, 0, 8, 4, OPT_GROUP},
    {"fp8e5m2", npuq::FormatId::FP8E5M2, 0, 8, 4, OPT_GROUP},
};

// onnx_npuq.formats.ALIASES
struct FormatAlias {
    const char *alias;
    const char *name;
};
static const FormatAlias FORMAT_ALIASES[] = {
    {"hifx4", "hif4"},
    {"int8", "int8sym"},
    {"int4", "int4sym"},
};

// Attribute string -> QuantDequantParams value (the index). Same order as onnx_npuq.formats:
// mx.ROUNDINGS, mx.SCALE_RULES, hif4.VARIANTS, hif8.SCALES ("none" for None).
static const char *const ROUNDINGS[] = {"away", "even"};
static const char *const SCALE_RULES[] = {"floor", "rceil"};
static const char *const VARIANTS[] = {"quant_cy", "amct"};
static const char *const SCALES[] = {"none", "row", "tensor"};

// The ONNX attribute defaults (onnx_npuq.ops.defs.OPTION_DEFAULTS): "option not given".
static const char *const DEFAULT_ROUNDING = "away";
static const char *const DEFAULT_SCALE_RULE = "floor";
static const char *const DEFAULT_VARIANT = "quant_cy";
static const char *const DEFAULT_SCALE = "none";

template <size_t N>
inline bool IndexOf(const char *const (&table)[N], const char *value, uint32_t &index)
{
    if (value == nullptr) {
        return false;
    }
    for (size_t i = 0; i < N; ++i) {
        if (std::strcmp(table[i], value) == 0) {
            index = static_cast<uint32_t>(i);
            return true;
        }
    }
    return false;
}

inline const FormatInfo *FindFormat(const char *name)
{
    if (name == nullptr) {
        return nullptr;
    }
    for (const FormatAlias &a : FORMAT_ALIASES) {
        if (std::strcmp(a.alias, name) == 0) {
            name = a.name;
            break;
        }
    }
    for (const FormatInfo &f : FORMATS) {
        if (std::strcmp(f.name, name) == 0) {
            return &f;
        }
    }
    return nullptr;
}

// Attribute indexes of QuantDequant / Quantize: the order DeclareFormatAttrs declares them in
// (= onnx_npuq.ops.defs.QUANT_DEQUANT.attrs = QUANTIZE.attrs), as gert::RuntimeAttrs numbers them.
constexpr size_t ATTR_FORMAT = 0;
constexpr size_t ATTR_ROUNDING = 1;
constexpr size_t ATTR_SCALE_RULE = 2;
constexpr size_t ATTR_SATURATE = 3;
constexpr size_t ATTR_VARIANT = 4;
constexpr size_t ATTR_GROUP = 5;
constexpr size_t ATTR_SCALE = 6;

// The format attributes of QuantDequant / Quantize as QuantDequantParams values.
struct FormatOptions {
    const FormatInfo *format = nullptr;
    uint32_t rounding = 0;
    uint32_t scaleRule = 0;
    uint32_t saturate = 0;
    uint32_t variant = 0;
    uint32_t group = 0;
    uint32_t scale = 0;
};

// Checks the attributes as onnx_npuq.formats.get_format does (an option a format does not take
// must stay at its default). Returns nullptr, or what is wrong.
inline const char *ParseFormatOptions(const char *format, const char *rounding, const char *scaleRule,
                                      const int64_t *saturate, const char *variant, const int64_t *group,
                                      const char *scale, FormatOptions &out)
{
    out.format = FindFormat(format);
    if (out.format == nullptr) {
        return "unknown format (expected one of onnx_npuq.formats.names())";
    }
    const uint32_t accepts = out.format->options;
    if (!IndexOf(ROUNDINGS, rounding, out.rounding)) {
        return "rounding must be \"away\" or \"even\"";
    }
    if (!IndexOf(SCALE_RULES, scaleRule, out.scaleRule)) {
        return "scale_rule must be \"floor\" or \"rceil\"";
    }
    if (!IndexOf(VARIANTS, variant, out.variant)) {
        return "variant must be \"quant_cy\" or \"amct\"";
    }
    if (saturate == nullptr || (*saturate != 0 && *saturate != 1)) {
        return "saturate must be 0 or 1";
    }
    out.saturate = static_cast<uint32_t>(*saturate);
    if (group == nullptr || *group < 0 || *group > INT32_MAX) {
        return "group must be >= 0";
    }
    out.group = static_cast<uint32_t>(*group);
    if (!IndexOf(SCALES, scale, out.scale)) {
        return "scale must be \"none\", \"row\" or \"tensor\"";
    }
    if ((out.rounding != 0 && (accepts & OPT_ROUNDING) == 0) ||
        (out.scaleRule != 0 && (accepts & OPT_SCALE_RULE) == 0) ||
        (out.saturate != 0 && (accepts & OPT_SATURATE) == 0) ||
        (out.variant != 0 && (accepts & OPT_VARIANT) == 0) ||
        (out.group != 0 && (accepts & OPT_GROUP) == 0) ||
        (out.scale != 0 && (accepts & OPT_SCALE) == 0)) {
        return "an option is set that this format does not take";
    }
    if (out.saturate != 0 && out.scale != 0) {
        return "hif8: saturate does not combine with scale (a scaled value is clamped to +-32768 already)";
    }
    return nullptr;
}

// ParseFormatOptions on the attributes of a QuantDequant / Quantize node (gert::RuntimeAttrs:
// GetStr / GetInt by index, nullptr for an attribute it does not have).
template <typename RuntimeAttrs>
inline const char *ParseFormatAttrs(const RuntimeAttrs &attrs, FormatOptions &out)
{
    return ParseFormatOptions(attrs.GetStr(ATTR_FORMAT), attrs.GetStr(ATTR_ROUNDING), attrs.GetStr(ATTR_SCALE_RULE),
                              attrs.GetInt(ATTR_SATURATE), attrs.GetStr(ATTR_VARIANT), attrs.GetInt(ATTR_GROUP),
                              attrs.GetStr(ATTR_SCALE), out);
}

// x of QuantDequant / Quantize (gert::Shape: GetDimNum / GetDim) as rows (all dimensions but the
// last) of cols (the last, the quantization axis), both fitting uint32. Returns nullptr, or what
// is wrong.
template <typename Shape>
inline const char *RowsAndCols(const Shape &shape, uint64_t &rows, uint64_t &cols)
{
    const size_t rank = shape.GetDimNum();
    if (rank == 0) {
        return "x must have at least one dimension (the quantization axis is the last)";
    }
    rows = 1;
    for (size_t i = 0; i + 1 < rank; ++i) {
        if (shape.GetDim(i) < 0) {
            return "unknown dimension at tiling time";
        }
        rows *= static_cast<uint64_t>(shape.GetDim(i));
    }
    if (shape.GetDim(rank - 1) < 0 || shape.GetDim(rank - 1) > UINT32_MAX || rows > UINT32_MAX) {
        return "x is too large for uint32 rows / cols";
    }
    cols = static_cast<uint64_t>(shape.GetDim(rank - 1));
    return nullptr;
}

// Elements per block of a row of `length` elements (onnx_npuq.ops.defs.packed_widths).
inline uint64_t BlockOf(const FormatInfo &f, uint64_t group, uint64_t length)
{
    if (f.block != 0) {
        return f.block;
    }
    return group != 0 ? group : length;
}

// Scaled HiF8 (scale "row" / "tensor"): one block per row with a float32 scale.
inline bool ScaledHif8(const FormatInfo &f, uint32_t scale)
{
    return f.id == npuq::FormatId::HIF8 && scale != 0;
}

// (codes bytes, scale bytes) of one packed row (onnx_npuq.ops.defs.packed_widths).
inline void PackedWidths(const FormatInfo &f, uint64_t block, uint64_t length, uint64_t &codeBytes,
                         uint64_t &scaleBytes)
{
    if (block == 0 || length == 0) {
        codeBytes = 0;
        scaleBytes = 0;
        return;
    }
    const uint64_t blocks = (length + block - 1) / block;
    codeBytes = blocks * ((block * f.elemBits + 7) / 8);
    scaleBytes = blocks * f.scaleBytes;
}

// ... of a configured format (the options of ParseFormatOptions): scaled HiF8 packs the row's
// codes and one float32.
inline void PackedWidths(const FormatOptions &o, uint64_t length, uint64_t &codeBytes, uint64_t &scaleBytes)
{
    PackedWidths(*o.format, ScaledHif8(*o.format, o.scale) ? length : BlockOf(*o.format, o.group, length), length,
                 codeBytes, scaleBytes);
    if (ScaledHif8(*o.format, o.scale) && length != 0) {
        scaleBytes = 4;
    }
}

// ---- the row / core split and the kernels' tile plan ------------------------------------
//
// The UB layout is the kernels' own (kernels/include/npuq/plan.h, through workspace.h): a tile
// holds whole rows when they fit, and a longer row is cut into runs of whole blocks, or a block
// longer than a tile into pieces, by the kernel itself. So no row is too long here; op_host only
// spreads rows over the vector cores and reports the kernels' tile rows and workspace.

struct RowSplit {
    uint32_t blockDim = 1;     // cores launched (never more than coreNum)
    uint32_t rowsPerCore = 0;  // rows of each core, the last core may get fewer
};

// Spreads `rows` over at most `coreNum` cores: rowsPerCore = ceil(rows / coreNum), blockDim =
// ceil(rows / rowsPerCore). No rows: one core, 0 rows each. False when there is no core or
// `rows` does not fit uint32.
inline bool SplitRows(uint64_t rows, uint64_t coreNum, RowSplit &s)
{
    if (coreNum == 0 || rows > UINT32_MAX) {
        return false;
    }
    if (rows == 0) {
        s.blockDim = 1;
        s.rowsPerCore = 0;
        return true;
    }
    const uint64_t rowsPerCore = (rows + coreNum - 1) / coreNum;
    s.rowsPerCore = static_cast<uint32_t>(rowsPerCore);
    s.blockDim = static_cast<uint32_t>((rows + rowsPerCore - 1) / rowsPerCore);
    return true;
}

// p.rows over at most coreNum cores (SplitRows): sets p.rowsPerCore and blockDim, and p.tileRows
// 0 (the plan's "as many as fit") for the caller to set where a row has elements. False when
// there is no core.
template <typename Params>
inline bool SpreadRows(Params &p, uint64_t coreNum, uint32_t &blockDim)
{
    RowSplit split;
    if (!SplitRows(p.rows, coreNum, split)) {
        return false;
    }
    p.rowsPerCore = split.rowsPerCore;
    p.tileRows = 0;
    blockDim = split.blockDim;
    return true;
}

// QuantDequant or Quantize (p.rows, p.cols, the format and its options set; dtypeBytes 4 for
// float, 2 for float16 / bfloat16) on at most coreNum vector cores (GetCoreNumAiv: a SyncAll
// needs blockDim <= the vector core count, which SplitRows keeps), with the op kernel's own plan:
// tileRows (the rows of a tile, 0 when rows are cut into pieces) and workspaceBytes (the user
// workspace, non-zero where the kernel reaches SyncAll). Sets p.rowsPerCore and p.tileRows,
// blockDim and the user workspace bytes. Rows of no column (cols 0) get tileRows 0 without a
// plan (it would divide by the empty row): the kernel returns before it plans anything. Returns
// nullptr, or what is wrong.
inline const char *TileRows(npuq::QuantDequantParams &p, uint32_t dtypeBytes, uint64_t coreNum,
                            uint32_t (*tileRows)(const npuq::QuantDequantParams &, uint32_t),
                            uint32_t (*workspaceBytes)(const npuq::QuantDequantParams &, uint32_t),
                            uint32_t &blockDim, uint64_t &userWorkspaceBytes)
{
    if (dtypeBytes != 2 && dtypeBytes != 4) {
        return "x must be float, float16 or bfloat16";
    }
    if (!SpreadRows(p, coreNum, blockDim)) {
        return "no AI vector core";
    }
    if (p.cols != 0) {
        p.tileRows = tileRows(p, dtypeBytes);
    }
    userWorkspaceBytes = workspaceBytes(p, blockDim);
    return nullptr;
}

// QuantDequant: TileRows with the QuantDequant kernel's plan (NVFP4 and HiF8 scale="tensor": one
// 32-byte slot per launched core for the tensor amax).
inline const char *TileQuantDequant(npuq::QuantDequantParams &p, uint32_t dtypeBytes, uint64_t coreNum,
                                    uint32_t &blockDim, uint64_t &userWorkspaceBytes)
{
    return TileRows(p, dtypeBytes, coreNum, npuq::QuantDequantTileRows, npuq::QuantDequantWorkspaceBytes, blockDim,
                    userWorkspaceBytes);
}

// Quantize: TileRows with the Quantize kernel's plan (HiF8 scale="tensor": two 32-byte slots per
// launched core around SyncAll). Refuses what npuq::Quantize has no output for (NVFP4's tensor
// scale).
inline const char *TileQuantize(npuq::QuantDequantParams &p, uint32_t dtypeBytes, uint64_t coreNum,
                                uint32_t &blockDim, uint64_t &userWorkspaceBytes)
{
    if (p.format == static_cast<uint32_t>(npuq::FormatId::NVFP4)) {
        return "nvfp4 is two-level (a per-tensor scale besides the block scales); Quantize has no tensor-scale output";
    }
    if (!npuq::QuantizeSupports(p)) {
        return "no Quantize kernel for this format";
    }
    return TileRows(p, dtypeBytes, coreNum, npuq::QuantizeTileRows, npuq::QuantizeWorkspaceBytes, blockDim,
                    userWorkspaceBytes);
}

// Dequantize (every field but rowsPerCore / tileRows set) on at most coreNum vector cores: sets
// p.rowsPerCore and p.tileRows (npuq::DequantizeTileRows: 1 when rows are cut into pieces),
// blockDim and the user workspace bytes (npuq::DequantizeWorkspaceBytes). Rows of no element
// (length 0) get tileRows 0 without a plan: the kernel returns at once. Returns nullptr, or what
// is wrong.
inline const char *TileDequantize(npuq::DequantizeParams &p, uint64_t coreNum, uint32_t &blockDim,
                                  uint64_t &userWorkspaceBytes)
{
    if (!SpreadRows(p, coreNum, blockDim)) {
        return "no AI vector core";
    }
    if (p.length != 0) {
        p.tileRows = npuq::DequantizeTileRows(p);
    }
    userWorkspaceBytes = npuq::DequantizeWorkspaceBytes(p, blockDim);
    return nullptr;
}

}  // namespace npuq_host

// ---- the CANN side: OpDef attributes and TilingFuncs ----------------------------------
//
// Only where CANN's headers are on the include path: opbuild compiles op_host with them (and the
// op_host harness with tests/stubs); the common harness compiles the plain C++ above without them.
#if defined(__has_include)
#if __has_include("register/op_def_registry.h")
#include <cstdio>

#include "register/op_def_registry.h"
#include "tiling/platform/platform_ascendc.h"

namespace npuq_host {
// The attributes of QuantDequant / Quantize, in the order of ATTR_FORMAT .. ATTR_SCALE, with the
// ONNX defaults (onnx_npuq.ops.defs.OPTION_DEFAULTS; DEFAULT_ROUNDING etc. above): declared on the
// op's OpDef from its constructor, npuq_host::DeclareFormatAttrs(*this).
inline void DeclareFormatAttrs(ops::OpDef &def)
{
    def.Attr("format").AttrType(ops::REQUIRED).String();
    def.Attr("rounding").AttrType(ops::OPTIONAL).String("away");
    def.Attr("scale_rule").AttrType(ops::OPTIONAL).String("floor");
    def.Attr("saturate").AttrType(ops::OPTIONAL).Int(0);
    def.Attr("variant").AttrType(ops::OPTIONAL).String("quant_cy");
    def.Attr("group").AttrType(ops::OPTIONAL).Int(0);
    def.Attr("scale").AttrType(ops::OPTIONAL).String("none");
}

// A TilingFunc's refusal: why, on stderr, after the op ("<GE type> (ONNX npuq::<op>)").
inline ge::graphStatus Refuse(const char *op, const char *why)
{
    std::fprintf(stderr, "[npuq] %s tiling: %s\n", op, why);
    return ge::GRAPH_FAILED;
}

// What every TilingFunc ends with: blockDim, the tiling data, and workspace 0 = the AscendC
// library's + the kernel's user workspace (platform_ascendc::PlatformAscendC as the hicann/ops-nn
// tilings use it: GetCoreNumAiv, GetLibApiWorkSpaceSize).
template <typename TilingData>
inline ge::graphStatus SaveTiling(gert::TilingContext *context, platform_ascendc::PlatformAscendC &platform,
                                  TilingData &tiling, uint32_t blockDim, uint64_t userWorkspace)
{
    context->SetBlockDim(blockDim);
    tiling.SaveToBuffer(context->GetRawTilingData()->GetData(), context->GetRawTilingData()->GetCapacity());
    context->GetRawTilingData()->SetDataSize(tiling.GetDataSize());
    size_t *currentWorkspace = context->GetWorkspaceSizes(1);
    currentWorkspace[0] = static_cast<size_t>(platform.GetLibApiWorkSpaceSize()) + static_cast<size_t>(userWorkspace);
    return ge::GRAPH_SUCCESS;
}

// The TilingFunc of QuantDequant and Quantize (x and the format attributes; `op` as Refuse names
// it): x's rows / cols and dtype, the attributes, then `tile` (TileQuantDequant / TileQuantize:
// rows over the vector cores, tile rows and user workspace from the kernel's own UB plan) into
// TilingData, whose fields are npuq::QuantDequantParams'.
template <typename TilingData>
inline ge::graphStatus TilingFormatOp(gert::TilingContext *context, const char *op,
                                      const char *(*tile)(npuq::QuantDequantParams &, uint32_t, uint64_t, uint32_t &,
                                                          uint64_t &))
{
    const gert::StorageShape *xShape = context->GetInputShape(0);
    const auto xDesc = context->GetInputDesc(0);
    const gert::RuntimeAttrs *attrs = context->GetAttrs();
    if (xShape == nullptr || xDesc == nullptr || attrs == nullptr) {
        return Refuse(op, "no input shape, dtype or attributes");
    }
    uint64_t rows = 0;
    uint64_t cols = 0;
    const char *bad = RowsAndCols(xShape->GetStorageShape(), rows, cols);
    if (bad != nullptr) {
        return Refuse(op, bad);
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
            return Refuse(op, "x must be float, float16 or bfloat16");
    }

    FormatOptions o;
    bad = ParseFormatAttrs(*attrs, o);
    if (bad != nullptr) {
        return Refuse(op, bad);
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

    auto ascendcPlatform = platform_ascendc::PlatformAscendC(context->GetPlatformInfo());
    const uint32_t coreNum = ascendcPlatform.GetCoreNumAiv();
    uint32_t blockDim = 1;
    uint64_t userWorkspace = 0;
    bad = tile(p, typeSize, coreNum, blockDim, userWorkspace);
    if (bad != nullptr) {
        return Refuse(op, bad);
    }

    TilingData tiling;
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

    // NVFP4's and HiF8 scale="tensor"'s tensor amax meets every core in SyncAll: all cores
    // must start together (batch mode), or the barrier may wait on a core not yet launched
    // (CANN's SyncAll doc; ops-nn kernels with SyncAll set it the same way)
    if (npuq::NeedsTensorAmax(p) && context->SetScheduleMode(1) != ge::GRAPH_SUCCESS) {
        return Refuse(op, "SetScheduleMode(1): batch mode, which SyncAll needs, was refused");
    }
    return SaveTiling(context, ascendcPlatform, tiling, blockDim, userWorkspace);
}
}  // namespace npuq_host
#endif
#endif

#endif  // NPUQ_OP_HOST_COMMON_H
