// Probe (a), without a task type: the default for a vector-only kernel (see probe_qd.h).
#include "probe_qd.h"

extern "C" __global__ __aicore__ void npuq_probe_qd_aiv(GM_ADDR x, GM_ADDR y, GM_ADDR workspace, uint32_t rows,
                                                        uint32_t cols, uint32_t rowsPerCore, uint32_t tileRows)
{
    npuq_probe::Nvfp4(x, y, workspace, rows, cols, rowsPerCore, tileRows);
}

void npuq_probe_qd_aiv_do(uint32_t blockDim, void *l2ctrl, void *stream, uint8_t *x, uint8_t *y, uint8_t *workspace,
                          uint32_t rows, uint32_t cols, uint32_t rowsPerCore, uint32_t tileRows)
{
    npuq_probe_qd_aiv<<<blockDim, l2ctrl, stream>>>(x, y, workspace, rows, cols, rowsPerCore, tileRows);
}
