// npuq::QuantDequant: y = fake_quant(x) along the last axis, bit-exact to onnx_npuq.formats.
//
// Called from the operator package's kernel entry (custom_ops/op_kernel) with the tiling it
// received; `workspace` is the user workspace (AscendC::GetUserWorkspace of the entry's
// workspace argument), npuq::QuantDequantWorkspaceBytes() bytes of it (workspace.h).
//
//   T: float, half or bfloat16_t; x and y have p.rows * p.cols elements, row-major.
//   Each AI core (GetBlockIdx) takes rows [idx * p.rowsPerCore, +p.rowsPerCore).
//   Every launched core must enter (NVFP4 synchronises all of them once).
#pragma once

#include "npuq/block_kernel.h"
#include "npuq/hif4.h"
#include "npuq/hif8.h"
#include "npuq/integer.h"
#include "npuq/mx.h"
#include "npuq/nvfp4.h"

namespace npuq {

template <typename T, class Family>
__aicore__ inline void RunQuantDequant(GM_ADDR x, GM_ADDR y, GM_ADDR workspace, const QuantDequantParams& p) {
    BlockKernel<T, Family> kernel;
    kernel.Init(x, y, workspace, p);
    kernel.Process();
}

template <typename T>
__aicore__ inline void QuantDequant(GM_ADDR x, GM_ADDR y, GM_ADDR workspace, const QuantDequantParams& p) {
    if (p.rows == 0 || p.cols == 0) return;
    switch (static_cast<FormatId>(p.format)) {
        case FormatId::HIF8: RunQuantDequant<T, HiF8Family>(x, y, workspace, p); break;
        case FormatId::HIF4:
        case FormatId::HIFX4_V12: RunQuantDequant<T, HiF4Family>(x, y, workspace, p); break;
        case FormatId::MXFP4:
        case FormatId::MXFP8E4M3:
        case FormatId::MXFP8E5M2: RunQuantDequant<T, MxFamily>(x, y, workspace, p); break;
        case FormatId::NVF4:
        case FormatId::NVFP4: RunQuantDequant<T, NvFp4Family>(x, y, workspace, p); break;
        case FormatId::INT8SYM:
        case FormatId::INT4SYM:
        case FormatId::FP8E4M3:
        case FormatId::FP8E5M2: RunQuantDequant<T, SymFamily>(x, y, workspace, p); break;
        default: break;
    }
}

}  // namespace npuq
