// TEST HARNESS (tests/test_custom_ops.py), not part of the operator package: runs the ONNX
// plugins' parse functions, compiled against tests/stubs, on cases read from stdin:
//   <GE type> <tab> <"attribute" JSON or -> <tab> <IR attributes of op_dest, "name=kind:value;..." or ->
// and prints, per case: "ok <tab> name=kind:value;..." (op_dest's attributes) or "fail".
#include <iostream>
#include <sstream>
#include <string>

#include "register/register.h"

int main()
{
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream in(line);
        std::string type, json, ir;
        std::getline(in, type, '\t');
        std::getline(in, json, '\t');
        std::getline(in, ir, '\t');
        const domi::OpRegistrationData *reg = nullptr;
        for (const auto &r : domi::Registry()) {
            if (r.om_type == type) {
                reg = &r;
            }
        }
        if (reg == nullptr) {
            std::cout << "noop\n";
            continue;
        }
        ge::Operator src;
        if (json != "-") {
            src.SetAttr("attribute", json.c_str());
        }
        ge::Operator dest;
        if (ir != "-") {
            std::istringstream irs(ir);
            std::string kv;
            while (std::getline(irs, kv, ';')) {
                const auto eq = kv.find('=');
                dest.attrs[kv.substr(0, eq)] = kv.substr(eq + 1);
            }
        }
        if (reg->fn(src, dest) != domi::SUCCESS) {
            std::cout << "fail\n";
            continue;
        }
        std::cout << "ok\t";
        for (const auto &kv : dest.attrs) {
            std::cout << kv.first << "=" << kv.second << ";";
        }
        std::cout << "\n";
    }
    // the registrations, for the key test
    for (const auto &r : domi::Registry()) {
        std::cout << "reg\t" << r.om_type << "\t" << static_cast<int>(r.fmk) << "\t" << static_cast<int>(r.imply);
        for (const auto &k : r.ori_types) {
            std::cout << "\t" << k;
        }
        std::cout << "\n";
    }
    return 0;
}
