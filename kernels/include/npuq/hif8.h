// HiF8 fake quantization (formats.md "HiF8"; formats/hif8.py quantize_reference), element-wise.
//
// For a = |x|: E = floor_log2(a) from the exponent bits, clamped to >= -22; the mantissa width
// p is 3, 2, 1 or 0 as |E| <= 3, 7, 15 or more; the value is rounded ties-away on the grid
// 2^(E-p); a >= 40960 overflows (Inf, or 32768 with saturate); a < 2^-23 is zero.
// Everything stays in powers of two held as floats: 2^E is the exponent field alone, and the
// |E| thresholds become compares of 2^E against 2^t and 2^-t, so no integer exponent is formed.
//
// Scaled (p.scale, formats/hif8.py "scale", torchao's HiFloat8): amax per row (the row is the
// block; a row longer than a tile has its amax from a first pass, RunBlock) or of the whole
// tensor (the kernel's tensor-amax pass, SetTensorAmax), +Inf where NaN or Inf is held;
// scale = amax / 32768, the element rule above on x / where(scale > 0, scale, 1) saturating at
// 32768 (torchao's clamp), times the scale; NaN for a row (tensor) holding NaN or Inf.
#pragma once

#include "npuq/encode.h"

namespace npuq {

class HiF8Family {
 public:
    static constexpr bool kTensorAmax = true;       // scale="tensor" only (NeedsTensorAmax)
    static constexpr bool kBlockAmax = true;        // scale="row" only (NeedsBlockAmax)
    static constexpr bool kRawTensorAmax = true;    // SetTensorAmax gets the amax itself
    static constexpr float kTensorAmaxFill = vec::kInf;  // NaN / Inf make the amax +Inf

    __aicore__ inline void Init(const QuantDequantParams& p) {
        scale_ = static_cast<HiF8Scale>(p.scale);
        overflow_ = (p.saturate || scale_ != HiF8Scale::NONE) ? 32768.0f : vec::kInf;
    }
    __aicore__ inline bool NeedsTensorAmax() const { return scale_ == HiF8Scale::TENSOR; }
    __aicore__ inline bool NeedsBlockAmax() const { return scale_ == HiF8Scale::ROW; }
    __aicore__ inline void SetTensorAmax(float amax) { tensorAmax_ = amax; }

    __aicore__ inline void Run(const vec::Scratch& s, const AscendC::LocalTensor<float>& x,
                               const AscendC::LocalTensor<float>& y, uint32_t nb, uint32_t stride) const {
        if (scale_ == HiF8Scale::NONE) {
            Element(s, x, y, vec::Whole(nb * stride));
            return;
        }
        const uint32_t n = vec::Whole(nb * stride);
        if (scale_ == HiF8Scale::ROW) {
            vec::AbsFill(s.abs, x, s, n);
            vec::BlockMax(s.b[0], s.abs, nb, stride, s.tmp);  // may fold s.abs: Element recomputes it
        } else {
            AscendC::Duplicate(s.b[0], tensorAmax_, static_cast<int32_t>(vec::Whole(nb)));
        }
        Scaled(s, x, y, nb, stride);
    }

    // A piece of a row longer than a tile: `amax` is the row's (scale="row"; Inf-poisoned).
    __aicore__ inline void RunBlock(const vec::Scratch& s, const AscendC::LocalTensor<float>& x,
                                    const AscendC::LocalTensor<float>& y, uint32_t stride, float amax) const {
        if (scale_ == HiF8Scale::NONE) {
            Element(s, x, y, vec::Whole(stride));
            return;
        }
        AscendC::Duplicate(s.b[0], scale_ == HiF8Scale::ROW ? amax : tensorAmax_, static_cast<int32_t>(kRepeatFloats));
        Scaled(s, x, y, 1, stride);
    }

    // Quantize: HiF8 bytes (formats' HIF8 table of the element values; NaN 0x80, +-Inf
    // 0x6F / 0xEF); scaled: the NaN byte in a row (tensor) holding NaN or Inf, and each row's
    // float32 scale (amax / 32768, NaN where NaN is held, +Inf where Inf but no NaN is).
    // `nan` is the tensor's NaN flag (scale="tensor").
    __aicore__ inline void Encode(const vec::Scratch& s, const enc::Tables& e, const AscendC::LocalTensor<float>& x,
                                  const AscendC::LocalTensor<float>& y, uint32_t nb, uint32_t stride,
                                  const AscendC::LocalTensor<uint8_t>& codes,
                                  const AscendC::LocalTensor<uint8_t>& scales) const {
        const uint32_t n = vec::Whole(nb * stride);
        if (scale_ == HiF8Scale::NONE) {
            Element(s, x, y, n);
            enc::TableCodes(s, e, y, nb * stride, 8, codes);
            return;
        }
        if (scale_ == HiF8Scale::ROW) {
            enc::NanBlocks(s, x, s.b[5], nb, stride);
            vec::AbsFill(s.abs, x, s, n);
            vec::BlockMax(s.b[0], s.abs, nb, stride, s.tmp);
        } else {
            AscendC::Duplicate(s.b[0], tensorAmax_, static_cast<int32_t>(vec::Whole(nb)));
            AscendC::Duplicate(s.b[5], tensorNan_, static_cast<int32_t>(vec::Whole(nb)));
        }
        EncodeScaled(s, e, x, y, nb, stride, codes, scales);
    }

    // A piece of a row longer than a tile (scaled: the row's amax and NaN flag, or the tensor's).
    __aicore__ inline void EncodeBlock(const vec::Scratch& s, const enc::Tables& e, const AscendC::LocalTensor<float>& x,
                                       const AscendC::LocalTensor<float>& y, uint32_t stride, float amax, float nan,
                                       const AscendC::LocalTensor<uint8_t>& codes,
                                       const AscendC::LocalTensor<uint8_t>& scales) const {
        if (scale_ == HiF8Scale::NONE) {
            Element(s, x, y, vec::Whole(stride));
            enc::TableCodes(s, e, y, stride, 8, codes);
            return;
        }
        const bool row = scale_ == HiF8Scale::ROW;
        AscendC::Duplicate(s.b[0], row ? amax : tensorAmax_, static_cast<int32_t>(kRepeatFloats));
        AscendC::Duplicate(s.b[5], row ? nan : tensorNan_, static_cast<int32_t>(kRepeatFloats));
        EncodeScaled(s, e, x, y, 1, stride, codes, scales);
    }

    __aicore__ inline void SetTensorNan(float nan) { tensorNan_ = nan; }

    __aicore__ inline enc::Table TableOf() const { return enc::Table::HIF8; }

 private:
    __aicore__ inline void EncodeScaled(const vec::Scratch& s, const enc::Tables& e, const AscendC::LocalTensor<float>& x,
                                        const AscendC::LocalTensor<float>& y, uint32_t nb, uint32_t stride,
                                        const AscendC::LocalTensor<uint8_t>& codes,
                                        const AscendC::LocalTensor<uint8_t>& scales) const {
        const uint32_t n = vec::Whole(nb * stride);
        ScaledLevels(s, x, y, nb, stride);
        enc::FiniteBlockLanes(s, s.b[6], nb, stride);
        AscendC::Select(y, s.mask2, y, vec::kNaN, AscendC::SELMODE::VSEL_TENSOR_SCALAR_MODE, n);
        enc::TableCodes(s, e, y, nb * stride, 8, codes);
        enc::StoredScale(s, scales.ReinterpretCast<float>(), s.b[1], s.b[5], s.b[6], nb);
    }

    __aicore__ inline void Scaled(const vec::Scratch& s, const AscendC::LocalTensor<float>& x,
                                  const AscendC::LocalTensor<float>& y, uint32_t nb, uint32_t stride) const {
        ScaledLevels(s, x, y, nb, stride);
        vec::Expand(s.e0, s.b[1], nb, stride);
        AscendC::Mul(y, y, s.e0, static_cast<int32_t>(vec::Whole(nb * stride)));
    }

    // s.b[0] holds each block's amax (+Inf for a block with NaN or Inf). x is overwritten with
    // x / div: it is the kernel's float32 copy of the tile, not read again. The element values
    // into y, each block's scale (NaN for a NaN / Inf block) into s.b[1], finite ones in s.bmask.
    __aicore__ inline void ScaledLevels(const vec::Scratch& s, const AscendC::LocalTensor<float>& x,
                                        const AscendC::LocalTensor<float>& y, uint32_t nb, uint32_t stride) const {
        using namespace AscendC;
        const uint32_t n = vec::Whole(nb * stride);
        const int32_t ni = static_cast<int32_t>(n);
        const uint32_t nbw = vec::Whole(nb);
        const int32_t c = static_cast<int32_t>(nbw);
        const LocalTensor<float>& amax = s.b[0];
        const LocalTensor<float>& scale = s.b[1];
        const LocalTensor<float>& div = s.b[2];
        vec::FiniteMask(s.bmask, amax, nbw);
        Select(amax, s.bmask, amax, 0.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, nbw);
        Duplicate(div, 32768.0f, c);
        Div(scale, amax, div, c);                                  // amax / 32768
        vec::NonZeroMask(s.bmask2, scale, nbw);
        Select(div, s.bmask2, scale, 1.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, nbw);
        Select(scale, s.bmask, scale, vec::kNaN, SELMODE::VSEL_TENSOR_SCALAR_MODE, nbw);
        vec::Expand(s.e0, div, nb, stride);
        Div(x, x, s.e0, ni);
        Element(s, x, y, n);
    }

    // The spec's element rule on x into y (n whole repeats).
    __aicore__ inline void Element(const vec::Scratch& s, const AscendC::LocalTensor<float>& x,
                                   const AscendC::LocalTensor<float>& y, uint32_t n) const {
        using namespace AscendC;
        const int32_t ni = static_cast<int32_t>(n);
        const LocalTensor<float>& a = s.abs;
        const LocalTensor<float>& step = s.e0;
        const LocalTensor<float>& f = s.e1;  // 2^-p
        vec::AbsFill(a, x, s, n);                  // |x|, NaN as +Inf: every compare below is NaN-free
        vec::Pow2Floor(step, a, s, n);             // 2^E; +Inf for Inf and NaN
        Maxs(step, step, 0x1p-22f, ni);            // E = -23 (and below) rounds on the 2^-22 grid
        Duplicate(f, 0.125f, ni);                  // p = 3 ...
        DoubleBeyond(f, step, 8.0f, 0x1p-3f, s, n);        // ... 2 for |E| > 3
        DoubleBeyond(f, step, 128.0f, 0x1p-7f, s, n);      // ... 1 for |E| > 7
        DoubleBeyond(f, step, 32768.0f, 0x1p-15f, s, n);   // ... 0 for |E| > 15
        Mul(step, step, f, ni);                    // 2^(E - p), exact
        Div(y, a, step, ni);
        vec::RoundAway(y, n);
        Mul(y, y, step, ni);
        // Overrides, last one wins: zero, overflow (Inf and NaN included), then NaN, found from
        // the bits: |x| is not NaN where max(bits(|x|), bits(+Inf)) == bits(+Inf).
        CompareScalar(s.mask, a, 0x1p-23f, CMPMODE::GE, n);
        Select(y, s.mask, y, 0.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, n);
        CompareScalar(s.mask, a, 40960.0f, CMPMODE::LT, n);
        Select(y, s.mask, y, overflow_, SELMODE::VSEL_TENSOR_SCALAR_MODE, n);
        const LocalTensor<int32_t> bits = s.tmp.ReinterpretCast<int32_t>();
        vec::AndConst(s.tmp, x, s.absMask, n);
        Maxs(bits, bits, vec::kInfBits, ni);
        CompareScalar(s.mask, bits, vec::kInfBits, CMPMODE::EQ, n);
        Select(y, s.mask, y, vec::kNaN, SELMODE::VSEL_TENSOR_SCALAR_MODE, n);
        vec::CopySign(y, x, s.tmp, s, n);
        Adds(y, y, 0.0f, ni);                      // -0 + 0 = +0: HiF8 has a single zero
    }

    // f *= 2 where |E| > t, i.e. where 2^E > 2^t or 2^E < 2^-t (powers of two, so strict).
    __aicore__ inline static void DoubleBeyond(const AscendC::LocalTensor<float>& f,
                                               const AscendC::LocalTensor<float>& p2, float hi, float lo,
                                               const vec::Scratch& s, uint32_t n) {
        using namespace AscendC;
        CompareScalar(s.mask, p2, hi, CMPMODE::GT, n);
        CompareScalar(s.mask2, p2, lo, CMPMODE::LT, n);
        const LocalTensor<uint16_t> m = s.mask.ReinterpretCast<uint16_t>();
        Or(m, m, s.mask2.ReinterpretCast<uint16_t>(), static_cast<int32_t>(n / 16));
        Muls(s.tmp, f, 2.0f, static_cast<int32_t>(n));
        Select(f, s.mask, s.tmp, f, SELMODE::VSEL_TENSOR_TENSOR_MODE, n);
    }

    float overflow_ = vec::kInf;
    HiF8Scale scale_ = HiF8Scale::NONE;
    float tensorAmax_ = 0.0f;
    float tensorNan_ = 0.0f;
};

}  // namespace npuq
