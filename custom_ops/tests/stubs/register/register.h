// TEST STUB, not CANN: the part of CANN's register/register.h that the custom_ops ONNX plugins
// use -- domi::Status, SUCCESS / FAILED, ONNX, ImplyType::TVM and REGISTER_CUSTOM_OP(...)
// .FrameworkType(...).OriginOpType({...}).ParseParamsByOperatorFn(...).ImplyType(...), with the
// chain's public shape -- recording each registration so tests/test_custom_ops.py can run them.
#ifndef NPUQ_TEST_STUB_REGISTER_H
#define NPUQ_TEST_STUB_REGISTER_H
#include <initializer_list>
#include <string>
#include <vector>

#include "graph/operator.h"

namespace domi {
using Status = uint32_t;
constexpr Status SUCCESS = 0;
constexpr Status FAILED = 1;
enum FrameworkType { CAFFE = 0, TENSORFLOW = 3, ONNX = 5 };
enum class ImplyType { BUILDIN = 0, TVM = 1, CUSTOM = 2, AI_CPU = 3 };
using ParseParamByOpFunc = Status (*)(const ge::Operator &, ge::Operator &);

struct OpRegistrationData {
    explicit OpRegistrationData(const char *omType) : om_type(omType) {}
    OpRegistrationData &FrameworkType(domi::FrameworkType t) { fmk = t; return *this; }
    OpRegistrationData &OriginOpType(const std::initializer_list<ge::AscendString> &types)
    {
        for (const auto &t : types) {
            ori_types.emplace_back(t.GetString());
        }
        return *this;
    }
    OpRegistrationData &ParseParamsByOperatorFn(ParseParamByOpFunc f) { fn = f; return *this; }
    OpRegistrationData &ImplyType(domi::ImplyType t) { imply = t; return *this; }

    std::string om_type;
    domi::FrameworkType fmk = CAFFE;
    std::vector<std::string> ori_types;
    ParseParamByOpFunc fn = nullptr;
    domi::ImplyType imply = domi::ImplyType::BUILDIN;
};

inline std::vector<OpRegistrationData> &Registry()
{
    static std::vector<OpRegistrationData> r;
    return r;
}

struct OpReceiver {
    OpReceiver(const OpRegistrationData &d) { Registry().push_back(d); }
};
}  // namespace domi

#define NPUQ_STUB_CAT2(a, b) a##b
#define NPUQ_STUB_CAT(a, b) NPUQ_STUB_CAT2(a, b)
#define REGISTER_CUSTOM_OP(name) \
    static ::domi::OpReceiver NPUQ_STUB_CAT(g_register_, __COUNTER__) = ::domi::OpRegistrationData(name)
#endif
