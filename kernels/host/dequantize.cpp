// Dequantize on the host.
#include "kernel_operator.h"
#include "npuq/dequantize.h"
#include "entry.h"

namespace npuq_host {

void RunDequantize(uint8_t* codes, uint8_t* scales, uint8_t* tensorScale, uint8_t* y, uint8_t* workspace,
                   const npuq::DequantizeParams& p, uint32_t cores) {
    Launch(cores, [&] { npuq::Dequantize(codes, scales, tensorScale, y, workspace, p); });
}

}  // namespace npuq_host
