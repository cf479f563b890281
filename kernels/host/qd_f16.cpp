// QuantDequant<half> on the host (one translation unit per dtype: they build in parallel).
#include "kernel_operator.h"
#include "npuq/quant_dequant.h"
#include "entry.h"

namespace npuq_host {

void RunQuantDequantF16(uint8_t* x, uint8_t* y, uint8_t* workspace, const npuq::QuantDequantParams& p, uint32_t cores) {
    Launch(cores, [&] { npuq::QuantDequant<half>(x, y, workspace, p); });
}

}  // namespace npuq_host
