// Host entry points: the kernels run on emulated cores (one thread each).
#pragma once

#include <cstdint>

#include "npuq/params.h"

namespace npuq_host {

enum class DType { kFloat32, kFloat16, kBFloat16 };

// Runs npuq::QuantDequant<T> on `cores` cores.
void RunQuantDequant(DType dtype, uint8_t* x, uint8_t* y, uint8_t* workspace, const npuq::QuantDequantParams& p,
                     uint32_t cores);
void RunQuantDequantF32(uint8_t* x, uint8_t* y, uint8_t* workspace, const npuq::QuantDequantParams& p, uint32_t cores);
void RunQuantDequantF16(uint8_t* x, uint8_t* y, uint8_t* workspace, const npuq::QuantDequantParams& p, uint32_t cores);
void RunQuantDequantBF16(uint8_t* x, uint8_t* y, uint8_t* workspace, const npuq::QuantDequantParams& p, uint32_t cores);

// Runs npuq::Quantize<T> on `cores` cores.
void RunQuantize(DType dtype, uint8_t* x, uint8_t* codes, uint8_t* scales, uint8_t* workspace,
                 const npuq::QuantDequantParams& p, uint32_t cores);
void RunQuantizeF32(uint8_t* x, uint8_t* codes, uint8_t* scales, uint8_t* workspace, const npuq::QuantDequantParams& p,
                    uint32_t cores);
void RunQuantizeF16(uint8_t* x, uint8_t* codes, uint8_t* scales, uint8_t* workspace, const npuq::QuantDequantParams& p,
                    uint32_t cores);
void RunQuantizeBF16(uint8_t* x, uint8_t* codes, uint8_t* scales, uint8_t* workspace, const npuq::QuantDequantParams& p,
                     uint32_t cores);

// Runs npuq::Dequantize on `cores` cores.
void RunDequantize(uint8_t* codes, uint8_t* scales, uint8_t* tensorScale, uint8_t* y, uint8_t* workspace,
                   const npuq::DequantizeParams& p, uint32_t cores);

}  // namespace npuq_host
