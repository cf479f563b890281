/**
 * Tiling data of NpuqQuantize (ONNX npuq::Quantize). Quantize takes the attributes of
 * QuantDequant and has no params struct of its own in kernels/include/npuq/params.h: its fields
 * are those of npuq::QuantDequantParams, same names, same order (tests/test_custom_ops.py),
 * which the kernel entry copies them into.
 *
 * The fields are written out here, not shared with npuq_quant_dequant_tiling.h through a macro:
 * the kernel side's struct is generated from this file's text (msopgen's cmake/util/
 * tiling_data_def_build.py keeps the lines that start with BEGIN_TILING_DATA_DEF /
 * TILING_DATA_FIELD_DEF / END_TILING_DATA_DEF of this one header; the same script in hicann/ops-math
 * @ c4193324 scripts/util/tiling_data_def_build.py), so a field behind a macro, or a struct taken
 * from npuq_quant_dequant_tiling.h, would not reach the kernel.
 *
 * Modelled on: Ascend/samples (read in its copy tjulitianyi1997/AscendProjects) operator/AddCustomSample/FrameworkLaunch/AddCustom/op_host/
 * add_custom_tiling.h (BEGIN_TILING_DATA_DEF / TILING_DATA_FIELD_DEF / REGISTER_TILING_DATA_CLASS).
 */
#ifndef NPUQ_QUANTIZE_TILING_H
#define NPUQ_QUANTIZE_TILING_H
#include "register/tilingdata_base.h"

namespace optiling {
BEGIN_TILING_DATA_DEF(NpuqQuantizeTilingData)
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

REGISTER_TILING_DATA_CLASS(NpuqQuantize, NpuqQuantizeTilingData)
}  // namespace optiling
#endif  // NPUQ_QUANTIZE_TILING_H
