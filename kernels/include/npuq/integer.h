// Symmetric formats with a float32 scale per row or per group (formats.md "Integer formats";
// formats/integer.py): int8sym / int4sym round x / scale to integers (RNE, clamped to +-127 /
// +-7); fp8e4m3 / fp8e5m2 round |x| / scale onto the FP8 grid (RNE, saturating at 448 / 57344)
// and re-apply the sign. scale = amax / max, divided by where(scale > 0, scale, 1); the result
// is q * scale, NaN for a block that holds NaN or Inf.
// A per-channel row longer than a tile is quantized in pieces, its amax taken by a first pass
// of BlockKernel over the row (RunBlock).
#pragma once

#include "npuq/encode.h"

namespace npuq {

class SymFamily {
 public:
    static constexpr bool kTensorAmax = false;
    static constexpr bool kBlockAmax = true;  // needs a block's amax when the block spans tiles
    __aicore__ inline bool NeedsBlockAmax() const { return true; }

    __aicore__ inline void Init(const QuantDequantParams& p) {
        switch (static_cast<FormatId>(p.format)) {
            case FormatId::INT4SYM: max_ = 7.0f; integer_ = true; break;
            case FormatId::FP8E4M3: max_ = 448.0f; integer_ = false; grid_ = {0x1p-6f, 0x1p-3f, 448.0f, false}; break;
            case FormatId::FP8E5M2: max_ = 57344.0f; integer_ = false; grid_ = {0x1p-14f, 0x1p-2f, 57344.0f, false}; break;
            default: max_ = 127.0f; integer_ = true; break;
        }
    }

    __aicore__ inline void Run(const vec::Scratch& s, const AscendC::LocalTensor<float>& x,
                               const AscendC::LocalTensor<float>& y, uint32_t nb, uint32_t stride) const {
        const uint32_t n = vec::Whole(nb * stride);
        vec::AbsFill(s.abs, x, s, n);
        vec::BlockMax(s.b[0], s.abs, nb, stride, s.tmp);  // may fold s.abs: not used again
        Quantize(s, x, y, nb, stride);
    }

    // A piece of one block whose (Inf-poisoned) amax the kernel already has.
    __aicore__ inline void RunBlock(const vec::Scratch& s, const AscendC::LocalTensor<float>& x,
                                    const AscendC::LocalTensor<float>& y, uint32_t stride, float amax) const {
        AscendC::Duplicate(s.b[0], amax, static_cast<int32_t>(kRepeatFloats));
        Quantize(s, x, y, 1, stride);
    }

    // Quantize: codes (integers: two's complement, 0 in a NaN / Inf row; FP8: the OCP byte,
    // the NaN code in such a row) and the float32 scale of each block (formats: amax / max,
    // NaN for a block holding NaN, +Inf for one holding Inf but no NaN).
    __aicore__ inline void Encode(const vec::Scratch& s, const enc::Tables& e, const AscendC::LocalTensor<float>& x,
                                  const AscendC::LocalTensor<float>& y, uint32_t nb, uint32_t stride,
                                  const AscendC::LocalTensor<uint8_t>& codes,
                                  const AscendC::LocalTensor<uint8_t>& scales) const {
        enc::NanBlocks(s, x, s.b[5], nb, stride);
        vec::AbsFill(s.abs, x, s, vec::Whole(nb * stride));
        vec::BlockMax(s.b[0], s.abs, nb, stride, s.tmp);
        EncodeLevels(s, e, x, y, nb, stride, codes, scales);
    }

    // A piece of one block: its Inf-poisoned amax and NaN flag (1 / 0) from the kernel.
    __aicore__ inline void EncodeBlock(const vec::Scratch& s, const enc::Tables& e, const AscendC::LocalTensor<float>& x,
                                       const AscendC::LocalTensor<float>& y, uint32_t stride, float amax, float nan,
                                       const AscendC::LocalTensor<uint8_t>& codes,
                                       const AscendC::LocalTensor<uint8_t>& scales) const {
        AscendC::Duplicate(s.b[0], amax, static_cast<int32_t>(kRepeatFloats));
        AscendC::Duplicate(s.b[5], nan, static_cast<int32_t>(kRepeatFloats));
        EncodeLevels(s, e, x, y, 1, stride, codes, scales);
    }

    __aicore__ inline enc::Table TableOf() const {
        return integer_ ? enc::Table::NONE : (max_ == 448.0f ? enc::Table::E4M3 : enc::Table::E5M2);
    }

 private:
    // s.b[0]: amax (Inf-poisoned), s.b[5]: NaN flags.
    __aicore__ inline void EncodeLevels(const vec::Scratch& s, const enc::Tables& e,
                                        const AscendC::LocalTensor<float>& x, const AscendC::LocalTensor<float>& y,
                                        uint32_t nb, uint32_t stride, const AscendC::LocalTensor<uint8_t>& codes,
                                        const AscendC::LocalTensor<uint8_t>& scales) const {
        using namespace AscendC;
        const uint32_t n = vec::Whole(nb * stride);
        Levels(s, x, y, nb, stride);
        enc::FiniteBlockLanes(s, s.b[6], nb, stride);
        Select(y, s.mask2, y, integer_ ? 0.0f : vec::kNaN, SELMODE::VSEL_TENSOR_SCALAR_MODE, n);
        if (integer_) enc::IntegerCodes(s, y, nb * stride, max_ == 7.0f ? 4 : 8, codes);
        else enc::TableCodes(s, e, y, nb * stride, 8, codes);
        enc::StoredScale(s, scales.ReinterpretCast<float>(), s.b[1], s.b[5], s.b[6], nb);
    }

    __aicore__ inline void Quantize(const vec::Scratch& s, const AscendC::LocalTensor<float>& x,
                                    const AscendC::LocalTensor<float>& y, uint32_t nb, uint32_t stride) const {
        Levels(s, x, y, nb, stride);
        vec::Expand(s.e0, s.b[1], nb, stride);
        AscendC::Mul(y, y, s.e0, static_cast<int32_t>(vec::Whole(nb * stride)));
    }

    // s.b[0] holds the blocks' amax, +Inf for a block with NaN or Inf. The signed levels into
    // y, each block's scale (NaN for a NaN / Inf block) into s.b[1], finite blocks in s.bmask.
    __aicore__ inline void Levels(const vec::Scratch& s, const AscendC::LocalTensor<float>& x,
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
        Duplicate(div, max_, c);
        Div(scale, amax, div, c);                                  // amax / max
        vec::NonZeroMask(s.bmask2, scale, nbw);
        Select(div, s.bmask2, scale, 1.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, nbw);
        Select(scale, s.bmask, scale, vec::kNaN, SELMODE::VSEL_TENSOR_SCALAR_MODE, nbw);
        vec::Expand(s.e0, div, nb, stride);
        // On |x| (NaN as Inf: no NaN meets Mins), the sign put back last: RNE and the clamp are
        // odd functions, so this is x / div rounded and clamped to +-max, -0 included.
        vec::AbsFill(s.abs, x, s, n);
        Div(y, s.abs, s.e0, ni);
        if (integer_) {
            Mins(y, y, max_, ni);   // before RNE: max is an integer, so the order does not matter
            vec::RoundEven(y, n);
        } else {
            vec::RoundToGrid(y, s.tmp, grid_, s, n);
        }
        vec::CopySign(y, x, s.tmp, s, n);
    }

    float max_ = 127.0f;
    bool integer_ = true;
    vec::Grid grid_{};
};

}  // namespace npuq
