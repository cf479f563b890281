// TEST STUB, not CANN: ge::AscendString as CANN declares it (hicann/metadef @
// 786891c02e5a7f509c6ffffd854e33ddefe3527c: inc/external/graph/ascend_string.h): constructed from
// a const char_t * (implicitly) or a pointer and a length; GetString() is nullptr for a default one.
#ifndef NPUQ_TEST_STUB_GRAPH_ASCEND_STRING_H
#define NPUQ_TEST_STUB_GRAPH_ASCEND_STRING_H
#include <cstddef>
#include <memory>
#include <string>

#include "graph/types.h"

namespace ge {
class AscendString {
public:
    AscendString() = default;
    AscendString(const char_t *const name)
        : name_(name == nullptr ? nullptr : std::make_shared<std::string>(name)) {}
    AscendString(const char_t *const name, size_t length)
        : name_(name == nullptr ? nullptr : std::make_shared<std::string>(name, length)) {}
    const char_t *GetString() const { return name_ == nullptr ? nullptr : name_->c_str(); }
    size_t GetLength() const { return name_ == nullptr ? 0 : name_->size(); }
    bool operator<(const AscendString &d) const { return Str() < d.Str(); }
    bool operator==(const AscendString &d) const { return Str() == d.Str(); }
    bool operator!=(const AscendString &d) const { return Str() != d.Str(); }

private:
    std::string Str() const { return name_ == nullptr ? std::string() : *name_; }
    std::shared_ptr<std::string> name_;
};
}  // namespace ge
#endif
