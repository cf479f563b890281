// TEST STUB, not CANN: the names of CANN's graph/types.h and graph/error_codes.h that custom_ops
// uses, with their real spelling and values (hicann/metadef @ 786891c02e5a7f509c6ffffd854e33ddefe3527c:
// inc/external/graph/types.h -- ge::DataType / ge::Format values, domi::ImplyType is an enum class
// there; inc/external/graph/error_codes.h -- graphStatus, GRAPH_SUCCESS, GRAPH_FAILED).
#ifndef NPUQ_TEST_STUB_GRAPH_TYPES_H
#define NPUQ_TEST_STUB_GRAPH_TYPES_H
#include <cstdint>

namespace ge {
using char_t = char;
using float32_t = float;
using graphStatus = uint32_t;
const graphStatus GRAPH_FAILED = 0xFFFFFFFF;
const graphStatus GRAPH_SUCCESS = 0;

enum DataType {
    DT_FLOAT = 0,
    DT_FLOAT16 = 1,
    DT_INT8 = 2,
    DT_INT32 = 3,
    DT_UINT8 = 4,
    DT_INT64 = 9,
    DT_BF16 = 27,
};
enum Format { FORMAT_ND = 2 };
}  // namespace ge

namespace domi {
enum class ImplyType : unsigned int {
    BUILTIN = 0,
    BUILDIN = BUILTIN,
    TVM,
    CUSTOM,
    AI_CPU,
    CCE,
    GELOCAL,
    HCCL,
    INVALID = 0xFFFFFFFF,
};
}  // namespace domi
#endif
