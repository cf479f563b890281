"""Reading ONNX models safely, and writing files atomically.

    model = load_model("m.onnx")          # checked; external data read from m.onnx's folder
    check_model(model)                    # the same checks on an in-memory ModelProto
    with atomic_path("out/report.md") as tmp:   # write tmp; renamed onto the target on success
        tmp.write_text(...)

`load_model` is what every command and API that takes a model path uses. It refuses, with a
ModelError (a ValueError) naming the file and the problem, before anything else reads the
model: a path that is not a regular file, an empty file, one past protobuf's 2 GiB limit,
bytes that are not an ONNX protobuf, IR versions and opsets this onnx does not know (or no
opset_import), a graph that is not a graph (a node input nothing produces, a cycle, a tensor
produced twice, outputs nothing produces), tensors whose data does not fit their dims,
custom npuq / npu nodes with bad attributes or packed byte counts (ops.functions.validate),
and what onnx.checker (shallow) finds (node order, domains without opset_import, attributes of
standard ops, ...; not for models in an ATC layout, which it does not take).

External data is only read from the model's own folder: every entry's `location` must be a
relative path without `..` that still lies inside the folder after following symlinks, name a
regular file, and have an `offset` / `length` that are non-negative integers within that file
and match the tensor's dims. All of that is checked, for every tensor, before any external
file is opened (ExternalDataError otherwise).

One module per part: tensors (every TensorProto, its size, its check), graph_checks
(versions, opset_import, graph structure), external_data (checked references, reads,
sizes), loader (check_model, load_model), atomic (atomic writes). This package re-exports
their names and proto's size limits, layout key and checker copies.
"""
from __future__ import annotations

from ..proto import (INPUT_SHAPES_KEY, LARGE_TENSOR_BYTES, LAYERS_KEY, LAYOUT_KEY, MAX_PROTOBUF_BYTES, _copy_fields,  # noqa: F401 (io's names too)
                     checker_copy, is_large, shell, tensor_bytes)
from .tensors import tensor_nbytes, all_tensors  # noqa: F401
from .graph_checks import MIN_IR_VERSION  # noqa: F401
from .external_data import (EXTERNAL_KEYS, open_external, read_external_range, external_refs,  # noqa: F401
                            read_external, load_external_data, external_nbytes, proto_bytes,
                            model_bytes, data_dir_of)
from .loader import check_model, load_model  # noqa: F401
from .atomic import file_mode, atomic_path, write_bytes_atomic, write_text_atomic  # noqa: F401

