// Quantize<half> on the host (one translation unit per dtype: they build in parallel).
#include "kernel_operator.h"
#include "npuq/quantize.h"
#include "entry.h"

namespace npuq_host {

void RunQuantizeF16(uint8_t* x, uint8_t* codes, uint8_t* scales, uint8_t* workspace, const npuq::QuantDequantParams& p,
                  uint32_t cores) {
    Launch(cores, [&] { npuq::Quantize<half>(x, codes, scales, workspace, p); });
}

}  // namespace npuq_host
