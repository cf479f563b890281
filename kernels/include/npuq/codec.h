// Float32 bit patterns of every code the packed formats store (formats/codecs.py), built from
// the code's fields with integer operations only. Dequantize fills its UB lookup tables from
// these once per core; they are plain functions, usable on the host as well.
#pragma once

#include <cstdint>

#include "npuq/plan.h"

namespace npuq {
namespace codec {

constexpr uint32_t kNaNBits = 0x7FC00000u;
constexpr uint32_t kInfBits = 0x7F800000u;
constexpr uint32_t kSignBit = 0x80000000u;

// Bits of (-1)^neg * m * 2^e for 0 <= m < 2^24, the result a normal float (or zero).
NPUQ_AICORE inline uint32_t ScaledBits(bool neg, uint32_t m, int32_t e) {
    if (m == 0) return 0u;  // formats with a signed zero never reach here with neg set
    int32_t top = 0;
    while ((m >> (top + 1)) != 0) ++top;
    const uint32_t mant = (m << (23 - top)) & 0x7FFFFFu;
    return (neg ? kSignBit : 0u) | (static_cast<uint32_t>(top + e + 127) << 23) | mant;
}

// HiF8 byte (formats.md table): dot field, exponent sign and magnitude, 1-3 mantissa bits.
NPUQ_AICORE inline uint32_t Hif8Bits(uint32_t code) {
    if (code == 0x80u) return kNaNBits;
    const bool neg = (code & 0x80u) != 0;
    const uint32_t b = code & 0x7Fu;
    if (b == 0x6Fu) return (neg ? kSignBit : 0u) | kInfBits;
    if (b < 0x08u) return b == 0 ? 0u : ScaledBits(neg, 1, static_cast<int32_t>(b) - 23);  // denormal 2^(M-23)
    uint32_t mag, mbits, esign;
    uint32_t m;
    if (b >= 0x60u) { mag = 8 + ((b >> 1) & 7u); m = b & 1u; mbits = 1; esign = (b >> 4) & 1u; }
    else if (b >= 0x40u) { mag = 4 + ((b >> 2) & 3u); m = b & 3u; mbits = 2; esign = (b >> 4) & 1u; }
    else if (b >= 0x20u) { mag = 2 + ((b >> 3) & 1u); m = b & 7u; mbits = 3; esign = (b >> 4) & 1u; }
    else if (b >= 0x10u) { mag = 1; m = b & 7u; mbits = 3; esign = (b >> 3) & 1u; }
    else { mag = 0; m = b & 7u; mbits = 3; esign = 0; }
    const int32_t e = esign ? -static_cast<int32_t>(mag) : static_cast<int32_t>(mag);
    return ScaledBits(neg, (1u << mbits) | m, e - static_cast<int32_t>(mbits));
}

// OCP FP8 E4M3FN: bias 7, subnormals m * 2^-9, S.1111.111 is NaN, no Inf.
NPUQ_AICORE inline uint32_t E4m3Bits(uint32_t code) {
    const bool neg = (code & 0x80u) != 0;
    const uint32_t e = (code >> 3) & 0xFu;
    const uint32_t m = code & 7u;
    if (e == 0xFu && m == 7u) return kNaNBits;
    if (e == 0) return m == 0 ? (neg ? kSignBit : 0u) : ScaledBits(neg, m, -9);
    return ScaledBits(neg, 8u | m, static_cast<int32_t>(e) - 7 - 3);
}

// OCP FP8 E5M2: bias 15, subnormals m * 2^-16, exponent 31 is Inf / NaN.
NPUQ_AICORE inline uint32_t E5m2Bits(uint32_t code) {
    const bool neg = (code & 0x80u) != 0;
    const uint32_t e = (code >> 2) & 0x1Fu;
    const uint32_t m = code & 3u;
    if (e == 0x1Fu) return m == 0 ? (neg ? kSignBit : 0u) | kInfBits : kNaNBits;
    if (e == 0) return m == 0 ? (neg ? kSignBit : 0u) : ScaledBits(neg, m, -16);
    return ScaledBits(neg, 4u | m, static_cast<int32_t>(e) - 15 - 2);
}

// E2M1 nibble `s e1 e0 m`: 0, 0.5, 1, 1.5, 2, 3, 4, 6.
NPUQ_AICORE inline uint32_t E2m1Bits(uint32_t nib) {
    const bool neg = (nib & 8u) != 0;
    const uint32_t e = (nib >> 1) & 3u;
    const uint32_t m = nib & 1u;
    if (e == 0) return m == 0 ? (neg ? kSignBit : 0u) : ScaledBits(neg, 1, -1);
    return ScaledBits(neg, 2u | m, static_cast<int32_t>(e) - 2);
}

// HiF4 element nibble `s c2 c1 c0`: (-1)^s * c / 4.
NPUQ_AICORE inline uint32_t S1p2Bits(uint32_t nib) {
    const bool neg = (nib & 8u) != 0;
    const uint32_t c = nib & 7u;
    return c == 0 ? (neg ? kSignBit : 0u) : ScaledBits(neg, c, -2);
}

// Two's complement integers: a sign-extended nibble, a byte.
NPUQ_AICORE inline uint32_t Int4Bits(uint32_t nib) {
    return (nib & 8u) ? ScaledBits(true, 16u - nib, 0) : ScaledBits(false, nib, 0);
}
NPUQ_AICORE inline uint32_t Int8Bits(uint32_t byte) {
    return (byte & 0x80u) ? ScaledBits(true, 256u - byte, 0) : ScaledBits(false, byte, 0);
}

// E8M0 scale byte: 2^(b - 127), 0xFF a NaN block. b = 0 is the one subnormal, 2^-127.
NPUQ_AICORE inline uint32_t E8m0Bits(uint32_t b) {
    if (b == 0xFFu) return kNaNBits;
    return b == 0 ? 0x00400000u : b << 23;
}

// HiF4 level-1 E6M2 byte: 2^((b >> 2) - 48) * (1 + (b & 3) / 4), 0xFF a NaN group.
NPUQ_AICORE inline uint32_t E6m2Bits(uint32_t b) {
    if (b == 0xFFu) return kNaNBits;
    return (((b >> 2) + 127u - 48u) << 23) | ((b & 3u) << 21);
}

}  // namespace codec
}  // namespace npuq
