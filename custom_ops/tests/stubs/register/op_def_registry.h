// TEST STUB, not CANN: the OpDef API custom_ops/op_host uses, with the signatures of CANN's
// (hicann/metadef @ 786891c02e5a7f509c6ffffd854e33ddefe3527c: inc/external/asc/register/op_def.h
// -- ops::Option, OpParamDef::ParamType / DataType(std::vector<ge::DataType>) /
// Format(std::vector<ge::Format>), OpAttrDef::AttrType / String / Int / Float / Bool,
// OpAICoreDef::SetTiling / AddConfig(const char *), OpDef(const char *) / Input / Output / Attr /
// SetInferShape / SetInferDataType / AICore; inc/external/register/op_impl_registry.h -- the
// kernel function types, UINT32 (*)(Context *); inc/external/asc/register/op_def_registry.h --
// OP_ADD as built outside OP_PROTO_LIB / OP_TILING_LIB: a static int from OpDefFactory).
// OpAICoreConfig is left out: the package declares none (ascend910b only).
// Every OP_ADD is recorded (type and the OpDef) for tests to read back.
#ifndef NPUQ_TEST_STUB_OP_DEF_REGISTRY_H
#define NPUQ_TEST_STUB_OP_DEF_REGISTRY_H
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "exe_graph/runtime/tiling_context.h"
#include "graph/types.h"

typedef unsigned int UINT32;

namespace gert {
class OpImplRegisterV2 {
public:
    using InferShapeKernelFunc = UINT32 (*)(InferShapeContext *);
    using TilingKernelFunc = UINT32 (*)(TilingContext *);
    using InferDataTypeKernelFunc = UINT32 (*)(InferDataTypeContext *);
};
}  // namespace gert

namespace ops {
enum Option { IGNORE = 0, OPTIONAL = 1, REQUIRED = 2, DYNAMIC = 3, VIRTUAL = 4 };

class OpParamDef {
public:
    explicit OpParamDef(const char *name) : name_(name) {}
    OpParamDef &ParamType(Option param_type)
    {
        param_type_ = param_type;
        return *this;
    }
    OpParamDef &DataType(std::vector<ge::DataType> types)
    {
        types_ = std::move(types);
        return *this;
    }
    OpParamDef &Format(std::vector<ge::Format> formats)
    {
        formats_ = std::move(formats);
        return *this;
    }
    std::string name_;
    Option param_type_ = IGNORE;
    std::vector<ge::DataType> types_;
    std::vector<ge::Format> formats_;
};

class OpAttrDef {
public:
    explicit OpAttrDef(const char *name) : name_(name) {}
    OpAttrDef &AttrType(Option attr_type)
    {
        attr_type_ = attr_type;
        return *this;
    }
    OpAttrDef &Bool(void) { return Kind("Bool", "", false); }
    OpAttrDef &Bool(bool value) { return Kind("Bool", value ? "true" : "false", true); }
    OpAttrDef &Float(void) { return Kind("Float", "", false); }
    OpAttrDef &Float(float value) { return Kind("Float", std::to_string(value), true); }
    OpAttrDef &Int(void) { return Kind("Int", "", false); }
    OpAttrDef &Int(int64_t value) { return Kind("Int", std::to_string(value), true); }
    OpAttrDef &String(void) { return Kind("String", "", false); }
    OpAttrDef &String(const char *value) { return Kind("String", value, true); }
    std::string name_;
    Option attr_type_ = IGNORE;
    std::string kind_;
    std::string default_;
    bool has_default_ = false;

private:
    OpAttrDef &Kind(const char *kind, const std::string &value, bool has_default)
    {
        kind_ = kind;
        default_ = value;
        has_default_ = has_default;
        return *this;
    }
};

class OpAICoreDef {
public:
    OpAICoreDef &SetTiling(gert::OpImplRegisterV2::TilingKernelFunc func)
    {
        tiling_ = func;
        return *this;
    }
    OpAICoreDef &AddConfig(const char *soc)
    {
        socs_.emplace_back(soc);
        return *this;
    }
    gert::OpImplRegisterV2::TilingKernelFunc &GetTiling(void) { return tiling_; }
    gert::OpImplRegisterV2::TilingKernelFunc tiling_ = nullptr;
    std::vector<std::string> socs_;
};

class OpDef {
public:
    explicit OpDef(const char *type) : type_(type) {}
    OpParamDef &Input(const char *name) { return inputs_.emplace_back(name); }
    OpParamDef &Output(const char *name) { return outputs_.emplace_back(name); }
    OpAttrDef &Attr(const char *name) { return attrs_.emplace_back(name); }
    OpDef &SetInferShape(gert::OpImplRegisterV2::InferShapeKernelFunc func)
    {
        infer_shape_ = func;
        return *this;
    }
    OpDef &SetInferDataType(gert::OpImplRegisterV2::InferDataTypeKernelFunc func)
    {
        infer_dtype_ = func;
        return *this;
    }
    gert::OpImplRegisterV2::InferShapeKernelFunc &GetInferShape(void) { return infer_shape_; }
    gert::OpImplRegisterV2::InferDataTypeKernelFunc &GetInferDataType(void) { return infer_dtype_; }
    OpAICoreDef &AICore(void) { return aicore_; }

    // deques: a reference returned by Input / Output / Attr stays valid as more are added
    std::string type_;
    std::deque<OpParamDef> inputs_;
    std::deque<OpParamDef> outputs_;
    std::deque<OpAttrDef> attrs_;
    OpAICoreDef aicore_;
    gert::OpImplRegisterV2::InferShapeKernelFunc infer_shape_ = nullptr;
    gert::OpImplRegisterV2::InferDataTypeKernelFunc infer_dtype_ = nullptr;
};

using OpDefCreator = std::function<OpDef(const char *)>;

class OpDefFactory {
public:
    static int OpDefRegister(const char *name, OpDefCreator func)
    {
        Registered().emplace_back(func(name));
        return 0;
    }
    static std::vector<OpDef> &Registered()  // the stub's own
    {
        static std::vector<OpDef> r;
        return r;
    }
};
}  // namespace ops

#define OP_ADD(opType, ...)                                                                               \
    static int g_##opType##_added = []() {                                                                \
        return ops::OpDefFactory::OpDefRegister(#opType, [](const char *name) { return opType(name); }); \
    }()
#endif
