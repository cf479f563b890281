// TEST STUB, not CANN: the part of CANN's register/register.h that the custom_ops ONNX plugins use,
// with its signatures (hicann/metadef @ 786891c02e5a7f509c6ffffd854e33ddefe3527c:
// inc/external/register/register.h, register_error_codes.h, register_fmk_types.h):
//   OriginOpType(const std::vector<ge::AscendString> &) and OriginOpType(const char_t *) (the
//     std::initializer_list<std::string> / std::string overloads are deprecated there: left out);
//   ParseParamsByOperatorFn(const ParseParamByOpFunc &), a std::function;
//   ImplyType(const domi::ImplyType &), an enum class (graph/types.h);
//   OpReceiver(OpRegistrationData &): a non-const reference, so the chain must end in an lvalue;
//   REGISTER_CUSTOM_OP names OpReceiver / OpRegistrationData unqualified, as CANN's does.
// Each registration is recorded so tests/test_custom_ops.py can run the parse functions.
#ifndef NPUQ_TEST_STUB_REGISTER_H
#define NPUQ_TEST_STUB_REGISTER_H
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "graph/ascend_string.h"
#include "graph/operator.h"
#include "graph/types.h"

namespace domi {
using Status = uint32_t;
constexpr Status SUCCESS = 0U;
constexpr Status FAILED = 0xFFFFFFFFU;
enum FrameworkType { CAFFE = 0, MINDSPORE = 1, TENSORFLOW = 3, ANDROID_NN = 4, ONNX = 5, FRAMEWORK_RESERVED = 6 };
using ParseParamByOpFunc = std::function<domi::Status(const ge::Operator &, ge::Operator &)>;

class OpRegistrationData {
public:
    OpRegistrationData(const ge::char_t *om_optype) : om_type(om_optype) {}
    OpRegistrationData &FrameworkType(const domi::FrameworkType &fmk_type)
    {
        fmk = fmk_type;
        return *this;
    }
    OpRegistrationData &OriginOpType(const std::vector<ge::AscendString> &ori_op_type_list)
    {
        for (const auto &t : ori_op_type_list) {
            ori_types.emplace_back(t.GetString());
        }
        return *this;
    }
    OpRegistrationData &OriginOpType(const ge::char_t *ori_op_type)
    {
        ori_types.emplace_back(ori_op_type);
        return *this;
    }
    OpRegistrationData &ParseParamsByOperatorFn(const ParseParamByOpFunc &parse_param_by_op_fn)
    {
        fn = parse_param_by_op_fn;
        return *this;
    }
    OpRegistrationData &ImplyType(const domi::ImplyType &imply_type)
    {
        imply = imply_type;
        return *this;
    }

    // the stub's record of the registration
    std::string om_type;
    domi::FrameworkType fmk = CAFFE;
    std::vector<std::string> ori_types;
    ParseParamByOpFunc fn;
    domi::ImplyType imply = domi::ImplyType::BUILTIN;
};

inline std::vector<OpRegistrationData> &Registry()
{
    static std::vector<OpRegistrationData> r;
    return r;
}

class OpReceiver {
public:
    OpReceiver(OpRegistrationData &reg_data) { Registry().push_back(reg_data); }
    ~OpReceiver() = default;
};
}  // namespace domi

namespace ge {
using OpRegistrationData = domi::OpRegistrationData;
using OpReceiver = domi::OpReceiver;
}  // namespace ge

#define REGISTER_CUSTOM_OP(name) REGISTER_CUSTOM_OP_UNIQ_HELPER(__COUNTER__, (name))
#define REGISTER_CUSTOM_OP_UNIQ_HELPER(ctr, name) REGISTER_CUSTOM_OP_UNIQ(ctr, (name))
#define REGISTER_CUSTOM_OP_UNIQ(ctr, name) \
    static OpReceiver register_op##ctr __attribute__((unused)) = OpRegistrationData(name)
#endif
