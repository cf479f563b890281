// TEST HARNESS (tests/test_custom_ops.py), not part of the operator package: the op_host sources
// (OpDefs, TilingFuncs, InferShape / InferDataType), compiled against tests/stubs and linked
// together. First it prints every registered OpDef:
//   opdef <type> <soc,...>
//   io <type> <Input|Output> <name> <param> <dtype,...> <format,...>
//   attr <type> <name> <param> <kind> <default or ->
// then runs cases read from stdin, one per line:
//   tile <type> <vector cores> <inputs> <attrs>
//       -> "ok <blockDim> <scheduleMode> <workspace0> <tiling word>..." | "fail"
//   infer <type> <inputs> <attrs> -> "ok <output dims, comma-separated; outputs by ';'> <output dtypes>" | "fail"
// <inputs>: "<dtype>:<d0>,<d1>,...;..." in OpDef order, "-" for an absent optional input;
// <attrs>: "name=value,..." over the OpDef's defaults, or "-".
#include <cstdint>
#include <cstring>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "register/op_def_registry.h"
#include "tiling/platform/platform_ascendc.h"

namespace {
std::vector<std::string> Split(const std::string &s, char sep)
{
    std::vector<std::string> out;
    std::string item;
    std::istringstream in(s);
    while (std::getline(in, item, sep)) {
        out.push_back(item);
    }
    return out;
}

std::string Join(const std::vector<std::string> &v)
{
    std::string out;
    for (const auto &x : v) {
        out += (out.empty() ? "" : ",") + x;
    }
    return out.empty() ? "-" : out;
}

ops::OpDef *Find(const std::string &type)
{
    for (auto &d : ops::OpDefFactory::Registered()) {
        if (d.type_ == type) {
            return &d;
        }
    }
    return nullptr;
}

struct Inputs {
    std::vector<gert::StorageShape> shapes;
    std::vector<gert::Shape> plain;
    std::vector<gert::CompileTimeTensorDesc> descs;
    std::vector<bool> present;
};

Inputs ParseInputs(const std::string &text)
{
    Inputs in;
    for (const auto &one : Split(text, ';')) {
        gert::Shape shape;
        gert::CompileTimeTensorDesc desc;
        const bool present = one != "-";
        if (present) {
            const auto colon = one.find(':');
            desc.data_type = static_cast<ge::DataType>(std::stoi(one.substr(0, colon)));
            const auto dims = Split(one.substr(colon + 1), ',');
            shape.SetDimNum(dims.size());
            for (size_t i = 0; i < dims.size(); ++i) {
                shape.SetDim(i, std::stoll(dims[i]));
            }
        }
        in.shapes.emplace_back(shape, shape);
        in.plain.push_back(shape);
        in.descs.push_back(desc);
        in.present.push_back(present);
    }
    return in;
}

gert::RuntimeAttrs ParseAttrs(const ops::OpDef &def, const std::string &text)
{
    std::map<std::string, std::string> given;
    if (text != "-") {
        for (const auto &kv : Split(text, ',')) {
            given[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
        }
    }
    gert::RuntimeAttrs attrs;
    for (const auto &a : def.attrs_) {
        const auto it = given.find(a.name_);
        const bool has = it != given.end() || a.has_default_;
        const std::string value = it != given.end() ? it->second : a.default_;
        const char kind = !has ? '-' : (a.kind_ == "String" ? 's' : 'i');
        attrs.kinds.push_back(kind);
        attrs.strs.push_back(kind == 's' ? value : "");
        attrs.ints.push_back(kind == 'i' ? std::stoll(value) : 0);
    }
    return attrs;
}
}  // namespace

int main()
{
    for (const auto &d : ops::OpDefFactory::Registered()) {
        std::cout << "opdef " << d.type_ << " " << Join(d.aicore_.socs_) << "\n";
        for (const auto *side : {&d.inputs_, &d.outputs_}) {
            for (const auto &p : *side) {
                std::vector<std::string> dts, fmts;
                for (auto t : p.types_) {
                    dts.push_back(std::to_string(static_cast<int>(t)));
                }
                for (auto f : p.formats_) {
                    fmts.push_back(std::to_string(static_cast<int>(f)));
                }
                std::cout << "io " << d.type_ << " " << (side == &d.inputs_ ? "Input" : "Output") << " " << p.name_ << " "
                          << static_cast<int>(p.param_type_) << " " << Join(dts) << " " << Join(fmts) << "\n";
            }
        }
        for (const auto &a : d.attrs_) {
            std::cout << "attr " << d.type_ << " " << a.name_ << " " << static_cast<int>(a.attr_type_) << " " << a.kind_
                      << " " << (a.has_default_ ? a.default_ : "-") << "\n";
        }
    }
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream in(line);
        std::string verb, type;
        in >> verb >> type;
        ops::OpDef *def = Find(type);
        if (def == nullptr) {
            std::cout << "noop\n";
            continue;
        }
        if (verb == "tile") {
            uint32_t cores = 0;
            std::string inputs, attrs;
            in >> cores >> inputs >> attrs;
            Inputs ins = ParseInputs(inputs);
            fe::PlatFormInfos platform;
            platform.core_num_aiv = cores;
            gert::TilingContext ctx;
            for (size_t i = 0; i < ins.shapes.size(); ++i) {
                ctx.input_shapes.push_back(ins.present[i] ? &ins.shapes[i] : nullptr);
                ctx.input_descs.push_back(ins.present[i] ? &ins.descs[i] : nullptr);
            }
            ctx.attrs = ParseAttrs(*def, attrs);
            ctx.platform = &platform;
            if (def->aicore_.GetTiling()(&ctx) != ge::GRAPH_SUCCESS) {
                std::cout << "fail\n";
                continue;
            }
            std::cout << "ok " << ctx.block_dim << " " << ctx.schedule_mode << " "
                      << (ctx.workspaces.empty() ? 0 : ctx.workspaces[0]);
            for (size_t off = 0; off + 4 <= ctx.tiling_data.GetDataSize(); off += 4) {
                uint32_t word = 0;
                std::memcpy(&word, ctx.tiling_data.bytes.data() + off, 4);
                std::cout << " " << word;
            }
            std::cout << "\n";
        } else if (verb == "infer") {
            std::string inputs, attrs;
            in >> inputs >> attrs;
            Inputs ins = ParseInputs(inputs);
            gert::InferShapeContext sctx;
            gert::InferDataTypeContext tctx;
            for (size_t i = 0; i < ins.plain.size(); ++i) {
                sctx.inputs.push_back(ins.present[i] ? &ins.plain[i] : nullptr);
                tctx.inputs.push_back(ins.descs[i].data_type);
            }
            sctx.outputs.resize(def->outputs_.size());
            sctx.attrs = ParseAttrs(*def, attrs);
            if (def->GetInferShape()(&sctx) != ge::GRAPH_SUCCESS ||
                def->GetInferDataType()(&tctx) != ge::GRAPH_SUCCESS) {
                std::cout << "fail\n";
                continue;
            }
            std::string shapes, dtypes;
            for (size_t o = 0; o < sctx.outputs.size(); ++o) {
                std::vector<std::string> dims;
                for (size_t i = 0; i < sctx.outputs[o].GetDimNum(); ++i) {
                    dims.push_back(std::to_string(sctx.outputs[o].GetDim(i)));
                }
                shapes += (o ? ";" : "") + Join(dims);
                dtypes += (o ? ";" : "") + std::to_string(o < tctx.outputs.size() ? static_cast<int>(tctx.outputs[o]) : -1);
            }
            std::cout << "ok " << shapes << " " << dtypes << "\n";
        } else {
            std::cout << "noop\n";
        }
    }
    return 0;
}
