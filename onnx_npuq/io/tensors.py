"""Every TensorProto of a model, its byte size from dims and type, and the check that its
data fits them.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import onnx
from onnx import AttributeProto, TensorProto

from ..errors import ModelError

# ------------------------------------------------------------------ tensors


_SUB_BYTE = {TensorProto.INT4: 4, TensorProto.UINT4: 4}
for _name, _bits in (("FLOAT4E2M1", 4), ("INT2", 2), ("UINT2", 2)):
    if hasattr(TensorProto, _name):
        _SUB_BYTE[getattr(TensorProto, _name)] = _bits

# data types -> (typed field, values per element) for the typed-field count check
_TYPED_FIELDS = {
    TensorProto.FLOAT: ("float_data", 1), TensorProto.COMPLEX64: ("float_data", 2),
    TensorProto.DOUBLE: ("double_data", 1), TensorProto.COMPLEX128: ("double_data", 2),
    TensorProto.INT64: ("int64_data", 1), TensorProto.UINT32: ("uint64_data", 1),
    TensorProto.UINT64: ("uint64_data", 1), TensorProto.STRING: ("string_data", 1),
    **{t: ("int32_data", 1) for t in (TensorProto.INT32, TensorProto.INT16, TensorProto.INT8, TensorProto.UINT16,
                                      TensorProto.UINT8, TensorProto.BOOL, TensorProto.FLOAT16,
                                      TensorProto.BFLOAT16)},
}


def _numel(dims) -> int:
    return math.prod(int(d) for d in dims)


def tensor_nbytes(t: TensorProto) -> int | None:
    """Bytes of the tensor's raw data from its dims and type; None for strings."""
    if t.data_type == TensorProto.STRING:
        return None
    n = _numel(t.dims)
    if t.data_type in _SUB_BYTE:
        return (n * _SUB_BYTE[t.data_type] + 7) // 8
    return n * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


_DATA_TYPES = frozenset(TensorProto.DataType.values()) - {TensorProto.UNDEFINED}


def _check_tensor(t: TensorProto, what: str) -> None:
    if t.data_type not in _DATA_TYPES:
        raise ModelError(f"{what}: data type {t.data_type} is not an ONNX tensor type")
    if any(d < 0 for d in t.dims):
        raise ModelError(f"{what}: negative dimension in dims {list(t.dims)}")
    if t.data_location == TensorProto.EXTERNAL:
        return  # checked against its file by _external_refs
    if t.HasField("raw_data"):
        want = tensor_nbytes(t)
        if want is None:
            raise ModelError(f"{what}: a string tensor cannot have raw_data")
        if len(t.raw_data) != want:
            raise ModelError(f"{what}: dims {list(t.dims)} of type {TensorProto.DataType.Name(t.data_type)} need "
                             f"{_size(want)}, raw_data holds {_size(len(t.raw_data))}")
        return
    field, per = _TYPED_FIELDS.get(t.data_type, (None, 1))
    if field is None:
        return
    have = len(getattr(t, field))
    want = _numel(t.dims) * per
    if have != want and not (have == 0 and want == 0):
        raise ModelError(f"{what}: dims {list(t.dims)} need {want} value(s), {field} holds {have}")


def _graph_tensors(g: onnx.GraphProto, where: str) -> Iterator[tuple[TensorProto, str]]:
    for t in g.initializer:
        yield t, f"{where}initializer {t.name!r}"
    for s in g.sparse_initializer:
        yield s.values, f"{where}sparse initializer {s.values.name!r} (values)"
        yield s.indices, f"{where}sparse initializer {s.values.name!r} (indices)"
    for n in g.node:
        yield from _node_tensors(n, where)


def _node_tensors(n: onnx.NodeProto, where: str) -> Iterator[tuple[TensorProto, str]]:
    who = f"{where}node {n.name or '<unnamed>'} ({n.op_type}) attribute"
    for a in n.attribute:
        if a.type == AttributeProto.TENSOR:
            yield a.t, f"{who} {a.name!r}"
        for i, t in enumerate(a.tensors):
            yield t, f"{who} {a.name!r}[{i}]"
        if a.type == AttributeProto.SPARSE_TENSOR:
            yield a.sparse_tensor.values, f"{who} {a.name!r} (values)"
            yield a.sparse_tensor.indices, f"{who} {a.name!r} (indices)"
        for sub in _subgraphs(a):
            yield from _graph_tensors(sub, f"{where}subgraph {sub.name!r} of {n.name or n.op_type}: ")


def _subgraphs(a: AttributeProto) -> list[onnx.GraphProto]:
    return ([a.g] if a.type == AttributeProto.GRAPH else []) + list(a.graphs)


def all_tensors(model: onnx.ModelProto) -> Iterator[tuple[TensorProto, str]]:
    """Every TensorProto of the model (initializers, constants, subgraphs, functions), with
    words that say where it is."""
    yield from _graph_tensors(model.graph, "")
    for f in model.functions:
        for n in f.node:
            yield from _node_tensors(n, f"function {f.domain}::{f.name}: ")
