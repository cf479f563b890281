/**
 * Kernel entry of NpuqDequantize (ONNX npuq::Dequantize): copies the tiling data into
 * npuq::DequantizeParams and calls npuq::Dequantize from kernels/include/npuq/dequantize.h.
 * tensor_scale is an optional input: the framework passes a null address when the node has none
 * (DequantizeParams.hasTensorScale is 0 then).
 *
 * Modelled on: Ascend/samples (read in its copy tjulitianyi1997/AscendProjects) operator/AddCustomSample/FrameworkLaunch/AddCustom/op_kernel/add_custom.cpp
 * (extern "C" __global__ __aicore__ entry named after the op type, GET_TILING_DATA);
 * AscendC::GetUserWorkspace as in the hicann/ops-nn kernels.
 */
#include "kernel_operator.h"
#include "npuq/dequantize.h"

extern "C" __global__ __aicore__ void npuq_dequantize(GM_ADDR codes, GM_ADDR scales, GM_ADDR tensor_scale, GM_ADDR y,
                                                      GM_ADDR workspace, GM_ADDR tiling)
{
    GET_TILING_DATA(tilingData, tiling);
    npuq::DequantizeParams p;
    p.rows = tilingData.rows;
    p.length = tilingData.length;
    p.block = tilingData.block;
    p.codeBytes = tilingData.codeBytes;
    p.scaleBytes = tilingData.scaleBytes;
    p.hasTensorScale = tilingData.hasTensorScale;
    p.rowsPerCore = tilingData.rowsPerCore;
    p.tileRows = tilingData.tileRows;
    p.format = tilingData.format;
    npuq::Dequantize(codes, scales, tensor_scale, y, AscendC::GetUserWorkspace(workspace), p);
}
