// TEST STUB, not CANN: platform_ascendc::PlatformAscendC as custom_ops/op_host uses it, with the
// signatures of CANN's tiling/platform/platform_ascendc.h (asc-devkit; its API pages
// cannmirror/asc-devkit docs/api/context/PlatformAscendC简介.md, GetCoreNumAiv.md,
// GetLibApiWorkSpaceSize.md): explicit PlatformAscendC(fe::PlatFormInfos *),
// uint32_t GetCoreNumAiv(void) const, uint32_t GetLibApiWorkSpaceSize(void) const.
// fe::PlatFormInfos is opaque in CANN; here it carries the two numbers a test sets.
#ifndef NPUQ_TEST_STUB_PLATFORM_ASCENDC_H
#define NPUQ_TEST_STUB_PLATFORM_ASCENDC_H
#include <cstdint>

namespace fe {
class PlatFormInfos {
public:
    uint32_t core_num_aiv = 40;              // 910B2: 20 AI cores x 2 vector cores (the stub's own)
    uint32_t lib_api_workspace = 16U << 20;  // (the stub's own)
};
}  // namespace fe

namespace platform_ascendc {
class PlatformAscendC {
public:
    PlatformAscendC() = delete;
    ~PlatformAscendC() = default;
    explicit PlatformAscendC(fe::PlatFormInfos *platformInfo) : platformInfo_(platformInfo) {}
    uint32_t GetCoreNumAiv(void) const { return platformInfo_ == nullptr ? 0 : platformInfo_->core_num_aiv; }
    uint32_t GetLibApiWorkSpaceSize(void) const
    {
        return platformInfo_ == nullptr ? 0 : platformInfo_->lib_api_workspace;
    }

private:
    fe::PlatFormInfos *platformInfo_;
};
}  // namespace platform_ascendc
#endif
