// TEST STUB, not CANN: the gert:: types custom_ops/op_host uses, with the signatures of CANN's
// (hicann/metadef @ 786891c02e5a7f509c6ffffd854e33ddefe3527c: inc/external/exe_graph/runtime/
// shape.h, storage_shape.h, runtime_attrs.h, compute_node_info.h (CompileTimeTensorDesc),
// tiling_data.h, extended_kernel_context.h (GetInputDesc, GetAttrs), tiling_context.h,
// infer_shape_context.h, infer_datatype_context.h). One file here for the lot; CANN spreads them
// over those headers and reaches them from register/op_def_registry.h as this stub does.
// What the contexts hold is public, for tests to fill; CANN keeps it in the kernel context.
#ifndef NPUQ_TEST_STUB_EXE_GRAPH_TILING_CONTEXT_H
#define NPUQ_TEST_STUB_EXE_GRAPH_TILING_CONTEXT_H
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "graph/types.h"

namespace fe {
class PlatFormInfos;
}

namespace gert {
class Shape {
public:
    Shape() = default;
    Shape(const std::initializer_list<int64_t> &args) : dims_(args) {}
    bool operator==(const Shape &rht) const { return dims_ == rht.dims_; }
    size_t GetDimNum() const { return dims_.size(); }
    void SetDimNum(const size_t dim_num) { dims_.resize(dim_num, 0); }
    int64_t GetDim(const size_t idx) const { return idx < dims_.size() ? dims_[idx] : INT64_MIN; }
    void SetDim(size_t idx, const int64_t dim_value)
    {
        if (idx < dims_.size()) {
            dims_[idx] = dim_value;
        }
    }

private:
    std::vector<int64_t> dims_;
};

class StorageShape {
public:
    StorageShape() = default;
    StorageShape(const Shape &origin, const Shape &storage) : origin_(origin), storage_(storage) {}
    const Shape &GetOriginShape() const { return origin_; }
    const Shape &GetStorageShape() const { return storage_; }

private:
    Shape origin_;
    Shape storage_;
};

// Attributes by index in OpDef order; nullptr where an index is absent or of the other type.
class RuntimeAttrs {
public:
    const char *GetStr(const size_t index) const
    {
        return index < kinds.size() && kinds[index] == 's' ? strs[index].c_str() : nullptr;
    }
    const int64_t *GetInt(const size_t index) const
    {
        return index < kinds.size() && kinds[index] == 'i' ? &ints[index] : nullptr;
    }
    std::vector<char> kinds;  // 's' or 'i' (the stub's own)
    std::vector<std::string> strs;
    std::vector<int64_t> ints;
};

class CompileTimeTensorDesc {
public:
    ge::DataType GetDataType() const { return data_type; }
    ge::DataType data_type = ge::DT_FLOAT;
};

class TilingData {
public:
    size_t GetCapacity() const { return bytes.size(); }
    size_t GetDataSize() const { return data_size; }
    void SetDataSize(const size_t size) { data_size = size; }
    void *GetData() { return bytes.data(); }
    const void *GetData() const { return bytes.data(); }
    std::vector<uint8_t> bytes = std::vector<uint8_t>(1024);
    size_t data_size = 0;
};

class TilingContext {
public:
    const StorageShape *GetInputShape(const size_t index) const { return Get(input_shapes, index); }
    const StorageShape *GetOptionalInputShape(const size_t ir_index) const { return Get(input_shapes, ir_index); }
    const CompileTimeTensorDesc *GetInputDesc(const size_t index) const { return Get(input_descs, index); }
    const RuntimeAttrs *GetAttrs() const { return &attrs; }
    fe::PlatFormInfos *GetPlatformInfo() const { return platform; }
    ge::graphStatus SetBlockDim(const uint32_t block_dim)
    {
        this->block_dim = block_dim;
        return ge::GRAPH_SUCCESS;
    }
    ge::graphStatus SetScheduleMode(const uint32_t schedule_mode)
    {
        this->schedule_mode = schedule_mode;
        return ge::GRAPH_SUCCESS;
    }
    TilingData *GetRawTilingData() { return &tiling_data; }
    size_t *GetWorkspaceSizes(const size_t workspace_count)
    {
        workspaces.assign(workspace_count, 0);
        return workspaces.data();
    }

    // the stub's own: what a test fills in and reads back
    std::vector<const StorageShape *> input_shapes;  // nullptr: an absent optional input
    std::vector<const CompileTimeTensorDesc *> input_descs;
    RuntimeAttrs attrs;
    fe::PlatFormInfos *platform = nullptr;
    uint32_t block_dim = 0;
    uint32_t schedule_mode = 0;
    TilingData tiling_data;
    std::vector<size_t> workspaces;

private:
    template <typename T>
    static const T *Get(const std::vector<const T *> &v, size_t i)
    {
        return i < v.size() ? v[i] : nullptr;
    }
};

class InferShapeContext {
public:
    const Shape *GetInputShape(const size_t index) const { return index < inputs.size() ? inputs[index] : nullptr; }
    const Shape *GetOptionalInputShape(const size_t ir_index) const { return GetInputShape(ir_index); }
    Shape *GetOutputShape(const size_t index) { return index < outputs.size() ? &outputs[index] : nullptr; }
    const RuntimeAttrs *GetAttrs() const { return &attrs; }
    std::vector<const Shape *> inputs;
    std::vector<Shape> outputs;
    RuntimeAttrs attrs;
};

class InferDataTypeContext {
public:
    ge::DataType GetInputDataType(const size_t index) const
    {
        return index < inputs.size() ? inputs[index] : ge::DT_FLOAT;
    }
    ge::graphStatus SetOutputDataType(const size_t index, const ge::DataType datatype)
    {
        if (index >= outputs.size()) {
            outputs.resize(index + 1, ge::DT_FLOAT);
        }
        outputs[index] = datatype;
        return ge::GRAPH_SUCCESS;
    }
    std::vector<ge::DataType> inputs;
    std::vector<ge::DataType> outputs;
};
}  // namespace gert
#endif
