// Vector building blocks shared by the format kernels: exponent and sign from bits, the spec's
// two roundings, per-block maxima and their broadcast back to elements.
//
// Conventions: everything works on float32 in UB. `n` element counts passed to compares and
// selects are whole 256-byte repeats (multiples of 64); buffers are sized so that the lanes
// past the live data are scratch. Custom-operator projects compile with automatic PIPE_V
// synchronisation, so dependent vector instructions need no explicit PipeBarrier; hand-offs
// between pipes outside the TQue protocol (a scalar read of a vector result) are explicit.
#pragma once

#include "kernel_operator.h"
#include "npuq/plan.h"

namespace npuq {
namespace vec {

using AscendC::LocalTensor;

constexpr float kInf = __builtin_inff();
constexpr float kNaN = __builtin_nanf("");
constexpr uint32_t kExpMask = 0x7F800000u;   // float32 exponent field
constexpr uint32_t kSignMask = 0x80000000u;
constexpr uint32_t kAbsMask = 0x7FFFFFFFu;
constexpr int32_t kInfBits = 0x7F800000;     // +Inf; NaN bits (sign clear) are above it
constexpr uint64_t kLowHalves = 0x0F0F0F0F0F0F0F0Full;   // lanes 0-3 of every 8-lane block
constexpr uint64_t kHighHalves = 0xF0F0F0F0F0F0F0F0ull;  // lanes 4-7
constexpr uint32_t kMaxRepeat = 255;
constexpr uint32_t kBlockArrays = 12;

NPUQ_AICORE constexpr uint32_t Whole(uint32_t n) { return RoundUp(n, kRepeatFloats); }

// The working set of one tile, carved out of UB by the kernel that owns it.
struct Scratch {
    LocalTensor<float> abs, e0, e1, tmp;       // tile-sized
    LocalTensor<float> b[kBlockArrays];        // one value per block (or per 4 / 8 elements)
    LocalTensor<uint8_t> mask, mask2;          // compare results for tile-sized operands
    LocalTensor<uint8_t> bmask, bmask2;        // compare results for per-block operands
    LocalTensor<bfloat16_t> bf;                // bfloat16 round trips
    LocalTensor<uint32_t> expMask, signMask, absMask;   // one repeat of the constant each
};

__aicore__ inline void InitConstants(const Scratch& s) {
    AscendC::Duplicate(s.expMask, kExpMask, static_cast<int32_t>(kRepeatFloats));
    AscendC::Duplicate(s.signMask, kSignMask, static_cast<int32_t>(kRepeatFloats));
    AscendC::Duplicate(s.absMask, kAbsMask, static_cast<int32_t>(kRepeatFloats));
}

// dst = src & c over n floats, c being one repeat that every repeat reads (src1 stride 0).
// And works on 16-bit lanes: a float is two of them, 128 per repeat.
__aicore__ inline void AndConst(const LocalTensor<float>& dst, const LocalTensor<float>& src,
                                const LocalTensor<uint32_t>& c, uint32_t n) {
    const LocalTensor<uint16_t> d = dst.ReinterpretCast<uint16_t>();
    const LocalTensor<uint16_t> a = src.ReinterpretCast<uint16_t>();
    const LocalTensor<uint16_t> k = c.ReinterpretCast<uint16_t>();
    const uint32_t repeats = n / kRepeatFloats;
    for (uint32_t r = 0; r < repeats; r += kMaxRepeat) {
        const uint32_t rep = MinU(kMaxRepeat, repeats - r);
        AscendC::And(d[r * 128], a[r * 128], k, 128, static_cast<uint8_t>(rep),
                     AscendC::BinaryRepeatParams(1, 1, 1, 8, 8, 0));
    }
}

// 2^floor(log2|v|) straight from the exponent bits (never log2): exact for normal v, 0 for
// zero and subnormals, +Inf for Inf and NaN.
__aicore__ inline void Pow2Floor(const LocalTensor<float>& dst, const LocalTensor<float>& src, const Scratch& s,
                                 uint32_t n) {
    AndConst(dst, src, s.expMask, n);
}

// y = copysign(y, x) for y >= 0: OR the sign bit of x into y. `tmp` is clobbered.
__aicore__ inline void CopySign(const LocalTensor<float>& y, const LocalTensor<float>& x,
                                const LocalTensor<float>& tmp, const Scratch& s, uint32_t n) {
    AndConst(tmp, x, s.signMask, n);
    const LocalTensor<uint16_t> yb = y.ReinterpretCast<uint16_t>();
    AscendC::Or(yb, yb, tmp.ReinterpretCast<uint16_t>(), static_cast<int32_t>(2 * n));
}

// NaN, Inf and subnormals are classified from bits with integer operations, never by float
// compares or Max/Min: A2 documents no NaN ordering for them (Compares.md, Max.md,
// ReduceRepeat.md), nor subnormal handling; CANN's own IsFinite (ops-math
// math/is_finite/op_kernel/is_finite.h) also works on the exponent bits. A2 compares int32
// for EQ only (Compares.md), so "v < c" is built as min(v, c) == c or EQ plus Not. For
// v >= +0 the int32 order of the bits is the float order (subnormals, +Inf and NaN included).

// |x| with NaN as +Inf (the sign bit cleared, then int32 min with +Inf's bits): NaN-free, and
// a block holding NaN or Inf gets an infinite maximum.
__aicore__ inline void AbsFill(const LocalTensor<float>& dst, const LocalTensor<float>& x, const Scratch& s,
                               uint32_t n) {
    AndConst(dst, x, s.absMask, n);
    AscendC::Mins(dst.ReinterpretCast<int32_t>(), dst.ReinterpretCast<int32_t>(), kInfBits, static_cast<int32_t>(n));
}

// mask bit i = v[i] is not +0: NOT (bits == 0). For v >= +0 (subnormals count as non-zero).
__aicore__ inline void NonZeroMask(const LocalTensor<uint8_t>& mask, const LocalTensor<float>& v, uint32_t n) {
    AscendC::CompareScalar(mask, v.ReinterpretCast<int32_t>(), 0, AscendC::CMPMODE::EQ, n);
    const LocalTensor<uint16_t> m = mask.ReinterpretCast<uint16_t>();
    AscendC::Not(m, m, static_cast<int32_t>(n / 16));
}

// mask bit i = v[i] is finite: NOT (bits == +Inf's). For v in [+0, +Inf] (AbsFill's output or
// a maximum of it).
__aicore__ inline void FiniteMask(const LocalTensor<uint8_t>& mask, const LocalTensor<float>& v, uint32_t n) {
    AscendC::CompareScalar(mask, v.ReinterpretCast<int32_t>(), kInfBits, AscendC::CMPMODE::EQ, n);
    const LocalTensor<uint16_t> m = mask.ReinterpretCast<uint16_t>();
    AscendC::Not(m, m, static_cast<int32_t>(n / 16));
}

// |x| with NaN and +-Inf as 0 (NVFP4's tensor amax is over finite values).
__aicore__ inline void AbsFinite(const LocalTensor<float>& dst, const LocalTensor<float>& x,
                                 const LocalTensor<uint8_t>& mask, const Scratch& s, uint32_t n) {
    AbsFill(dst, x, s, n);
    FiniteMask(mask, dst, n);
    AscendC::Select(dst, mask, dst, 0.0f, AscendC::SELMODE::VSEL_TENSOR_SCALAR_MODE, n);
}

// The spec's ties-away rounding, exactly as written: floor(v + 0.5). CAST_ROUND (true ties
// away) differs where v + 0.5 is inexact: at v = 0.5 - 2^-25 (v + 0.5 rounds up to 1) and at
// odd integers >= 2^23; the reference rounds the former to 1.
__aicore__ inline void RoundAway(const LocalTensor<float>& y, uint32_t n) {
    AscendC::Adds(y, y, 0.5f, static_cast<int32_t>(n));
    AscendC::Cast(y, y, AscendC::RoundMode::CAST_FLOOR, n);
}

// Round half to even (torch.round): the RINT convert.
__aicore__ inline void RoundEven(const LocalTensor<float>& y, uint32_t n) {
    AscendC::Cast(y, y, AscendC::RoundMode::CAST_RINT, n);
}

// y = bfloat16(y) kept in float32 (RNE through the bfloat16 convert and back).
__aicore__ inline void ToBf16(const LocalTensor<float>& y, const Scratch& s, uint32_t n) {
    AscendC::Cast(s.bf, y, AscendC::RoundMode::CAST_RINT, n);
    AscendC::Cast(y, s.bf, AscendC::RoundMode::CAST_NONE, n);
}

// A minifloat element grid, microxcaling style (formats/mx.py round_element_): magnitudes
// y >= 0 rounded on steps of 2^(max(floor_log2 y, emin) - mbits), saturating at `maxv`.
struct Grid {
    float minPow2;  // 2^emin
    float ulp;      // 2^-mbits
    float maxv;
    bool away;      // ties away (floor(v + 0.5)) or to even
};

// Rounds y in place onto g; `step` is clobbered. y / step is exact (a power of two). The
// saturation comes first: the rounding is monotonic and keeps maxv, so min(round(y), maxv) =
// round(min(y, maxv)), and an infinite y (a NaN block's lanes) never meets Inf / Inf.
// y must not be NaN.
__aicore__ inline void RoundToGrid(const LocalTensor<float>& y, const LocalTensor<float>& step, const Grid& g,
                                   const Scratch& s, uint32_t n) {
    AscendC::Mins(y, y, g.maxv, static_cast<int32_t>(n));
    Pow2Floor(step, y, s, n);
    AscendC::Maxs(step, step, g.minPow2, static_cast<int32_t>(n));
    AscendC::Muls(step, step, g.ulp, static_cast<int32_t>(n));
    AscendC::Div(y, y, step, static_cast<int32_t>(n));
    if (g.away) RoundAway(y, n); else RoundEven(y, n);
    AscendC::Mul(y, y, step, static_cast<int32_t>(n));
}

// Zeroes elements [begin, end) of x: a bit-masked Duplicate for the lanes before the next
// 32-byte boundary, a plain one for the rest.
__aicore__ inline void ZeroRange(const LocalTensor<float>& x, uint32_t begin, uint32_t end) {
    if (begin >= end) return;
    const uint32_t base = RoundDown(begin, 8);
    if (begin > base) {
        const uint32_t stop = MinU(end, base + 8);
        uint64_t m[2] = {((1ull << (stop - base)) - 1) & ~((1ull << (begin - base)) - 1), 0};
        AscendC::Duplicate(x[base], 0.0f, m, 1, 1, 8);
        begin = base + 8;
    }
    if (end > begin) AscendC::Duplicate(x[begin], 0.0f, static_cast<int32_t>(end - begin));
}

// Zeroes lanes [block, stride) of `count` consecutive blocks of `stride` elements starting at
// x: when those lanes fit in one repeat from the 32-byte block holding lane `block`, one
// bit-masked Duplicate per 255 blocks with a repeat per block; else block by block.
__aicore__ inline void ZeroBlockTails(const LocalTensor<float>& x, uint32_t count, uint32_t block, uint32_t stride) {
    if (block >= stride || count == 0) return;
    const uint32_t base = RoundDown(block, 8);
    if (stride - base > kRepeatFloats || stride / 8 > kMaxRepeat) {
        for (uint32_t b = 0; b < count; ++b) ZeroRange(x, b * stride + block, (b + 1) * stride);
        return;
    }
    const uint64_t upTo = stride - base == 64 ? ~0ull : (1ull << (stride - base)) - 1;
    uint64_t m[2] = {upTo & ~((1ull << (block - base)) - 1), 0};
    for (uint32_t b = 0; b < count; b += kMaxRepeat) {
        const uint32_t rep = MinU(kMaxRepeat, count - b);
        AscendC::Duplicate(x[b * stride + base], 0.0f, m, static_cast<uint8_t>(rep), 1,
                           static_cast<uint8_t>(stride / 8));
    }
}

// dst[b] = max over block b of src, for nb blocks of `stride` elements (a multiple of 8)
// whose lanes past the data are zero and whose values are >= 0. Blocks of up to 64 lanes are
// one WholeReduceMax repeat each. Longer ones are first folded onto their first 64 lanes with
// element-wise Max, which overwrites src: all blocks at once with a repeat per block while the
// block stride fits a repeat stride, else block by block, halving (such blocks are few per
// tile), and then moved into `tmp` at a stride of 64 for the final reduce. dst is zero from
// nb to Whole(nb): the whole-repeat operations on per-block arrays never meet stale UB (NaN).
__aicore__ inline void BlockMax(const LocalTensor<float>& dst, const LocalTensor<float>& src, uint32_t nb,
                                uint32_t stride, const LocalTensor<float>& tmp) {
    constexpr uint32_t kStep = 248;  // repeats per call, a multiple of 8 so dst[b] stays aligned
    AscendC::Duplicate(dst, 0.0f, static_cast<int32_t>(Whole(nb)));
    if (stride > kRepeatFloats && stride / 8 > kMaxRepeat) {
        uint64_t all[2] = {~0ull, 0};
        for (uint32_t b = 0; b < nb; ++b) {
            const LocalTensor<float> blk = src[b * stride];
            for (uint32_t len = stride; len > kRepeatFloats;) {
                const uint32_t half = RoundUp(CeilDiv(len, 2), 8);
                AscendC::Max(blk, blk, blk[half], static_cast<int32_t>(len - half));
                len = half;  // lanes [0, 64) now hold the maximum's candidates, all of the block
            }
            AscendC::Copy(tmp[b * kRepeatFloats], blk, all, 1, AscendC::CopyRepeatParams(1, 1, 8, 8));
        }
        AscendC::WholeReduceMax(dst, tmp, static_cast<int32_t>(kRepeatFloats), static_cast<int32_t>(nb), 1, 1, 8,
                                AscendC::ReduceOrder::ORDER_ONLY_VALUE);
        return;
    }
    if (stride > kRepeatFloats) {
        const uint8_t rs = static_cast<uint8_t>(stride / 8);
        for (uint32_t c = kRepeatFloats; c < stride; c += kRepeatFloats)
            for (uint32_t b = 0; b < nb; b += kMaxRepeat)
                AscendC::Max(src[b * stride], src[b * stride], src[b * stride + c], MinU(kRepeatFloats, stride - c),
                             static_cast<uint8_t>(MinU(kMaxRepeat, nb - b)),
                             AscendC::BinaryRepeatParams(1, 1, 1, rs, rs, rs));
    }
    const uint32_t lanes = MinU(stride, kRepeatFloats);
    for (uint32_t b = 0; b < nb; b += kStep)
        AscendC::WholeReduceMax(dst[b], src[b * stride], static_cast<int32_t>(lanes),
                                static_cast<int32_t>(MinU(kStep, nb - b)), 1, 1, static_cast<int32_t>(stride / 8),
                                AscendC::ReduceOrder::ORDER_ONLY_VALUE);
}

// dst[b * stride + i] = src[b] for i < stride: every block gets its value back; the lanes up
// to Whole(nb * stride) get later values of src (whole repeats of it are read). Short blocks
// (up to 8 x 32 bytes) use Brcb, which writes one value to a whole 32-byte block; a block of
// k such blocks takes k Brcb passes, the j-th filling the j-th 32-byte block of every block.
// Longer blocks are few per tile: read each value on the scalar unit and Duplicate it.
__aicore__ inline void Expand(const LocalTensor<float>& dst, const LocalTensor<float>& src, uint32_t nb,
                              uint32_t stride) {
    const uint32_t k = stride / 8;  // strides are whole 32-byte blocks
    if (k <= 8) {
        const uint32_t repeats = CeilDiv(nb, 8);
        for (uint32_t j = 0; j < k; ++j)
            for (uint32_t r = 0; r < repeats; r += kMaxRepeat)
                AscendC::Brcb(dst[r * 8 * stride + j * 8], src[r * 8], static_cast<uint8_t>(MinU(kMaxRepeat, repeats - r)),
                              AscendC::BrcbRepeatParams(static_cast<uint16_t>(k), static_cast<uint16_t>(8 * k)));
        return;
    }
    const event_t ev = static_cast<event_t>(AscendC::GetTPipePtr()->FetchEventID(AscendC::HardEvent::V_S));
    AscendC::SetFlag<AscendC::HardEvent::V_S>(ev);
    AscendC::WaitFlag<AscendC::HardEvent::V_S>(ev);
    for (uint32_t b = 0; b < nb; ++b) AscendC::Duplicate(dst[b * stride], src.GetValue(b), static_cast<int32_t>(stride));
    // The lanes up to the next whole repeat get src[nb], as Brcb's last group of 8 gives them.
    const uint32_t end = Whole(nb * stride);
    if (end > nb * stride) AscendC::Duplicate(dst[nb * stride], src.GetValue(nb), static_cast<int32_t>(end - nb * stride));
}

// Elements from two per-8 arrays holding a value per half-block of 4: lanes 0-3 of 8-lane
// block k get lo[k], lanes 4-7 get hi[k]. `tmp` is clobbered. n8 = elements / 8.
__aicore__ inline void ExpandHalves(const LocalTensor<float>& dst, const LocalTensor<float>& tmp,
                                    const LocalTensor<float>& lo, const LocalTensor<float>& hi, uint32_t n8) {
    Expand(dst, lo, n8, 8);
    Expand(tmp, hi, n8, 8);
    uint64_t m[2] = {kHighHalves, 0};
    const uint32_t repeats = CeilDiv(n8, 8);
    for (uint32_t r = 0; r < repeats; r += kMaxRepeat)
        AscendC::Copy(dst[r * 64], tmp[r * 64], m, static_cast<uint8_t>(MinU(kMaxRepeat, repeats - r)),
                      AscendC::CopyRepeatParams(1, 1, 8, 8));
}

// The two maxima of every 8-lane block of src: over lanes 0-3 into lo, over lanes 4-7 into hi;
// both zero from n / 8 to Whole(n / 8).
__aicore__ inline void HalfBlockMax(const LocalTensor<float>& lo, const LocalTensor<float>& hi,
                                    const LocalTensor<float>& src, uint32_t n) {
    const uint32_t repeats = n / kRepeatFloats;
    AscendC::Duplicate(lo, 0.0f, static_cast<int32_t>(Whole(n / 8)));
    AscendC::Duplicate(hi, 0.0f, static_cast<int32_t>(Whole(n / 8)));
    uint64_t mlo[2] = {kLowHalves, 0};
    uint64_t mhi[2] = {kHighHalves, 0};
    for (uint32_t r = 0; r < repeats; r += kMaxRepeat) {
        const int32_t rep = static_cast<int32_t>(MinU(kMaxRepeat, repeats - r));
        AscendC::BlockReduceMax(lo[r * 8], src[r * 64], rep, mlo, 1, 1, 8);
        AscendC::BlockReduceMax(hi[r * 8], src[r * 64], rep, mhi, 1, 1, 8);
    }
}

}  // namespace vec
}  // namespace npuq
