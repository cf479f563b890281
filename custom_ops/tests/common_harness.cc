// TEST HARNESS (tests/test_custom_ops.py), not part of the operator package: exercises the plain
// C++ of op_host/npuq_common.h (format table, option checks, packed widths, row split) on cases
// read from stdin, one per line:
//   opts <format> <rounding> <scale_rule> <saturate> <variant> <group> <length>
//       -> "ok <id> <rounding> <scale_rule> <saturate> <variant> <group> <codeBytes> <scaleBytes>" | "bad"
//   split <rows> <coreNum> <ubBytes> <bytesPerRow> -> "ok <blockDim> <rowsPerCore> <tileRows>" | "bad"
#include <cstdint>
#include <iostream>
#include <sstream>
#include <string>

#include "npuq_common.h"

int main()
{
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream in(line);
        std::string verb;
        in >> verb;
        if (verb == "opts") {
            std::string format, rounding, scaleRule, variant;
            int64_t saturate = 0, group = 0;
            uint64_t length = 0;
            in >> format >> rounding >> scaleRule >> saturate >> variant >> group >> length;
            npuq_host::FormatOptions o;
            if (npuq_host::ParseFormatOptions(format.c_str(), rounding.c_str(), scaleRule.c_str(), &saturate,
                                              variant.c_str(), &group, o) != nullptr) {
                std::cout << "bad\n";
                continue;
            }
            uint64_t cw = 0, sw = 0;
            npuq_host::PackedWidths(*o.format, npuq_host::BlockOf(*o.format, o.group, length), length, cw, sw);
            std::cout << "ok " << static_cast<uint32_t>(o.format->id) << " " << o.rounding << " " << o.scaleRule << " "
                      << o.saturate << " " << o.variant << " " << o.group << " " << cw << " " << sw << "\n";
        } else if (verb == "split") {
            uint64_t rows = 0, cores = 0, ub = 0, perRow = 0;
            in >> rows >> cores >> ub >> perRow;
            npuq_host::RowSplit s;
            if (!npuq_host::SplitRows(rows, cores, ub, perRow, s)) {
                std::cout << "bad\n";
                continue;
            }
            std::cout << "ok " << s.blockDim << " " << s.rowsPerCore << " " << s.tileRows << "\n";
        } else {
            std::cout << "?\n";
        }
    }
    return 0;
}
