// TEST STUB, not CANN: the part of ge::Operator that custom_ops/framework/onnx_plugin uses, with the
// signatures of CANN's graph/operator.h (Ascend/metadef @ 01e32dbc06501f84dd3aff4d3dd8ef75e05d3548:
// inc/external/graph/operator.h -- the `const char_t *name` SetAttr / GetAttr overloads; the
// std::string ones are deprecated there and left out here, so a call of one does not compile).
// Attributes are kept as text ("kind:value") for the tests to print.
#ifndef NPUQ_TEST_STUB_GRAPH_OPERATOR_H
#define NPUQ_TEST_STUB_GRAPH_OPERATOR_H
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

#include "graph/ascend_string.h"
#include "graph/types.h"

namespace ge {
class Operator {
public:
    Operator() {}
    virtual ~Operator() = default;
    // kind:value, e.g. "s:mxfp4", "i:0", "f:1.702", "b:1" (the stub's own, for the tests)
    std::map<std::string, std::string> attrs;

    Operator &SetAttr(const char_t *name, int64_t attr_value) { return Put(name, "i:" + std::to_string(attr_value)); }
    Operator &SetAttr(const char_t *name, int32_t attr_value) { return SetAttr(name, static_cast<int64_t>(attr_value)); }
    Operator &SetAttr(const char_t *name, uint32_t attr_value) { return SetAttr(name, static_cast<int64_t>(attr_value)); }
    Operator &SetAttr(const char_t *name, float32_t attr_value)
    {
        char buf[64];
        std::snprintf(buf, sizeof(buf), "f:%.9g", static_cast<double>(attr_value));
        return Put(name, buf);
    }
    Operator &SetAttr(const char_t *name, const char_t *attr_value) { return Put(name, std::string("s:") + attr_value); }
    Operator &SetAttr(const char_t *name, const AscendString &attr_value) { return SetAttr(name, attr_value.GetString()); }
    Operator &SetAttr(const char_t *name, bool attr_value) { return Put(name, attr_value ? "b:1" : "b:0"); }

    graphStatus GetAttr(const char_t *name, AscendString &attr_value) const
    {
        auto it = attrs.find(name);
        if (it == attrs.end() || it->second.compare(0, 2, "s:") != 0) {
            return GRAPH_FAILED;
        }
        attr_value = AscendString(it->second.c_str() + 2);
        return GRAPH_SUCCESS;
    }
    graphStatus GetAttr(const char_t *name, int64_t &attr_value) const
    {
        auto it = attrs.find(name);
        if (it == attrs.end() || it->second.compare(0, 2, "i:") != 0) {
            return GRAPH_FAILED;
        }
        attr_value = std::stoll(it->second.substr(2));
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
