/**
 * Tiling data of NpuqQuantDequant (ONNX npuq::QuantDequant). One field per member of
 * npuq::QuantDequantParams (kernels/include/npuq/params.h), same names, same order: the kernel
 * entry copies them one by one (tests/test_custom_ops.py checks both).
 *
 * Modelled on: Ascend/samples (read in its copy tjulitianyi1997/AscendProjects) operator/AddCustomSample/FrameworkLaunch/AddCustom/op_host/
 * add_custom_tiling.h (BEGIN_TILING_DATA_DEF / TILING_DATA_FIELD_DEF / REGISTER_TILING_DATA_CLASS).
 */
#ifndef NPUQ_QUANT_DEQUANT_TILING_H
#define NPUQ_QUANT_DEQUANT_TILING_H
#include "register/tilingdata_base.h"

namespace optiling {
BEGIN_TILING_DATA_DEF(NpuqQuantDequantTilingData)
TILING_DATA_FIELD_DEF(uint32_t, rows);
TILING_DATA_FIELD_DEF(uint32_t, cols);
TILING_DATA_FIELD_DEF(uint32_t, rowsPerCore);
TILING_DATA_FIELD_DEF(uint32_t, tileRows);
TILING_DATA_FIELD_DEF(uint32_t, format);
TILING_DATA_FIELD_DEF(uint32_t, rounding);
TILING_DATA_FIELD_DEF(uint32_t, scaleRule);
TILING_DATA_FIELD_DEF(uint32_t, saturate);
TILING_DATA_FIELD_DEF(uint32_t, variant);
TILING_DATA_FIELD_DEF(uint32_t, group);
TILING_DATA_FIELD_DEF(uint32_t, scale);
END_TILING_DATA_DEF;

REGISTER_TILING_DATA_CLASS(NpuqQuantDequant, NpuqQuantDequantTilingData)
}  // namespace optiling
#endif  // NPUQ_QUANT_DEQUANT_TILING_H
