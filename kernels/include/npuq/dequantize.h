// npuq::Dequantize: formats.Packed rows -> float32 (rows, length), exactly formats.decode.
//
// Packed layout (formats/base.py, packing.py): per row, the codes of every block (4-bit codes
// two per byte, element 2k in the low nibble; a 4-bit block of odd length carries one pad
// nibble), then per block its scale bytes: one E8M0 (MX) or E4M3 (NVF4/NVFP4) byte, a float32
// (int8sym, int4sym, fp8*), or 4 bytes per 64 for HiF4 [level-1 byte, level-2 bits, level-3
// bits 0-7, 8-15] (bits MSB first). NVFP4 also multiplies by a float32 tensor scale.
//
// Everything is a table lookup on the vector unit, driven by offset patterns that depend only
// on the tile geometry and are computed once per core:
//   code byte of each output column  Gather (half)  the tile's code bytes, widened to half
//   value of the code                 Gather (float) a 256-entry table (8-bit), or a 512-entry
//                                     table holding the low-nibble values then the high-nibble
//                                     values of every byte (4-bit), offset by the column's nibble
//   multiplier of the column          Gather (float) the tile's per-block (HiF4: per-4) values
// out = value * multiplier, one float32 multiply, as formats.decode does.
#pragma once

#include "npuq/codec.h"
#include "npuq/vec.h"

namespace npuq {

class DequantizeKernel {
 public:
    __aicore__ inline void Init(GM_ADDR codes, GM_ADDR scales, GM_ADDR tensorScale, GM_ADDR y,
                                const DequantizeParams& p) {
        p_ = p;
        g_ = PlanDequantize(p);
        const uint64_t perCore = p.rowsPerCore == 0 ? p.rows : p.rowsPerCore;
        const uint64_t first = perCore * static_cast<uint64_t>(AscendC::GetBlockIdx());
        row0_ = static_cast<uint32_t>(first < p.rows ? first : p.rows);
        row1_ = static_cast<uint32_t>(first + perCore < p.rows ? first + perCore : p.rows);
        codesGm_.SetGlobalBuffer(reinterpret_cast<__gm__ uint8_t*>(codes), static_cast<uint64_t>(p.rows) * p.codeBytes);
        scalesGm_.SetGlobalBuffer(reinterpret_cast<__gm__ uint8_t*>(scales),
                                  static_cast<uint64_t>(p.rows) * p.scaleBytes + kUbBlockBytes);
        yGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(y), static_cast<uint64_t>(p.rows) * p.length);

        pipe_.InitBuffer(codeQ_, 2, kDqCodeBytes);
        pipe_.InitBuffer(scaleQ_, 2, kDqScaleBytes);
        pipe_.InitBuffer(outQ_, 2, kDqTileElems * sizeof(float));
        pipe_.InitBuffer(codeHalfBuf_, kDqCodeBytes * sizeof(half));
        pipe_.InitBuffer(byteBuf_, kDqTileElems * sizeof(half));
        pipe_.InitBuffer(offBuf_, kDqTileElems * sizeof(int32_t));
        pipe_.InitBuffer(multElBuf_, kDqTileElems * sizeof(float));
        pipe_.InitBuffer(patBuf_, 3 * kDqTileElems * sizeof(uint32_t));
        pipe_.InitBuffer(scaleHalfBuf_, kDqScaleBytes * sizeof(half));
        pipe_.InitBuffer(scaleWordBuf_, kDqScaleBytes * sizeof(float));
        pipe_.InitBuffer(multBuf_, kDqMultCap * sizeof(float));
        pipe_.InitBuffer(subBuf_, 3 * kDqMultCap * sizeof(float));
        pipe_.InitBuffer(groupBuf_, 5 * kDqGroupCap * sizeof(float));
        pipe_.InitBuffer(tableBuf_, (512 + 256 + 4 * kRepeatFloats) * sizeof(float));
        pipe_.InitBuffer(tsBuf_, kUbBlockBytes);

        const AscendC::LocalTensor<uint32_t> pats = patBuf_.Get<uint32_t>();
        patCode_ = pats;
        patNibble_ = pats[kDqTileElems].ReinterpretCast<int32_t>();
        patMult_ = pats[2 * kDqTileElems];
        const AscendC::LocalTensor<float> tables = tableBuf_.Get<float>();
        codeTable_ = tables;
        scaleTable_ = tables[512];
        bitPow_ = tables[768];
        BuildTables();
        BuildPatterns();
        if (p.hasTensorScale) ReadTensorScale(tensorScale);
    }

    __aicore__ inline void Process() {
        if (!g_.chunked) {
            for (uint32_t r = row0_; r < row1_; r += g_.tileRows) Run(r, MinU(g_.tileRows, row1_ - r), 0, p_.length);
            return;
        }
        // Pieces: whole blocks, or (blocks longer than a tile) pieces never crossing a block.
        const uint32_t step = g_.width;
        for (uint32_t r = row0_; r < row1_; ++r) {
            if (g_.tileBlock == g_.block) {
                for (uint32_t c = 0; c < p_.length; c += step) Run(r, 1, c, MinU(step, p_.length - c));
            } else {
                for (uint32_t b0 = 0; b0 < p_.length; b0 += g_.block) {
                    const uint32_t b1 = MinU(p_.length, b0 + g_.block);
                    for (uint32_t c = b0; c < b1; c += step) Run(r, 1, c, MinU(step, b1 - c));
                }
            }
        }
    }

 private:
    __aicore__ inline void Run(uint32_t row, uint32_t rows, uint32_t col, uint32_t width) {
        CopyIn(row, rows, col, width);
        Compute(rows, width);
        CopyOut(row, rows, col, width);
    }

    // Code bytes of columns [col, col + width): a whole byte range (col starts a block or a
    // 64-column piece, so a 4-bit range starts on a byte).
    __aicore__ inline void CopyIn(uint32_t row, uint32_t rows, uint32_t col, uint32_t width) {
        const uint32_t slot0 = DequantSlot(col, g_.block, g_.blockCodes);
        const uint32_t slots = DequantSlot(width - 1, g_.tileBlock, g_.tileBlockCodes) + 1;
        const uint32_t codeLen = g_.codeBits == 4 ? CeilDiv(slots, 2) : slots;
        const uint32_t codeOff = g_.codeBits == 4 ? slot0 / 2 : slot0;
        const AscendC::LocalTensor<uint8_t> codes = codeQ_.AllocTensor<uint8_t>();
        AscendC::DataCopyPad(codes, codesGm_[static_cast<uint64_t>(row) * p_.codeBytes + codeOff],
                             AscendC::DataCopyExtParams{static_cast<uint16_t>(rows), codeLen, p_.codeBytes - codeLen,
                                                        (g_.codeStride - RoundUp(codeLen, kUbBlockBytes)) / kUbBlockBytes, 0},
                             AscendC::DataCopyPadExtParams<uint8_t>{false, 0, 0, 0});
        codeQ_.EnQue(codes);
        if (g_.scaleBytes == 0) return;
        const uint32_t block0 = col / g_.block;
        const uint32_t scaleLen = (CeilDiv(col + width, g_.block) - block0) * g_.scaleBytes;
        const AscendC::LocalTensor<uint8_t> scales = scaleQ_.AllocTensor<uint8_t>();
        AscendC::DataCopyPad(scales, scalesGm_[static_cast<uint64_t>(row) * p_.scaleBytes + block0 * g_.scaleBytes],
                             AscendC::DataCopyExtParams{static_cast<uint16_t>(rows), scaleLen, p_.scaleBytes - scaleLen,
                                                        (g_.scaleStride - RoundUp(scaleLen, kUbBlockBytes)) / kUbBlockBytes, 0},
                             AscendC::DataCopyPadExtParams<uint8_t>{false, 0, 0, 0});
        scaleQ_.EnQue(scales);
    }

    __aicore__ inline void CopyOut(uint32_t row, uint32_t rows, uint32_t col, uint32_t width) {
        const AscendC::LocalTensor<float> out = outQ_.DeQue<float>();
        const uint32_t len = width * sizeof(float);
        AscendC::DataCopyPad(yGm_[static_cast<uint64_t>(row) * p_.length + col], out,
                             AscendC::DataCopyExtParams{static_cast<uint16_t>(rows), len,
                                                        (g_.outStride * 4 - RoundUp(len, kUbBlockBytes)) / kUbBlockBytes,
                                                        (p_.length - width) * 4, 0});
        outQ_.FreeTensor(out);
    }

    __aicore__ inline void Compute(uint32_t rows, uint32_t width) {
        using namespace AscendC;
        (void)width;  // the patterns cover the widest tile; lanes past `width` are not copied out
        const uint32_t n = rows * g_.outStride;
        const LocalTensor<float> out = outQ_.AllocTensor<float>();
        if (g_.scaleBytes != 0) Multipliers(rows);
        // The code byte of every column, as half, then its value.
        const LocalTensor<uint8_t> codes = codeQ_.DeQue<uint8_t>();
        const LocalTensor<half> codeHalf = codeHalfBuf_.Get<half>();
        const LocalTensor<half> bytes = byteBuf_.Get<half>();
        const LocalTensor<int32_t> off = offBuf_.Get<int32_t>();
        Cast(codeHalf, codes, RoundMode::CAST_NONE, rows * g_.codeStride);
        codeQ_.FreeTensor(codes);
        Gather(bytes, codeHalf, patCode_, 0, n);
        Cast(off, bytes, RoundMode::CAST_RINT, n);
        ShiftLeft(off, off, 2, static_cast<int32_t>(n));                   // byte -> table offset
        if (g_.codeBits == 4) Add(off, off, patNibble_, static_cast<int32_t>(n));  // high nibble: +1024
        Gather(out, codeTable_, off.ReinterpretCast<uint32_t>(), 0, n);
        if (g_.scaleBytes != 0) {
            const LocalTensor<float> multEl = multElBuf_.Get<float>();
            Gather(multEl, mult_, patMult_, 0, n);
            Mul(out, out, multEl, static_cast<int32_t>(n));
        }
        outQ_.EnQue(out);
    }

    // The tile's multipliers into mult_ (multStride per row): scale-table values (times the
    // tensor scale for NVFP4), the float32 scales themselves, or HiF4's per-4 products.
    __aicore__ inline void Multipliers(uint32_t rows) {
        using namespace AscendC;
        const LocalTensor<uint8_t> scales = scaleQ_.DeQue<uint8_t>();
        const uint32_t count = rows * g_.scaleStride;
        if (g_.scaleBytes == 4 && !g_.subScales) {
            // float32 scales: copied as words (exact) so scaleQ_ can be released.
            const LocalTensor<float> words = scaleWordBuf_.Get<float>();
            uint64_t all[2] = {~0ull, 0};
            Copy(words, scales.ReinterpretCast<float>(), all, static_cast<uint8_t>(CeilDiv(count / 4, kRepeatFloats)),
                 CopyRepeatParams(1, 1, 8, 8));
            mult_ = words;
            scaleQ_.FreeTensor(scales);
            return;
        }
        const LocalTensor<half> sh = scaleHalfBuf_.Get<half>();
        Cast(sh, scales, RoundMode::CAST_NONE, count);
        scaleQ_.FreeTensor(scales);
        if (!g_.subScales) {
            const LocalTensor<int32_t> si = scaleWordBuf_.Get<int32_t>();
            Cast(si, sh, RoundMode::CAST_RINT, count);
            ShiftLeft(si, si, 2, static_cast<int32_t>(count));
            mult_ = multBuf_.Get<float>();
            Gather(mult_, scaleTable_, si.ReinterpretCast<uint32_t>(), 0, count);
            if (p_.hasTensorScale) Muls(mult_, mult_, tensorScale_, static_cast<int32_t>(count));
            return;
        }
        SubScaleMultipliers(sh, count);
    }

    // HiF4: per group of 64 the bytes [l1, b8, b4a, b4b]; per sub-group i of 4 the multiplier
    // (1 + bit(b8, 7 - i/2)) * (1 + bit(b4, 7 - i%8)) * level1(l1), b4 = i < 8 ? b4a : b4b.
    // A bit k of a byte value v is floor(v / 2^(7-k)) - 2 floor(v / 2^(8-k)), exact in float32.
    __aicore__ inline void SubScaleMultipliers(const AscendC::LocalTensor<half>& sh, uint32_t count) {
        using namespace AscendC;
        const uint32_t groups = count / 4;   // including the pad groups of each row's 32 bytes
        const uint32_t subs = 16 * groups;
        const int32_t gc = static_cast<int32_t>(vec::Whole(groups));
        const int32_t sc = static_cast<int32_t>(subs);
        const LocalTensor<float> sf = scaleWordBuf_.Get<float>();
        Cast(sf, sh, RoundMode::CAST_NONE, count);
        const LocalTensor<float> grp = groupBuf_.Get<float>();
        const LocalTensor<float> l1 = grp, b8 = grp[kDqGroupCap], b4a = grp[2 * kDqGroupCap],
                                 b4b = grp[3 * kDqGroupCap];
        const LocalTensor<uint32_t> gpat = grp[4 * kDqGroupCap].ReinterpretCast<uint32_t>();
        // The group records are 16 bytes of floats apart: byte c of group g at 16 g + 4 c.
        const LocalTensor<float> idx = b4b;
        CreateVecIndex(idx, 0.0f, static_cast<uint32_t>(gc));
        Muls(idx, idx, 16.0f, gc);
        Cast(gpat.ReinterpretCast<int32_t>(), idx, RoundMode::CAST_RINT, static_cast<uint32_t>(gc));
        Gather(l1, sf, gpat, 0, groups);
        Gather(b8, sf, gpat, 4, groups);
        Gather(b4a, sf, gpat, 8, groups);
        Gather(b4b, sf, gpat, 12, groups);
        const LocalTensor<int32_t> l1i = gpat.ReinterpretCast<int32_t>();
        Cast(l1i, l1, RoundMode::CAST_RINT, groups);
        ShiftLeft(l1i, l1i, 2, static_cast<int32_t>(groups));
        Gather(l1, scaleTable_, l1i.ReinterpretCast<uint32_t>(), 0, groups);  // level-1 value
        const LocalTensor<float> sub = subBuf_.Get<float>();
        const LocalTensor<float> s8 = sub, s4 = sub[kDqMultCap], t = sub[2 * kDqMultCap];
        vec::Expand(s8, b8, groups, 16);
        Bit(s8, t, bitPow_, bitPow_[kRepeatFloats], subs);          // 1 + bit(b8, 7 - i/2)
        const uint32_t rep = CeilDiv(groups, 8);
        Brcb(s4, b4a, static_cast<uint8_t>(rep), BrcbRepeatParams(2, 16));     // lanes 0-7 of 16
        Brcb(s4[8], b4b, static_cast<uint8_t>(rep), BrcbRepeatParams(2, 16));  // lanes 8-15
        Bit(s4, t, bitPow_[2 * kRepeatFloats], bitPow_[3 * kRepeatFloats], subs);  // 1 + bit(b4, 7 - i%8)
        Mul(s8, s8, s4, sc);
        mult_ = multBuf_.Get<float>();
        vec::Expand(mult_, l1, groups, 16);
        Mul(mult_, s8, mult_, sc);
    }

    // v = 1 + floor(v * hi) - 2 floor(v * lo), hi / lo one repeat of per-lane powers of two.
    __aicore__ inline static void Bit(const AscendC::LocalTensor<float>& v, const AscendC::LocalTensor<float>& t,
                                     const AscendC::LocalTensor<float>& hi, const AscendC::LocalTensor<float>& lo,
                                     uint32_t count) {
        using namespace AscendC;
        const uint32_t repeats = CeilDiv(count, kRepeatFloats);
        MulConst(t, v, lo, repeats);
        Cast(t, t, RoundMode::CAST_FLOOR, repeats * kRepeatFloats);
        MulConst(v, v, hi, repeats);
        Cast(v, v, RoundMode::CAST_FLOOR, repeats * kRepeatFloats);
        Muls(t, t, 2.0f, static_cast<int32_t>(count));
        Sub(v, v, t, static_cast<int32_t>(count));
        Adds(v, v, 1.0f, static_cast<int32_t>(count));
    }

    // dst = src * c, c one repeat read by every repeat.
    __aicore__ inline static void MulConst(const AscendC::LocalTensor<float>& dst, const AscendC::LocalTensor<float>& src,
                                           const AscendC::LocalTensor<float>& c, uint32_t repeats) {
        for (uint32_t r = 0; r < repeats; r += vec::kMaxRepeat)
            AscendC::Mul(dst[r * kRepeatFloats], src[r * kRepeatFloats], c, kRepeatFloats,
                         static_cast<uint8_t>(MinU(vec::kMaxRepeat, repeats - r)),
                         AscendC::BinaryRepeatParams(1, 1, 1, 8, 8, 0));
    }

    // ---------------------------------------------------------------- set-up

    // Code and scale tables on the scalar unit (a few hundred stores per core), and for HiF4
    // the per-lane powers 2^-(7-k), 2^-(8-k) with k = i/2 (level 2) and k = i%8 (level 3),
    // i = lane % 16 the sub-group within its group.
    __aicore__ inline void BuildTables() {
        const AscendC::LocalTensor<uint32_t> code = codeTable_.ReinterpretCast<uint32_t>();
        const AscendC::LocalTensor<uint32_t> scale = scaleTable_.ReinterpretCast<uint32_t>();
        const FormatId f = static_cast<FormatId>(p_.format);
        for (uint32_t b = 0; b < 256; ++b) {
            if (g_.codeBits == 4) {
                code.SetValue(b, NibbleBits(f, b & 0xFu));
                code.SetValue(256 + b, NibbleBits(f, b >> 4));
            } else {
                code.SetValue(b, ByteBits(f, b));
            }
            scale.SetValue(b, ScaleBits(f, b));
        }
        if (g_.subScales) {
            const AscendC::LocalTensor<uint32_t> pw = bitPow_.ReinterpretCast<uint32_t>();
            for (uint32_t l = 0; l < kRepeatFloats; ++l) {
                const uint32_t i = l % 16;
                const uint32_t k8 = i / 2, k4 = i % 8;
                pw.SetValue(l, (127u - (7u - k8)) << 23);
                pw.SetValue(kRepeatFloats + l, (127u - (8u - k8)) << 23);
                pw.SetValue(2 * kRepeatFloats + l, (127u - (7u - k4)) << 23);
                pw.SetValue(3 * kRepeatFloats + l, (127u - (8u - k4)) << 23);
            }
        }
        const event_t toV = static_cast<event_t>(AscendC::GetTPipePtr()->FetchEventID(AscendC::HardEvent::S_V));
        AscendC::SetFlag<AscendC::HardEvent::S_V>(toV);
        AscendC::WaitFlag<AscendC::HardEvent::S_V>(toV);
    }

    __aicore__ inline static uint32_t ByteBits(FormatId f, uint32_t b) {
        switch (f) {
            case FormatId::HIF8: return codec::Hif8Bits(b);
            case FormatId::MXFP8E4M3:
            case FormatId::FP8E4M3: return codec::E4m3Bits(b);
            case FormatId::MXFP8E5M2:
            case FormatId::FP8E5M2: return codec::E5m2Bits(b);
            default: return codec::Int8Bits(b);
        }
    }
    __aicore__ inline static uint32_t NibbleBits(FormatId f, uint32_t nib) {
        switch (f) {
            case FormatId::HIF4:
            case FormatId::HIFX4_V12: return codec::S1p2Bits(nib);
            case FormatId::INT4SYM: return codec::Int4Bits(nib);
            default: return codec::E2m1Bits(nib);
        }
    }
    __aicore__ inline static uint32_t ScaleBits(FormatId f, uint32_t b) {
        switch (f) {
            case FormatId::NVF4:
            case FormatId::NVFP4: return codec::E4m3Bits(b);
            case FormatId::HIF4: return codec::E6m2Bits(b);
            default: return codec::E8m0Bits(b);  // MX, HiF4 v12 (level 1 = eb + 127)
        }
    }

    // Offset patterns of the widest tile, element e = row * outStride + j: the code byte of
    // column j (times 2: a half element), +1024 for a high nibble, and the byte offset of its
    // multiplier. Integer arithmetic in float32, exact: every value is below 2^24, and
    // FloorDiv does not depend on how Div rounds (see there).
    __aicore__ inline void BuildPatterns() {
        using namespace AscendC;
        const uint32_t n = vec::Whole(g_.tileRows * g_.outStride);
        const int32_t c = static_cast<int32_t>(n);
        const LocalTensor<float> idx = codeHalfBuf_.Get<float>();   // unused until the first tile
        const LocalTensor<float> sub = subBuf_.Get<float>();
        const LocalTensor<float> row = sub, col = sub[kDqMultCap], blk = sub[2 * kDqMultCap];
        const LocalTensor<float> t = multBuf_.Get<float>();
        const LocalTensor<float> slot = multElBuf_.Get<float>();
        CreateVecIndex(idx, 0.0f, n);
        FloorDiv(row, idx, static_cast<float>(g_.outStride), t, n);
        Muls(t, row, static_cast<float>(g_.outStride), c);
        Sub(col, idx, t, c);
        Mins(col, col, static_cast<float>(g_.width - 1), c);  // lanes past the data: a valid column
        FloorDiv(blk, col, static_cast<float>(g_.tileBlock), t, n);
        Muls(t, blk, static_cast<float>(g_.tileBlock), c);
        Sub(slot, col, t, c);                                 // column within its block
        Muls(t, blk, static_cast<float>(g_.tileBlockCodes), c);
        Add(slot, slot, t, c);                                // code slot
        LocalTensor<float> byte = slot;
        if (g_.codeBits == 4) {
            byte = idx;
            FloorDiv(byte, slot, 2.0f, t, n);
            Muls(t, byte, 2.0f, c);
            Sub(t, slot, t, c);                               // nibble: 0 low, 1 high
            Muls(t, t, 1024.0f, c);
            Cast(patNibble_, t, RoundMode::CAST_RINT, n);
        }
        Muls(t, row, static_cast<float>(g_.codeStride), c);
        Add(t, t, byte, c);
        Muls(t, t, 2.0f, c);
        Cast(patCode_.ReinterpretCast<int32_t>(), t, RoundMode::CAST_RINT, n);
        if (g_.multStride != 0) {
            if (g_.subScales) FloorDiv(blk, col, 4.0f, t, n);  // sub-group of 4 within the row
            Muls(t, row, static_cast<float>(g_.multStride), c);
            Add(t, t, blk, c);
            Muls(t, t, 4.0f, c);
            Cast(patMult_.ReinterpretCast<int32_t>(), t, RoundMode::CAST_RINT, n);
        }
    }

    // dst = floor(src / d) for integers 0 <= src < 2^16 (a tile's indices) and d >= 1; `tmp` is
    // clobbered. 910B's Div is not documented as correctly rounded: floor(k*d / d) could be
    // k - 1. (src + 0.5) / d sits at least 0.5 / d from every integer, and a quotient below
    // 2^16 / d is off by at most 2^-7 / d even several ulps out, so the floor is exact.
    __aicore__ inline static void FloorDiv(const AscendC::LocalTensor<float>& dst, const AscendC::LocalTensor<float>& src,
                                           float d, const AscendC::LocalTensor<float>& tmp, uint32_t n) {
        const int32_t c = static_cast<int32_t>(n);
        AscendC::Adds(dst, src, 0.5f, c);
        AscendC::Duplicate(tmp, d, c);
        AscendC::Div(dst, dst, tmp, c);
        AscendC::Cast(dst, dst, AscendC::RoundMode::CAST_FLOOR, n);
    }

    __aicore__ inline void ReadTensorScale(GM_ADDR tensorScale) {
        AscendC::GlobalTensor<float> tsGm;
        tsGm.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(tensorScale), 1);
        const AscendC::LocalTensor<float> ts = tsBuf_.Get<float>();
        AscendC::DataCopyPad(ts, tsGm, AscendC::DataCopyExtParams{1, 4, 0, 0, 0},
                             AscendC::DataCopyPadExtParams<float>{false, 0, 0, 0});
        const event_t toS = static_cast<event_t>(AscendC::GetTPipePtr()->FetchEventID(AscendC::HardEvent::MTE2_S));
        AscendC::SetFlag<AscendC::HardEvent::MTE2_S>(toS);
        AscendC::WaitFlag<AscendC::HardEvent::MTE2_S>(toS);
        tensorScale_ = ts.GetValue(0);
    }

    DequantizeParams p_{};
    DqLayout g_{};
    uint32_t row0_ = 0, row1_ = 0;
    float tensorScale_ = 1.0f;
    AscendC::TPipe pipe_;
    AscendC::TQue<AscendC::QuePosition::VECIN, 2> codeQ_, scaleQ_;
    AscendC::TQue<AscendC::QuePosition::VECOUT, 2> outQ_;
    AscendC::TBuf<AscendC::QuePosition::VECCALC> codeHalfBuf_, byteBuf_, offBuf_, multElBuf_, patBuf_, scaleHalfBuf_,
        scaleWordBuf_, multBuf_, subBuf_, groupBuf_, tableBuf_, tsBuf_;
    AscendC::LocalTensor<uint32_t> patCode_, patMult_;
    AscendC::LocalTensor<int32_t> patNibble_;
    AscendC::LocalTensor<float> codeTable_, scaleTable_, bitPow_, mult_;
    AscendC::GlobalTensor<uint8_t> codesGm_, scalesGm_;
    AscendC::GlobalTensor<float> yGm_;
};

__aicore__ inline void Dequantize(GM_ADDR codes, GM_ADDR scales, GM_ADDR tensorScale, GM_ADDR y, GM_ADDR workspace,
                                  const DequantizeParams& p) {
    (void)workspace;
    if (p.rows == 0 || p.length == 0) return;
    DequantizeKernel kernel;
    kernel.Init(codes, scales, tensorScale, y, p);
    kernel.Process();
}

}  // namespace npuq
