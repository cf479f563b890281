// Probe (a): NVFP4 QuantDequant, whose tensor amax meets every vector core in a hard SyncAll
// (kernels/include/npuq/block_kernel.h). The two entries differ only in the kernel task type:
// probe_qd_mix.cpp declares KERNEL_TYPE_MIX_AIV_1_0 (what SyncAll needs on 910B per the asc-devkit
// docs, as custom_ops/op_kernel/npuq_quant_dequant.cpp does), probe_qd_aiv.cpp does not.
#pragma once
#include "kernel_operator.h"
#include "npuq/quant_dequant.h"

namespace npuq_probe {
__aicore__ inline void Nvfp4(GM_ADDR x, GM_ADDR y, GM_ADDR workspace, uint32_t rows, uint32_t cols,
                             uint32_t rowsPerCore, uint32_t tileRows)
{
    // a directly launched kernel hands its workspace to the library itself (ops-nn entries do
    // this too), then takes the user part after the library's
    AscendC::SetSysWorkspace(workspace);
    npuq::QuantDequantParams p{};
    p.rows = rows;
    p.cols = cols;
    p.rowsPerCore = rowsPerCore;
    p.tileRows = tileRows;
    p.format = static_cast<uint32_t>(npuq::FormatId::NVFP4);
    npuq::QuantDequant<float>(x, y, AscendC::GetUserWorkspace(workspace), p);
}
}  // namespace npuq_probe
