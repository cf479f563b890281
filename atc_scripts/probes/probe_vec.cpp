// Probes (b)-(d): single vector instructions on the values the kernels' numerics depend on, one
// core, n float32 lanes (n a multiple of 64, at most kMaxN), GM -> UB -> op -> GM through queues
// (the TQue pattern of the AscendC samples). device_check.py writes the inputs, compares with
// IEEE 754 as numpy computes it, and prints PASS / FAIL (shared/spec/ascendc.md B2-B5).
#include "kernel_operator.h"

using namespace AscendC;

namespace {
constexpr uint32_t kMaxN = 4096;

// ops of npuq_probe_cmp: 0..5 CompareScalar(x, s) LT GT EQ LE GE NE, as 1.0 / 0.0;
// 6 Muls(x, s); 7 Maxs(x, s); 8 Max(x, y) with y = s broadcast (Duplicate)
constexpr uint32_t kOpMuls = 6;
constexpr uint32_t kOpMaxs = 7;
constexpr uint32_t kOpMax = 8;

__aicore__ inline CMPMODE Mode(uint32_t op)
{
    switch (op) {
        case 0: return CMPMODE::LT;
        case 1: return CMPMODE::GT;
        case 2: return CMPMODE::EQ;
        case 3: return CMPMODE::LE;
        case 4: return CMPMODE::GE;
        default: return CMPMODE::NE;
    }
}
}  // namespace

// (c) z = a / b
extern "C" __global__ __aicore__ void npuq_probe_div(GM_ADDR a, GM_ADDR b, GM_ADDR z, uint32_t n)
{
    if (n == 0 || n > kMaxN) {
        return;
    }
    TPipe pipe;
    TQue<QuePosition::VECIN, 1> qa, qb;
    TQue<QuePosition::VECOUT, 1> qz;
    pipe.InitBuffer(qa, 1, kMaxN * sizeof(float));
    pipe.InitBuffer(qb, 1, kMaxN * sizeof(float));
    pipe.InitBuffer(qz, 1, kMaxN * sizeof(float));
    GlobalTensor<float> ga, gb, gz;
    ga.SetGlobalBuffer(reinterpret_cast<__gm__ float *>(a), n);
    gb.SetGlobalBuffer(reinterpret_cast<__gm__ float *>(b), n);
    gz.SetGlobalBuffer(reinterpret_cast<__gm__ float *>(z), n);
    LocalTensor<float> ta = qa.AllocTensor<float>();
    LocalTensor<float> tb = qb.AllocTensor<float>();
    DataCopy(ta, ga, n);
    DataCopy(tb, gb, n);
    qa.EnQue(ta);
    qb.EnQue(tb);
    ta = qa.DeQue<float>();
    tb = qb.DeQue<float>();
    LocalTensor<float> tz = qz.AllocTensor<float>();
    Div(tz, ta, tb, n);
    qz.EnQue(tz);
    qa.FreeTensor(ta);
    qb.FreeTensor(tb);
    tz = qz.DeQue<float>();
    DataCopy(gz, tz, n);
    qz.FreeTensor(tz);
}

// (d) y = half(x), CAST_RINT (the output cast of block_kernel.h)
extern "C" __global__ __aicore__ void npuq_probe_cast(GM_ADDR x, GM_ADDR y, uint32_t n)
{
    if (n == 0 || n > kMaxN) {
        return;
    }
    TPipe pipe;
    TQue<QuePosition::VECIN, 1> qx;
    TQue<QuePosition::VECOUT, 1> qy;
    pipe.InitBuffer(qx, 1, kMaxN * sizeof(float));
    pipe.InitBuffer(qy, 1, kMaxN * sizeof(half));
    GlobalTensor<float> gx;
    GlobalTensor<half> gy;
    gx.SetGlobalBuffer(reinterpret_cast<__gm__ float *>(x), n);
    gy.SetGlobalBuffer(reinterpret_cast<__gm__ half *>(y), n);
    LocalTensor<float> tx = qx.AllocTensor<float>();
    DataCopy(tx, gx, n);
    qx.EnQue(tx);
    tx = qx.DeQue<float>();
    LocalTensor<half> ty = qy.AllocTensor<half>();
    Cast(ty, tx, RoundMode::CAST_RINT, n);
    qy.EnQue(ty);
    qx.FreeTensor(tx);
    ty = qy.DeQue<half>();
    DataCopy(gy, ty, n);
    qy.FreeTensor(ty);
}

// (b) z = op(x, s): compares as 1.0 / 0.0 (CompareScalar + Select), Muls, Maxs, Max
extern "C" __global__ __aicore__ void npuq_probe_cmp(GM_ADDR x, GM_ADDR z, uint32_t n, uint32_t op, float s)
{
    if (n == 0 || n > kMaxN || n % 64 != 0) {
        return;
    }
    TPipe pipe;
    TQue<QuePosition::VECIN, 1> qx;
    TQue<QuePosition::VECOUT, 1> qz;
    TBuf<TPosition::VECCALC> work;
    pipe.InitBuffer(qx, 1, kMaxN * sizeof(float));
    pipe.InitBuffer(qz, 1, kMaxN * sizeof(float));
    pipe.InitBuffer(work, kMaxN * sizeof(float) + kMaxN / 8);
    GlobalTensor<float> gx, gz;
    gx.SetGlobalBuffer(reinterpret_cast<__gm__ float *>(x), n);
    gz.SetGlobalBuffer(reinterpret_cast<__gm__ float *>(z), n);
    LocalTensor<float> tx = qx.AllocTensor<float>();
    DataCopy(tx, gx, n);
    qx.EnQue(tx);
    tx = qx.DeQue<float>();
    LocalTensor<float> tz = qz.AllocTensor<float>();
    LocalTensor<float> other = work.Get<float>();
    LocalTensor<uint8_t> mask = work.Get<uint8_t>()[kMaxN * sizeof(float)];
    if (op == kOpMuls) {
        Muls(tz, tx, s, n);
    } else if (op == kOpMaxs) {
        Maxs(tz, tx, s, n);
    } else if (op == kOpMax) {
        Duplicate(other, s, n);
        Max(tz, tx, other, n);
    } else {
        Duplicate(other, 1.0f, n);
        CompareScalar(mask, tx, s, Mode(op), n);
        Select(tz, mask, other, 0.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, n);
    }
    qz.EnQue(tz);
    qx.FreeTensor(tx);
    tz = qz.DeQue<float>();
    DataCopy(gz, tz, n);
    qz.FreeTensor(tz);
}

void npuq_probe_div_do(uint32_t blockDim, void *l2ctrl, void *stream, uint8_t *a, uint8_t *b, uint8_t *z, uint32_t n)
{
    npuq_probe_div<<<blockDim, l2ctrl, stream>>>(a, b, z, n);
}

void npuq_probe_cast_do(uint32_t blockDim, void *l2ctrl, void *stream, uint8_t *x, uint8_t *y, uint32_t n)
{
    npuq_probe_cast<<<blockDim, l2ctrl, stream>>>(x, y, n);
}

void npuq_probe_cmp_do(uint32_t blockDim, void *l2ctrl, void *stream, uint8_t *x, uint8_t *z, uint32_t n, uint32_t op,
                       float s)
{
    npuq_probe_cmp<<<blockDim, l2ctrl, stream>>>(x, z, n, op, s);
}
