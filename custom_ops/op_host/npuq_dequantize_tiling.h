/**
 * Tiling data of NpuqDequantize (ONNX npuq::Dequantize). One field per member of
 * npuq::DequantizeParams (kernels/include/npuq/params.h), same names, same order: the kernel
 * entry copies them one by one (tests/test_custom_ops.py checks both).
 *
 * Modelled on: Ascend/samples (read in its copy tjulitianyi1997/AscendProjects) operator/AddCustomSample/FrameworkLaunch/AddCustom/op_host/
 * add_custom_tiling.h (BEGIN_TILING_DATA_DEF / TILING_DATA_FIELD_DEF / REGISTER_TILING_DATA_CLASS).
 */
#ifndef NPUQ_DEQUANTIZE_TILING_H
#define NPUQ_DEQUANTIZE_TILING_H
#include "register/tilingdata_base.h"

namespace optiling {
BEGIN_TILING_DATA_DEF(NpuqDequantizeTilingData)
TILING_DATA_FIELD_DEF(uint32_t, rows);
TILING_DATA_FIELD_DEF(uint32_t, length);
TILING_DATA_FIELD_DEF(uint32_t, block);
TILING_DATA_FIELD_DEF(uint32_t, codeBytes);
TILING_DATA_FIELD_DEF(uint32_t, scaleBytes);
TILING_DATA_FIELD_DEF(uint32_t, hasTensorScale);
TILING_DATA_FIELD_DEF(uint32_t, rowsPerCore);
TILING_DATA_FIELD_DEF(uint32_t, tileRows);
TILING_DATA_FIELD_DEF(uint32_t, format);
END_TILING_DATA_DEF;

REGISTER_TILING_DATA_CLASS(NpuqDequantize, NpuqDequantizeTilingData)
}  // namespace optiling
#endif  // NPUQ_DEQUANTIZE_TILING_H
