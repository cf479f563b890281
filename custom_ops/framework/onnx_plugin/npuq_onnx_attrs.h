/**
 * npuq ONNX parser plugins: reading an ONNX node's attributes.
 *
 * With ParseParamsByOperatorFn, GE hands the plugin an operator whose attribute "attribute" is
 * the node's repeated AttributeProto as a JSON string: {"attribute": [{"name": ..., "type": ...,
 * "i" | "f" | "s": ...}, ...]}. Ascend/parser builds it in parser/onnx/onnx_parser.cc
 * (OnnxModelParser::ParseOpParam -> Message2Operator::ParseOperatorAttrs) with
 * parser/common/convert/pb2json.cc: "type" is the AttributeType number (FLOAT 1, INT 2,
 * STRING 3), "i" a JSON integer, "f" a *string* printed with "%g" (6 significant digits),
 * "s" the bytes CEscape'd, and a field the proto does not carry is left out (so an absent
 * "i" / "f" / "s" is the proto default 0 / 0.0 / "").
 *
 * OnnxAttrs reads them; ParseFormatAttrs is the whole parse of the two ops with the same
 * attributes (QuantDequant, Quantize).
 *
 * Modelled on: Ascend/samples operator/ascendc/0_introduction/9_leakyrelu_frameworklaunch/
 * LeakyReluCustom/framework/onnx_plugin/leaky_relu_custom_plugin.cc (op_src.GetAttr("attribute",
 * AscendString), nlohmann::json, attr["f"] read as a string and converted).
 */
#ifndef NPUQ_ONNX_ATTRS_H
#define NPUQ_ONNX_ATTRS_H

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "graph/operator.h"
#include "register/register.h"

namespace npuq_plugin {

// onnx AttributeProto.AttributeType
constexpr int ONNX_FLOAT = 1;
constexpr int ONNX_INT = 2;
constexpr int ONNX_STRING = 3;

class OnnxAttrs {
public:
    explicit OnnxAttrs(const char *opType) : opType_(opType) {}

    // Parses op_src's "attribute" JSON. A node without attributes has none: that is not an error.
    bool Load(const ge::Operator &opSrc)
    {
        ge::AscendString text;
        if (opSrc.GetAttr("attribute", text) != ge::GRAPH_SUCCESS || text.GetString() == nullptr) {
            return true;
        }
        const nlohmann::json doc = nlohmann::json::parse(text.GetString(), nullptr, false);
        if (doc.is_discarded() || !doc.is_object()) {
            return Fail("", "the \"attribute\" JSON does not parse");
        }
        const auto list = doc.find("attribute");
        if (list == doc.end() || !list->is_array()) {
            return true;
        }
        for (const nlohmann::json &a : *list) {
            const auto name = a.find("name");
            if (a.is_object() && name != a.end() && name->is_string()) {
                attrs_[name->get<std::string>()] = a;
            }
        }
        return true;
    }

    // A string attribute; `dflt` when the node does not have it.
    bool Str(const char *name, const char *dflt, std::string &out) { return GetStr(name, dflt, out); }
    bool RequiredStr(const char *name, std::string &out) { return GetStr(name, nullptr, out); }

    // An int attribute; `dflt` when the node does not have it.
    bool Int(const char *name, int64_t dflt, int64_t &out) { return GetInt(name, &dflt, out); }
    bool RequiredInt(const char *name, int64_t &out) { return GetInt(name, nullptr, out); }

    // A float attribute; `dflt` when the node does not have it.
    bool Float(const char *name, float dflt, float &out)
    {
        const nlohmann::json *a = Find(name, ONNX_FLOAT);
        if (a == nullptr) {
            out = dflt;
            return ok_;
        }
        const auto f = a->find("f");
        if (f == a->end()) {
            out = 0.0F;
        } else if (f->is_string()) {
            const std::string text = f->get<std::string>();
            char *end = nullptr;
            out = std::strtof(text.c_str(), &end);
            if (end == text.c_str()) {
                return Fail(name, "is not a number");
            }
        } else if (f->is_number()) {
            out = f->get<float>();
        } else {
            return Fail(name, "is not a number");
        }
        return true;
    }

    // Reports attributes the node has that no Str / Int / Float call asked for (ONNX nodes may
    // carry more than the op defines; they are ignored, but said so).
    void WarnUnread() const
    {
        for (const auto &kv : attrs_) {
            if (read_.count(kv.first) == 0) {
                std::fprintf(stderr, "[npuq] %s: ONNX attribute \"%s\" is not an attribute of this op; ignored\n",
                             opType_, kv.first.c_str());
            }
        }
    }

private:
    const nlohmann::json *Find(const char *name, int type)
    {
        read_.insert(name);
        const auto it = attrs_.find(name);
        if (it == attrs_.end()) {
            return nullptr;
        }
        const auto t = it->second.find("type");
        if (t == it->second.end() || !t->is_number_integer() || t->get<int>() != type) {
            Fail(name, type == ONNX_STRING ? "must be a string attribute"
                       : type == ONNX_INT ? "must be an int attribute" : "must be a float attribute");
            return nullptr;
        }
        return &it->second;
    }

    bool GetStr(const char *name, const char *dflt, std::string &out)
    {
        const nlohmann::json *a = Find(name, ONNX_STRING);
        if (a == nullptr) {
            if (!ok_) {
                return false;
            }
            if (dflt == nullptr) {
                return Fail(name, "is required");
            }
            out = dflt;
            return true;
        }
        const auto s = a->find("s");
        if (s == a->end()) {
            out.clear();
        } else if (s->is_string()) {
            out = s->get<std::string>();
        } else {
            return Fail(name, "is not a string");
        }
        return true;
    }

    bool GetInt(const char *name, const int64_t *dflt, int64_t &out)
    {
        const nlohmann::json *a = Find(name, ONNX_INT);
        if (a == nullptr) {
            if (!ok_) {
                return false;
            }
            if (dflt == nullptr) {
                return Fail(name, "is required");
            }
            out = *dflt;
            return true;
        }
        const auto i = a->find("i");
        if (i == a->end()) {
            out = 0;
        } else if (i->is_number_integer()) {
            out = i->get<int64_t>();
        } else {
            return Fail(name, "is not an integer");
        }
        return true;
    }

    bool Fail(const char *name, const char *why)
    {
        ok_ = false;
        std::fprintf(stderr, "[npuq] %s: ONNX attribute \"%s\" %s\n", opType_, name, why);
        return false;
    }

    const char *opType_;
    bool ok_ = true;
    std::map<std::string, nlohmann::json> attrs_;
    std::set<std::string> read_;
};

// The attributes of npuq::QuantDequant and npuq::Quantize (onnx_npuq.ops.defs.QUANT_DEQUANT.attrs
// = QUANTIZE.attrs, with their defaults), from op_src's "attribute" JSON onto op_dest under the
// same names (the attributes op_host/npuq_common.h DeclareFormatAttrs gives their OpDefs). False,
// having said why on stderr, when one is missing or of the wrong type. `opType`: the GE type, for
// the messages.
inline bool ParseFormatAttrs(const char *opType, const ge::Operator &op_src, ge::Operator &op_dest)
{
    OnnxAttrs attrs(opType);
    std::string format;
    std::string rounding;
    std::string scaleRule;
    std::string variant;
    std::string scale;
    int64_t saturate = 0;
    int64_t group = 0;
    if (!attrs.Load(op_src) ||
        !attrs.RequiredStr("format", format) ||
        !attrs.Str("rounding", "away", rounding) ||
        !attrs.Str("scale_rule", "floor", scaleRule) ||
        !attrs.Int("saturate", 0, saturate) ||
        !attrs.Str("variant", "quant_cy", variant) ||
        !attrs.Int("group", 0, group) ||
        !attrs.Str("scale", "none", scale)) {
        return false;
    }
    attrs.WarnUnread();
    op_dest.SetAttr("format", format.c_str());
    op_dest.SetAttr("rounding", rounding.c_str());
    op_dest.SetAttr("scale_rule", scaleRule.c_str());
    op_dest.SetAttr("saturate", saturate);
    op_dest.SetAttr("variant", variant.c_str());
    op_dest.SetAttr("group", group);
    op_dest.SetAttr("scale", scale.c_str());
    return true;
}

}  // namespace npuq_plugin

#endif  // NPUQ_ONNX_ATTRS_H
