// NVF4 (single level) and NVFP4 (two level) fake quantization, E2M1 elements in blocks of 16
// (formats.md "NVF4"; formats/nvfp4.py).
//
// Per block, in the spec's order: sf = min(amax / den, 448) with den = 6 (NVF4) or
// fp32(6 * ts) (NVFP4, ts = tensor amax / 2688); s = sf rounded to E4M3 (RNE, exponent floored
// at -6); mult = s (NVF4) or s * ts; elements |x| / where(mult > 0, mult, 1) rounded to E2M1
// (RNE, saturating at 6); result sign * q * mult. A block holding NaN or Inf becomes NaN.
// The tensor scale needs every core's amax: BlockKernel runs a first pass over the core's rows
// (finite |x| only), exchanges per-core maxima through the workspace around SyncAll and hands
// ts to SetTensorScale before the quantizing pass.
#pragma once

#include "npuq/encode.h"

namespace npuq {

class NvFp4Family {
 public:
    static constexpr bool kTensorAmax = true;  // NVFP4 only; NVF4 ignores it (see Init)
    static constexpr bool kBlockAmax = false;
    static constexpr bool kRawTensorAmax = false;  // the kernel turns the amax into ts / den
    static constexpr float kTensorAmaxFill = 0.0f;  // over finite |x| only

    __aicore__ inline void Init(const QuantDequantParams& p) {
        twoLevel_ = p.format == static_cast<uint32_t>(FormatId::NVFP4);
    }
    __aicore__ inline bool NeedsTensorAmax() const { return twoLevel_; }

    // ts = amax > 0 ? amax / (6 * 448) : 1 and den = fp32(6 * ts), both computed on the vector
    // unit (by the kernel) in the reference's float32 operation order.
    __aicore__ inline void SetTensorScale(float ts, float den) {
        ts_ = ts;
        den_ = den;
    }

    __aicore__ inline void Run(const vec::Scratch& s, const AscendC::LocalTensor<float>& x,
                               const AscendC::LocalTensor<float>& y, uint32_t nb, uint32_t stride) const {
        Levels<false>(s, x, y, nb, stride);
        vec::Expand(s.e0, s.b[3], nb, stride);
        AscendC::Mul(y, y, s.e0, static_cast<int32_t>(vec::Whole(nb * stride)));
    }

    // Quantize (NVF4; NVFP4's tensor scale has no output): E2M1 codes and the E4M3 byte of
    // each block scale, 0x7F for a NaN block. A normal E4M3 value's byte is its top 12 bits
    // minus (127 - 7) << 3, a subnormal's (m * 2^-9) is m.
    __aicore__ inline void Encode(const vec::Scratch& s, const enc::Tables& e, const AscendC::LocalTensor<float>& x,
                                  const AscendC::LocalTensor<float>& y, uint32_t nb, uint32_t stride,
                                  const AscendC::LocalTensor<uint8_t>& codes,
                                  const AscendC::LocalTensor<uint8_t>& scales) const {
        using namespace AscendC;
        const uint32_t nbw = vec::Whole(nb);
        const int32_t c = static_cast<int32_t>(nbw);
        Levels<true>(s, x, y, nb, stride);
        enc::TableCodes(s, e, y, nb * stride, 4, codes);
        const LocalTensor<float>& sf = s.b[1];
        const LocalTensor<float>& normal = s.b[4];
        const LocalTensor<float>& sub = s.b[5];
        ShiftRight(normal.ReinterpretCast<uint32_t>(), sf.ReinterpretCast<uint32_t>(), 20u, c);
        enc::SmallU32ToFloat(normal, normal.ReinterpretCast<uint32_t>(), s.b[6].ReinterpretCast<uint32_t>(), nbw);
        Adds(normal, normal, -960.0f, c);
        Muls(sub, sf, 512.0f, c);
        CompareScalar(s.bmask2, sf, 0x1p-6f, CMPMODE::GE, nbw);
        Select(sub, s.bmask2, normal, sub, SELMODE::VSEL_TENSOR_TENSOR_MODE, nbw);
        Select(sub, s.bmask, sub, 127.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, nbw);
        enc::ToBytes(scales, sub, s.b[6].ReinterpretCast<half>(), nb);
    }

    __aicore__ inline enc::Table TableOf() const { return enc::Table::E2M1; }

 private:
    // Signed E2M1 values into y, the E4M3 scale into s.b[1], the multiplier (NaN for a NaN
    // block) into s.b[3], finite blocks in s.bmask. kEncode: y as formats.encode codes it, NaN
    // where |x| / mult is not finite (NaN / Inf elements).
    template <bool kEncode>
    __aicore__ inline void Levels(const vec::Scratch& s, const AscendC::LocalTensor<float>& x,
                                  const AscendC::LocalTensor<float>& y, uint32_t nb, uint32_t stride) const {
        using namespace AscendC;
        const uint32_t n = vec::Whole(nb * stride);
        const uint32_t nbw = vec::Whole(nb);
        const int32_t c = static_cast<int32_t>(nbw);
        const LocalTensor<float>& amax = s.b[0];
        const LocalTensor<float>& sf = s.b[1];
        const LocalTensor<float>& div = s.b[2];
        const LocalTensor<float>& mult = s.b[3];
        const LocalTensor<float>& t = s.b[4];
        vec::AbsFill(s.abs, x, s, n);                      // NaN/Inf make their block's amax Inf
        vec::BlockMax(amax, s.abs, nb, stride, s.tmp);
        vec::FiniteMask(s.bmask, amax, nbw);
        Select(amax, s.bmask, amax, 0.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, nbw);
        Duplicate(t, twoLevel_ ? den_ : 6.0f, c);
        Div(sf, amax, t, c);
        vec::RoundToGrid(sf, t, vec::Grid{0x1p-6f, 0x1p-3f, 448.0f, false}, s, nbw);  // min 448, E4M3 RNE
        if (twoLevel_) Muls(mult, sf, ts_, c); else Muls(mult, sf, 1.0f, c);
        vec::NonZeroMask(s.bmask2, mult, nbw);
        Select(div, s.bmask2, mult, 1.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, nbw);
        Select(mult, s.bmask, mult, vec::kNaN, SELMODE::VSEL_TENSOR_SCALAR_MODE, nbw);
        vec::Expand(s.e0, div, nb, stride);
        Div(y, s.abs, s.e0, static_cast<int32_t>(n));         // Inf in NaN blocks
        if constexpr (kEncode) vec::FiniteMask(s.mask2, y, n);  // y in [0, +Inf]: from the bits
        vec::RoundToGrid(y, s.tmp, vec::Grid{1.0f, 0.5f, 6.0f, false}, s, n);      // E2M1, RNE
        vec::CopySign(y, x, s.tmp, s, n);
        if constexpr (kEncode) Select(y, s.mask2, y, vec::kNaN, SELMODE::VSEL_TENSOR_SCALAR_MODE, n);
    }

    bool twoLevel_ = false;
    float ts_ = 1.0f;
    float den_ = 6.0f;
};

}  // namespace npuq
