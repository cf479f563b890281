// TEST STUB, not CANN: BEGIN_TILING_DATA_DEF / TILING_DATA_FIELD_DEF / END_TILING_DATA_DEF /
// REGISTER_TILING_DATA_CLASS and TilingDef::SaveToBuffer / GetDataSize, with the shape of CANN's
// (hicann/metadef @ 786891c02e5a7f509c6ffffd854e33ddefe3527c: inc/external/register/
// tilingdata_base.h): a class deriving from optiling::TilingDef, set_<field>(value) / get_<field>(),
// fields laid out in declaration order (all uint32_t here, so CANN's alignment padding adds none).
#ifndef NPUQ_TEST_STUB_TILINGDATA_BASE_H
#define NPUQ_TEST_STUB_TILINGDATA_BASE_H
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace optiling {
class TilingDef {
public:
    void SaveToBuffer(void *pdata, size_t capacity)
    {
        if (pdata != nullptr && capacity >= data_.size()) {
            std::memcpy(pdata, data_.data(), data_.size());
        }
    }
    size_t GetDataSize() const { return data_.size(); }

protected:
    size_t FieldHandler(size_t typeSize)
    {
        const size_t offset = data_.size();
        data_.resize(offset + typeSize, 0);
        return offset;
    }
    std::vector<uint8_t> data_;
};

inline std::map<std::string, std::string> &TilingDataClasses()  // op type -> class (the stub's own)
{
    static std::map<std::string, std::string> r;
    return r;
}
}  // namespace optiling

#define BEGIN_TILING_DATA_DEF(class_name) \
    class class_name : public TilingDef { \
    public:

#define TILING_DATA_FIELD_DEF(data_type, field_name)                                          \
public:                                                                                       \
    void set_##field_name(data_type field_name)                                               \
    {                                                                                         \
        field_name##_ = field_name;                                                           \
        std::memcpy(data_.data() + field_name##_offset_, &field_name##_, sizeof(data_type)); \
    }                                                                                         \
    data_type get_##field_name() { return field_name##_; }                                    \
                                                                                              \
private:                                                                                      \
    data_type field_name##_ = 0;                                                              \
    size_t field_name##_offset_ = FieldHandler(sizeof(data_type));

#define END_TILING_DATA_DEF \
    }                       \
    ;

#define REGISTER_TILING_DATA_CLASS(op_type, class_name)                                     \
    namespace {                                                                             \
    const bool g_tilingdata_##op_type##class_name __attribute__((unused)) =                 \
        ::optiling::TilingDataClasses().emplace(#op_type, #class_name).second;              \
    }
#endif
