/**
 * Kernel entry of NpuqQuantDequant (ONNX npuq::QuantDequant): copies the tiling data into
 * npuq::QuantDequantParams and calls npuq::QuantDequant from kernels/include/npuq/quant_dequant.h.
 * The computation lives in kernels/ (tested there on the CPU host build); this file only binds it
 * to the operator package. DTYPE_X is the dtype macro the build defines per compiled variant
 * (float, half, bfloat16_t; ascend910b only).
 *
 * Modelled on: Ascend/samples (read in its copy tjulitianyi1997/AscendProjects) operator/AddCustomSample/FrameworkLaunch/AddCustom/op_kernel/add_custom.cpp
 * (extern "C" __global__ __aicore__ entry named after the op type, GET_TILING_DATA, DTYPE_<INPUT>);
 * AscendC::GetUserWorkspace as in the hicann/ops-nn kernels.
 */
#include "kernel_operator.h"
#include "npuq/quant_dequant.h"

extern "C" __global__ __aicore__ void npuq_quant_dequant(GM_ADDR x, GM_ADDR y, GM_ADDR workspace, GM_ADDR tiling)
{
#if defined(__CCE_AICORE__) && __CCE_AICORE__ == 220
    // NVFP4 / HiF8 scale="tensor" meet all vector cores in a hard SyncAll: on 910B (DAV_2201)
    // that needs the mixed task type, or no cross-core sync happens (CrossCoreSetFlag, SyncAll docs)
    KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_MIX_AIV_1_0);
#endif
    GET_TILING_DATA(tilingData, tiling);
    npuq::QuantDequantParams p;
    p.rows = tilingData.rows;
    p.cols = tilingData.cols;
    p.rowsPerCore = tilingData.rowsPerCore;
    p.tileRows = tilingData.tileRows;
    p.format = tilingData.format;
    p.rounding = tilingData.rounding;
    p.scaleRule = tilingData.scaleRule;
    p.saturate = tilingData.saturate;
    p.variant = tilingData.variant;
    p.group = tilingData.group;
    p.scale = tilingData.scale;
    npuq::QuantDequant<DTYPE_X>(x, y, AscendC::GetUserWorkspace(workspace), p);
}
