// Host side of the device probes (atc_scripts/device_check.py probes runs it):
//
//   npuq_probes <qd_mix|qd_aiv|div|cast|cmp> DIR [DEVICE]
//
//   qd_*  DIR/x.bin float32 rows x cols, DIR/args.txt "rows cols cores" -> DIR/y.bin
//         (NVFP4 QuantDequant; rows over the cores and tile rows from op_host's own tiling,
//         npuq_host::TileQuantDequant; workspace = 16 MiB for the library + the kernel's)
//   div   DIR/a.bin, DIR/b.bin float32 n -> DIR/z.bin = a / b
//   cast  DIR/x.bin float32 n -> DIR/y.bin float16
//   cmp   DIR/x.bin float32 n, DIR/args.txt lines "op scale_bits" -> DIR/z<i>.bin, one per line
//
// The ACL sequence is the AddKernelInvocationNeo sample's main.cpp (Ascend/samples, read in
// tjulitianyi1997/AscendProjects @ 3aa63f429a83b29534541594ba65551f98139e6e): aclInit, SetDevice,
// CreateContext, CreateStream, MallocHost / Malloc, Memcpy, launch, SynchronizeStream, Memcpy back,
// free in reverse. Exit 0 on success, 1 on any failed ACL call (named on stderr), 2 on bad use.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "acl/acl.h"
#include "npuq_common.h"

void npuq_probe_qd_mix_do(uint32_t blockDim, void *l2ctrl, void *stream, uint8_t *x, uint8_t *y, uint8_t *workspace,
                          uint32_t rows, uint32_t cols, uint32_t rowsPerCore, uint32_t tileRows);
void npuq_probe_qd_aiv_do(uint32_t blockDim, void *l2ctrl, void *stream, uint8_t *x, uint8_t *y, uint8_t *workspace,
                          uint32_t rows, uint32_t cols, uint32_t rowsPerCore, uint32_t tileRows);
void npuq_probe_div_do(uint32_t blockDim, void *l2ctrl, void *stream, uint8_t *a, uint8_t *b, uint8_t *z, uint32_t n);
void npuq_probe_cast_do(uint32_t blockDim, void *l2ctrl, void *stream, uint8_t *x, uint8_t *y, uint32_t n);
void npuq_probe_cmp_do(uint32_t blockDim, void *l2ctrl, void *stream, uint8_t *x, uint8_t *z, uint32_t n, uint32_t op,
                       float s);

namespace {
constexpr size_t kLibWorkspace = 16U << 20;

#define CHECK_ACL(call)                                                           \
    do {                                                                          \
        const aclError ret_ = (call);                                             \
        if (ret_ != ACL_SUCCESS) {                                                \
            std::fprintf(stderr, "npuq_probes: %s failed with %d\n", #call, ret_); \
            return 1;                                                             \
        }                                                                         \
    } while (0)

std::vector<uint8_t> ReadAll(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

bool WriteAll(const std::string &path, const void *data, size_t size)
{
    std::ofstream f(path, std::ios::binary);
    f.write(static_cast<const char *>(data), static_cast<std::streamsize>(size));
    return static_cast<bool>(f);
}

// A device buffer with a host copy, freed at scope end.
struct DevBuf {
    void *dev = nullptr;
    size_t size = 0;
    ~DevBuf()
    {
        if (dev != nullptr) {
            aclrtFree(dev);
        }
    }
};

int ToDevice(DevBuf &b, const std::vector<uint8_t> &host, size_t size)
{
    b.size = size;
    CHECK_ACL(aclrtMalloc(&b.dev, size, ACL_MEM_MALLOC_HUGE_FIRST));
    if (!host.empty()) {
        CHECK_ACL(aclrtMemcpy(b.dev, size, host.data(), host.size(), ACL_MEMCPY_HOST_TO_DEVICE));
    } else {
        CHECK_ACL(aclrtMemset(b.dev, size, 0, size));
    }
    return 0;
}

int ToHost(const DevBuf &b, const std::string &path)
{
    std::vector<uint8_t> host(b.size);
    CHECK_ACL(aclrtMemcpy(host.data(), host.size(), b.dev, b.size, ACL_MEMCPY_DEVICE_TO_HOST));
    return WriteAll(path, host.data(), host.size()) ? 0 : 1;
}

int Run(const std::string &probe, const std::string &dir, aclrtStream stream)
{
    auto u8 = [](const DevBuf &b) { return static_cast<uint8_t *>(b.dev); };
    if (probe == "qd_mix" || probe == "qd_aiv") {
        std::ifstream args(dir + "/args.txt");
        uint64_t rows = 0, cols = 0, cores = 0;
        if (!(args >> rows >> cols >> cores)) {
            return 2;
        }
        npuq::QuantDequantParams p{};
        p.rows = static_cast<uint32_t>(rows);
        p.cols = static_cast<uint32_t>(cols);
        p.format = static_cast<uint32_t>(npuq::FormatId::NVFP4);
        uint32_t blockDim = 1;
        uint64_t user = 0;
        if (npuq_host::TileQuantDequant(p, 4, cores, blockDim, user) != nullptr) {
            return 2;
        }
        const auto x = ReadAll(dir + "/x.bin");
        DevBuf dx, dy, dw;
        if (ToDevice(dx, x, x.size()) || ToDevice(dy, {}, x.size()) || ToDevice(dw, {}, kLibWorkspace + user)) {
            return 1;
        }
        (probe == "qd_mix" ? npuq_probe_qd_mix_do : npuq_probe_qd_aiv_do)(
            blockDim, nullptr, stream, u8(dx), u8(dy), u8(dw), p.rows, p.cols, p.rowsPerCore, p.tileRows);
        CHECK_ACL(aclrtSynchronizeStream(stream));
        return ToHost(dy, dir + "/y.bin");
    }
    if (probe == "div") {
        const auto a = ReadAll(dir + "/a.bin");
        const auto b = ReadAll(dir + "/b.bin");
        DevBuf da, db, dz;
        if (a.size() != b.size() || ToDevice(da, a, a.size()) || ToDevice(db, b, b.size()) || ToDevice(dz, {}, a.size())) {
            return 1;
        }
        npuq_probe_div_do(1, nullptr, stream, u8(da), u8(db), u8(dz), static_cast<uint32_t>(a.size() / 4));
        CHECK_ACL(aclrtSynchronizeStream(stream));
        return ToHost(dz, dir + "/z.bin");
    }
    if (probe == "cast") {
        const auto x = ReadAll(dir + "/x.bin");
        DevBuf dx, dy;
        if (ToDevice(dx, x, x.size()) || ToDevice(dy, {}, x.size() / 2)) {
            return 1;
        }
        npuq_probe_cast_do(1, nullptr, stream, u8(dx), u8(dy), static_cast<uint32_t>(x.size() / 4));
        CHECK_ACL(aclrtSynchronizeStream(stream));
        return ToHost(dy, dir + "/y.bin");
    }
    if (probe == "cmp") {
        const auto x = ReadAll(dir + "/x.bin");
        DevBuf dx;
        if (ToDevice(dx, x, x.size())) {
            return 1;
        }
        std::ifstream args(dir + "/args.txt");
        uint32_t op = 0, bits = 0;
        for (int i = 0; args >> op >> bits; ++i) {
            float s = 0.0F;
            std::memcpy(&s, &bits, sizeof(s));
            DevBuf dz;
            if (ToDevice(dz, {}, x.size())) {
                return 1;
            }
            npuq_probe_cmp_do(1, nullptr, stream, u8(dx), u8(dz), static_cast<uint32_t>(x.size() / 4), op, s);
            CHECK_ACL(aclrtSynchronizeStream(stream));
            if (ToHost(dz, dir + "/z" + std::to_string(i) + ".bin") != 0) {
                return 1;
            }
        }
        return 0;
    }
    return 2;
}
}  // namespace

int main(int argc, char *argv[])
{
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s <qd_mix|qd_aiv|div|cast|cmp> DIR [DEVICE]\n", argv[0]);
        return 2;
    }
    const int32_t device = argc > 3 ? std::stoi(argv[3]) : 0;
    CHECK_ACL(aclInit(nullptr));
    CHECK_ACL(aclrtSetDevice(device));
    aclrtContext context = nullptr;
    CHECK_ACL(aclrtCreateContext(&context, device));
    aclrtStream stream = nullptr;
    CHECK_ACL(aclrtCreateStream(&stream));
    const int rc = Run(argv[1], argv[2], stream);
    CHECK_ACL(aclrtDestroyStream(stream));
    CHECK_ACL(aclrtDestroyContext(context));
    CHECK_ACL(aclrtResetDevice(device));
    CHECK_ACL(aclFinalize());
    if (rc == 2) {
        std::fprintf(stderr, "npuq_probes: bad arguments or inputs for %s in %s\n", argv[1], argv[2]);
    }
    return rc;
}
