// npuq-kernel-host: runs the npuq AscendC kernels on the CPU through kernels/host/.
//
//   npuq-kernel-host FORMAT IN OUT ROWS COLS [--dtype float32|float16|bfloat16] [--cores N]
//                    [--tile-rows N] [--option k=v ...]
//       QuantDequant: IN and OUT hold ROWS x COLS raw little-endian values of the dtype,
//       quantized along the last axis. Options: rounding=away|even, scale_rule=floor|rceil
//       (MX), saturate=0|1 and scale=none|row|tensor (hif8), variant=quant_cy|amct (hif4),
//       group=N (int8sym, int4sym, fp8e4m3, fp8e5m2).
//   npuq-kernel-host encode FORMAT IN CODES SCALES ROWS COLS [same options as above]
//       Quantize: IN as above; CODES and SCALES get formats.encode's Packed.codes and
//       Packed.scales rows (ROWS rows each; SCALES empty for unscaled hif8).
//   npuq-kernel-host decode FORMAT CODES SCALES OUT ROWS LENGTH [--block N] [--tensor-scale F]
//                    [--cores N] [--tile-rows N]
//       Dequantize formats.Packed rows: CODES holds ROWS rows of code bytes, SCALES ROWS rows of
//       scale bytes ("-" for unscaled hif8, which has none; scaled hif8 has a float32 per row),
//       OUT gets ROWS x LENGTH float32. --block is the Packed block (default: the format's, or
//       LENGTH for per-channel formats and scaled hif8);
//       --tensor-scale is NVFP4's float32 tensor scale (strtof syntax, hex floats exact).
//
// Exit status: 0 success, 1 I/O error writing OUT, 2 bad arguments (one line on stderr: usage,
// a missing or wrongly sized input file), 3 a kernel broke an AscendC rule the emulator checks.
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "entry.h"
#include "npuq/quantize.h"
#include "npuq/workspace.h"

namespace {

using npuq::FormatId;

const char* const kNames[] = {"hif8",      "hif4", "hifx4_v12", "mxfp4",   "mxfp8e4m3", "mxfp8e5m2",
                              "nvf4",      "nvfp4", "int8sym",  "int4sym", "fp8e4m3",   "fp8e5m2"};
constexpr uint32_t kFormats = sizeof(kNames) / sizeof(kNames[0]);

[[noreturn]] void Usage(const char* fmt, ...) {
    std::fprintf(stderr, "npuq-kernel-host: error: ");
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fprintf(stderr, " (see npuq-kernel-host --help)\n");
    std::exit(2);
}

[[noreturn]] void IoError(const std::string& what) {
    std::fprintf(stderr, "npuq-kernel-host: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(1);
}

void Help() {
    std::puts(
        "usage: npuq-kernel-host FORMAT IN OUT ROWS COLS [--dtype float32|float16|bfloat16] [--cores N]\n"
        "                        [--tile-rows N] [--option k=v ...]\n"
        "       npuq-kernel-host encode FORMAT IN CODES SCALES ROWS COLS [same options]\n"
        "       npuq-kernel-host decode FORMAT CODES SCALES OUT ROWS LENGTH [--block N] [--tensor-scale F]\n"
        "                        [--cores N] [--tile-rows N]\n"
        "Runs the npuq AscendC kernels on the CPU. Tensors are raw little-endian files.\n"
        "formats: hif8 hif4 (hifx4) hifx4_v12 mxfp4 mxfp8e4m3 mxfp8e5m2 nvf4 nvfp4 int8sym (int8)\n"
        "         int4sym (int4) fp8e4m3 fp8e5m2\n"
        "options: rounding=away|even scale_rule=floor|rceil (mx*), saturate=0|1 scale=none|row|tensor\n"
        "         (hif8), variant=quant_cy|amct (hif4), group=N (int8sym int4sym fp8e4m3 fp8e5m2)");
}

uint32_t ParseFormat(const std::string& name) {
    std::string key;
    for (char c : name) key += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    if (key == "hifx4") key = "hif4";
    if (key == "int8") key = "int8sym";
    if (key == "int4") key = "int4sym";
    for (uint32_t i = 0; i < kFormats; ++i)
        if (key == kNames[i]) return i;
    Usage("unknown format '%s'", name.c_str());
}

uint32_t ParseCount(const std::string& what, const std::string& text, bool allowZero) {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || text[0] == '-' || v > 0xFFFFFFFFull || (!allowZero && v == 0))
        Usage("%s must be a %s integer, got '%s'", what.c_str(), allowZero ? "non-negative" : "positive", text.c_str());
    return static_cast<uint32_t>(v);
}

std::vector<uint8_t> ReadFile(const std::string& path, uint64_t expect, const char* what) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) Usage("cannot open %s '%s': %s", what, path.c_str(), std::strerror(errno));
    std::vector<uint8_t> data;
    uint8_t buf[1 << 16];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof(buf), f)) > 0) data.insert(data.end(), buf, buf + got);
    if (std::ferror(f)) IoError(path);
    std::fclose(f);
    if (data.size() != expect)
        Usage("%s '%s' has %zu bytes, expected %llu", what, path.c_str(), data.size(),
              static_cast<unsigned long long>(expect));
    return data;
}

void WriteFile(const std::string& path, const std::vector<uint8_t>& data) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) IoError(path);
    if (!data.empty() && std::fwrite(data.data(), 1, data.size(), f) != data.size()) IoError(path);
    if (std::fclose(f) != 0) IoError(path);
}

struct Common {
    uint32_t cores = 1;
    uint32_t tileRows = 0;
};

// Parses --cores / --tile-rows at args[i]; returns false if args[i] is neither.
bool ParseCommon(const std::vector<std::string>& args, size_t& i, Common& c) {
    const std::string& a = args[i];
    if (a != "--cores" && a != "--tile-rows") return false;
    if (i + 1 >= args.size()) Usage("%s needs a value", a.c_str());
    if (a == "--cores") c.cores = ParseCount("--cores", args[++i], false);
    else c.tileRows = ParseCount("--tile-rows", args[++i], false);
    if (c.cores > 256) Usage("--cores must be at most 256");
    return true;
}

void ApplyOption(npuq::QuantDequantParams& p, const std::string& kv) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) Usage("option '%s' is not k=v", kv.c_str());
    const std::string k = kv.substr(0, eq);
    const std::string v = kv.substr(eq + 1);
    const FormatId f = static_cast<FormatId>(p.format);
    const bool mx = f == FormatId::MXFP4 || f == FormatId::MXFP8E4M3 || f == FormatId::MXFP8E5M2;
    const char* name = kNames[p.format];
    if (k == "rounding") {
        if (!mx) Usage("option rounding does not apply to %s", name);
        if (v == "away") p.rounding = 0;
        else if (v == "even") p.rounding = 1;
        else Usage("rounding must be away or even, got '%s'", v.c_str());
    } else if (k == "scale_rule") {
        if (!mx) Usage("option scale_rule does not apply to %s", name);
        if (v == "floor") p.scaleRule = 0;
        else if (v == "rceil") p.scaleRule = 1;
        else Usage("scale_rule must be floor or rceil, got '%s'", v.c_str());
    } else if (k == "saturate") {
        if (f != FormatId::HIF8) Usage("option saturate does not apply to %s", name);
        if (v == "0" || v == "false" || v == "False") p.saturate = 0;
        else if (v == "1" || v == "true" || v == "True") p.saturate = 1;
        else Usage("saturate must be 0 or 1, got '%s'", v.c_str());
    } else if (k == "variant") {
        if (f != FormatId::HIF4) Usage("option variant does not apply to %s", name);
        if (v == "quant_cy") p.variant = 0;
        else if (v == "amct") p.variant = 1;
        else Usage("variant must be quant_cy or amct, got '%s'", v.c_str());
    } else if (k == "group") {
        if (!npuq::IsSymFormat(p.format)) Usage("option group does not apply to %s", name);
        p.group = ParseCount("group", v, false);
    } else if (k == "scale") {
        if (f != FormatId::HIF8) Usage("option scale does not apply to %s", name);
        if (v == "none") p.scale = 0;
        else if (v == "row") p.scale = 1;
        else if (v == "tensor") p.scale = 2;
        else Usage("scale must be none, row or tensor, got '%s'", v.c_str());
    } else {
        Usage("unknown option '%s'", k.c_str());
    }
}

// FORMAT IN OUT... ROWS COLS [options]: `outs` output paths after IN.
struct QuantArgs {
    npuq::QuantDequantParams p{};
    Common c;
    npuq_host::DType dtype = npuq_host::DType::kFloat32;
    uint32_t bytes = 4;
};

QuantArgs ParseQuantArgs(const std::vector<std::string>& args, size_t outs) {
    QuantArgs q;
    npuq::QuantDequantParams& p = q.p;
    Common& c = q.c;
    npuq_host::DType& dtype = q.dtype;
    uint32_t& bytes = q.bytes;
    p.format = ParseFormat(args[0]);
    p.rows = ParseCount("ROWS", args[2 + outs], true);
    p.cols = ParseCount("COLS", args[3 + outs], true);
    for (size_t i = 4 + outs; i < args.size(); ++i) {
        if (ParseCommon(args, i, c)) continue;
        const std::string& a = args[i];
        if (a == "--dtype") {
            if (i + 1 >= args.size()) Usage("--dtype needs a value");
            const std::string& v = args[++i];
            if (v == "float32") dtype = npuq_host::DType::kFloat32, bytes = 4;
            else if (v == "float16") dtype = npuq_host::DType::kFloat16, bytes = 2;
            else if (v == "bfloat16") dtype = npuq_host::DType::kBFloat16, bytes = 2;
            else Usage("--dtype must be float32, float16 or bfloat16, got '%s'", v.c_str());
        } else if (a == "--option") {
            if (i + 1 >= args.size()) Usage("--option needs k=v");
            while (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) ApplyOption(p, args[++i]);
        } else {
            Usage("unexpected argument '%s'", a.c_str());
        }
    }
    if (p.saturate != 0 && p.scale != 0) Usage("hif8: saturate does not combine with scale");
    p.rowsPerCore = npuq::CeilDiv(p.rows == 0 ? 1 : p.rows, c.cores);
    p.tileRows = c.tileRows;
    return q;
}

int QuantDequantMain(const std::vector<std::string>& args) {
    if (args.size() < 5) Usage("expected FORMAT IN OUT ROWS COLS");
    QuantArgs q = ParseQuantArgs(args, 1);
    const npuq::QuantDequantParams& p = q.p;
    const Common& c = q.c;
    const uint32_t bytes = q.bytes;
    const npuq_host::DType dtype = q.dtype;
    const uint64_t elems = static_cast<uint64_t>(p.rows) * p.cols;
    std::vector<uint8_t> x = ReadFile(args[1], elems * bytes, "IN");
    std::vector<uint8_t> y(elems * bytes, 0);
    std::vector<uint8_t> ws(npuq::QuantDequantWorkspaceBytes(p, c.cores) + 32, 0xFF);
    if (elems > 0) npuq_host::RunQuantDequant(dtype, x.data(), y.data(), ws.data(), p, c.cores);
    WriteFile(args[2], y);
    return 0;
}

int EncodeMain(const std::vector<std::string>& args) {
    if (args.size() < 6) Usage("encode expects FORMAT IN CODES SCALES ROWS COLS");
    QuantArgs q = ParseQuantArgs(args, 2);
    const npuq::QuantDequantParams& p = q.p;
    if (!npuq::QuantizeSupports(p)) Usage("Quantize does not encode %s", kNames[p.format]);
    const uint64_t elems = static_cast<uint64_t>(p.rows) * p.cols;
    std::vector<uint8_t> x = ReadFile(args[1], elems * q.bytes, "IN");
    const npuq::QdLayout g = npuq::PlanQuantize(p, q.bytes);
    const uint32_t bits = npuq::QuantCodeBits(p.format);
    const uint64_t blocks = p.cols == 0 ? 0 : static_cast<uint64_t>(p.rows) * g.blocksPerRow;
    const uint64_t codeBytes = blocks * (bits == 4 ? (g.block + g.block % 2) / 2 : g.block);
    // 0xEE: bytes the kernel does not write show up in the comparison
    std::vector<uint8_t> codes(codeBytes + 32, 0xEE), scales(blocks * npuq::QuantScaleBytes(p) + 32, 0xEE);
    std::vector<uint8_t> ws(npuq::QuantizeWorkspaceBytes(p, q.c.cores) + 32, 0xFF);
    if (elems > 0) npuq_host::RunQuantize(q.dtype, x.data(), codes.data(), scales.data(), ws.data(), p, q.c.cores);
    codes.resize(codes.size() - 32);
    scales.resize(scales.size() - 32);
    WriteFile(args[2], codes);
    WriteFile(args[3], scales);
    return 0;
}

int DecodeMain(const std::vector<std::string>& args) {
    if (args.size() < 6) Usage("decode expects FORMAT CODES SCALES OUT ROWS LENGTH");
    npuq::DequantizeParams p{};
    p.format = ParseFormat(args[0]);
    p.rows = ParseCount("ROWS", args[4], true);
    p.length = ParseCount("LENGTH", args[5], false);
    Common c;
    uint32_t block = 0;
    bool haveScale = false;
    float tensorScale = 0.0f;
    for (size_t i = 6; i < args.size(); ++i) {
        if (ParseCommon(args, i, c)) continue;
        const std::string& a = args[i];
        if (a == "--block") {
            if (i + 1 >= args.size()) Usage("--block needs a value");
            block = ParseCount("--block", args[++i], false);
        } else if (a == "--tensor-scale") {
            if (i + 1 >= args.size()) Usage("--tensor-scale needs a value");
            const std::string& v = args[++i];
            char* end = nullptr;
            tensorScale = std::strtof(v.c_str(), &end);
            if (v.empty() || *end != '\0') Usage("--tensor-scale must be a number, got '%s'", v.c_str());
            haveScale = true;
        } else {
            Usage("unexpected argument '%s'", a.c_str());
        }
    }
    const FormatId f = static_cast<FormatId>(p.format);
    const bool scaledHif8 = f == FormatId::HIF8 && args[2] != "-";  // a float32 scale per row
    uint32_t fixed = 0;
    switch (f) {
        case FormatId::HIF8: fixed = scaledHif8 ? 0 : 1; break;
        case FormatId::HIF4:
        case FormatId::HIFX4_V12: fixed = 64; break;
        case FormatId::MXFP4:
        case FormatId::MXFP8E4M3:
        case FormatId::MXFP8E5M2: fixed = 32; break;
        case FormatId::NVF4:
        case FormatId::NVFP4: fixed = 16; break;
        default: break;
    }
    if (fixed != 0 && block != 0 && block != fixed) Usage("%s has blocks of %u, not %u", kNames[p.format], fixed, block);
    p.block = fixed != 0 ? fixed : (block == 0 ? p.length : block);
    if (scaledHif8 && p.block != p.length) Usage("scaled hif8 has one block per row (--block %u)", p.length);
    if ((f == FormatId::NVFP4) != haveScale)
        Usage(haveScale ? "--tensor-scale applies to nvfp4 only" : "nvfp4 needs --tensor-scale");
    p.hasTensorScale = haveScale ? 1 : 0;
    const uint32_t blocks = npuq::CeilDiv(p.length, p.block);
    const uint32_t bits = npuq::DequantCodeBits(p.format);
    const uint32_t slots = bits == 4 ? p.block + p.block % 2 : p.block;
    p.codeBytes = blocks * slots * bits / 8;
    p.scaleBytes = blocks * (scaledHif8 ? 4 : npuq::DequantScaleBytesPerBlock(p.format));
    std::vector<uint8_t> codes = ReadFile(args[1], static_cast<uint64_t>(p.rows) * p.codeBytes, "CODES");
    std::vector<uint8_t> scales;
    if (p.scaleBytes == 0) {
        if (args[2] != "-") scales = ReadFile(args[2], 0, "SCALES");
    } else {
        if (args[2] == "-") Usage("%s needs a SCALES file", kNames[p.format]);
        scales = ReadFile(args[2], static_cast<uint64_t>(p.rows) * p.scaleBytes, "SCALES");
    }
    scales.resize(scales.size() + 32);  // never empty: a valid GM address
    std::vector<uint8_t> ts(32, 0);
    std::memcpy(ts.data(), &tensorScale, 4);
    std::vector<uint8_t> y(static_cast<uint64_t>(p.rows) * p.length * 4, 0);
    p.rowsPerCore = npuq::CeilDiv(p.rows == 0 ? 1 : p.rows, c.cores);
    p.tileRows = c.tileRows;
    std::vector<uint8_t> ws(npuq::DequantizeWorkspaceBytes(p, c.cores) + 32, 0xFF);
    if (p.rows > 0)
        npuq_host::RunDequantize(codes.data(), scales.data(), ts.data(), y.data(), ws.data(), p, c.cores);
    WriteFile(args[3], y);
    return 0;
}

}  // namespace

namespace npuq_host {
void RunQuantDequant(DType dtype, uint8_t* x, uint8_t* y, uint8_t* workspace, const npuq::QuantDequantParams& p,
                     uint32_t cores) {
    switch (dtype) {
        case DType::kFloat32: RunQuantDequantF32(x, y, workspace, p, cores); break;
        case DType::kFloat16: RunQuantDequantF16(x, y, workspace, p, cores); break;
        case DType::kBFloat16: RunQuantDequantBF16(x, y, workspace, p, cores); break;
    }
}
void RunQuantize(DType dtype, uint8_t* x, uint8_t* codes, uint8_t* scales, uint8_t* workspace,
                 const npuq::QuantDequantParams& p, uint32_t cores) {
    switch (dtype) {
        case DType::kFloat32: RunQuantizeF32(x, codes, scales, workspace, p, cores); break;
        case DType::kFloat16: RunQuantizeF16(x, codes, scales, workspace, p, cores); break;
        case DType::kBFloat16: RunQuantizeBF16(x, codes, scales, workspace, p, cores); break;
    }
}
}  // namespace npuq_host

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty()) Usage("missing arguments");
    if (args[0] == "--help" || args[0] == "-h") {
        Help();
        return 0;
    }
    if (args[0] == "encode") return EncodeMain(std::vector<std::string>(args.begin() + 1, args.end()));
    if (args[0] == "decode") return DecodeMain(std::vector<std::string>(args.begin() + 1, args.end()));
    return QuantDequantMain(args);
}
