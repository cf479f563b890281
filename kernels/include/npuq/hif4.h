// HiFloat4 fake quantization, groups of 64 seen as [8][2][4] (formats.md "HiF4", "HiF4 v12";
// formats/hif4.py). Both variants produce, per sub-group of 4, a multiplier `into` (|x| to
// quarter steps) and `back` (quarter steps to the value); elements are c = TA(|x| * into)
// saturated at 7 and the result is sign * c * back.
//
// The per-4 maxima come from two masked BlockReduceMax passes over each 8-lane (32-byte)
// block: lanes 0-3 and lanes 4-7. So every per-4 quantity lives in two per-8 arrays, `lo`
// (even sub-groups) and `hi` (odd ones), and per-group values reach them with Brcb (a value
// per 8 lanes is exactly a group's eight 8-lane blocks).
#pragma once

#include "npuq/encode.h"

namespace npuq {

class HiF4Family {
 public:
    static constexpr bool kTensorAmax = false;
    static constexpr bool kBlockAmax = false;
    static constexpr float kR7 = 0.142578125f;  // bf16(1/7)

    __aicore__ inline void Init(const QuantDequantParams& p) {
        v12_ = p.format == static_cast<uint32_t>(FormatId::HIFX4_V12);
        amct_ = !v12_ && p.variant == 1;
    }

    // nb groups of 64 (stride 64).
    __aicore__ inline void Run(const vec::Scratch& s, const AscendC::LocalTensor<float>& x,
                               const AscendC::LocalTensor<float>& y, uint32_t nb, uint32_t stride) const {
        using namespace AscendC;
        const uint32_t n = vec::Whole(nb * stride);
        const uint32_t live8 = n / 8;
        Levels<false>(s, x, y, nb, stride);
        vec::ExpandHalves(s.e0, s.tmp, s.b[2], s.b[3], live8);
        Mul(y, y, s.e0, static_cast<int32_t>(n));
        vec::CopySign(y, x, s.tmp, s, n);
    }

    // Quantize: element nibbles c | sign << 3 and per group [level-1 byte, bits per 8, bits per
    // 4 (2 bytes)], MSB first (formats/hif4.py). As torch computes them: HiF4 in a group holding
    // NaN has NaN scales (codes 0 but the sign, bits 0); HiF4 v12 a NaN element code 0 (its
    // scales count non-finite sub-groups as 0); both +Inf elements c = 7; level-1 0xFF for a
    // group holding NaN or Inf.
    __aicore__ inline void Encode(const vec::Scratch& s, const enc::Tables& e, const AscendC::LocalTensor<float>& x,
                                  const AscendC::LocalTensor<float>& y, uint32_t nb, uint32_t stride,
                                  const AscendC::LocalTensor<uint8_t>& codes,
                                  const AscendC::LocalTensor<uint8_t>& scales) const {
        using namespace AscendC;
        const uint32_t n = vec::Whole(nb * stride);
        const int32_t ni = static_cast<int32_t>(n);
        const uint32_t n8 = vec::Whole(n / 8);
        const uint32_t gw = vec::Whole(nb);
        Levels<true>(s, x, y, nb, stride);
        // flags (per 8 lanes): b[9] 2^bit8 (E6M2: s8; v12: 2^b1), lo / hi bit4 flags 1 / 0
        const LocalTensor<float>& bit8 = s.b[9];
        const LocalTensor<float>& lo = v12_ ? s.b[11] : s.b[4];
        const LocalTensor<float>& hi = v12_ ? s.b[4] : s.b[6];
        const LocalTensor<float>& l1 = s.b[0];
        Adds(bit8, bit8, -1.0f, static_cast<int32_t>(n8));
        if (v12_) {
            // level 1: 2^eb's exponent field
            ShiftRight(l1.ReinterpretCast<uint32_t>(), s.b[5].ReinterpretCast<uint32_t>(), 23u, static_cast<int32_t>(gw));
            enc::SmallU32ToFloat(l1, l1.ReinterpretCast<uint32_t>(), s.b[1].ReinterpretCast<uint32_t>(), gw);
            enc::NanLanes(s, x, s.e1, n);
            CompareScalar(s.mask2, s.e1, 0.5f, CMPMODE::LT, n);             // not NaN
            Select(y, s.mask2, y, 0.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, n);
        } else {
            // level 1: the E6M2 byte, (bits >> 21) - ((127 - 48) << 2)
            ShiftRight(l1.ReinterpretCast<uint32_t>(), s.b[5].ReinterpretCast<uint32_t>(), 21u, static_cast<int32_t>(gw));
            enc::SmallU32ToFloat(l1, l1.ReinterpretCast<uint32_t>(), s.b[1].ReinterpretCast<uint32_t>(), gw);
            Adds(l1, l1, -316.0f, static_cast<int32_t>(gw));
            // groups holding NaN: codes 0, bits 0
            const LocalTensor<float>& ok = s.b[10];
            const LocalTensor<float>& ok8 = s.b[8];
            enc::NanBlocks(s, x, ok, nb, stride);
            Muls(ok, ok, -1.0f, static_cast<int32_t>(gw));
            Adds(ok, ok, 1.0f, static_cast<int32_t>(gw));                   // 1 - nan
            vec::Expand(ok8, ok, nb, 8);
            Mul(bit8, bit8, ok8, static_cast<int32_t>(n8));
            Mul(lo, lo, ok8, static_cast<int32_t>(n8));
            Mul(hi, hi, ok8, static_cast<int32_t>(n8));
            vec::Expand(s.e0, ok, nb, stride);
            Mul(y, y, s.e0, ni);
        }
        Select(l1, s.bmask, l1, 255.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, gw);
        // codes: c + 8 * signbit(x)
        const LocalTensor<uint32_t> sign = s.e0.ReinterpretCast<uint32_t>();
        ShiftRight(sign, x.ReinterpretCast<uint32_t>(), 31u, ni);
        enc::SmallU32ToFloat(s.e0, sign, s.e1.ReinterpretCast<uint32_t>(), n);
        Muls(s.e0, s.e0, 8.0f, ni);
        Add(y, y, s.e0, ni);
        enc::PackNibbles(s, y, nb * stride, codes);
        // scale bytes: weighted sums of the flags over each group's 8 per-8 values
        const LocalTensor<float>& b8 = s.b[1];
        const LocalTensor<float>& b40 = s.b[2];
        const LocalTensor<float>& b41 = s.b[3];
        const BinaryRepeatParams constRep(1, 1, 1, 8, 8, 0);
        const uint8_t reps = static_cast<uint8_t>(n8 / kRepeatFloats);
        uint64_t all[2] = {~0ull, 0};
        uint64_t mlo[2] = {vec::kLowHalves, 0};
        uint64_t mhi[2] = {vec::kHighHalves, 0};
        Mul(bit8, bit8, e.weights[0], kRepeatFloats, reps, constRep);
        BlockReduceSum(b8, bit8, reps, all, 1, 1, 8);
        Mul(lo, lo, e.weights[1], kRepeatFloats, reps, constRep);
        Mul(hi, hi, e.weights[2], kRepeatFloats, reps, constRep);
        Add(lo, lo, hi, static_cast<int32_t>(n8));
        BlockReduceSum(b40, lo, reps, mlo, 1, 1, 8);
        BlockReduceSum(b41, lo, reps, mhi, 1, 1, 8);
        // little-endian word per group: l1 | b8 << 8 | b40 << 16 | b41 << 24
        const LocalTensor<int32_t> word = scales.ReinterpretCast<int32_t>();
        const LocalTensor<int32_t> part = s.tmp.ReinterpretCast<int32_t>();
        Cast(word, l1, RoundMode::CAST_RINT, nb);
        const LocalTensor<float>* fields[3] = {&b8, &b40, &b41};
        for (int32_t f = 0; f < 3; ++f) {
            Cast(part, *fields[f], RoundMode::CAST_RINT, nb);
            ShiftLeft(part, part, 8 * (f + 1), static_cast<int32_t>(nb));
            Add(word, word, part, static_cast<int32_t>(nb));
        }
    }

    __aicore__ inline enc::Table TableOf() const { return enc::Table::NONE; }

 private:
    // |x|'s levels c (ties away, saturated at 7) into y; each sub-group of 4's multiplier back
    // in s.b[2] (even sub-groups) / s.b[3] (odd), NaN in groups holding NaN / Inf; finite groups
    // in s.bmask. kEncode: the bit flags too (ScalesE6M2 / ScalesV12).
    template <bool kEncode>
    __aicore__ inline void Levels(const vec::Scratch& s, const AscendC::LocalTensor<float>& x,
                                  const AscendC::LocalTensor<float>& y, uint32_t nb, uint32_t stride) const {
        using namespace AscendC;
        const uint32_t n = vec::Whole(nb * stride);  // nb * 64
        const uint32_t live8 = n / 8;                // 8-lane blocks
        const uint32_t n8 = vec::Whole(live8);       // per-8 arrays, whole repeats
        const LocalTensor<float>& lo = s.b[0];   // m4 of the even sub-groups, then into (lo)
        const LocalTensor<float>& hi = s.b[1];   // m4 of the odd sub-groups, then into (hi)
        vec::AbsFill(s.abs, x, s, n);
        vec::HalfBlockMax(lo, hi, s.abs, n);
        if (v12_) ScalesV12<kEncode>(s, nb, n8); else ScalesE6M2<kEncode>(s, nb, n8);
        vec::ExpandHalves(s.e0, s.tmp, lo, hi, live8);
        Mul(y, s.abs, s.e0, static_cast<int32_t>(n));
        if (amct_) vec::ToBf16(y, s, n);  // AMCT's NPU kernel rounds |x| * into to bf16 first
        vec::RoundAway(y, n);
        Mins(y, y, 7.0f, static_cast<int32_t>(n));
    }

    // HiF4: sf = clamp(bf16(m64 * bf16(1/7)), 2^-48, 49152) rounded to E6M2 (RNE on two mantissa
    // bits); rec = bf16(1 / sf); s8 = 2 where m8 * rec >= 4; s4 = 2 where m4 * rec / s8 >= 2;
    // into = rec * 4 / (s8 * s4), back = s8 * s4 * sf / 4.
    template <bool kEncode>
    __aicore__ inline void ScalesE6M2(const vec::Scratch& s, uint32_t nb, uint32_t n8) const {
        using namespace AscendC;
        const uint32_t gw = vec::Whole(nb);
        const int32_t g = static_cast<int32_t>(gw);
        const int32_t e = static_cast<int32_t>(n8);
        const LocalTensor<float>& lo = s.b[0];
        const LocalTensor<float>& hi = s.b[1];
        const LocalTensor<float>& backLo = s.b[2];
        const LocalTensor<float>& backHi = s.b[3];
        const LocalTensor<float>& m8 = s.b[4];
        const LocalTensor<float>& sf = s.b[5];     // per group
        const LocalTensor<float>& rec = s.b[6];    // per group
        const LocalTensor<float>& step = s.b[7];   // per group, then rec per 8
        const LocalTensor<float>& sf8 = s.b[8];    // per 8, NaN for NaN groups
        const LocalTensor<float>& s8 = s.b[9];
        const LocalTensor<float>& t = s.b[10];
        Max(m8, lo, hi, e);
        GroupMax(sf, m8, s, nb);                   // m64
        vec::FiniteMask(s.bmask, sf, gw);          // finite groups
        Muls(sf, sf, kR7, g);
        vec::ToBf16(sf, s, gw);
        Maxs(sf, sf, 0x1p-48f, g);
        Mins(sf, sf, 49152.0f, g);
        vec::Pow2Floor(step, sf, s, gw);           // E6M2: two mantissa bits, RNE
        Muls(step, step, 0.25f, g);
        Div(sf, sf, step, g);
        vec::RoundEven(sf, gw);
        Mul(sf, sf, step, g);
        Duplicate(rec, 1.0f, g);
        Div(rec, rec, sf, g);
        vec::ToBf16(rec, s, gw);
        Select(t, s.bmask, sf, vec::kNaN, SELMODE::VSEL_TENSOR_SCALAR_MODE, gw);
        vec::Expand(sf8, t, nb, 8);                // sf per 8 (NaN groups: NaN)
        vec::Expand(step, rec, nb, 8);             // rec per 8
        const LocalTensor<float>& rec8 = step;
        Mul(t, m8, rec8, e);                       // s8 = 2 where m8 * rec >= 4
        CompareScalar(s.mask, t, 4.0f, CMPMODE::GE, n8);
        Duplicate(s8, 2.0f, e);
        Select(s8, s.mask, s8, 1.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, n8);
        SubScales<kEncode>(lo, backLo, rec8, sf8, s8, s.b[4], s, n8);  // m8 is done with: bit4 flags
        SubScales<kEncode>(hi, backHi, rec8, sf8, s8, s.b[6], s, n8);  // rec too
    }

    // One half (even or odd sub-groups): m4 -> into (in place), back; kEncode: its s4 bits
    // (1 / 0) into `flag`.
    template <bool kEncode>
    __aicore__ inline static void SubScales(const AscendC::LocalTensor<float>& m4, const AscendC::LocalTensor<float>& back,
                                            const AscendC::LocalTensor<float>& rec8,
                                            const AscendC::LocalTensor<float>& sf8, const AscendC::LocalTensor<float>& s8,
                                            const AscendC::LocalTensor<float>& flag, const vec::Scratch& s, uint32_t n8) {
        using namespace AscendC;
        const int32_t e = static_cast<int32_t>(n8);
        const LocalTensor<float>& t = s.b[10];
        const LocalTensor<float>& s84 = s.b[11];
        Mul(t, m4, rec8, e);
        Div(t, t, s8, e);                          // m4 * rec / s8
        CompareScalar(s.mask, t, 2.0f, CMPMODE::GE, n8);
        if constexpr (kEncode) {
            Duplicate(flag, 1.0f, e);
            Select(flag, s.mask, flag, 0.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, n8);
        }
        Muls(t, s8, 2.0f, e);
        Select(s84, s.mask, t, s8, SELMODE::VSEL_TENSOR_TENSOR_MODE, n8);  // s8 * s4
        Muls(m4, rec8, 4.0f, e);
        Div(m4, m4, s84, e);                       // into = rec * 4 / (s8 * s4)
        Mul(back, s84, sf8, e);
        Muls(back, back, 0.25f, e);                // back = s8 * s4 * sf / 4
    }

    // HiF4 v12 (power-of-two scales): eg = floor_log2(m4 + 2^-45) per 4 (non-finite m4 as 0),
    // em = max of a pair, ea = group max; eb = clamp(ea - 2, -46, 16); b1 = clamp(em - eb - 1,
    // 0, 1); b2 = clamp(eg - eb - b1, 0, 1); e = eb + b1 + b2; into = 2^(2-e), back = 2^(e-2).
    // All exponents are float powers of two: a clamp of 2^k to [1, 2] is 2^clamp(k, 0, 1).
    template <bool kEncode>
    __aicore__ inline void ScalesV12(const vec::Scratch& s, uint32_t nb, uint32_t n8) const {
        using namespace AscendC;
        const uint32_t gw = vec::Whole(nb);
        const int32_t g = static_cast<int32_t>(gw);
        const int32_t e = static_cast<int32_t>(n8);
        const LocalTensor<float>& lo = s.b[0];
        const LocalTensor<float>& hi = s.b[1];
        const LocalTensor<float>& backLo = s.b[2];
        const LocalTensor<float>& backHi = s.b[3];
        const LocalTensor<float>& em = s.b[4];
        const LocalTensor<float>& eb = s.b[5];    // per group
        const LocalTensor<float>& nan = s.b[6];   // per group: 1, or NaN for a non-finite group
        const LocalTensor<float>& eb8 = s.b[7];
        const LocalTensor<float>& nan8 = s.b[8];
        const LocalTensor<float>& b1 = s.b[9];
        Max(em, lo, hi, e);                         // m8 (Inf for a non-finite group)
        GroupMax(eb, em, s, nb);                    // m64
        vec::FiniteMask(s.bmask, eb, gw);
        Duplicate(nan, 1.0f, g);
        Select(nan, s.bmask, nan, vec::kNaN, SELMODE::VSEL_TENSOR_SCALAR_MODE, gw);
        FiniteExp(lo, s, n8);                       // 2^eg
        FiniteExp(hi, s, n8);
        Max(em, lo, hi, e);                         // 2^em
        GroupMax(eb, em, s, nb);                    // 2^ea
        Muls(eb, eb, 0.25f, g);
        Maxs(eb, eb, 0x1p-46f, g);
        Mins(eb, eb, 0x1p16f, g);                   // 2^eb
        vec::Expand(eb8, eb, nb, 8);
        vec::Expand(nan8, nan, nb, 8);
        Muls(b1, eb8, 2.0f, e);
        Div(b1, em, b1, e);                         // 2^(em - eb - 1)
        ClampPow2(b1, e);                           // 2^b1
        Mul(eb8, eb8, b1, e);                       // 2^(eb + b1)
        SubScalesV12<kEncode>(lo, backLo, eb8, nan8, s.b[11], s, n8);  // bit4 flags
        SubScalesV12<kEncode>(hi, backHi, eb8, nan8, s.b[4], s, n8);   // em is done with
    }

    // One half: 2^eg -> into (in place), back; kEncode: its b2 bits (1 / 0) into `flag`.
    template <bool kEncode>
    __aicore__ inline static void SubScalesV12(const AscendC::LocalTensor<float>& eg,
                                               const AscendC::LocalTensor<float>& back,
                                               const AscendC::LocalTensor<float>& ebb1,
                                               const AscendC::LocalTensor<float>& nan8,
                                               const AscendC::LocalTensor<float>& flag, const vec::Scratch& s,
                                               uint32_t n8) {
        using namespace AscendC;
        const int32_t e = static_cast<int32_t>(n8);
        const LocalTensor<float>& t = s.b[10];
        Div(t, eg, ebb1, e);                        // 2^(eg - eb - b1)
        ClampPow2(t, e);                            // 2^b2
        if constexpr (kEncode) Adds(flag, t, -1.0f, e);
        Mul(t, t, ebb1, e);                         // 2^e
        Muls(back, t, 0.25f, e);                    // 2^(e - 2)
        Mul(back, back, nan8, e);
        Duplicate(eg, 4.0f, e);
        Div(eg, eg, t, e);                          // 2^(2 - e)
    }

    // m4 -> 2^floor_log2(m4 + 2^-45), a non-finite m4 counting as 0 (the sum is normal).
    __aicore__ inline static void FiniteExp(const AscendC::LocalTensor<float>& m4, const vec::Scratch& s, uint32_t n8) {
        using namespace AscendC;
        vec::FiniteMask(s.mask, m4, n8);
        Select(m4, s.mask, m4, 0.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, n8);
        Adds(m4, m4, 0x1p-45f, static_cast<int32_t>(n8));
        vec::Pow2Floor(m4, m4, s, n8);
    }

    __aicore__ inline static void ClampPow2(const AscendC::LocalTensor<float>& v, int32_t count) {
        AscendC::Maxs(v, v, 1.0f, count);
        AscendC::Mins(v, v, 2.0f, count);
    }

    // dst[g] = max of the 8 per-8 values of group g.
    __aicore__ inline static void GroupMax(const AscendC::LocalTensor<float>& dst, const AscendC::LocalTensor<float>& m8,
                                           const vec::Scratch& s, uint32_t nb) {
        vec::BlockMax(dst, m8, nb, 8, s.tmp);
    }

    bool v12_ = false;
    bool amct_ = false;
};

}  // namespace npuq
