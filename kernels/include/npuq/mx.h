// OCP Microscaling fake quantization, blocks of 32 (formats.md "MX formats"; formats/mx.py).
//
// Per block: a shared power-of-two scale 2^se from the block amax (floor rule: the amax's
// exponent field minus emax; rceil: the smallest 2^e with amax / 2^e <= max), clamped to
// [2^-127, 2^127]; elements |x| * 2^-se rounded on their minifloat grid (ties away, or even);
// result sign * q * 2^se. A block holding NaN or Inf becomes NaN.
// Scales are built as float powers of two with bit masks and compares; 2^-127 is the one
// subnormal scale the floor clamp produces.
#pragma once

#include "npuq/encode.h"

namespace npuq {

class MxFamily {
 public:
    static constexpr bool kTensorAmax = false;
    static constexpr bool kBlockAmax = false;

    __aicore__ inline void Init(const QuantDequantParams& p) {
        switch (static_cast<FormatId>(p.format)) {
            case FormatId::MXFP8E4M3: emax_ = 8; grid_ = {0x1p-6f, 0x1p-3f, 448.0f, true}; break;
            case FormatId::MXFP8E5M2: emax_ = 15; grid_ = {0x1p-14f, 0x1p-2f, 57344.0f, true}; break;
            default: emax_ = 2; grid_ = {1.0f, 0.5f, 6.0f, true}; break;  // E2M1
        }
        grid_.away = p.rounding == 0;
        rceil_ = p.scaleRule == 1;
    }

    __aicore__ inline void Run(const vec::Scratch& s, const AscendC::LocalTensor<float>& x,
                               const AscendC::LocalTensor<float>& y, uint32_t nb, uint32_t stride) const {
        Levels<false>(s, x, y, nb, stride);
        vec::Expand(s.e0, s.b[1], nb, stride);
        AscendC::Mul(y, y, s.e0, static_cast<int32_t>(vec::Whole(nb * stride)));
    }

    // Quantize: element codes (formats' table of the element) and the E8M0 byte of each block,
    // the exponent field of its scale (2^-127 is 0, a NaN block's NaN 0xFF).
    __aicore__ inline void Encode(const vec::Scratch& s, const enc::Tables& e, const AscendC::LocalTensor<float>& x,
                                  const AscendC::LocalTensor<float>& y, uint32_t nb, uint32_t stride,
                                  const AscendC::LocalTensor<uint8_t>& codes,
                                  const AscendC::LocalTensor<uint8_t>& scales) const {
        const uint32_t nbw = vec::Whole(nb);
        Levels<true>(s, x, y, nb, stride);
        enc::TableCodes(s, e, y, nb * stride, emax_ == 2 ? 4 : 8, codes);
        const AscendC::LocalTensor<uint32_t> k = s.b[3].ReinterpretCast<uint32_t>();
        AscendC::ShiftRight(k, s.b[1].ReinterpretCast<uint32_t>(), 23u, static_cast<int32_t>(nbw));
        enc::SmallU32ToFloat(s.b[3], k, s.b[4].ReinterpretCast<uint32_t>(), nbw);
        enc::ToBytes(scales, s.b[3], s.b[5].ReinterpretCast<half>(), nb);
    }

    __aicore__ inline enc::Table TableOf() const {
        return emax_ == 2 ? enc::Table::E2M1 : (emax_ == 8 ? enc::Table::E4M3 : enc::Table::E5M2);
    }

 private:
    // Signed element values into y and each block's scale (NaN for a NaN block) into s.b[1].
    // kEncode: y as formats.encode codes it, NaN where |x| / 2^se is not finite (NaN / Inf
    // elements, and overflows in NaN blocks, whose scale is 2^-127); the rest of a NaN block
    // saturates, as torch's does (RoundToGrid clamps first).
    template <bool kEncode>
    __aicore__ inline void Levels(const vec::Scratch& s, const AscendC::LocalTensor<float>& x,
                                  const AscendC::LocalTensor<float>& y, uint32_t nb, uint32_t stride) const {
        using namespace AscendC;
        const uint32_t n = vec::Whole(nb * stride);
        const uint32_t nbw = vec::Whole(nb);
        const LocalTensor<float>& amax = s.b[0];
        const LocalTensor<float>& scale = s.b[1];
        const LocalTensor<float>& inv = s.b[2];
        vec::AbsFill(s.abs, x, s, n);                            // NaN/Inf make their block's amax Inf
        vec::BlockMax(amax, s.abs, nb, stride, s.tmp);           // stride 32: s.abs is kept
        vec::FiniteMask(s.bmask, amax, nbw);                     // finite blocks
        Select(amax, s.bmask, amax, 0.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, nbw);
        if (rceil_) RceilScale(scale, amax, s, nbw); else FloorScale(scale, amax, s, nbw);
        Duplicate(inv, 1.0f, static_cast<int32_t>(nbw));
        Div(inv, inv, scale, static_cast<int32_t>(nbw));         // 2^-se, exact and normal
        Select(scale, s.bmask, scale, vec::kNaN, SELMODE::VSEL_TENSOR_SCALAR_MODE, nbw);  // OCP: NaN block
        vec::Expand(s.e0, inv, nb, stride);
        Mul(y, s.abs, s.e0, static_cast<int32_t>(n));            // |x| / 2^se (Inf in NaN blocks)
        if constexpr (kEncode) vec::FiniteMask(s.mask2, y, n);   // y in [0, +Inf]: from the bits
        vec::RoundToGrid(y, s.tmp, grid_, s, n);
        vec::CopySign(y, x, s.tmp, s, n);
        if constexpr (kEncode) Select(y, s.mask2, y, vec::kNaN, SELMODE::VSEL_TENSOR_SCALAR_MODE, n);
    }

    // 2^clamp(floor_log2(amax) - emax, -127, 127): the exponent field scaled by 2^-emax (exact:
    // at least 2^-141), raised to 2^-127, which is also what a zero or subnormal amax gets.
    // The top clamp never binds: amax < 2^128 and emax >= 2. The raise is an int32 max of the
    // bits (the operands are subnormal: no float compare).
    __aicore__ inline void FloorScale(const AscendC::LocalTensor<float>& scale, const AscendC::LocalTensor<float>& amax,
                                      const vec::Scratch& s, uint32_t nbw) const {
        vec::Pow2Floor(scale, amax, s, nbw);
        AscendC::Muls(scale, scale, emaxScale(), static_cast<int32_t>(nbw));
        const AscendC::LocalTensor<int32_t> bits = scale.ReinterpretCast<int32_t>();
        AscendC::Maxs(bits, bits, kMinScaleBits, static_cast<int32_t>(nbw));
    }

    // NVIDIA's RCEIL as formats/mx.py computes it: e = ceil_log2(amax / max), clamped below
    // at -127 (so a zero amax, or a quotient that underflows to 0, gives 2^-127). Adding
    // 0x7FFFFF to the bits of the quotient and masking the exponent is ceil-to-a-power-of-two
    // for a normal quotient (an exact power keeps its exponent, anything above carries), and
    // gives 2^-126 for a subnormal one. Quotients <= 2^-127 (a zero amax among them) clamp to
    // 2^-127: q > 2^-127 is min(bits, 0x400001) == 0x400001 on the int32 bits.
    __aicore__ inline void RceilScale(const AscendC::LocalTensor<float>& scale, const AscendC::LocalTensor<float>& amax,
                                      const vec::Scratch& s, uint32_t nbw) const {
        using namespace AscendC;
        const int32_t c = static_cast<int32_t>(nbw);
        const LocalTensor<float>& q = s.b[3];
        const LocalTensor<int32_t> t = s.b[4].ReinterpretCast<int32_t>();
        Duplicate(scale, grid_.maxv, c);
        Div(q, amax, scale, c);                                       // amax / max, rounded
        Adds(scale.ReinterpretCast<int32_t>(), q.ReinterpretCast<int32_t>(), static_cast<int32_t>(0x007FFFFF), c);
        vec::Pow2Floor(scale, scale, s, nbw);
        Mins(t, q.ReinterpretCast<int32_t>(), kMinScaleBits + 1, c);
        CompareScalar(s.bmask2, t, kMinScaleBits + 1, CMPMODE::EQ, nbw);  // q > 2^-127
        Select(scale, s.bmask2, scale, 0x1p-127f, SELMODE::VSEL_TENSOR_SCALAR_MODE, nbw);
    }

    static constexpr int32_t kMinScaleBits = 0x00400000;  // 2^-127

    __aicore__ inline float emaxScale() const {
        return emax_ == 2 ? 0.25f : (emax_ == 8 ? 0x1p-8f : 0x1p-15f);
    }

    vec::Grid grid_{};
    uint32_t emax_ = 2;
    bool rceil_ = false;
};

}  // namespace npuq
