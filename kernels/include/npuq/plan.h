// How the kernels lay a tensor out in UB: block strides, rows per tile, chunking of long rows.
//
// Plain C++ with no AscendC types, so op_host (TilingFunc) and the kernels compute the same
// numbers: the kernel clamps the tiling it is given to what this plan says fits in UB.
#pragma once

#include <cstdint>

#include "npuq/params.h"

#ifdef __aicore__
#define NPUQ_AICORE __aicore__
#else
#define NPUQ_AICORE
#endif

namespace npuq {

constexpr uint32_t kUbBlockBytes = 32;     // DMA and vector operands start on a 32-byte block
constexpr uint32_t kRepeatFloats = 64;     // float32 lanes of one 256-byte vector repeat
constexpr uint32_t kQdTileElems = 4096;    // float32 working elements of one QuantDequant tile
constexpr uint32_t kDqTileElems = 2048;    // float32 outputs of one Dequantize tile
constexpr uint32_t kDqCodeBytes = 8192;    // code bytes of one Dequantize tile
constexpr uint32_t kDqScaleBytes = 4096;   // scale bytes of one Dequantize tile
constexpr uint32_t kDqMultCap = 2048;      // per-block (per-4 for HiF4) multipliers of one tile
constexpr uint32_t kDqGroupCap = 512;      // HiF4 groups (of 64) of one Dequantize tile

NPUQ_AICORE constexpr uint32_t CeilDiv(uint32_t a, uint32_t b) { return (a + b - 1) / b; }
NPUQ_AICORE constexpr uint32_t RoundUp(uint32_t a, uint32_t b) { return (a + b - 1) / b * b; }
NPUQ_AICORE constexpr uint32_t RoundDown(uint32_t a, uint32_t b) { return a / b * b; }
NPUQ_AICORE constexpr uint32_t MinU(uint32_t a, uint32_t b) { return a < b ? a : b; }
NPUQ_AICORE constexpr uint32_t MaxU(uint32_t a, uint32_t b) { return a > b ? a : b; }

// A first pass over the whole tensor for its amax (workspace + SyncAll): NVFP4's tensor scale,
// HiF8 scale="tensor".
NPUQ_AICORE inline bool NeedsTensorAmax(const QuantDequantParams& p) {
    return p.format == static_cast<uint32_t>(FormatId::NVFP4) ||
           (p.format == static_cast<uint32_t>(FormatId::HIF8) && p.scale == static_cast<uint32_t>(HiF8Scale::TENSOR));
}

NPUQ_AICORE inline bool IsSymFormat(uint32_t format) {
    return format >= static_cast<uint32_t>(FormatId::INT8SYM) && format <= static_cast<uint32_t>(FormatId::FP8E5M2);
}

// Elements of one quantization block along a row. HiF8 has no block: the row is one "block"
// (unscaled, no reduction ever looks at it; scale="row": its amax gives the scale). Per-channel formats (group 0) use the whole row, and a
// group longer than the row is the row (formats.py pads it with zeros, which change nothing).
NPUQ_AICORE inline uint32_t QuantBlock(const QuantDequantParams& p) {
    switch (static_cast<FormatId>(p.format)) {
        case FormatId::HIF8: return p.cols;
        case FormatId::HIF4:
        case FormatId::HIFX4_V12: return 64;
        case FormatId::MXFP4:
        case FormatId::MXFP8E4M3:
        case FormatId::MXFP8E5M2: return 32;
        case FormatId::NVF4:
        case FormatId::NVFP4: return 16;
        default: return (p.group == 0 || p.group >= p.cols) ? p.cols : p.group;
    }
}

// QuantDequant tiles. A tile is `tileRows` whole rows when a row fits in kQdTileElems
// elements; otherwise one row is cut into tiles of `chunkBlocks` whole blocks; a single
// block longer than that (a long per-channel row, or HiF8) is cut into `kQdTileElems`-column
// pieces, and formats with a block scale first take that block's amax in a separate pass.
struct QdLayout {
    uint32_t block;        // elements of a block (the last of a row may be shorter)
    uint32_t blockStride;  // UB elements per block: a whole number of 32-byte blocks of the dtype
    uint32_t blocksPerRow;
    uint32_t rowStride;    // blocksPerRow * blockStride
    uint32_t tileRows;     // > 0: row mode
    uint32_t chunkBlocks;  // > 0 (tileRows == 0): chunk mode
    bool wideBlocks;       // tileRows == chunkBlocks == 0: a block spans several tiles
};

// Bits of one element code of Quantize's output (4-bit codes are packed two per byte).
NPUQ_AICORE inline uint32_t QuantCodeBits(uint32_t format) {
    switch (static_cast<FormatId>(format)) {
        case FormatId::HIF4:
        case FormatId::HIFX4_V12:
        case FormatId::MXFP4:
        case FormatId::NVF4:
        case FormatId::NVFP4:
        case FormatId::INT4SYM: return 4;
        default: return 8;
    }
}

// The formats npuq::Quantize encodes: every one npuq::Quantize takes (onnx_npuq.ops.defs: not
// NVFP4, whose per-tensor scale has no output).
NPUQ_AICORE inline bool QuantizeSupports(const QuantDequantParams& p) {
    switch (static_cast<FormatId>(p.format)) {
        case FormatId::HIF8:
        case FormatId::HIF4:
        case FormatId::HIFX4_V12:
        case FormatId::MXFP4:
        case FormatId::MXFP8E4M3:
        case FormatId::MXFP8E5M2:
        case FormatId::NVF4:
        case FormatId::INT8SYM:
        case FormatId::INT4SYM:
        case FormatId::FP8E4M3:
        case FormatId::FP8E5M2: return true;
        default: return false;
    }
}

// Scale bytes per block of Quantize's output (formats' scale_bytes; scaled HiF8: a float32
// per row, its block).
NPUQ_AICORE inline uint32_t QuantScaleBytes(const QuantDequantParams& p) {
    switch (static_cast<FormatId>(p.format)) {
        case FormatId::HIF8: return p.scale != 0 ? 4 : 0;
        case FormatId::MXFP4:
        case FormatId::MXFP8E4M3:
        case FormatId::MXFP8E5M2:
        case FormatId::NVF4:
        case FormatId::NVFP4: return 1;
        default: return 4;
    }
}

// codeBits 0: QuantDequant. Quantize (codeBits 4 or 8): a block that is not a whole number of
// 32-byte blocks of the dtype gets a stride of whole 32-byte blocks of codes as well, so that
// the codes of every block start on a 32-byte boundary in UB (one DMA block each).
NPUQ_AICORE inline QdLayout PlanBlocks(const QuantDequantParams& p, uint32_t dtypeBytes, uint32_t codeBits) {
    QdLayout g{};
    const uint32_t align = kUbBlockBytes / dtypeBytes;
    g.block = QuantBlock(p);
    // Quantize writes formats.Packed, whose block is the group even past the row (zero codes)
    if (codeBits != 0 && IsSymFormat(p.format) && p.group != 0) g.block = p.group;
    g.blockStride = RoundUp(g.block, align);
    if (codeBits != 0 && g.blockStride != g.block) g.blockStride = RoundUp(g.block, kUbBlockBytes * 8 / codeBits);
    g.blocksPerRow = CeilDiv(p.cols, g.block);
    g.rowStride = g.blocksPerRow * g.blockStride;
    if (g.rowStride <= kQdTileElems) {
        const uint32_t fit = kQdTileElems / g.rowStride;
        g.tileRows = p.tileRows == 0 ? fit : MinU(p.tileRows, fit);
    } else if (g.blockStride <= kQdTileElems) {
        g.chunkBlocks = kQdTileElems / g.blockStride;
    } else {
        g.wideBlocks = true;
    }
    return g;
}

NPUQ_AICORE inline QdLayout PlanQuantDequant(const QuantDequantParams& p, uint32_t dtypeBytes) {
    return PlanBlocks(p, dtypeBytes, 0);
}

NPUQ_AICORE inline QdLayout PlanQuantize(const QuantDequantParams& p, uint32_t dtypeBytes) {
    return PlanBlocks(p, dtypeBytes, QuantCodeBits(p.format));
}

// Dequantize tiles: `tileRows` rows of `width` output columns, or (chunked) one row cut into
// pieces of `width` columns. The codes and the scales of a tile row are each one DMA span.
struct DqLayout {
    uint32_t block;          // elements per block
    uint32_t codeBits;       // 4 or 8
    uint32_t blockCodes;     // code slots per block: 4-bit blocks are padded to an even count
    uint32_t scaleBytes;     // scale bytes per block (0: unscaled HiF8, no scale)
    bool subScales;          // HiF4 / HiF4 v12: a multiplier per 4 elements from 4 bytes per 64
    bool chunked;            // one row per tile, cut into pieces of `width` columns
    uint32_t width;          // output columns of a tile row
    uint32_t tileRows;
    uint32_t tileBlock;      // the block as a tile sees it (a piece of a longer block: the piece)
    uint32_t tileBlockCodes;
    uint32_t codeStride;     // UB bytes per tile row of codes
    uint32_t scaleStride;    // UB bytes per tile row of scales
    uint32_t multStride;     // multipliers per tile row (0: none)
    uint32_t outStride;      // UB floats per tile row of output
};

NPUQ_AICORE inline uint32_t DequantCodeBits(uint32_t format) {
    switch (static_cast<FormatId>(format)) {
        case FormatId::HIF4:
        case FormatId::HIFX4_V12:
        case FormatId::MXFP4:
        case FormatId::NVF4:
        case FormatId::NVFP4:
        case FormatId::INT4SYM: return 4;
        default: return 8;
    }
}

// Scale bytes per block of a format; HiF8's depend on whether it is scaled (DequantizeParams).
NPUQ_AICORE inline uint32_t DequantScaleBytesPerBlock(uint32_t format) {
    switch (static_cast<FormatId>(format)) {
        case FormatId::HIF8: return 0;
        case FormatId::HIF4:
        case FormatId::HIFX4_V12: return 4;
        case FormatId::MXFP4:
        case FormatId::MXFP8E4M3:
        case FormatId::MXFP8E5M2:
        case FormatId::NVF4:
        case FormatId::NVFP4: return 1;
        default: return 4;  // a float32 per block
    }
}

// ... of p: scaled HiF8 (p.scaleBytes != 0) has a float32 per block (the row).
NPUQ_AICORE inline uint32_t DequantScaleBytesPerBlock(const DequantizeParams& p) {
    if (p.format == static_cast<uint32_t>(FormatId::HIF8)) return p.scaleBytes != 0 ? 4 : 0;
    return DequantScaleBytesPerBlock(p.format);
}

// Code slot of output column j of a tile row (4-bit blocks of odd length carry a pad slot).
NPUQ_AICORE inline uint32_t DequantSlot(uint32_t j, uint32_t tileBlock, uint32_t tileBlockCodes) {
    return j / tileBlock * tileBlockCodes + j % tileBlock;
}

NPUQ_AICORE inline void DequantStrides(DqLayout& g, uint32_t width) {
    const uint32_t blocks = CeilDiv(width, g.tileBlock);
    const uint32_t slots = DequantSlot(width - 1, g.tileBlock, g.tileBlockCodes) + 1;
    g.codeStride = RoundUp(g.codeBits == 4 ? CeilDiv(slots, 2) : slots, kUbBlockBytes);
    g.scaleStride = g.scaleBytes ? RoundUp(blocks * g.scaleBytes, kUbBlockBytes) : 0;
    g.outStride = RoundUp(width, kUbBlockBytes / 4);
    if (g.scaleBytes == 0) g.multStride = 0;
    else if (g.subScales) g.multStride = 4 * g.scaleStride;  // 16 per 4 scale bytes
    else if (g.scaleBytes == 1) g.multStride = g.scaleStride;
    else g.multStride = g.scaleStride / 4;                    // the float32 scales themselves
}

// Rows of one tile that fit every UB buffer of the Dequantize kernel (0: not even one).
NPUQ_AICORE inline uint32_t DequantMaxRows(const DqLayout& g) {
    uint32_t rows = MinU(kDqTileElems / g.outStride, kDqCodeBytes / g.codeStride);
    if (g.scaleStride) rows = MinU(rows, kDqScaleBytes / g.scaleStride);
    if (g.multStride) rows = MinU(rows, kDqMultCap / g.multStride);
    if (g.subScales) rows = MinU(rows, kDqGroupCap / (g.scaleStride / 4));
    return rows;
}

NPUQ_AICORE inline DqLayout PlanDequantize(const DequantizeParams& p) {
    DqLayout g{};
    g.block = p.block == 0 ? p.length : p.block;
    g.codeBits = DequantCodeBits(p.format);
    g.blockCodes = g.codeBits == 4 ? g.block + g.block % 2 : g.block;
    g.scaleBytes = DequantScaleBytesPerBlock(p);
    g.subScales = p.format == static_cast<uint32_t>(FormatId::HIF4) ||
                  p.format == static_cast<uint32_t>(FormatId::HIFX4_V12);
    g.tileBlock = g.block;
    g.tileBlockCodes = g.blockCodes;
    DequantStrides(g, p.length);
    const uint32_t rows = DequantMaxRows(g);
    if (rows > 0) {
        g.width = p.length;
        g.tileRows = p.tileRows == 0 ? rows : MinU(rows, p.tileRows);
        return g;
    }
    g.chunked = true;
    g.tileRows = 1;
    if (g.block <= kDqTileElems) {
        // Pieces of whole blocks: the most that fit (one always does).
        uint32_t blocks = MaxU(1, kDqTileElems / g.block);
        for (;; --blocks) {
            DequantStrides(g, blocks * g.block);
            if (blocks == 1 || DequantMaxRows(g) > 0) break;
        }
        g.width = blocks * g.block;
    } else {
        // Pieces of one block: 64-column multiples, so a 4-bit piece starts on a byte.
        g.width = kDqTileElems;
        g.tileBlock = kDqTileElems;
        g.tileBlockCodes = kDqTileElems;
        DequantStrides(g, g.width);
    }
    return g;
}

}  // namespace npuq
