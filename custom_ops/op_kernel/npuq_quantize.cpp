/**
 * Kernel entry of NpuqQuantize (ONNX npuq::Quantize): copies the tiling data into
 * npuq::QuantDequantParams and calls npuq::Quantize from kernels/include/npuq/quantize.h, which
 * writes formats.encode's Packed codes and scale bytes. The computation lives in kernels/ (tested
 * there on the CPU host build); this file only binds it to the operator package. DTYPE_X is the
 * dtype macro the build defines per compiled variant (float, half, bfloat16_t).
 *
 * Modelled on: Ascend/samples (read in its copy tjulitianyi1997/AscendProjects) operator/AddCustomSample/FrameworkLaunch/AddCustom/op_kernel/add_custom.cpp
 * (entry signature: inputs, outputs, workspace, tiling; GET_TILING_DATA, DTYPE_<INPUT>);
 * AscendC::GetUserWorkspace as in the hicann/ops-nn kernels.
 */
#include "kernel_operator.h"
#include "npuq/quantize.h"

extern "C" __global__ __aicore__ void npuq_quantize(GM_ADDR x, GM_ADDR codes, GM_ADDR scales, GM_ADDR workspace,
                                                    GM_ADDR tiling)
{
#if defined(__CCE_AICORE__) && __CCE_AICORE__ == 220
    // HiF8 scale="tensor" meets all vector cores in a hard SyncAll: on 910B (DAV_2201) that
    // needs the mixed task type, as in npuq_quant_dequant.cpp
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
    npuq::Quantize<DTYPE_X>(x, codes, scales, AscendC::GetUserWorkspace(workspace), p);
}
