"""ONNX protobuf facts every layer shares, kept below the op set that needs them: size limits,
the layout metadata key, and the weight-free copies that onnx.checker and shape inference run
on (io re-exports all of it; io itself sits above ops, whose definitions it checks)."""
from __future__ import annotations

import onnx
from onnx import TensorProto

MAX_PROTOBUF_BYTES = 2**31 - 1  # protobuf cannot parse a message past this
LARGE_TENSOR_BYTES = 2**16  # weights this large stay out of copies made for checks and inference
# Model metadata keys, one definition each (the modules that write or read them re-export them)
LAYOUT_KEY = "onnx_npuq.layout"  # set by the atc pass: an ATC layout, which onnx.checker and onnxruntime take not
LAYERS_KEY = "onnx_npuq.layers"  # JSON {module name: tensor name} of each weight layer's output, by the exporter
INPUT_SHAPES_KEY = "onnx_npuq.input_shapes"  # JSON {graph input: shape that runs}, by the exporter


def _copy_fields(src, dst, keep) -> None:
    """dst gets src's fields for which keep(field descriptor) holds."""
    for fd, value in src.ListFields():
        if not keep(fd):
            continue
        if hasattr(value, "extend"):  # repeated
            getattr(dst, fd.name).extend(value)
        elif fd.message_type is not None:
            getattr(dst, fd.name).CopyFrom(value)
        else:
            setattr(dst, fd.name, value)


def fields_between(msg, lo: int, hi: int = 1 << 29):
    """A copy of a message with only its fields numbered lo <= n < hi (others not copied).
    Serialized, consecutive ranges concatenate to the message's own serialization."""
    out = type(msg)()
    _copy_fields(msg, out, lambda fd: lo <= fd.number < hi)
    return out


def fields_around(msg, number: int, drop: tuple[int, ...] = ()) -> list:
    """Copies of msg holding its fields before field `number` and the ones after it (without
    `drop`), in order: serialized one after the other, msg's own bytes less those fields."""
    parts, lo = [fields_between(msg, 0, number)], number + 1
    for hi in (*sorted(drop), 1 << 29):
        parts.append(fields_between(msg, lo, hi))
        lo = hi + 1
    return parts


def varint_len(n: int) -> int:
    """Bytes of n as a protobuf varint."""
    return max(1, (n.bit_length() + 6) // 7)


def field_bytes(n: int) -> int:
    """Bytes of a length-delimited field numbered under 16 (a one-byte tag) holding n bytes."""
    return 1 + varint_len(n) + n


RAW_DATA = 9  # TensorProto.raw_data


def tensor_bytes(t: TensorProto) -> int:
    """t.ByteSize(), without serializing its raw data: upb's ByteSize serializes the whole
    message (0.4 s a 256 MiB of weights), while its raw data's length is at hand."""
    if not t.HasField("raw_data"):
        return t.ByteSize()
    return sum(p.ByteSize() for p in fields_around(t, RAW_DATA)) + field_bytes(len(t.raw_data))


def shell(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the model without its graph's initializers (copying the model would copy
    every weight)."""
    view = onnx.ModelProto()
    _copy_fields(model, view, lambda fd: fd.name != "graph")
    if model.HasField("graph"):
        view.graph.SetInParent()
        _copy_fields(model.graph, view.graph, lambda fd: fd.name != "initializer")
    return view


def is_large(t: TensorProto, min_bytes: int | None) -> bool:
    """In external data, or (min_bytes given) serialized to min_bytes or more."""
    return t.data_location == TensorProto.EXTERNAL or (min_bytes is not None and tensor_bytes(t) >= min_bytes)


def checker_copy(model: onnx.ModelProto, min_bytes: int | None = None) -> onnx.ModelProto:
    """What onnx.checker and shape inference take of any model: a copy whose initializers in
    external data (the checker would look for them relative to the working directory) or,
    with min_bytes, of that size or more (a model past 2 GB cannot be serialized) are graph
    inputs of their type and shape; the model itself when there are none. (External tensors
    outside the initializers are left: load them first.)"""
    if not any(is_large(t, min_bytes) for t in model.graph.initializer):
        return model
    view = shell(model)
    large = [t for t in model.graph.initializer if is_large(t, min_bytes)]
    view.graph.initializer.extend(t for t in model.graph.initializer if not is_large(t, min_bytes))
    inputs = {v.name for v in view.graph.input}
    view.graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                            for t in large if t.name not in inputs)
    return view
