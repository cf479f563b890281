// A plain C++17 implementation of the subset of the AscendC API that the npuq kernels use,
// so that the kernel sources in kernels/include/npuq/ build and run unchanged on a CPU.
//
// This is an emulator of documented semantics, not of timing. It is deliberately strict:
//  * every vector and DMA operand in UB must start on a 32-byte boundary, and every element a
//    call touches must lie inside its LocalTensor (or GlobalTensor), or the run aborts;
//  * level-2 ("tensor front n") calls touch exactly `count` elements, level-0 calls exactly the
//    lanes their mask and repeat parameters select; nothing else in UB changes;
//  * UB starts filled with 0xFF bytes (a NaN pattern) and DataCopyPad leaves the bytes between
//    a block's end and the next 32-byte boundary poisoned, so a kernel that reads padding it
//    never wrote computes NaN and fails its tests instead of passing by luck;
//  * combinations that the kernels do not use (a Cast round mode, a reduce order, padding by
//    DataCopyPad, ...) are rejected rather than guessed;
//  * it models one SoC at a time (NPUQ_HOST_SOC, kSocTable below): a call the SoC lacks or
//    runs differently, and a NaN operand of a float compare / Max / Min / reduce (whose NaN
//    ordering no doc states), abort.
// Arithmetic is IEEE-754 binary32 with round-to-nearest-even and subnormals (the build uses
// -ffp-contract=off so no multiply-add is fused). Cores are threads; SyncAll is a real barrier.
#pragma once

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#define __aicore__
#define __global__
#define __gm__
#ifndef NPUQ_HOST_EMULATION
#define NPUQ_HOST_EMULATION 1
#endif

typedef uint8_t* GM_ADDR;

// ------------------------------------------------------------------ emulator runtime

namespace npuq_host {

[[noreturn]] inline void Fatal(const char* fmt, ...) {
    std::fprintf(stderr, "npuq-kernel-host: AscendC emulation error: ");
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fprintf(stderr, "\n");
    std::fflush(stderr);
    std::_Exit(3);
}

// ------------------------------------------------------------------ per-SoC model
//
// NPUQ_HOST_SOC=910B (the default) or 310P picks the chip. Every AscendC call below first
// looks up its row (call, dtype overload, mode) in kSocTable: on a SoC where the row is not
// kYes the run aborts, naming the call, the SoC and the source. Rows with `nan` order or
// compare floats and document nothing about NaN on either chip: a NaN operand aborts, so the
// kernels must classify NaN from bits (or mask it out) before any such call.
// Sources: asc-devkit (mirror-cann/asc-devkit @82b89a15); c220/ and m200/ are
// impl/basic_api/dav_c220/ (910B) and dav_m200/ (310P), doc/ is
// docs/zh/api/SIMD-API/基础API/Memory矢量计算/. "NOT_SUPPORT" is ASCENDC_REPORT_NOT_SUPPORT,
// empty on the NPU (impl/kernel_log.h), so such a call compiles and does nothing.
enum class Soc { k910B, k310P };
enum class Has : uint8_t {
    kYes,
    kNo,     // no overload (does not compile) or not in the SoC's documented dtype list
    kNoOp,   // compiles (deprecated / NOT_SUPPORT / empty ASSERT) and writes nothing
    kOther,  // runs, but computes something other than what the emulator (and kernel) expect
};
struct SocRow {
    const char* call;
    Has a2, m200;  // 910B (dav_c220), 310P (dav_m200)
    bool nan;      // NaN ordering undocumented (both SoCs)
    const char* source;
};
constexpr Has Y = Has::kYes, N = Has::kNo, NOP = Has::kNoOp, OTHER = Has::kOther;
constexpr SocRow kSocTable[] = {
    {"DataCopy", Y, Y, false, "c220/ and m200/kernel_operator_data_copy_impl.h DataCopyGM2UBImpl, DataCopyUB2GMImpl"},
    {"DataCopyPad(GM->UB)", Y, NOP, false, "m200/kernel_operator_data_copy_impl.h:1292-1306 deprecated + NOT_SUPPORT"},
    {"DataCopyPad(UB->GM)", Y, NOP, false, "m200/kernel_operator_data_copy_impl.h:1310-1322 deprecated + NOT_SUPPORT"},
    {"Copy", Y, NOP, false, "m200/kernel_operator_data_copy_impl.h:461-475 deprecated + NOT_SUPPORT"},
    {"Abs(float)", Y, Y, false, "c220/ and m200/kernel_operator_vec_unary_impl.h:69 AbsIntrinsicsImpl half/float"},
    {"Not(16-bit)", Y, Y, false, "c220/ and m200/kernel_operator_vec_unary_impl.h:125 NotIntrinsicsImpl int16/uint16"},
    {"Adds(float)", Y, Y, false, "c220/kernel_operator_vec_binary_scalar_impl.h:31, m200/...:30 half/float/int16/int32"},
    {"Adds(int32_t)", Y, Y, false, "c220/kernel_operator_vec_binary_scalar_impl.h:31, m200/...:30 half/float/int16/int32"},
    {"Muls(float)", Y, Y, false, "c220/kernel_operator_vec_binary_scalar_impl.h:92, m200/...:85"},
    {"Maxs(float)", Y, Y, true, "c220/kernel_operator_vec_binary_scalar_impl.h:153, m200/...:140; doc/基础算术/Maxs.md: no NaN rule"},
    {"Maxs(int32_t)", Y, Y, false, "c220/kernel_operator_vec_binary_scalar_impl.h:153, m200/...:140 half/float/int16/int32"},
    {"Mins(float)", Y, Y, true, "c220/kernel_operator_vec_binary_scalar_impl.h:213, m200/...:194; doc/基础算术/Mins.md: no NaN rule"},
    {"Mins(int32_t)", Y, Y, false, "c220/kernel_operator_vec_binary_scalar_impl.h:213, m200/...:194 half/float/int16/int32"},
    {"ShiftLeft(int32_t)", Y, NOP, false, "c220/kernel_operator_vec_binary_scalar_impl.h:274; m200/...:249-270 NOT_SUPPORT"},
    {"ShiftRight(int32_t)", Y, NOP, false, "c220/kernel_operator_vec_binary_scalar_impl.h:339-421 vshr (arithmetic); m200/...:275-297 NOT_SUPPORT; doc/逻辑计算/ShiftRight.md: 310P unsupported"},
    {"ShiftRight(uint32_t)", Y, NOP, false, "c220/kernel_operator_vec_binary_scalar_impl.h:339-421 vshr (logical); m200/...:275-297 NOT_SUPPORT; doc/逻辑计算/ShiftRight.md: 310P unsupported"},
    {"Add(float)", Y, Y, false, "c220/ and m200/kernel_operator_vec_binary_impl.h:31 half/float/int16/int32"},
    {"Add(int32_t)", Y, Y, false, "c220/ and m200/kernel_operator_vec_binary_impl.h:31 half/float/int16/int32"},
    {"Sub(float)", Y, Y, false, "c220/kernel_operator_vec_binary_impl.h:91, m200/...:78"},
    {"Mul(float)", Y, Y, false, "c220/kernel_operator_vec_binary_impl.h:150, m200/...:124"},
    {"Div(float)", Y, Y, false, "c220/kernel_operator_vec_binary_impl.h:209, m200/...:169 (rounding undocumented: NPUQ_HOST_DIV_ULP)"},
    {"Max(float)", Y, Y, true, "c220/kernel_operator_vec_binary_impl.h:267, m200/...:215; doc/基础算术/Max.md: no NaN rule"},
    {"And(16-bit)", Y, Y, false, "c220/kernel_operator_vec_binary_impl.h:387, m200/...:309 int16/uint16"},
    {"Or(16-bit)", Y, Y, false, "c220/kernel_operator_vec_binary_impl.h:454, m200/...:355 int16/uint16"},
    {"Duplicate", Y, Y, false, "c220/ and m200/kernel_operator_vec_duplicate_impl.h:31 16/32-bit types"},
    {"CreateVecIndex(float)", Y, Y, false, "c220/kernel_operator_vec_createvecindex_impl.h:155, m200/...:144"},
    {"CompareScalar(float)", Y, Y, true, "c220/kernel_operator_vec_cmp_impl.h:305, m200/kernel_operator_vec_cmpsel_impl.h:246; doc/比较与选择/Compares.md: no NaN rule"},
    {"CompareScalar(int32_t, EQ)", Y, N, false, "c220/kernel_operator_vec_cmp_impl.h:359-366 vcmpvs_eq; doc/比较与选择/Compares.md: 310P half/float only"},
    {"CompareScalar(int32_t, not EQ)", OTHER, N, false, "c220/kernel_operator_vec_cmp_impl.h:363 \"int32_t only support CMPMODE::EQ\": vcmpvs_eq whatever the mode"},
    {"Select(float)", Y, Y, false, "c220/kernel_operator_vec_cmpsel_impl.h:163-227, m200/kernel_operator_vec_cmpsel_impl.h:462-529"},
    {"Gather(half)", Y, Y, false, "c220/kernel_operator_vec_gather_impl.h:53-63, m200/...:40-47 GatherImpl half/float/..."},
    {"Gather(float)", Y, Y, false, "c220/kernel_operator_vec_gather_impl.h:53-63, m200/...:40-47 GatherImpl half/float/..."},
    {"Cast(float <- float)", Y, NOP, false, "c220/kernel_operator_vec_vconv_impl.h:513-530 vconv_f322f32*; m200/...:413-417 NOT_SUPPORT"},
    {"Cast(half <- float, RINT)", Y, NOP, false, "c220/kernel_operator_vec_vconv_impl.h:303 vconv_f322f16r; m200/...:272-277 empty ASSERT (ODD/NONE only)"},
    {"Cast(half <- float, NONE)", Y, Y, false, "c220/kernel_operator_vec_vconv_impl.h:332; m200/...:267 vconv_f322f16"},
    {"Cast(bfloat16_t <- float)", Y, N, false, "c220/kernel_operator_vec_vconv_impl.h:561 vconv_f322bf16r; m200/...:29-480 no bfloat16_t overload"},
    {"Cast(float <- bfloat16_t)", Y, N, false, "c220/kernel_operator_vec_vconv_impl.h:657 vconv_bf162f32; m200/...:29-480 no bfloat16_t overload"},
    {"Cast(float <- half)", Y, Y, false, "c220/kernel_operator_vec_vconv_impl.h:138, m200/...:90 vconv_f162f32"},
    {"Cast(uint8_t <- half, NONE)", Y, Y, false, "c220/kernel_operator_vec_vconv_impl.h:280, m200/...:240 vconv_f162u8; doc/类型转换/Cast.md half->uint8_t NONE on both"},
    {"Cast(half <- uint8_t)", Y, Y, false, "c220/kernel_operator_vec_vconv_impl.h:69, m200/...:55 vconv_u82f16"},
    {"Cast(int32_t <- half)", Y, Y, false, "c220/kernel_operator_vec_vconv_impl.h:159, m200/...:107 vconv_f162s32*"},
    {"Cast(int32_t <- float)", Y, Y, false, "c220/kernel_operator_vec_vconv_impl.h:351, m200/...:313 vconv_f322s32*"},
    {"WholeReduceMax(float, ORDER_ONLY_VALUE)", Y, OTHER, true, "c220/kernel_operator_vec_reduce_impl.h:195-212; m200/...:149-162 anything but VALUE_INDEX is index-first; doc/归约计算/ReduceRepeat.md: no NaN rule"},
    {"BlockReduceSum(float)", Y, Y, false, "c220/ and m200/kernel_operator_vec_reduce_impl.h:28-32 vcgadd; doc/归约计算/ReduceDataBlock.md half/float on both"},
    {"BlockReduceMax(float)", Y, Y, true, "c220/ and m200/kernel_operator_vec_reduce_impl.h:36; doc/归约计算/ReduceDataBlock.md: no NaN rule"},
    {"Brcb", Y, Y, false, "c220/kernel_operator_vec_brcb_impl.h:30, m200/...:117 (a scalar loop when dstBlkStride > 1)"},
    {"SyncAll", Y, NOP, false, "c220/kernel_operator_sync_impl.h:364-392 ffts_cross_core_sync; m200/...:113-116 NOT_SUPPORT"},
};

inline Soc ThisSoc() {
    static const Soc soc = [] {
        const char* v = std::getenv("NPUQ_HOST_SOC");
        if (v == nullptr || std::strcmp(v, "910B") == 0) return Soc::k910B;
        if (std::strcmp(v, "310P") == 0) return Soc::k310P;
        Fatal("NPUQ_HOST_SOC=%s: the emulator models 910B and 310P", v);
    }();
    return soc;
}
inline const char* SocName() { return ThisSoc() == Soc::k910B ? "910B" : "310P"; }

// The row of `call` once the SoC has it; every emulated call has a row.
inline const SocRow& Require(const char* call) {
    for (const SocRow& r : kSocTable) {
        if (std::strcmp(r.call, call) != 0) continue;
        const Has h = ThisSoc() == Soc::k910B ? r.a2 : r.m200;
        if (h == Has::kNo) Fatal("%s: %s has no such call (the kernel would not compile): %s", call, SocName(), r.source);
        if (h == Has::kNoOp) Fatal("%s: on %s it compiles but does nothing: %s", call, SocName(), r.source);
        if (h == Has::kOther) Fatal("%s: on %s it computes something else: %s", call, SocName(), r.source);
        return r;
    }
    Fatal("%s: not in the emulator's SoC table", call);
}
// A float operand of a `nan` row.
inline void CheckNaN(const SocRow& r, float v) {
    if (r.nan && std::isnan(v))
        Fatal("%s: a NaN operand, whose ordering %s does not document (%s); classify NaN from bits first", r.call,
              SocName(), r.source);
}

// Usable UB (TMP_UB_OFFSET, impl/basic_api/utils/kernel_utils_constants.h): 184 KiB on 2201
// (the top 8 KiB of 192 are the API's scratch, Select modes 1/2), 248 KiB on 2002.
inline uint32_t UbBytes() { return ThisSoc() == Soc::k910B ? 184 * 1024 : 248 * 1024; }

// A reusable barrier over the launched cores (C++17 has no std::barrier).
class Barrier {
 public:
    explicit Barrier(uint32_t n) : n_(n) {}
    void Wait() {
        std::unique_lock<std::mutex> lock(mu_);
        uint64_t gen = gen_;
        if (++arrived_ == n_) {
            arrived_ = 0;
            ++gen_;
            cv_.notify_all();
            return;
        }
        cv_.wait(lock, [&] { return gen != gen_; });
    }

 private:
    std::mutex mu_;
    std::condition_variable cv_;
    uint32_t n_;
    uint32_t arrived_ = 0;
    uint64_t gen_ = 0;
};

struct Core {
    uint32_t blockIdx = 0;
    uint32_t blockNum = 1;
    std::vector<uint8_t> ub;
    uint32_t ubUsed = 0;
    void* pipe = nullptr;
    Barrier* barrier = nullptr;
};

inline Core& ThisCore() {
    static thread_local Core core;
    return core;
}

// Runs kernel() once per core, each on its own thread with its own UB, and waits for all.
inline void Launch(uint32_t blockNum, const std::function<void()>& kernel) {
    if (blockNum == 0) Fatal("Launch: blockDim must be at least 1");
    Barrier barrier(blockNum);
    std::vector<std::thread> threads;
    threads.reserve(blockNum);
    for (uint32_t i = 0; i < blockNum; ++i) {
        threads.emplace_back([&, i] {
            Core& c = ThisCore();
            c.blockIdx = i;
            c.blockNum = blockNum;
            c.ub.assign(UbBytes(), 0xFF);
            c.ubUsed = 0;
            c.pipe = nullptr;
            c.barrier = &barrier;
            kernel();
        });
    }
    for (auto& t : threads) t.join();
}

inline uint32_t FloatBits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float BitsFloat(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// IEEE binary16 <- binary32, round to nearest even, overflow to Inf, NaN kept quiet.
inline uint16_t FloatToHalf(float f) {
    uint32_t x = FloatBits(f);
    uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    uint32_t a = x & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
    if (a >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520: Inf
    if (a < 0x38800000u) {  // below 2^-14: a multiple of 2^-24, rounded to nearest even
        float m = std::nearbyint(BitsFloat(a) * 16777216.0f);  // exact scaling by 2^24
        return static_cast<uint16_t>(sign | static_cast<uint16_t>(m));
    }
    uint32_t h = (((a >> 23) - 112u) << 10) | ((a >> 13) & 0x3FFu);
    uint32_t rem = a & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
}

inline float HalfToFloat(uint16_t h) {
    uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu;
    uint32_t m = h & 0x3FFu;
    if (e == 0x1F) return BitsFloat(sign | 0x7F800000u | (m << 13));
    if (e == 0) {
        float v = static_cast<float>(m) * (1.0f / 16777216.0f);  // m * 2^-24, exact
        return sign ? -v : v;
    }
    return BitsFloat(sign | ((e + 112u) << 23) | (m << 13));
}

// bfloat16 <- binary32, round to nearest even (overflow to Inf), NaN kept quiet.
inline uint16_t FloatToBf16(float f) {
    uint32_t x = FloatBits(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);
    return static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}
inline float Bf16ToFloat(uint16_t b) { return BitsFloat(static_cast<uint32_t>(b) << 16); }

}  // namespace npuq_host

// The two 16-bit float types the AscendC compiler provides as builtins.
struct half {
    uint16_t bits = 0;
    half() = default;
    template <typename A, typename = std::enable_if_t<std::is_arithmetic<A>::value>>
    half(A v) : bits(npuq_host::FloatToHalf(static_cast<float>(v))) {}
    explicit operator float() const { return npuq_host::HalfToFloat(bits); }
};
struct bfloat16_t {
    uint16_t bits = 0;
    bfloat16_t() = default;
    template <typename A, typename = std::enable_if_t<std::is_arithmetic<A>::value>>
    bfloat16_t(A v) : bits(npuq_host::FloatToBf16(static_cast<float>(v))) {}
    explicit operator float() const { return npuq_host::Bf16ToFloat(bits); }
};

enum pipe_t { PIPE_S = 0, PIPE_V, PIPE_M, PIPE_MTE1, PIPE_MTE2, PIPE_MTE3, PIPE_ALL };
enum event_t : int32_t { EVENT_ID0 = 0, EVENT_ID1, EVENT_ID2, EVENT_ID3, EVENT_ID4, EVENT_ID5, EVENT_ID6, EVENT_ID7 };

namespace AscendC {

enum class TPosition : uint8_t { GM, A1, A2, B1, B2, C1, C2, CO1, CO2, VECIN, VECOUT, VECCALC, MAX };
using QuePosition = TPosition;
enum class RoundMode { CAST_NONE = 0, CAST_RINT, CAST_FLOOR, CAST_CEIL, CAST_ROUND, CAST_TRUNC, CAST_ODD };
enum class CMPMODE { LT = 0, GT, EQ, LE, GE, NE };
enum class SELMODE { VSEL_CMPMASK_SPR = 0, VSEL_TENSOR_SCALAR_MODE, VSEL_TENSOR_TENSOR_MODE };
enum class ReduceOrder { ORDER_VALUE_INDEX = 0, ORDER_INDEX_VALUE, ORDER_ONLY_VALUE, ORDER_ONLY_INDEX };
enum class HardEvent { MTE2_V, V_MTE2, V_MTE3, MTE3_V, V_S, S_V, MTE2_S, S_MTE2, MTE3_S, S_MTE3, MTE3_MTE2, MTE2_MTE3 };

// ------------------------------------------------------------------ parameter structs

struct DataCopyExtParams {
    uint16_t blockCount = 0;
    uint32_t blockLen = 0;   // bytes
    uint32_t srcStride = 0;  // gap after each block: bytes in GM, 32-byte blocks in UB
    uint32_t dstStride = 0;
    uint32_t rsv = 0;
    DataCopyExtParams() = default;
    DataCopyExtParams(uint16_t count, uint32_t len, uint32_t srcGap, uint32_t dstGap, uint32_t reserved)
        : blockCount(count), blockLen(len), srcStride(srcGap), dstStride(dstGap), rsv(reserved) {}
};

template <typename T>
struct DataCopyPadExtParams {
    bool isPad = false;
    uint8_t leftPadding = 0;
    uint8_t rightPadding = 0;
    T paddingValue = 0;
    DataCopyPadExtParams() = default;
    DataCopyPadExtParams(bool pad, uint8_t left, uint8_t right, T value)
        : isPad(pad), leftPadding(left), rightPadding(right), paddingValue(value) {}
};

struct BinaryRepeatParams {
    uint32_t blockNumber = 8;
    uint8_t dstBlkStride = 1, src0BlkStride = 1, src1BlkStride = 1;
    uint8_t dstRepStride = 8, src0RepStride = 8, src1RepStride = 8;
    BinaryRepeatParams() = default;
    BinaryRepeatParams(uint8_t dB, uint8_t s0B, uint8_t s1B, uint8_t dR, uint8_t s0R, uint8_t s1R)
        : dstBlkStride(dB), src0BlkStride(s0B), src1BlkStride(s1B), dstRepStride(dR), src0RepStride(s0R),
          src1RepStride(s1R) {}
};

struct CopyRepeatParams {
    uint16_t dstStride = 1, srcStride = 1;           // between the 8 blocks of a repeat
    uint16_t dstRepeatSize = 8, srcRepeatSize = 8;   // between repeats
    CopyRepeatParams() = default;
    CopyRepeatParams(uint16_t dS, uint16_t sS, uint16_t dR, uint16_t sR)
        : dstStride(dS), srcStride(sS), dstRepeatSize(dR), srcRepeatSize(sR) {}
};

struct BrcbRepeatParams {
    uint16_t dstBlkStride = 1;
    uint16_t dstRepStride = 8;
    BrcbRepeatParams() = default;
    BrcbRepeatParams(uint16_t blk, uint16_t rep) : dstBlkStride(blk), dstRepStride(rep) {}
};

// ------------------------------------------------------------------ tensors

template <typename T>
class LocalTensor {
 public:
    LocalTensor() = default;
    LocalTensor(uint32_t addr, uint32_t size) : addr_(addr), size_(size) {}

    T GetValue(uint32_t i) const {
        Check(i, 1, "GetValue");
        T v;
        std::memcpy(&v, Raw() + static_cast<size_t>(i) * sizeof(T), sizeof(T));
        return v;
    }
    void SetValue(uint32_t i, T v) const {
        Check(i, 1, "SetValue");
        std::memcpy(Raw() + static_cast<size_t>(i) * sizeof(T), &v, sizeof(T));
    }
    LocalTensor operator[](uint32_t offset) const {
        if (offset > size_) npuq_host::Fatal("LocalTensor[%u] past its %u elements", offset, size_);
        return LocalTensor(addr_ + offset * static_cast<uint32_t>(sizeof(T)), size_ - offset);
    }
    template <typename U>
    LocalTensor<U> ReinterpretCast() const {
        return LocalTensor<U>(addr_, static_cast<uint32_t>(static_cast<uint64_t>(size_) * sizeof(T) / sizeof(U)));
    }
    uint32_t GetSize() const { return size_; }

    // emulator internals
    uint32_t Addr() const { return addr_; }
    uint8_t* Raw() const { return npuq_host::ThisCore().ub.data() + addr_; }
    T* Ptr() const { return reinterpret_cast<T*>(Raw()); }
    void Check(uint64_t first, uint64_t count, const char* api) const {
        if (first + count > size_)
            npuq_host::Fatal("%s: elements [%llu, %llu) outside a LocalTensor of %u", api,
                             static_cast<unsigned long long>(first), static_cast<unsigned long long>(first + count),
                             size_);
    }
    void CheckAligned(const char* api) const {
        if (addr_ % 32 != 0) npuq_host::Fatal("%s: UB operand at byte %u is not 32-byte aligned", api, addr_);
    }

 private:
    uint32_t addr_ = 0;
    uint32_t size_ = 0;
};

template <typename T>
class GlobalTensor {
 public:
    void SetGlobalBuffer(__gm__ T* buffer, uint64_t bufferSize) {
        ptr_ = buffer;
        size_ = bufferSize;
    }
    GlobalTensor operator[](uint64_t offset) const {
        if (offset > size_) npuq_host::Fatal("GlobalTensor[%llu] past its %llu elements",
                                             static_cast<unsigned long long>(offset),
                                             static_cast<unsigned long long>(size_));
        GlobalTensor g;
        g.ptr_ = ptr_ + offset;
        g.size_ = size_ - offset;
        return g;
    }
    uint64_t GetSize() const { return size_; }
    // emulator internals
    uint8_t* RawAt(uint64_t byteOffset, uint64_t bytes, const char* api) const {
        if (byteOffset + bytes > size_ * sizeof(T))
            npuq_host::Fatal("%s: GM bytes [%llu, %llu) outside a GlobalTensor of %llu bytes", api,
                             static_cast<unsigned long long>(byteOffset),
                             static_cast<unsigned long long>(byteOffset + bytes),
                             static_cast<unsigned long long>(size_ * sizeof(T)));
        return reinterpret_cast<uint8_t*>(ptr_) + byteOffset;
    }

 private:
    T* ptr_ = nullptr;
    uint64_t size_ = 0;
};

// ------------------------------------------------------------------ pipe, queues, buffers

class TPipe;
inline TPipe* GetTPipePtr() { return static_cast<TPipe*>(npuq_host::ThisCore().pipe); }

template <TPosition pos, int32_t depth>
class TQue {
 public:
    template <typename T>
    LocalTensor<T> AllocTensor() {
        for (uint32_t k = 0; k < num_; ++k) {
            uint32_t i = (next_ + k) % num_;
            if (state_[i] == kFree) {
                state_[i] = kAllocated;
                next_ = (i + 1) % num_;
                return LocalTensor<T>(addr_[i], len_ / static_cast<uint32_t>(sizeof(T)));
            }
        }
        npuq_host::Fatal("TQue::AllocTensor: all %u buffers are in use", num_);
    }
    template <typename T>
    void EnQue(const LocalTensor<T>& t) {
        uint32_t i = Find(t.Addr(), "EnQue");
        if (state_[i] != kAllocated) npuq_host::Fatal("TQue::EnQue: buffer was not allocated");
        if (fifo_.size() >= static_cast<size_t>(depth)) npuq_host::Fatal("TQue::EnQue: queue depth %d exceeded", depth);
        state_[i] = kQueued;
        fifo_.push_back(i);
    }
    template <typename T>
    LocalTensor<T> DeQue() {
        if (fifo_.empty()) npuq_host::Fatal("TQue::DeQue: queue is empty");
        uint32_t i = fifo_.front();
        fifo_.erase(fifo_.begin());
        state_[i] = kInUse;
        return LocalTensor<T>(addr_[i], len_ / static_cast<uint32_t>(sizeof(T)));
    }
    template <typename T>
    void FreeTensor(const LocalTensor<T>& t) {
        uint32_t i = Find(t.Addr(), "FreeTensor");
        if (state_[i] == kFree || state_[i] == kQueued) npuq_host::Fatal("TQue::FreeTensor: buffer is not in use");
        state_[i] = kFree;
    }
    // emulator internals (TPipe::InitBuffer)
    void Bind(uint32_t num, uint32_t len, uint32_t firstAddr) {
        if (num == 0 || num > 8) npuq_host::Fatal("TPipe::InitBuffer: %u buffers for a queue", num);
        num_ = num;
        len_ = len;
        for (uint32_t i = 0; i < num; ++i) {
            addr_[i] = firstAddr + i * len;
            state_[i] = kFree;
        }
    }

 private:
    enum State { kFree, kAllocated, kQueued, kInUse };
    uint32_t Find(uint32_t addr, const char* api) const {
        for (uint32_t i = 0; i < num_; ++i)
            if (addr_[i] == addr) return i;
        npuq_host::Fatal("TQue::%s: tensor does not belong to this queue", api);
    }
    uint32_t num_ = 0, len_ = 0, next_ = 0;
    uint32_t addr_[8] = {};
    State state_[8] = {};
    std::vector<uint32_t> fifo_;
};

template <TPosition pos>
class TBuf {
 public:
    template <typename T>
    LocalTensor<T> Get() const {
        return LocalTensor<T>(addr_, len_ / static_cast<uint32_t>(sizeof(T)));
    }
    template <typename T>
    LocalTensor<T> Get(uint32_t count) const {
        if (static_cast<uint64_t>(count) * sizeof(T) > len_) npuq_host::Fatal("TBuf::Get: %u elements exceed the buffer", count);
        return LocalTensor<T>(addr_, count);
    }
    void Bind(uint32_t len, uint32_t addr) {
        len_ = len;
        addr_ = addr;
    }

 private:
    uint32_t addr_ = 0, len_ = 0;
};

class TPipe {
 public:
    TPipe() { npuq_host::ThisCore().pipe = this; }
    ~TPipe() {
        auto& c = npuq_host::ThisCore();
        if (c.pipe == this) c.pipe = nullptr;
    }
    template <TPosition pos, int32_t depth>
    void InitBuffer(TQue<pos, depth>& que, uint8_t num, uint32_t len) {
        uint32_t aligned = (len + 31u) / 32u * 32u;
        que.Bind(num, aligned, Take(static_cast<uint64_t>(aligned) * num));
    }
    template <TPosition pos>
    void InitBuffer(TBuf<pos>& buf, uint32_t len) {
        uint32_t aligned = (len + 31u) / 32u * 32u;
        buf.Bind(aligned, Take(aligned));
    }
    int32_t FetchEventID(HardEvent) { return 0; }
    void Reset() { npuq_host::ThisCore().ubUsed = 0; }

 private:
    uint32_t Take(uint64_t bytes) {
        auto& c = npuq_host::ThisCore();
        if (c.ubUsed + bytes > npuq_host::UbBytes())
            npuq_host::Fatal("TPipe::InitBuffer: %llu more bytes do not fit in UB (%u of %u used)",
                             static_cast<unsigned long long>(bytes), c.ubUsed, npuq_host::UbBytes());
        uint32_t addr = c.ubUsed;
        c.ubUsed += static_cast<uint32_t>(bytes);
        return addr;
    }
};

// ------------------------------------------------------------------ core control and sync

inline int64_t GetBlockIdx() { return npuq_host::ThisCore().blockIdx; }
inline int64_t GetBlockNum() { return npuq_host::ThisCore().blockNum; }

template <bool isAIVOnly = true>
inline void SyncAll() {
    npuq_host::Require("SyncAll");
    auto& c = npuq_host::ThisCore();
    if (c.barrier == nullptr) npuq_host::Fatal("SyncAll outside a launch");
    c.barrier->Wait();
}

// In-order execution makes pipe barriers and event flags no-ops here.
template <pipe_t pipe>
inline void PipeBarrier() {}
template <HardEvent evt>
inline void SetFlag(int32_t) {}
template <HardEvent evt>
inline void WaitFlag(int32_t) {}

// ------------------------------------------------------------------ data movement

namespace detail {
template <typename T>
constexpr uint32_t kPerBlock = 32 / sizeof(T);
template <typename T>
constexpr uint32_t kPerRepeat = 256 / sizeof(T);

template <typename T>
inline void CheckCopyType(const char* api) {
    static_assert(sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4, "DataCopy element size");
    (void)api;
}
}  // namespace detail

// GM -> UB, count elements, count * sizeof(T) a multiple of 32 bytes.
template <typename T>
inline void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, uint32_t count) {
    uint64_t bytes = static_cast<uint64_t>(count) * sizeof(T);
    npuq_host::Require("DataCopy");
    if (count == 0 || bytes % 32 != 0) npuq_host::Fatal("DataCopy GM->UB: %llu bytes is not a positive multiple of 32", static_cast<unsigned long long>(bytes));
    dst.CheckAligned("DataCopy");
    dst.Check(0, count, "DataCopy");
    std::memcpy(dst.Raw(), src.RawAt(0, bytes, "DataCopy"), bytes);
}
// UB -> GM
template <typename T>
inline void DataCopy(const GlobalTensor<T>& dst, const LocalTensor<T>& src, uint32_t count) {
    uint64_t bytes = static_cast<uint64_t>(count) * sizeof(T);
    npuq_host::Require("DataCopy");
    if (count == 0 || bytes % 32 != 0) npuq_host::Fatal("DataCopy UB->GM: %llu bytes is not a positive multiple of 32", static_cast<unsigned long long>(bytes));
    src.CheckAligned("DataCopy");
    src.Check(0, count, "DataCopy");
    std::memcpy(dst.RawAt(0, bytes, "DataCopy"), src.Raw(), bytes);
}

// GM -> UB, blocks of any byte length; each block lands on a 32-byte boundary in UB. The
// bytes between a block's end and that boundary are not written by the copy: poisoned here.
template <typename T>
inline void DataCopyPad(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyExtParams& cp,
                        const DataCopyPadExtParams<T>& pad) {
    npuq_host::Require("DataCopyPad(GM->UB)");
    if (pad.isPad || pad.leftPadding || pad.rightPadding) npuq_host::Fatal("DataCopyPad: padding is not emulated");
    if (cp.blockCount < 1 || cp.blockCount > 4095) npuq_host::Fatal("DataCopyPad: blockCount %u outside [1, 4095]", cp.blockCount);
    if (cp.blockLen < 1 || cp.blockLen > 2097151u) npuq_host::Fatal("DataCopyPad: blockLen %u outside [1, 2^21)", cp.blockLen);
    if (cp.blockLen % sizeof(T)) npuq_host::Fatal("DataCopyPad: blockLen %u is not a whole number of elements", cp.blockLen);
    dst.CheckAligned("DataCopyPad");
    uint64_t ubBlock = (cp.blockLen + 31u) / 32u * 32u;
    for (uint32_t b = 0; b < cp.blockCount; ++b) {
        uint64_t gm = static_cast<uint64_t>(b) * (cp.blockLen + cp.srcStride);
        uint64_t ub = static_cast<uint64_t>(b) * (ubBlock + 32ull * cp.dstStride);
        dst.Check(ub / sizeof(T), ubBlock / sizeof(T), "DataCopyPad");
        std::memcpy(dst.Raw() + ub, src.RawAt(gm, cp.blockLen, "DataCopyPad"), cp.blockLen);
        std::memset(dst.Raw() + ub + cp.blockLen, 0xFF, ubBlock - cp.blockLen);
    }
}

// UB -> GM: each block is read from a 32-byte boundary in UB, written as blockLen bytes.
template <typename T>
inline void DataCopyPad(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyExtParams& cp) {
    npuq_host::Require("DataCopyPad(UB->GM)");
    if (cp.blockCount < 1 || cp.blockCount > 4095) npuq_host::Fatal("DataCopyPad: blockCount %u outside [1, 4095]", cp.blockCount);
    if (cp.blockLen < 1 || cp.blockLen > 2097151u) npuq_host::Fatal("DataCopyPad: blockLen %u outside [1, 2^21)", cp.blockLen);
    if (cp.blockLen % sizeof(T)) npuq_host::Fatal("DataCopyPad: blockLen %u is not a whole number of elements", cp.blockLen);
    src.CheckAligned("DataCopyPad");
    uint64_t ubBlock = (cp.blockLen + 31u) / 32u * 32u;
    for (uint32_t b = 0; b < cp.blockCount; ++b) {
        uint64_t ub = static_cast<uint64_t>(b) * (ubBlock + 32ull * cp.srcStride);
        uint64_t gm = static_cast<uint64_t>(b) * (cp.blockLen + cp.dstStride);
        src.Check(ub / sizeof(T), cp.blockLen / sizeof(T), "DataCopyPad");
        std::memcpy(dst.RawAt(gm, cp.blockLen, "DataCopyPad"), src.Raw() + ub, cp.blockLen);
    }
}

// ------------------------------------------------------------------ vector unit: helpers

namespace detail {

template <typename T>
inline void Operand(const LocalTensor<T>& t, uint64_t count, const char* api) {
    t.CheckAligned(api);
    t.Check(0, count, api);
}

// Level-0 addressing: lane L of repeat r of an operand with block / repeat strides (in
// 32-byte blocks) is element r*repStride*epb + (L/epb)*blkStride*epb + L%epb.
template <typename T>
inline uint64_t Lane(uint32_t r, uint32_t lane, uint32_t blkStride, uint32_t repStride) {
    constexpr uint32_t epb = kPerBlock<T>;
    return static_cast<uint64_t>(r) * repStride * epb + static_cast<uint64_t>(lane / epb) * blkStride * epb + lane % epb;
}

struct LaneMask {
    uint64_t bits[2] = {0, 0};
    bool Test(uint32_t lane) const { return (bits[lane / 64] >> (lane % 64)) & 1u; }
};
template <typename T>
inline LaneMask CountMask(uint64_t n, const char* api) {
    if (n < 1 || n > kPerRepeat<T>) npuq_host::Fatal("%s: mask %llu outside [1, %u]", api, static_cast<unsigned long long>(n), kPerRepeat<T>);
    LaneMask m;
    for (uint32_t l = 0; l < n; ++l) m.bits[l / 64] |= 1ull << (l % 64);
    return m;
}
template <typename T>
inline LaneMask BitMask(const uint64_t mask[], const char* api) {
    LaneMask m;
    m.bits[0] = mask[0];
    m.bits[1] = mask[1];
    if (sizeof(T) == 4 && m.bits[1] != 0) npuq_host::Fatal("%s: mask[1] must be 0 for 32-bit types", api);
    if (m.bits[0] == 0 && m.bits[1] == 0) npuq_host::Fatal("%s: empty mask", api);
    return m;
}

template <typename T, typename F>
inline void Unary(const LocalTensor<T>& dst, const LocalTensor<T>& src, uint32_t count, const char* api, F f) {
    Operand(dst, count, api);
    Operand(src, count, api);
    T* d = dst.Ptr();
    const T* s = src.Ptr();
    for (uint32_t i = 0; i < count; ++i) d[i] = f(s[i]);
}

template <typename T, typename F>
inline void Binary(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, uint32_t count,
                   const char* api, F f) {
    Operand(dst, count, api);
    Operand(a, count, api);
    Operand(b, count, api);
    T* d = dst.Ptr();
    const T* x = a.Ptr();
    const T* y = b.Ptr();
    for (uint32_t i = 0; i < count; ++i) d[i] = f(x[i], y[i]);
}

// Level-0 binary op: reads every selected lane of a repeat, then writes them.
template <typename T, typename F>
inline void Binary0(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, const LaneMask& m,
                    uint8_t repeat, const BinaryRepeatParams& p, const char* api, F f) {
    dst.CheckAligned(api);
    a.CheckAligned(api);
    b.CheckAligned(api);
    constexpr uint32_t lanes = kPerRepeat<T>;
    for (uint32_t r = 0; r < repeat; ++r) {
        T out[lanes];
        for (uint32_t l = 0; l < lanes; ++l) {
            if (!m.Test(l)) continue;
            uint64_t ia = Lane<T>(r, l, p.src0BlkStride, p.src0RepStride);
            uint64_t ib = Lane<T>(r, l, p.src1BlkStride, p.src1RepStride);
            a.Check(ia, 1, api);
            b.Check(ib, 1, api);
            out[l] = f(a.Ptr()[ia], b.Ptr()[ib]);
        }
        for (uint32_t l = 0; l < lanes; ++l) {
            if (!m.Test(l)) continue;
            uint64_t id = Lane<T>(r, l, p.dstBlkStride, p.dstRepStride);
            dst.Check(id, 1, api);
            dst.Ptr()[id] = out[l];
        }
    }
}

// Max / Min of a row: NaN operands abort where the row says NaN ordering is undocumented.
template <typename T>
inline T Max(const npuq_host::SocRow& row, T a, T b) {
    if constexpr (std::is_same<T, float>::value) {
        npuq_host::CheckNaN(row, a);
        npuq_host::CheckNaN(row, b);
    }
    return a >= b ? a : b;
}
template <typename T>
inline T Min(const npuq_host::SocRow& row, T a, T b) {
    if constexpr (std::is_same<T, float>::value) {
        npuq_host::CheckNaN(row, a);
        npuq_host::CheckNaN(row, b);
    }
    return a <= b ? a : b;
}

template <typename T>
constexpr bool kArith = std::is_same<T, float>::value || std::is_same<T, int32_t>::value;
template <typename T>
constexpr bool kBitwise = std::is_same<T, uint16_t>::value || std::is_same<T, int16_t>::value;

}  // namespace detail

// ------------------------------------------------------------------ vector unit: level 2

template <typename T>
inline void Abs(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t& count) {
    static_assert(std::is_same<T, float>::value, "Abs is emulated for float");
    npuq_host::Require("Abs(float)");
    detail::Unary(dst, src, count, "Abs", [](float v) { return npuq_host::BitsFloat(npuq_host::FloatBits(v) & 0x7FFFFFFFu); });
}
template <typename T>
inline void Adds(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& s, const int32_t& count) {
    static_assert(detail::kArith<T>, "Adds: float or int32_t");
    npuq_host::Require(std::is_same<T, float>::value ? "Adds(float)" : "Adds(int32_t)");
    detail::Unary(dst, src, count, "Adds", [s](T v) {
        if constexpr (std::is_same<T, int32_t>::value) return static_cast<T>(static_cast<uint32_t>(v) + static_cast<uint32_t>(s));
        else return v + s;
    });
}
template <typename T>
inline void Muls(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& s, const int32_t& count) {
    static_assert(std::is_same<T, float>::value, "Muls is emulated for float");
    npuq_host::Require("Muls(float)");
    detail::Unary(dst, src, count, "Muls", [s](T v) { return v * s; });
}
template <typename T>
inline void Maxs(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& s, const int32_t& count) {
    static_assert(detail::kArith<T>, "Maxs: float or int32_t");
    const auto& row = npuq_host::Require(std::is_same<T, float>::value ? "Maxs(float)" : "Maxs(int32_t)");
    detail::Unary(dst, src, count, "Maxs", [s, &row](T v) { return detail::Max(row, v, s); });
}
template <typename T>
inline void Mins(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& s, const int32_t& count) {
    static_assert(detail::kArith<T>, "Mins: float or int32_t");
    const auto& row = npuq_host::Require(std::is_same<T, float>::value ? "Mins(float)" : "Mins(int32_t)");
    detail::Unary(dst, src, count, "Mins", [s, &row](T v) { return detail::Min(row, v, s); });
}
template <typename T>
inline void Add(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, const int32_t& count) {
    static_assert(detail::kArith<T>, "Add: float or int32_t");
    npuq_host::Require(std::is_same<T, float>::value ? "Add(float)" : "Add(int32_t)");
    detail::Binary(dst, a, b, count, "Add", [](T x, T y) {
        if constexpr (std::is_same<T, int32_t>::value) return static_cast<T>(static_cast<uint32_t>(x) + static_cast<uint32_t>(y));
        else return x + y;
    });
}
template <typename T>
inline void Sub(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, const int32_t& count) {
    static_assert(std::is_same<T, float>::value, "Sub is emulated for float");
    npuq_host::Require("Sub(float)");
    detail::Binary(dst, a, b, count, "Sub", [](T x, T y) { return x - y; });
}
template <typename T>
inline void Mul(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, const int32_t& count) {
    static_assert(std::is_same<T, float>::value, "Mul is emulated for float");
    npuq_host::Require("Mul(float)");
    detail::Binary(dst, a, b, count, "Mul", [](T x, T y) { return x * y; });
}
namespace detail {
// NPUQ_HOST_DIV_ULP=1: Div returns a finite nonzero quotient 1 ulp off, up or down by a hash
// of its operands (deterministic). 910B documents no correctly rounded Div: index and
// control arithmetic must not notice; value results that do are listed in kernels/README.md.
inline bool DivOffByOneUlp() {
    static const bool on = [] {
        const char* v = std::getenv("NPUQ_HOST_DIV_ULP");
        return v != nullptr && std::strcmp(v, "1") == 0;
    }();
    return on;
}
inline float PerturbedQuotient(float x, float y) {
    const float q = x / y;
    if (!DivOffByOneUlp() || !std::isfinite(q) || q == 0.0f) return q;
    uint32_t bx, by;
    std::memcpy(&bx, &x, 4);
    std::memcpy(&by, &y, 4);
    const uint32_t h = (bx * 2654435761u) ^ (by * 2246822519u);
    return std::nextafter(q, ((h >> 7) & 1u) ? std::numeric_limits<float>::infinity()
                                              : -std::numeric_limits<float>::infinity());
}
}  // namespace detail
template <typename T>
inline void Div(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, const int32_t& count) {
    static_assert(std::is_same<T, float>::value, "Div is emulated for float");
    npuq_host::Require("Div(float)");
    detail::Binary(dst, a, b, count, "Div", [](T x, T y) { return detail::PerturbedQuotient(x, y); });
}
template <typename T>
inline void Max(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, const int32_t& count) {
    static_assert(std::is_same<T, float>::value, "Max is emulated for float");
    const auto& row = npuq_host::Require("Max(float)");
    detail::Binary(dst, a, b, count, "Max", [&row](T x, T y) { return detail::Max(row, x, y); });
}
template <typename T>
inline void And(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, const int32_t& count) {
    static_assert(detail::kBitwise<T>, "And: int16_t or uint16_t");
    npuq_host::Require("And(16-bit)");
    detail::Binary(dst, a, b, count, "And", [](T x, T y) { return static_cast<T>(x & y); });
}
template <typename T>
inline void Or(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, const int32_t& count) {
    static_assert(detail::kBitwise<T>, "Or: int16_t or uint16_t");
    npuq_host::Require("Or(16-bit)");
    detail::Binary(dst, a, b, count, "Or", [](T x, T y) { return static_cast<T>(x | y); });
}
template <typename T>
inline void Not(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t& count) {
    static_assert(detail::kBitwise<T>, "Not: int16_t or uint16_t");
    npuq_host::Require("Not(16-bit)");
    detail::Unary(dst, src, count, "Not", [](T v) { return static_cast<T>(~v); });
}
template <typename T>
inline void ShiftLeft(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& bits, const int32_t& count) {
    static_assert(std::is_same<T, int32_t>::value, "ShiftLeft is emulated for int32_t");
    npuq_host::Require("ShiftLeft(int32_t)");
    detail::Unary(dst, src, count, "ShiftLeft", [bits](T v) { return static_cast<T>(static_cast<uint32_t>(v) << bits); });
}

template <typename T>
inline void Duplicate(const LocalTensor<T>& dst, const T& value, const int32_t& count) {
    static_assert(sizeof(T) == 2 || sizeof(T) == 4, "Duplicate: 16- or 32-bit types");
    npuq_host::Require("Duplicate");
    detail::Operand(dst, count, "Duplicate");
    for (int32_t i = 0; i < count; ++i) dst.Ptr()[i] = value;
}

template <typename T>
inline void CreateVecIndex(LocalTensor<T> dst, const T& first, uint32_t count) {
    static_assert(std::is_same<T, float>::value, "CreateVecIndex is emulated for float");
    npuq_host::Require("CreateVecIndex(float)");
    detail::Operand(dst, count, "CreateVecIndex");
    for (uint32_t i = 0; i < count; ++i) dst.Ptr()[i] = first + static_cast<T>(i);
}

// Bit i of the uint8 mask (byte i/8, bit i%8) is element i's result. Compare results are
// written for whole 256-byte repeats, so count * sizeof(T) must be a multiple of 256.
template <typename T, typename U>
inline void CompareScalar(const LocalTensor<U>& dst, const LocalTensor<T>& src, const T scalar, CMPMODE mode,
                          uint32_t count) {
    static_assert(detail::kArith<T> && std::is_same<U, uint8_t>::value, "CompareScalar: float or int32_t -> uint8_t");
    const auto& row = npuq_host::Require(std::is_same<T, float>::value ? "CompareScalar(float)"
                                         : mode == CMPMODE::EQ       ? "CompareScalar(int32_t, EQ)"
                                                                     : "CompareScalar(int32_t, not EQ)");
    if constexpr (std::is_same<T, float>::value) npuq_host::CheckNaN(row, scalar);
    if (count == 0 || (count * sizeof(T)) % 256 != 0) npuq_host::Fatal("CompareScalar: count %u is not a whole number of repeats", count);
    detail::Operand(src, count, "CompareScalar");
    detail::Operand(dst, count / 8, "CompareScalar");
    uint8_t* d = dst.Ptr();
    std::memset(d, 0, count / 8);
    for (uint32_t i = 0; i < count; ++i) {
        const T v = src.Ptr()[i];
        if constexpr (std::is_same<T, float>::value) npuq_host::CheckNaN(row, v);
        bool r = false;
        switch (mode) {
            case CMPMODE::LT: r = v < scalar; break;
            case CMPMODE::GT: r = v > scalar; break;
            case CMPMODE::EQ: r = v == scalar; break;
            case CMPMODE::LE: r = v <= scalar; break;
            case CMPMODE::GE: r = v >= scalar; break;
            case CMPMODE::NE: r = v != scalar; break;
        }
        if (r) d[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
    }
}

// Mode 1: dst = bit ? src0 : scalar.
template <typename T, typename U>
inline void Select(const LocalTensor<T>& dst, const LocalTensor<U>& selMask, const LocalTensor<T>& src0, T src1,
                   SELMODE mode, uint32_t count) {
    static_assert(std::is_same<T, float>::value && std::is_same<U, uint8_t>::value, "Select: float with uint8_t mask");
    npuq_host::Require("Select(float)");
    if (mode != SELMODE::VSEL_TENSOR_SCALAR_MODE) npuq_host::Fatal("Select(scalar): mode must be VSEL_TENSOR_SCALAR_MODE");
    detail::Operand(dst, count, "Select");
    detail::Operand(src0, count, "Select");
    detail::Operand(selMask, (count + 7) / 8, "Select");
    for (uint32_t i = 0; i < count; ++i)
        dst.Ptr()[i] = ((selMask.Ptr()[i / 8] >> (i % 8)) & 1u) ? src0.Ptr()[i] : src1;
}
// Mode 2: dst = bit ? src0 : src1.
template <typename T, typename U>
inline void Select(const LocalTensor<T>& dst, const LocalTensor<U>& selMask, const LocalTensor<T>& src0,
                   const LocalTensor<T>& src1, SELMODE mode, uint32_t count) {
    static_assert(std::is_same<T, float>::value && std::is_same<U, uint8_t>::value, "Select: float with uint8_t mask");
    npuq_host::Require("Select(float)");
    if (mode != SELMODE::VSEL_TENSOR_TENSOR_MODE) npuq_host::Fatal("Select(tensor): mode must be VSEL_TENSOR_TENSOR_MODE");
    detail::Operand(dst, count, "Select");
    detail::Operand(src0, count, "Select");
    detail::Operand(src1, count, "Select");
    detail::Operand(selMask, (count + 7) / 8, "Select");
    for (uint32_t i = 0; i < count; ++i)
        dst.Ptr()[i] = ((selMask.Ptr()[i / 8] >> (i % 8)) & 1u) ? src0.Ptr()[i] : src1.Ptr()[i];
}

// dst[i] = *(T*)(src + srcBaseAddr + srcOffset[i]), offsets in bytes.
template <typename T>
inline void Gather(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<uint32_t>& srcOffset,
                   const uint32_t srcBaseAddr, const uint32_t count) {
    static_assert(std::is_same<T, half>::value || std::is_same<T, float>::value, "Gather: half or float");
    npuq_host::Require(std::is_same<T, half>::value ? "Gather(half)" : "Gather(float)");
    detail::Operand(dst, count, "Gather");
    detail::Operand(srcOffset, count, "Gather");
    src.CheckAligned("Gather");
    for (uint32_t i = 0; i < count; ++i) {
        uint64_t off = static_cast<uint64_t>(srcBaseAddr) + srcOffset.Ptr()[i];
        if (off % sizeof(T)) npuq_host::Fatal("Gather: offset %llu is not element aligned", static_cast<unsigned long long>(off));
        src.Check(off / sizeof(T), 1, "Gather");
        std::memcpy(dst.Raw() + static_cast<size_t>(i) * sizeof(T), src.Raw() + off, sizeof(T));
    }
}

// ------------------------------------------------------------------ Cast

namespace detail {
inline float RoundF(float v, RoundMode m, const char* api) {
    switch (m) {
        case RoundMode::CAST_RINT: return std::nearbyint(v);  // default environment: ties to even
        case RoundMode::CAST_FLOOR: return std::floor(v);
        case RoundMode::CAST_CEIL: return std::ceil(v);
        case RoundMode::CAST_ROUND: return std::round(v);     // ties away from zero
        case RoundMode::CAST_TRUNC: return std::trunc(v);
        default: npuq_host::Fatal("%s: round mode not emulated", api);
    }
}
inline int32_t ToInt32(float v, RoundMode m) {
    float r = RoundF(v, m, "Cast(int32_t <- float)");
    if (!(r >= -2147483648.0f && r < 2147483648.0f)) npuq_host::Fatal("Cast(int32_t <- float): %g out of range", v);
    return static_cast<int32_t>(r);
}
}  // namespace detail

namespace detail {
template <typename D, typename S>
inline const char* CastRow(RoundMode mode) {
    if constexpr (std::is_same<D, float>::value && std::is_same<S, float>::value) return "Cast(float <- float)";
    if constexpr (std::is_same<D, half>::value && std::is_same<S, float>::value)
        return mode == RoundMode::CAST_NONE ? "Cast(half <- float, NONE)" : "Cast(half <- float, RINT)";
    if constexpr (std::is_same<D, bfloat16_t>::value) return "Cast(bfloat16_t <- float)";
    if constexpr (std::is_same<D, float>::value && std::is_same<S, bfloat16_t>::value) return "Cast(float <- bfloat16_t)";
    if constexpr (std::is_same<D, float>::value && std::is_same<S, half>::value) return "Cast(float <- half)";
    if constexpr (std::is_same<D, half>::value && std::is_same<S, uint8_t>::value) return "Cast(half <- uint8_t)";
    if constexpr (std::is_same<D, uint8_t>::value && std::is_same<S, half>::value)
        return mode == RoundMode::CAST_NONE ? "Cast(uint8_t <- half, NONE)" : "Cast(uint8_t <- half, rounding)";
    if constexpr (std::is_same<D, int32_t>::value && std::is_same<S, half>::value) return "Cast(int32_t <- half)";
    if constexpr (std::is_same<D, int32_t>::value && std::is_same<S, float>::value) return "Cast(int32_t <- float)";
    return "Cast(?)";
}
}  // namespace detail

template <typename D, typename S>
inline void Cast(const LocalTensor<D>& dst, const LocalTensor<S>& src, const RoundMode& mode, const uint32_t count) {
    npuq_host::Require(detail::CastRow<D, S>(mode));
    detail::Operand(dst, count, "Cast");
    detail::Operand(src, count, "Cast");
    if (sizeof(D) != sizeof(S) && dst.Addr() < src.Addr() + count * sizeof(S) && src.Addr() < dst.Addr() + count * sizeof(D))
        npuq_host::Fatal("Cast: overlapping operands of different widths");
    D* d = dst.Ptr();
    const S* s = src.Ptr();
    for (uint32_t i = 0; i < count; ++i) {
        if constexpr (std::is_same<D, float>::value && std::is_same<S, float>::value) {
            d[i] = detail::RoundF(s[i], mode, "Cast(float <- float)");
        } else if constexpr (std::is_same<D, float>::value && (std::is_same<S, half>::value || std::is_same<S, bfloat16_t>::value)) {
            if (mode != RoundMode::CAST_NONE) npuq_host::Fatal("Cast(float <- 16-bit float): use CAST_NONE");
            d[i] = static_cast<float>(s[i]);
        } else if constexpr (std::is_same<D, half>::value && std::is_same<S, float>::value) {
            if (mode != RoundMode::CAST_NONE && mode != RoundMode::CAST_RINT) npuq_host::Fatal("Cast(half <- float): round mode not emulated");
            d[i] = half(s[i]);
        } else if constexpr (std::is_same<D, bfloat16_t>::value && std::is_same<S, float>::value) {
            if (mode != RoundMode::CAST_RINT) npuq_host::Fatal("Cast(bfloat16_t <- float): round mode not emulated");
            d[i] = bfloat16_t(s[i]);
        } else if constexpr (std::is_same<D, half>::value && std::is_same<S, uint8_t>::value) {
            if (mode != RoundMode::CAST_NONE) npuq_host::Fatal("Cast(half <- uint8_t): use CAST_NONE");
            d[i] = half(static_cast<float>(s[i]));
        } else if constexpr (std::is_same<D, uint8_t>::value && std::is_same<S, half>::value) {
            // vconv_f162u8: the kernels narrow only exact codes, so anything but an integer in
            // [0, 255] is rejected rather than saturated or wrapped.
            const float v = static_cast<float>(s[i]);
            if (!(v >= 0.0f && v <= 255.0f) || v != std::floor(v))
                npuq_host::Fatal("Cast(uint8_t <- half): element %u is %g, not a byte value", i, v);
            d[i] = static_cast<uint8_t>(v);
        } else if constexpr (std::is_same<D, int32_t>::value && std::is_same<S, half>::value) {
            d[i] = detail::ToInt32(static_cast<float>(s[i]), mode);
        } else if constexpr (std::is_same<D, int32_t>::value && std::is_same<S, float>::value) {
            d[i] = detail::ToInt32(s[i], mode);
        } else if constexpr (std::is_same<D, float>::value && std::is_same<S, half>::value) {
            d[i] = static_cast<float>(s[i]);
        } else {
            static_assert(sizeof(D) == 0, "Cast: this conversion is not emulated");
        }
    }
}

// ------------------------------------------------------------------ vector unit: level 0

namespace detail {
// Level-0 Duplicate over the lanes `m` selects, whichever form of mask built it.
template <typename T>
inline void DuplicateLanes(const LocalTensor<T>& dst, const T& value, const LaneMask& m, uint8_t repeatTimes,
                           uint16_t dstBlockStride, uint8_t dstRepeatStride) {
    npuq_host::Require("Duplicate");
    dst.CheckAligned("Duplicate");
    for (uint32_t r = 0; r < repeatTimes; ++r)
        for (uint32_t l = 0; l < kPerRepeat<T>; ++l)
            if (m.Test(l)) {
                uint64_t i = Lane<T>(r, l, dstBlockStride, dstRepeatStride);
                dst.Check(i, 1, "Duplicate");
                dst.Ptr()[i] = value;
            }
}
}  // namespace detail

// Continuous mask: the first `mask` lanes of every repeat.
template <typename T, bool isSetMask = true>
inline void Duplicate(const LocalTensor<T>& dst, const T& value, uint64_t mask, const uint8_t repeatTimes,
                      const uint16_t dstBlockStride, const uint8_t dstRepeatStride) {
    detail::DuplicateLanes(dst, value, detail::CountMask<T>(mask, "Duplicate"), repeatTimes, dstBlockStride,
                           dstRepeatStride);
}
// Bit-wise mask: lanes whose bit is set.
template <typename T, bool isSetMask = true>
inline void Duplicate(const LocalTensor<T>& dst, const T& value, uint64_t mask[], const uint8_t repeatTimes,
                      const uint16_t dstBlockStride, const uint8_t dstRepeatStride) {
    detail::DuplicateLanes(dst, value, detail::BitMask<T>(mask, "Duplicate"), repeatTimes, dstBlockStride,
                           dstRepeatStride);
}

template <typename T, bool isSetMask = true>
inline void Max(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, uint64_t mask,
                const uint8_t repeatTimes, const BinaryRepeatParams& p) {
    static_assert(std::is_same<T, float>::value, "Max (level 0) is emulated for float");
    const auto& row = npuq_host::Require("Max(float)");
    detail::Binary0(dst, a, b, detail::CountMask<T>(mask, "Max"), repeatTimes, p, "Max",
                    [&row](T x, T y) { return detail::Max(row, x, y); });
}
template <typename T, bool isSetMask = true>
inline void Mul(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, uint64_t mask,
                const uint8_t repeatTimes, const BinaryRepeatParams& p) {
    static_assert(std::is_same<T, float>::value, "Mul (level 0) is emulated for float");
    npuq_host::Require("Mul(float)");
    detail::Binary0(dst, a, b, detail::CountMask<T>(mask, "Mul"), repeatTimes, p, "Mul",
                    [](T x, T y) { return x * y; });
}
template <typename T, bool isSetMask = true>
inline void And(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, uint64_t mask,
                const uint8_t repeatTimes, const BinaryRepeatParams& p) {
    static_assert(detail::kBitwise<T>, "And: int16_t or uint16_t");
    npuq_host::Require("And(16-bit)");
    detail::Binary0(dst, a, b, detail::CountMask<T>(mask, "And"), repeatTimes, p, "And",
                    [](T x, T y) { return static_cast<T>(x & y); });
}

// Bit-wise mask copy: unselected lanes of dst keep their values.
template <typename T, bool isSetMask = true>
inline void Copy(const LocalTensor<T>& dst, const LocalTensor<T>& src, const uint64_t mask[], const uint8_t repeatTimes,
                 const CopyRepeatParams& p) {
    static_assert(sizeof(T) == 2 || sizeof(T) == 4, "Copy: 16- or 32-bit types");
    npuq_host::Require("Copy");
    auto m = detail::BitMask<T>(mask, "Copy");
    dst.CheckAligned("Copy");
    src.CheckAligned("Copy");
    for (uint32_t r = 0; r < repeatTimes; ++r)
        for (uint32_t l = 0; l < detail::kPerRepeat<T>; ++l)
            if (m.Test(l)) {
                uint64_t is = detail::Lane<T>(r, l, p.srcStride, p.srcRepeatSize);
                uint64_t id = detail::Lane<T>(r, l, p.dstStride, p.dstRepeatSize);
                src.Check(is, 1, "Copy");
                dst.Check(id, 1, "Copy");
                dst.Ptr()[id] = src.Ptr()[is];
            }
}

// One value per repeat: the maximum of the first `mask` lanes; written at dst[r * dstRepStride]
// (ORDER_ONLY_VALUE: the stride counts dst elements; a float dst needs 8-byte alignment only).
template <typename T, bool isSetMask = true>
inline void WholeReduceMax(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t mask,
                           const int32_t repeatTimes, const int32_t dstRepStride, const int32_t srcBlkStride,
                           const int32_t srcRepStride, ReduceOrder order = ReduceOrder::ORDER_VALUE_INDEX) {
    static_assert(std::is_same<T, float>::value, "WholeReduceMax is emulated for float");
    const auto& row = npuq_host::Require("WholeReduceMax(float, ORDER_ONLY_VALUE)");
    if (order != ReduceOrder::ORDER_ONLY_VALUE) npuq_host::Fatal("WholeReduceMax: only ORDER_ONLY_VALUE is emulated");
    if (repeatTimes < 0 || repeatTimes > 255) npuq_host::Fatal("WholeReduceMax: repeatTimes %d", repeatTimes);
    auto m = detail::CountMask<T>(static_cast<uint64_t>(mask), "WholeReduceMax");
    if (dst.Addr() % 8 != 0) npuq_host::Fatal("WholeReduceMax: float dst at byte %u is not 8-byte aligned", dst.Addr());
    src.CheckAligned("WholeReduceMax");
    for (int32_t r = 0; r < repeatTimes; ++r) {
        float acc = 0;
        bool first = true;
        for (uint32_t l = 0; l < detail::kPerRepeat<T>; ++l) {
            if (!m.Test(l)) continue;
            uint64_t i = detail::Lane<T>(r, l, srcBlkStride, srcRepStride);
            src.Check(i, 1, "WholeReduceMax");
            acc = first ? src.Ptr()[i] : detail::Max(row, acc, src.Ptr()[i]);
            npuq_host::CheckNaN(row, acc);
            first = false;
        }
        uint64_t o = static_cast<uint64_t>(r) * dstRepStride;
        dst.Check(o, 1, "WholeReduceMax");
        dst.Ptr()[o] = acc;
    }
}

// Eight values per repeat, one per 32-byte block: the maximum of the block's selected lanes;
// written at dst[(r * dstRepStride) * 8 + k]. A block with no selected lane is rejected.
template <typename T, bool isSetMask = true>
inline void BlockReduceMax(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t repeat,
                           const uint64_t mask[], const int32_t dstRepStride, const int32_t srcBlkStride,
                           const int32_t srcRepStride) {
    static_assert(std::is_same<T, float>::value, "BlockReduceMax is emulated for float");
    const auto& row = npuq_host::Require("BlockReduceMax(float)");
    if (repeat < 0 || repeat > 255) npuq_host::Fatal("BlockReduceMax: repeat %d", repeat);
    auto m = detail::BitMask<T>(mask, "BlockReduceMax");
    dst.CheckAligned("BlockReduceMax");
    src.CheckAligned("BlockReduceMax");
    constexpr uint32_t epb = detail::kPerBlock<T>;
    for (int32_t r = 0; r < repeat; ++r)
        for (uint32_t k = 0; k < 8; ++k) {
            float acc = 0;
            bool any = false;
            for (uint32_t j = 0; j < epb; ++j) {
                uint32_t l = k * epb + j;
                if (!m.Test(l)) continue;
                uint64_t i = detail::Lane<T>(r, l, srcBlkStride, srcRepStride);
                src.Check(i, 1, "BlockReduceMax");
                acc = any ? detail::Max(row, acc, src.Ptr()[i]) : src.Ptr()[i];
                npuq_host::CheckNaN(row, acc);
                any = true;
            }
            if (!any) npuq_host::Fatal("BlockReduceMax: block %u of a repeat has no lane selected", k);
            uint64_t o = static_cast<uint64_t>(r) * dstRepStride * 8 + k;
            dst.Check(o, 1, "BlockReduceMax");
            dst.Ptr()[o] = acc;
        }
}

// Repeat r takes src[8r .. 8r+7] and fills block k at dst + (r*dstRepStride + k*dstBlkStride)
// 32-byte blocks with src[8r + k].
template <typename T>
inline void Brcb(const LocalTensor<T>& dst, const LocalTensor<T>& src, const uint8_t repeatTimes,
                 const BrcbRepeatParams& p) {
    static_assert(sizeof(T) == 2 || sizeof(T) == 4, "Brcb: 16- or 32-bit types");
    npuq_host::Require("Brcb");
    dst.CheckAligned("Brcb");
    src.CheckAligned("Brcb");
    src.Check(0, 8u * repeatTimes, "Brcb");
    if (dst.Addr() < src.Addr() + 8u * repeatTimes * sizeof(T) && src.Addr() < dst.Addr() + dst.GetSize() * sizeof(T) &&
        dst.Addr() == src.Addr())
        npuq_host::Fatal("Brcb: src and dst must differ");
    constexpr uint32_t epb = detail::kPerBlock<T>;
    uint32_t blk = p.dstBlkStride == 0 ? 1 : p.dstBlkStride;
    std::vector<T> vals(src.Ptr(), src.Ptr() + 8u * repeatTimes);
    for (uint32_t r = 0; r < repeatTimes; ++r)
        for (uint32_t k = 0; k < 8; ++k) {
            uint64_t base = (static_cast<uint64_t>(r) * p.dstRepStride + static_cast<uint64_t>(k) * blk) * epb;
            dst.Check(base, epb, "Brcb");
            for (uint32_t j = 0; j < epb; ++j) dst.Ptr()[base + j] = vals[r * 8 + k];
        }
}

// ------------------------------------------------------------------ npuq::Quantize additions
// (kept in one block: ShiftRight, BlockReduceSum; Cast uint8 <- half is in Cast above)

// Logical (uint32) or arithmetic (int32) right shift of every element by `bits` in [0, 32]
// (ShiftRight.md: A2 takes uint16/int16/uint32/int32).
template <typename T>
inline void ShiftRight(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& bits, const int32_t& count) {
    static_assert(std::is_same<T, int32_t>::value || std::is_same<T, uint32_t>::value, "ShiftRight: 32-bit integers");
    npuq_host::Require(std::is_same<T, int32_t>::value ? "ShiftRight(int32_t)" : "ShiftRight(uint32_t)");
    if (static_cast<uint32_t>(bits) > 32) npuq_host::Fatal("ShiftRight: shift %u outside [0, 32]", static_cast<uint32_t>(bits));
    detail::Unary(dst, src, count, "ShiftRight", [bits](T v) {
        if (bits == 32) return static_cast<T>(v < 0 ? -1 : 0);
        return static_cast<T>(v >> bits);
    });
}

// Eight values per repeat, one per 32-byte block: the sum of the block's selected lanes (as
// BlockReduceMax). Sums here are of small integers, exact in any order.
template <typename T, bool isSetMask = true>
inline void BlockReduceSum(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t repeat,
                           const uint64_t mask[], const int32_t dstRepStride, const int32_t srcBlkStride,
                           const int32_t srcRepStride) {
    static_assert(std::is_same<T, float>::value, "BlockReduceSum is emulated for float");
    npuq_host::Require("BlockReduceSum(float)");
    if (repeat < 0 || repeat > 255) npuq_host::Fatal("BlockReduceSum: repeat %d", repeat);
    auto m = detail::BitMask<T>(mask, "BlockReduceSum");
    dst.CheckAligned("BlockReduceSum");
    src.CheckAligned("BlockReduceSum");
    constexpr uint32_t epb = detail::kPerBlock<T>;
    for (int32_t r = 0; r < repeat; ++r)
        for (uint32_t k = 0; k < 8; ++k) {
            float acc = 0;
            bool any = false;
            for (uint32_t j = 0; j < epb; ++j) {
                uint32_t l = k * epb + j;
                if (!m.Test(l)) continue;
                uint64_t i = detail::Lane<T>(r, l, srcBlkStride, srcRepStride);
                src.Check(i, 1, "BlockReduceSum");
                acc += src.Ptr()[i];
                any = true;
            }
            if (!any) npuq_host::Fatal("BlockReduceSum: block %u of a repeat has no lane selected", k);
            uint64_t o = static_cast<uint64_t>(r) * dstRepStride * 8 + k;
            dst.Check(o, 1, "BlockReduceSum");
            dst.Ptr()[o] = acc;
        }
}
// ------------------------------------------------------------------ end of npuq::Quantize additions

}  // namespace AscendC
