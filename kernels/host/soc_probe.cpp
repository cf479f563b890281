// npuq-soc-probe: one AscendC call of the emulator's SoC table on one emulated core, so a test
// can check every row under NPUQ_HOST_SOC=910B and 310P.
//
//   npuq-soc-probe --list        the table: call, 910B, 310P, nan (one row a line, tab-separated)
//   npuq-soc-probe CALL [--nan]  runs CALL (a row's name) on valid operands, with --nan one
//                                NaN operand lane; exit 0, or 3 where the emulator refuses it
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "kernel_operator.h"

namespace {

using namespace AscendC;

const char* HasName(npuq_host::Has h) {
    switch (h) {
        case npuq_host::Has::kYes: return "yes";
        case npuq_host::Has::kNo: return "no";
        case npuq_host::Has::kNoOp: return "noop";
        default: return "other";
    }
}

// Runs `call` on a core of one pipe: a few float / 16-bit / int32 tensors of one repeat each.
void Probe(const std::string& call, bool nan) {
    TPipe pipe;
    TBuf<TPosition::VECCALC> buf;
    pipe.InitBuffer(buf, 16 * 256);
    const LocalTensor<float> f = buf.Get<float>();
    const LocalTensor<float> a = f, b = f[64], d = f[128];
    const LocalTensor<uint8_t> mask = f[192].ReinterpretCast<uint8_t>();
    const LocalTensor<int32_t> ia = a.ReinterpretCast<int32_t>(), id = d.ReinterpretCast<int32_t>();
    const LocalTensor<uint16_t> ua = a.ReinterpretCast<uint16_t>(), ub = b.ReinterpretCast<uint16_t>(),
                                ud = d.ReinterpretCast<uint16_t>();
    for (uint32_t i = 0; i < 64; ++i) {
        a.SetValue(i, 1.0f + i);
        b.SetValue(i, 2.0f);
        d.SetValue(i, 0.0f);
    }
    if (nan) a.SetValue(5, std::nanf(""));
    for (uint32_t i = 0; i < 32; ++i) mask.SetValue(i, 0x55);
    std::vector<float> gm(64, 1.0f);
    GlobalTensor<float> g;
    g.SetGlobalBuffer(gm.data(), gm.size());
    uint64_t all[2] = {~0ull, 0};
    const BinaryRepeatParams rp(1, 1, 1, 8, 8, 8);
    const LocalTensor<half> h = f[256].ReinterpretCast<half>();
    const LocalTensor<bfloat16_t> bf = f[256].ReinterpretCast<bfloat16_t>();
    const LocalTensor<uint32_t> off = f[320].ReinterpretCast<uint32_t>();
    for (uint32_t i = 0; i < 64; ++i) {
        off.SetValue(i, 4 * i);
        h.SetValue(i, half(1.0f));
    }
    if (call == "DataCopy") DataCopy(a, g, 64);
    else if (call == "DataCopyPad(GM->UB)") DataCopyPad(a, g, DataCopyExtParams{1, 12, 0, 0, 0}, DataCopyPadExtParams<float>{});
    else if (call == "DataCopyPad(UB->GM)") DataCopyPad(g, a, DataCopyExtParams{1, 12, 0, 0, 0});
    else if (call == "Copy") Copy(d, a, all, 1, CopyRepeatParams(1, 1, 8, 8));
    else if (call == "Abs(float)") Abs(d, a, 64);
    else if (call == "Not(16-bit)") Not(ud, ua, 128);
    else if (call == "Adds(float)") Adds(d, a, 1.0f, 64);
    else if (call == "Adds(int32_t)") Adds(id, ia, 1, 64);
    else if (call == "Muls(float)") Muls(d, a, 2.0f, 64);
    else if (call == "Maxs(float)") Maxs(d, a, 2.0f, 64);
    else if (call == "Maxs(int32_t)") Maxs(id, ia, 7, 64);
    else if (call == "Mins(float)") Mins(d, a, 2.0f, 64);
    else if (call == "Mins(int32_t)") Mins(id, ia, 7, 64);
    else if (call == "ShiftLeft(int32_t)") ShiftLeft(id, ia, 2, 64);
    else if (call == "ShiftRight(int32_t)") ShiftRight(id, ia, 2, 64);
    else if (call == "ShiftRight(uint32_t)") ShiftRight(id.ReinterpretCast<uint32_t>(), ia.ReinterpretCast<uint32_t>(), 2u, 64);
    else if (call == "Add(float)") Add(d, a, b, 64);
    else if (call == "Add(int32_t)") Add(id, ia, b.ReinterpretCast<int32_t>(), 64);
    else if (call == "Sub(float)") Sub(d, a, b, 64);
    else if (call == "Mul(float)") Mul(d, a, b, 64);
    else if (call == "Div(float)") Div(d, a, b, 64);
    else if (call == "Max(float)") Max(d, a, b, 64);
    else if (call == "And(16-bit)") And(ud, ua, ub, 128);
    else if (call == "Or(16-bit)") Or(ud, ua, ub, 128);
    else if (call == "Duplicate") Duplicate(d, 3.0f, 64);
    else if (call == "CreateVecIndex(float)") CreateVecIndex(d, 0.0f, 64);
    else if (call == "CompareScalar(float)") CompareScalar(mask, a, 3.0f, CMPMODE::LT, 64);
    else if (call == "CompareScalar(int32_t, EQ)") CompareScalar(mask, ia, 3, CMPMODE::EQ, 64);
    else if (call == "CompareScalar(int32_t, not EQ)") CompareScalar(mask, ia, 3, CMPMODE::LT, 64);
    else if (call == "Select(float)") Select(d, mask, a, 0.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, 64);
    else if (call == "Gather(half)") {
        const LocalTensor<uint32_t> hoff = f[448].ReinterpretCast<uint32_t>();
        for (uint32_t i = 0; i < 64; ++i) hoff.SetValue(i, 2 * i);
        Gather(f[384].ReinterpretCast<half>(), h, hoff, 0, 64);
    }
    else if (call == "Gather(float)") Gather(d, a, off, 0, 64);
    else if (call == "Cast(float <- float)") Cast(d, a, RoundMode::CAST_FLOOR, 64);
    else if (call == "Cast(half <- float, RINT)") Cast(h, a, RoundMode::CAST_RINT, 64);
    else if (call == "Cast(half <- float, NONE)") Cast(h, a, RoundMode::CAST_NONE, 64);
    else if (call == "Cast(bfloat16_t <- float)") Cast(bf, a, RoundMode::CAST_RINT, 64);
    else if (call == "Cast(float <- bfloat16_t)") Cast(d, bf, RoundMode::CAST_NONE, 64);
    else if (call == "Cast(float <- half)") Cast(d, h, RoundMode::CAST_NONE, 64);
    else if (call == "Cast(uint8_t <- half, NONE)") Cast(mask, h, RoundMode::CAST_NONE, 64);
    else if (call == "Cast(half <- uint8_t)") Cast(h, mask, RoundMode::CAST_NONE, 64);
    else if (call == "Cast(int32_t <- half)") Cast(id, h, RoundMode::CAST_RINT, 64);
    else if (call == "Cast(int32_t <- float)") Cast(id, b, RoundMode::CAST_RINT, 64);
    else if (call == "WholeReduceMax(float, ORDER_ONLY_VALUE)")
        WholeReduceMax(d, a, 64, 1, 1, 1, 8, ReduceOrder::ORDER_ONLY_VALUE);
    else if (call == "BlockReduceSum(float)") BlockReduceSum(d, a, 1, all, 1, 1, 8);
    else if (call == "BlockReduceMax(float)") BlockReduceMax(d, a, 1, all, 1, 1, 8);
    else if (call == "Brcb") Brcb(d, a, 1, BrcbRepeatParams(1, 8));
    else if (call == "SyncAll") SyncAll();
    else {
        std::fprintf(stderr, "npuq-soc-probe: no probe for '%s'\n", call.c_str());
        std::exit(2);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 2 && std::strcmp(argv[1], "--list") == 0) {
        for (const auto& r : npuq_host::kSocTable)
            std::printf("%s\t%s\t%s\t%d\n", r.call, HasName(r.a2), HasName(r.m200), r.nan ? 1 : 0);
        return 0;
    }
    if (argc < 2 || argc > 3 || (argc == 3 && std::strcmp(argv[2], "--nan") != 0)) {
        std::fprintf(stderr, "usage: npuq-soc-probe --list | CALL [--nan]\n");
        return 2;
    }
    const std::string call = argv[1];
    const bool nan = argc == 3;
    npuq_host::Launch(1, [&] { Probe(call, nan); });
    return 0;
}
