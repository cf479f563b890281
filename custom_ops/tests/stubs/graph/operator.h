// TEST STUB, not CANN: the part of CANN's graph/operator.h (ge::Operator, ge::AscendString)
// that custom_ops/framework/onnx_plugin uses, with the public signatures (CANN "Operator::SetAttr"
// / "GetAttr" API reference), so tests/test_custom_ops.py can compile and run the plugins' parse
// functions on a machine without CANN. Attributes are kept as text for the test to print.
#ifndef NPUQ_TEST_STUB_GRAPH_OPERATOR_H
#define NPUQ_TEST_STUB_GRAPH_OPERATOR_H
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

namespace ge {
using char_t = char;
using float32_t = float;
using graphStatus = uint32_t;
constexpr graphStatus GRAPH_SUCCESS = 0;
constexpr graphStatus GRAPH_FAILED = 0xFFFFFFFF;

class AscendString {
public:
    AscendString() = default;
    AscendString(const char_t *s) : s_(s == nullptr ? "" : s), null_(s == nullptr) {}
    const char_t *GetString() const { return null_ ? nullptr : s_.c_str(); }
    bool operator<(const AscendString &o) const { return s_ < o.s_; }

private:
    std::string s_;
    bool null_ = true;
};

class Operator {
public:
    Operator() = default;
    // kind:value, e.g. "s:mxfp4", "i:0", "f:1.702", "b:1"
    std::map<std::string, std::string> attrs;

    Operator &SetAttr(const char_t *name, const char_t *v) { return Put(name, std::string("s:") + v); }
    Operator &SetAttr(const char_t *name, const AscendString &v) { return SetAttr(name, v.GetString()); }
    Operator &SetAttr(const char_t *name, int64_t v) { return Put(name, "i:" + std::to_string(v)); }
    Operator &SetAttr(const char_t *name, int32_t v) { return SetAttr(name, static_cast<int64_t>(v)); }
    Operator &SetAttr(const char_t *name, uint32_t v) { return SetAttr(name, static_cast<int64_t>(v)); }
    Operator &SetAttr(const char_t *name, float32_t v)
    {
        char buf[64];
        std::snprintf(buf, sizeof(buf), "f:%.9g", static_cast<double>(v));
        return Put(name, buf);
    }
    Operator &SetAttr(const char_t *name, bool v) { return Put(name, v ? "b:1" : "b:0"); }

    graphStatus GetAttr(const char_t *name, AscendString &v) const
    {
        auto it = attrs.find(name);
        if (it == attrs.end() || it->second.compare(0, 2, "s:") != 0) {
            return GRAPH_FAILED;
        }
        v = AscendString(it->second.c_str() + 2);
        return GRAPH_SUCCESS;
    }
    graphStatus GetAttr(const char_t *name, int64_t &v) const
    {
        auto it = attrs.find(name);
        if (it == attrs.end() || it->second.compare(0, 2, "i:") != 0) {
            return GRAPH_FAILED;
        }
        v = std::stoll(it->second.substr(2));
        return GRAPH_SUCCESS;
    }

private:
    Operator &Put(const char_t *name, const std::string &v)
    {
        attrs[name] = v;
        return *this;
    }
};
}  // namespace ge
#endif
