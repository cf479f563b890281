// TEST HARNESS (tests/test_custom_ops.py), not part of the operator package: checks the
// nlohmann::json stub of tests/stubs on cases read from stdin, each ended by a NUL byte (so a
// case may hold newlines and tabs), answering one line per case:
//   <JSON text>              -> the value, dumped as below, or "discarded"
//   <JSON text> <0x1F> <key> -> the dump of doc.find(key), or "end" when find gives end()
// Dump: null | true | false | i:<int64> | f:<%.17g> | s:<hex of the bytes> | [v,...] | {v,...}
// (an object's values in iteration order), prefixed "<n>#" at the top with the number of
// elements a range-for visits. Predicates or get<T>() that disagree print "inconsistent".
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#ifndef NPUQ_TEST_STUB_NLOHMANN_JSON_HPP
#error "compiled against a nlohmann/json.hpp other than tests/stubs'"
#endif

using nlohmann::json;

static std::string Dump(const json &v)
{
    const int kinds = v.is_null() + v.is_boolean() + v.is_number() + v.is_string() + v.is_array() + v.is_object();
    if (kinds != 1 || v.is_discarded() || (v.is_number() && v.is_number_integer() == v.is_number_float())) {
        return "inconsistent";
    }
    if (v.is_null()) {
        return "null";
    }
    if (v.is_boolean()) {
        return v.get<bool>() ? "true" : "false";
    }
    if (v.is_number_integer()) {
        const int64_t i = v.get<int64_t>();
        if (v.get<int>() != static_cast<int>(i) || v.get<double>() != static_cast<double>(i)) {
            return "inconsistent";
        }
        return "i:" + std::to_string(i);
    }
    if (v.is_number_float()) {
        char buf[64];
        std::snprintf(buf, sizeof(buf), "f:%.17g", v.get<double>());
        return v.get<float>() == static_cast<float>(v.get<double>()) ? buf : "inconsistent";
    }
    if (v.is_string()) {
        std::string out = "s:";
        char buf[4];
        for (const char c : v.get<std::string>()) {
            std::snprintf(buf, sizeof(buf), "%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
            out += buf;
        }
        return out;
    }
    std::string out = v.is_array() ? "[" : "{";
    const char *sep = "";
    for (const json &e : v) {
        out += sep + Dump(e);
        sep = ",";
    }
    return out + (v.is_array() ? "]" : "}");
}

int main()
{
    std::string line;
    while (std::getline(std::cin, line, '\0')) {
        const auto sep = line.find('\x1f');
        const std::string text = line.substr(0, sep);
        const json doc = json::parse(text, nullptr, false);
        if (doc.is_discarded()) {
            bool threw = false;
            try {
                (void)json::parse(text.c_str());
            } catch (const std::exception &) {
                threw = true;
            }
            std::cout << (threw && json::parse(text.c_str(), nullptr, false).is_discarded() ? "discarded"
                                                                                             : "inconsistent")
                      << "\n";
        } else if (sep != std::string::npos) {
            const auto it = doc.find(line.substr(sep + 1));
            std::cout << (it == doc.end() ? "end" : it->is_discarded() ? "inconsistent" : Dump(*it)) << "\n";
        } else {
            int n = 0;
            for (const json &e : doc) {
                (void)e;
                ++n;
            }
            std::cout << n << "#" << Dump(doc) << "\n";
        }
    }
    return 0;
}
