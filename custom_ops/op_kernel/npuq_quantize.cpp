/**
 * Kernel entry of NpuqQuantize (ONNX npuq::Quantize): NOT IMPLEMENTED.
 *
 * kernels/ has no npuq::Quantize entry yet, so this entry is an empty stub that exists only
 * because the build compiles one kernel per OpDef. It is never launched: the host tiling
 * (op_host/npuq_quantize.cpp, QUANTIZE_KERNEL_IMPLEMENTED = false) refuses every shape, so ATC
 * reports a tiling failure for npuq::Quantize instead of producing garbage. To implement: add
 * npuq::Quantize<T>(x, codes, scales, workspace, const QuantDequantParams&) to kernels/, copy the
 * tiling fields into a QuantDequantParams here as op_kernel/npuq_quant_dequant.cpp does, call
 * it, and flip QUANTIZE_KERNEL_IMPLEMENTED.
 *
 * Modelled on: Ascend/samples (read in its copy tjulitianyi1997/AscendProjects) operator/AddCustomSample/FrameworkLaunch/AddCustom/op_kernel/add_custom.cpp
 * (entry signature: inputs, outputs, workspace, tiling).
 */
#include "kernel_operator.h"

extern "C" __global__ __aicore__ void npuq_quantize(GM_ADDR x, GM_ADDR codes, GM_ADDR scales, GM_ADDR workspace,
                                                    GM_ADDR tiling)
{
    // Intentionally empty: see above.
}
