// The contract between the operator package (custom_ops/) and the kernels (kernels/).
//
// custom_ops/op_host computes these values in its TilingFunc and stores them in its
// TILING_DATA_DEF (same field names); custom_ops/op_kernel copies them into these structs
// and calls the entry points below. The kernels are written against the AscendC API;
// kernels/host/ implements the subset they use on the CPU, so the same source is tested here.
#pragma once

#include <cstdint>

namespace npuq {

// Format ids: the order of onnx_npuq.formats.names().
enum class FormatId : uint32_t {
    HIF8 = 0, HIF4 = 1, HIFX4_V12 = 2, MXFP4 = 3, MXFP8E4M3 = 4, MXFP8E5M2 = 5,
    NVF4 = 6, NVFP4 = 7, INT8SYM = 8, INT4SYM = 9, FP8E4M3 = 10, FP8E5M2 = 11,
};

// npuq::QuantDequant: y = fake_quant(x) along the last axis; x and y have one dtype
// (float, float16 or bfloat16), computed in float32 as onnx_npuq.formats does.
struct QuantDequantParams {
    uint32_t rows;         // product of all dimensions but the last
    uint32_t cols;         // the last dimension (the quantization axis)
    uint32_t rowsPerCore;  // rows of each AI core (the last used core may get fewer)
    uint32_t tileRows;     // rows per double-buffered UB tile
    uint32_t format;       // FormatId
    uint32_t rounding;     // MX: 0 "away", 1 "even"
    uint32_t scaleRule;    // MX: 0 "floor", 1 "rceil"
    uint32_t saturate;     // hif8: 1 saturates to +-32768 instead of Inf
    uint32_t variant;      // hif4: 0 "quant_cy", 1 "amct"
    uint32_t group;        // int8sym / int4sym / fp8*: 0 a block per row, else elements per block
    uint32_t scale;        // hif8: 0 "none", 1 "row", 2 "tensor" (float32 scale amax / 32768)
};

// QuantDequantParams.scale values.
enum class HiF8Scale : uint32_t { NONE = 0, ROW = 1, TENSOR = 2 };

// npuq::Dequantize: Packed rows (codes, scale bytes[, float32 tensor scale]) -> float32
// (rows, length), exactly formats.decode. HiF8 has scale bytes only when scaled: one float32
// per row (scaleBytes 4, block the whole row), none otherwise (scaleBytes 0, block 1).
struct DequantizeParams {
    uint32_t rows;
    uint32_t length;         // elements per row after cropping the padding
    uint32_t block;          // elements per block (0: the whole row, for the per-row formats)
    uint32_t codeBytes;      // codes bytes per row
    uint32_t scaleBytes;     // scale bytes per row
    uint32_t hasTensorScale; // nvfp4
    uint32_t rowsPerCore;
    uint32_t tileRows;
    uint32_t format;         // FormatId
};

}  // namespace npuq
