// Sizes op_host needs from the kernels, in plain C++ (no AscendC types): the user workspace
// and the tile rows that fit the kernels' UB plan.
//
// op_host adds the system workspace (platform GetLibApiWorkSpaceSize()) to the user bytes
// below; the kernel entry passes AscendC::GetUserWorkspace(workspace) on. QuantDequant for
// NVFP4 and HiF8 scale="tensor" use the hard SyncAll, which needs a non-zero workspace in the
// tiling and a block dim no larger than the number of vector cores.
#pragma once

#include <cstdint>

#include "npuq/plan.h"

namespace npuq {

// NVFP4 and HiF8 scale="tensor" exchange one 32-byte slot per core (its amax); the other
// formats need none.
inline uint32_t QuantDequantWorkspaceBytes(const QuantDequantParams& p, uint32_t coreNum) {
    return NeedsTensorAmax(p) ? coreNum * kUbBlockBytes : 0u;
}

// Quantize (HiF8 scale="tensor" only; NVFP4 has no Quantize): two 32-byte slots per core,
// its amax and whether it saw a NaN (the stored scale is NaN then, +Inf for Inf alone).
inline uint32_t QuantizeWorkspaceBytes(const QuantDequantParams& p, uint32_t coreNum) {
    return NeedsTensorAmax(p) ? 2 * coreNum * kUbBlockBytes : 0u;
}

// Rows per tile the Quantize kernel will use for p (0 when rows are cut into pieces).
inline uint32_t QuantizeTileRows(const QuantDequantParams& p, uint32_t dtypeBytes) {
    return PlanQuantize(p, dtypeBytes).tileRows;
}

inline uint32_t DequantizeWorkspaceBytes(const DequantizeParams&, uint32_t) { return 0u; }

// Rows per tile the QuantDequant kernel will use for p (p.tileRows == 0: as many as fit);
// 0 when a row is longer than a tile and rows are cut into pieces instead.
inline uint32_t QuantDequantTileRows(const QuantDequantParams& p, uint32_t dtypeBytes) {
    return PlanQuantDequant(p, dtypeBytes).tileRows;
}

// Rows per tile the Dequantize kernel will use for p (1 when rows are cut into pieces).
inline uint32_t DequantizeTileRows(const DequantizeParams& p) { return PlanDequantize(p).tileRows; }

}  // namespace npuq
