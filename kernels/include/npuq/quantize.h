// npuq::Quantize: x -> formats.encode(x, format, axis=-1)'s Packed codes and scale bytes,
// bit-exact, for every format npuq::Quantize takes (onnx_npuq.ops.defs: all but NVFP4, whose
// per-tensor scale has no output).
//
// Called from the operator package's kernel entry (custom_ops/op_kernel/npuq_quantize.cpp)
// with the tiling it received: the QuantDequant fields. `workspace` is the user workspace,
// npuq::QuantizeWorkspaceBytes() bytes of it (HiF8 scale="tensor": 64 bytes per core around a
// hard SyncAll, so every launched core must enter).
//
//   T: float, half or bfloat16_t; x has p.rows * p.cols elements, row-major.
//   codes: p.rows rows of blocks * code bytes per block (4-bit codes two per byte, element
//   2k low, an odd block padded with a zero nibble); scales: p.rows rows of blocks * scale
//   bytes (E8M0 / E4M3 bytes, or float32 little-endian).
#pragma once

#include "npuq/block_kernel.h"
#include "npuq/hif4.h"
#include "npuq/hif8.h"
#include "npuq/integer.h"
#include "npuq/mx.h"
#include "npuq/nvfp4.h"

namespace npuq {

template <typename T, class Family>
__aicore__ inline void RunQuantize(GM_ADDR x, GM_ADDR codes, GM_ADDR scales, GM_ADDR workspace,
                                   const QuantDequantParams& p) {
    BlockKernel<T, Family, true> kernel;
    kernel.Init(x, codes, workspace, p, scales);
    kernel.Process();
}

template <typename T>
__aicore__ inline void Quantize(GM_ADDR x, GM_ADDR codes, GM_ADDR scales, GM_ADDR workspace,
                                const QuantDequantParams& p) {
    if (p.rows == 0 || p.cols == 0) return;
    switch (static_cast<FormatId>(p.format)) {
        case FormatId::HIF8: RunQuantize<T, HiF8Family>(x, codes, scales, workspace, p); break;
        case FormatId::HIF4:
        case FormatId::HIFX4_V12: RunQuantize<T, HiF4Family>(x, codes, scales, workspace, p); break;
        case FormatId::MXFP4:
        case FormatId::MXFP8E4M3:
        case FormatId::MXFP8E5M2: RunQuantize<T, MxFamily>(x, codes, scales, workspace, p); break;
        case FormatId::NVF4: RunQuantize<T, NvFp4Family>(x, codes, scales, workspace, p); break;
        case FormatId::INT8SYM:
        case FormatId::INT4SYM:
        case FormatId::FP8E4M3:
        case FormatId::FP8E5M2: RunQuantize<T, SymFamily>(x, codes, scales, workspace, p); break;
        default: break;  // NVFP4: no tensor-scale output (QuantizeSupports)
    }
}

}  // namespace npuq
