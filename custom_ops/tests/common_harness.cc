// TEST HARNESS (tests/test_custom_ops.py), not part of the operator package: exercises the plain
// C++ of op_host/npuq_common.h (format table, option checks, packed widths, row split, tiling) on
// cases read from stdin, one per line:
//   opts <format> <rounding> <scale_rule> <saturate> <variant> <group> <scale> <length>
//       -> "ok <id> <rounding> <scale_rule> <saturate> <variant> <group> <scale> <codeBytes> <scaleBytes>"
//          | "bad" (the seven attributes by index, in the order of the OpDef, through
//          npuq_host::ParseFormatAttrs; the widths by npuq_host::PackedWidths of the options)
//   shape <dim>... -> "ok <rows> <cols>" | "bad: <why>" (npuq_host::RowsAndCols)
//   split <rows> <coreNum> -> "ok <blockDim> <rowsPerCore>" | "bad"
//   qd <format> <group> <dtypeBytes> <rows> <cols> <coreNum>
//       -> "ok <blockDim> <rowsPerCore> <tileRows> <userWorkspaceBytes> plan <tileRows> <chunkBlocks> <wideBlocks>"
//          | "bad" (options) | "bad: <why>" (tiling)
//   qz <format> <group> <scale> <dtypeBytes> <rows> <cols> <coreNum>
//       -> as qd (npuq_host::TileQuantize, PlanQuantize)
//   dq <format> <block> <length> <rows> <coreNum> <hasTensorScale>
//       -> "ok <blockDim> <rowsPerCore> <tileRows> <userWorkspaceBytes> plan <tileRows> <chunked> <width>" | "bad"
// The "ok" numbers are what the TilingFuncs compute (npuq_host::TileQuantDequant / TileDequantize);
// "plan" is the kernels' own plan (kernels/include/npuq/plan.h) of the params as the kernel
// receives them, "plan - - -" when the kernel returns before planning (an empty row).
#include <cstdint>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "npuq_common.h"
#include "npuq/plan.h"

// Stand-ins for what the TilingFuncs hand npuq_common.h's templates: gert::RuntimeAttrs (by index;
// nullptr for an index it does not have, or of the other type) and gert::Shape.
struct Attrs {
    std::vector<std::string> str;  // "" where the attribute is an int
    std::vector<int64_t> num;
    std::vector<bool> isInt;
    const char *GetStr(size_t i) const { return i < str.size() && !isInt[i] ? str[i].c_str() : nullptr; }
    const int64_t *GetInt(size_t i) const { return i < num.size() && isInt[i] ? &num[i] : nullptr; }
};

struct Shape {
    std::vector<int64_t> dims;
    size_t GetDimNum() const { return dims.size(); }
    int64_t GetDim(size_t i) const { return dims[i]; }
};

int main()
{
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream in(line);
        std::string verb;
        in >> verb;
        if (verb == "opts") {
            std::string format, rounding, scaleRule, variant, scale;
            int64_t saturate = 0, group = 0;
            uint64_t length = 0;
            in >> format >> rounding >> scaleRule >> saturate >> variant >> group >> scale >> length;
            // format, rounding, scale_rule, saturate, variant, group, scale: onnx_npuq.ops.defs' order
            const Attrs attrs{{format, rounding, scaleRule, "", variant, "", scale},
                              {0, 0, 0, saturate, 0, group, 0},
                              {false, false, false, true, false, true, false}};
            npuq_host::FormatOptions o;
            if (npuq_host::ParseFormatAttrs(attrs, o) != nullptr) {
                std::cout << "bad\n";
                continue;
            }
            uint64_t cw = 0, sw = 0;
            npuq_host::PackedWidths(o, length, cw, sw);
            std::cout << "ok " << static_cast<uint32_t>(o.format->id) << " " << o.rounding << " " << o.scaleRule << " "
                      << o.saturate << " " << o.variant << " " << o.group << " " << o.scale << " " << cw << " " << sw
                      << "\n";
        } else if (verb == "shape") {
            Shape shape;
            int64_t d = 0;
            while (in >> d) {
                shape.dims.push_back(d);
            }
            uint64_t rows = 0, cols = 0;
            const char *bad = npuq_host::RowsAndCols(shape, rows, cols);
            if (bad != nullptr) {
                std::cout << "bad: " << bad << "\n";
                continue;
            }
            std::cout << "ok " << rows << " " << cols << "\n";
        } else if (verb == "split") {
            uint64_t rows = 0, cores = 0;
            in >> rows >> cores;
            npuq_host::RowSplit s;
            if (!npuq_host::SplitRows(rows, cores, s)) {
                std::cout << "bad\n";
                continue;
            }
            std::cout << "ok " << s.blockDim << " " << s.rowsPerCore << "\n";
        } else if (verb == "qd" || verb == "qz") {
            // As TilingNpuqQuantDequant / TilingNpuqQuantize: the options (defaults but group, and
            // qz's scale), then the tiling.
            const bool qz = verb == "qz";
            std::string format, scale = npuq_host::DEFAULT_SCALE;
            int64_t group = 0, saturate = 0;
            uint32_t dtypeBytes = 0, rows = 0, cols = 0;
            uint64_t cores = 0;
            in >> format >> group;
            if (qz) {
                in >> scale;
            }
            in >> dtypeBytes >> rows >> cols >> cores;
            npuq_host::FormatOptions o;
            if (npuq_host::ParseFormatOptions(format.c_str(), npuq_host::DEFAULT_ROUNDING,
                                              npuq_host::DEFAULT_SCALE_RULE, &saturate, npuq_host::DEFAULT_VARIANT,
                                              &group, scale.c_str(), o) != nullptr) {
                std::cout << "bad\n";
                continue;
            }
            npuq::QuantDequantParams p{rows, cols, 0, 0, static_cast<uint32_t>(o.format->id),
                                       o.rounding, o.scaleRule, o.saturate, o.variant, o.group, o.scale};
            uint32_t blockDim = 0;
            uint64_t ws = 0;
            const auto tile = qz ? npuq_host::TileQuantize : npuq_host::TileQuantDequant;
            if (const char *why = tile(p, dtypeBytes, cores, blockDim, ws)) {
                std::cout << "bad: " << why << "\n";
                continue;
            }
            std::cout << "ok " << blockDim << " " << p.rowsPerCore << " " << p.tileRows << " " << ws << " plan ";
            if (p.cols == 0) {
                std::cout << "- - -\n";
                continue;
            }
            const npuq::QdLayout g = qz ? npuq::PlanQuantize(p, dtypeBytes) : npuq::PlanQuantDequant(p, dtypeBytes);
            std::cout << g.tileRows << " " << g.chunkBlocks << " " << (g.wideBlocks ? 1 : 0) << "\n";
        } else if (verb == "dq") {
            // As TilingNpuqDequantize: widths as formats.encode writes them, then the tiling.
            std::string format;
            uint32_t block = 0, length = 0, rows = 0, hasTensorScale = 0;
            uint64_t cores = 0;
            in >> format >> block >> length >> rows >> cores >> hasTensorScale;
            const npuq_host::FormatInfo *f = npuq_host::FindFormat(format.c_str());
            if (f == nullptr || (f->block != 0 && block != f->block)) {
                std::cout << "bad\n";
                continue;
            }
            uint64_t cw = 0, sw = 0;
            npuq_host::PackedWidths(*f, block != 0 ? block : length, length, cw, sw);
            npuq::DequantizeParams p{rows, length, block, static_cast<uint32_t>(cw), static_cast<uint32_t>(sw),
                                     hasTensorScale, 0, 0, static_cast<uint32_t>(f->id)};
            uint32_t blockDim = 0;
            uint64_t ws = 0;
            if (npuq_host::TileDequantize(p, cores, blockDim, ws) != nullptr) {
                std::cout << "bad\n";
                continue;
            }
            std::cout << "ok " << blockDim << " " << p.rowsPerCore << " " << p.tileRows << " " << ws << " plan ";
            if (p.length == 0) {
                std::cout << "- - -\n";
                continue;
            }
            const npuq::DqLayout g = npuq::PlanDequantize(p);
            std::cout << g.tileRows << " " << (g.chunked ? 1 : 0) << " " << g.width << "\n";
        } else {
            std::cout << "?\n";
        }
    }
    return 0;
}
