// From element values and block scales to the bytes of formats.encode (formats/codecs.py,
// formats/packing.py): what npuq::Quantize adds to the QuantDequant families.
//
// Element codes: a family leaves in y the float32 value whose code formats.encode takes (a
// grid value, NaN where the reference's value is NaN). A grid value has at most 3 mantissa
// bits, so its code is a function of the top 12 bits of its pattern (sign, exponent, 3
// mantissa bits), as codecs.CodeTable encodes: a `ShiftRight` + `And` gives the byte offset
// into a 4096-entry half table (built once per core from codec.h, lowest code first as the
// reference builds it), one `Gather` the codes. Integers (int8sym / int4sym) are two's
// complement: q + 2^bits where q < 0. 4-bit codes are packed two per byte, element 2k in the
// low nibble, by two `Gather`s of the even and odd elements (byte offsets 8k and 8k + 4).
// Codes reach uint8 through half (exact: 0..255), the `Cast` half -> uint8 of A2.
//
// Index arithmetic is shifts, masks and exact small-integer float arithmetic: nothing here
// divides, so it does not depend on how `Div` rounds.
#pragma once

#include "npuq/codec.h"
#include "npuq/vec.h"

namespace npuq {
namespace enc {

using AscendC::LocalTensor;

constexpr uint32_t kLutEntries = 4096;   // top 12 bits of a float32
constexpr uint32_t kLutShift = 19;       // bits >> 19 = top 13 bits; & 0x1FFE = top 12 * 2 bytes
constexpr uint32_t kLutOffsetMask = 0x1FFEu;
constexpr uint32_t kMagic = 0x4B000000u;  // 2^23: (2^23 | k) - 2^23 = k for k < 2^23
constexpr float kTwo23 = 8388608.0f;

// The element code table a format stores (codecs.py), or none (integers, no LUT).
enum class Table : uint32_t { NONE, E2M1, E4M3, E5M2, HIF8, S1P2 };

// The state Quantize adds to a tile's Scratch: the code table and a constant (one repeat).
struct Tables {
    LocalTensor<half> lut;           // kLutEntries codes (as half) by top 12 bits
    LocalTensor<uint32_t> offMask;   // kLutOffsetMask
    // HiF4 bit packing, per 8 lanes (one group of per-8 values): bit weights MSB first of the
    // 8 per-8 flags; of the even / odd sub-group flags of 4 (two bytes: lanes 0-3, 4-7)
    LocalTensor<float> weights[3];
};
constexpr uint32_t kConstRepeats = 4;  // offMask, weights

NPUQ_AICORE inline uint32_t CodeBits(Table t, uint32_t code) {
    switch (t) {
        case Table::E2M1: return codec::E2m1Bits(code);
        case Table::E4M3: return codec::E4m3Bits(code);
        case Table::E5M2: return codec::E5m2Bits(code);
        case Table::HIF8: return codec::Hif8Bits(code);
        default: return codec::S1p2Bits(code);
    }
}

// codecs.CodeTable._encode_table: codes by top 12 bits, the lowest code winning a shared
// value; -0 is the zero's code when the table has no -0 of its own; NaN patterns (exponent
// all ones, top mantissa bits non-zero) give the NaN code, or 0 when the table has none.
// Entries no grid value reaches stay 0. Filled on the scalar unit once per core.
__aicore__ inline void BuildTable(const Tables& e, Table t) {
    using namespace AscendC;
    Duplicate(e.offMask, kLutOffsetMask, static_cast<int32_t>(kRepeatFloats));
    if (t != Table::NONE) Duplicate(e.lut, static_cast<half>(0.0f), static_cast<int32_t>(kLutEntries));
    const event_t toS = static_cast<event_t>(GetTPipePtr()->FetchEventID(HardEvent::V_S));
    SetFlag<HardEvent::V_S>(toS);
    WaitFlag<HardEvent::V_S>(toS);
    for (uint32_t i = 0; i < kRepeatFloats; ++i) {
        const uint32_t k = i % 8;
        e.weights[0].SetValue(i, static_cast<float>(128u >> k));
        e.weights[1].SetValue(i, static_cast<float>(128u >> (2 * (k % 4))));
        e.weights[2].SetValue(i, static_cast<float>(64u >> (2 * (k % 4))));
    }
    if (t == Table::NONE) {
        const event_t toV = static_cast<event_t>(GetTPipePtr()->FetchEventID(HardEvent::S_V));
        SetFlag<HardEvent::S_V>(toV);
        WaitFlag<HardEvent::S_V>(toV);
        return;
    }
    const uint32_t codes = (t == Table::E2M1 || t == Table::S1P2) ? 16u : 256u;
    const uint32_t nanCode = (t == Table::E4M3 || t == Table::E5M2) ? 0x7Fu : (t == Table::HIF8 ? 0x80u : 0u);
    bool negZero = false;
    for (uint32_t c = codes; c-- > 0;) {
        const uint32_t bits = CodeBits(t, c);
        if ((bits & 0x7F800000u) == 0x7F800000u && (bits & 0x7FFFFFu) != 0) continue;  // NaN
        negZero = negZero || bits == codec::kSignBit;
        e.lut.SetValue(bits >> 20, static_cast<half>(static_cast<float>(c)));
    }
    if (!negZero) e.lut.SetValue(0x800u, static_cast<half>(0.0f));  // every table here codes +0 as 0
    for (uint32_t k = 0x7F9u; k < 0x800u; ++k) {
        e.lut.SetValue(k, static_cast<half>(static_cast<float>(nanCode)));
        e.lut.SetValue(k + 0x800u, static_cast<half>(static_cast<float>(nanCode)));
    }
    const event_t toV = static_cast<event_t>(GetTPipePtr()->FetchEventID(HardEvent::S_V));
    SetFlag<HardEvent::S_V>(toV);
    WaitFlag<HardEvent::S_V>(toV);
}

// dst = src & c (uint32 lanes, n a multiple of 64), c one repeat read by every repeat.
__aicore__ inline void AndConst32(const LocalTensor<uint32_t>& dst, const LocalTensor<uint32_t>& src,
                                  const LocalTensor<uint32_t>& c, uint32_t n) {
    vec::AndConst(dst.ReinterpretCast<float>(), src.ReinterpretCast<float>(), c, n);
}

// dst = (float) src for uint32 src < 2^23: OR the bits of 2^23 in, subtract 2^23 (exact).
// n a multiple of 64; dst may be src; `k` (n uint32) is scratch.
__aicore__ inline void SmallU32ToFloat(const LocalTensor<float>& dst, const LocalTensor<uint32_t>& src,
                                       const LocalTensor<uint32_t>& k, uint32_t n) {
    AscendC::Duplicate(k, kMagic, static_cast<int32_t>(n));
    AscendC::Or(dst.ReinterpretCast<uint16_t>(), src.ReinterpretCast<uint16_t>(), k.ReinterpretCast<uint16_t>(),
                static_cast<int32_t>(2 * n));
    AscendC::Adds(dst, dst, -kTwo23, static_cast<int32_t>(n));
}

// The bytes of n float32 byte values (integers 0..255) into dst: through half, exactly.
// `h` is scratch of n halves.
__aicore__ inline void ToBytes(const LocalTensor<uint8_t>& dst, const LocalTensor<float>& v,
                               const LocalTensor<half>& h, uint32_t n) {
    AscendC::Cast(h, v, AscendC::RoundMode::CAST_RINT, n);
    AscendC::Cast(dst, h, AscendC::RoundMode::CAST_NONE, n);
}

// 4-bit codes c (n floats, 0..15, n even) -> n / 2 bytes: c[2k] + 16 * c[2k+1].
// s.e0 and s.e1 are clobbered; c must not be either.
__aicore__ inline void PackNibbles(const vec::Scratch& s, const LocalTensor<float>& c, uint32_t n,
                                   const LocalTensor<uint8_t>& dst) {
    using namespace AscendC;
    const uint32_t h = n / 2;
    const int32_t hi = static_cast<int32_t>(h);
    const LocalTensor<float> idx = s.e1;
    CreateVecIndex(idx, 0.0f, h);
    Muls(idx, idx, 8.0f, hi);                                        // byte offset of element 2k
    const LocalTensor<int32_t> off = s.e0.ReinterpretCast<int32_t>();
    Cast(off, idx, RoundMode::CAST_RINT, h);                         // exact: < 2^15
    const LocalTensor<uint32_t> uoff = off.ReinterpretCast<uint32_t>();
    const LocalTensor<float> even = s.e1;
    const LocalTensor<float> odd = s.e1[h];
    Gather(even, c, uoff, 0, h);
    Gather(odd, c, uoff, 4, h);
    Muls(odd, odd, 16.0f, hi);
    Add(even, even, odd, hi);
    ToBytes(dst, even, s.e0.ReinterpretCast<half>(), h);
}

// Codes of the `live` values in y (grid values or NaN) into dst (live bytes, or live / 2 for
// 4-bit codes; live even) through the table. y is kept; s.abs, s.e0, s.e1 are clobbered.
__aicore__ inline void TableCodes(const vec::Scratch& s, const Tables& e, const LocalTensor<float>& y, uint32_t live,
                                  uint32_t bits, const LocalTensor<uint8_t>& dst) {
    using namespace AscendC;
    const uint32_t n = vec::Whole(live);
    const LocalTensor<uint32_t> off = s.e0.ReinterpretCast<uint32_t>();
    ShiftRight(off, y.ReinterpretCast<uint32_t>(), kLutShift, static_cast<int32_t>(n));
    AndConst32(off, off, e.offMask, n);
    const LocalTensor<half> codes = s.e1.ReinterpretCast<half>();
    Gather(codes, e.lut, off, 0, live);
    if (bits == 8) {
        Cast(dst, codes, RoundMode::CAST_NONE, live);
        return;
    }
    Cast(s.abs, codes, RoundMode::CAST_NONE, live);
    PackNibbles(s, s.abs, live, dst);
}

// Two's complement codes of the integers q (`live` floats in [-2^(bits-1), 2^(bits-1)), live
// even), q clobbered; s.tmp, s.mask, s.e0, s.e1 too.
__aicore__ inline void IntegerCodes(const vec::Scratch& s, const LocalTensor<float>& q, uint32_t live, uint32_t bits,
                                    const LocalTensor<uint8_t>& dst) {
    using namespace AscendC;
    const uint32_t n = vec::Whole(live);
    const int32_t ni = static_cast<int32_t>(n);
    Adds(s.tmp, q, bits == 8 ? 256.0f : 16.0f, ni);
    CompareScalar(s.mask, q, 0.0f, CMPMODE::LT, n);                  // -0.0 is not < 0: code 0
    Select(q, s.mask, s.tmp, q, SELMODE::VSEL_TENSOR_TENSOR_MODE, n);
    if (bits == 8) ToBytes(dst, q, s.e1.ReinterpretCast<half>(), live); else PackNibbles(s, q, live, dst);
}

// s.mask2 = per element of nb blocks of `stride`: the block is finite (s.bmask of its block
// set). `flag` (per block) is clobbered; s.e0 too.
__aicore__ inline void FiniteBlockLanes(const vec::Scratch& s, const LocalTensor<float>& flag, uint32_t nb,
                                        uint32_t stride) {
    using namespace AscendC;
    const uint32_t nbw = vec::Whole(nb);
    Duplicate(flag, 1.0f, static_cast<int32_t>(nbw));
    Select(flag, s.bmask, flag, 0.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, nbw);
    vec::Expand(s.e0, flag, nb, stride);
    CompareScalar(s.mask2, s.e0, 0.5f, CMPMODE::GT, vec::Whole(nb * stride));
}

// dst = 1 where x is NaN, else 0 (n a multiple of 64), from the bits as vec's classifiers do
// (no float compare sees a NaN): |x|'s bits exceed +Inf's exactly for NaN, so max(bits(|x|),
// bits(+Inf)) == bits(+Inf) is "not NaN" (int32 Maxs and EQ). s.tmp and s.mask are
// clobbered; dst must not be x.
__aicore__ inline void NanLanes(const vec::Scratch& s, const LocalTensor<float>& x, const LocalTensor<float>& dst,
                                uint32_t n) {
    using namespace AscendC;
    const int32_t ni = static_cast<int32_t>(n);
    const LocalTensor<int32_t> bits = s.tmp.ReinterpretCast<int32_t>();
    vec::AndConst(s.tmp, x, s.absMask, n);
    Maxs(bits, bits, vec::kInfBits, ni);
    CompareScalar(s.mask, bits, vec::kInfBits, CMPMODE::EQ, n);          // not NaN
    Duplicate(dst, 0.0f, ni);
    Select(dst, s.mask, dst, 1.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, n);
}

// Per block of x: 1 where the block holds a NaN, else 0 (dst, nb values). s.tmp, s.e1 and
// s.mask are clobbered.
__aicore__ inline void NanBlocks(const vec::Scratch& s, const LocalTensor<float>& x, const LocalTensor<float>& dst,
                                 uint32_t nb, uint32_t stride) {
    NanLanes(s, x, s.e1, vec::Whole(nb * stride));
    vec::BlockMax(dst, s.e1, nb, stride, s.tmp);
}

// The float32 scale that formats stores for a block whose amax / max is `scale` (0 in
// non-finite blocks here): NaN where the block holds a NaN, +Inf where it holds Inf but no
// NaN (torch's amax propagates NaN), else `scale`. Writes dst (nb floats; may be scale);
// `t` is per-block scratch. s.bmask (finite blocks) is read, s.bmask2 clobbered.
__aicore__ inline void StoredScale(const vec::Scratch& s, const LocalTensor<float>& dst, const LocalTensor<float>& scale,
                                   const LocalTensor<float>& nan, const LocalTensor<float>& t, uint32_t nb) {
    using namespace AscendC;
    const uint32_t nbw = vec::Whole(nb);
    Duplicate(t, vec::kInf, static_cast<int32_t>(nbw));
    CompareScalar(s.bmask2, nan, 0.5f, CMPMODE::LT, nbw);
    Select(t, s.bmask2, t, vec::kNaN, SELMODE::VSEL_TENSOR_SCALAR_MODE, nbw);
    Select(dst, s.bmask, scale, t, SELMODE::VSEL_TENSOR_TENSOR_MODE, nbw);
}

}  // namespace enc
}  // namespace npuq
