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
"""
from __future__ import annotations

import contextlib
import math
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, TensorProto

from .errors import ExternalDataError, ModelError
from .proto import (LARGE_TENSOR_BYTES, LAYOUT_KEY, MAX_PROTOBUF_BYTES, _copy_fields,  # noqa: F401 (io's names too)
                    checker_copy, is_large, shell)

MIN_IR_VERSION = 3  # the first IR with opset_import
EXTERNAL_KEYS = ("location", "offset", "length", "checksum")
INPUT_SHAPES_KEY = "onnx_npuq.input_shapes"  # JSON {graph input: shape that runs}, written by the exporter

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


# ------------------------------------------------------------------ versions and graph


def _check_versions(model: onnx.ModelProto) -> None:
    ir = model.ir_version
    if ir < MIN_IR_VERSION:
        raise ModelError(f"IR version {ir} is not supported (at least {MIN_IR_VERSION}, "
                         "the first with opset_import; 0 means the field is missing)")
    if ir > onnx.IR_VERSION:
        raise ModelError(f"IR version {ir} is newer than this onnx ({onnx.__version__}) reads "
                         f"(at most {onnx.IR_VERSION})")
    if not model.opset_import:
        raise ModelError("the model has no opset_import (which operator set versions its nodes use)")
    _check_imports(model.opset_import, "opset_import")
    for f in model.functions:
        _check_imports(f.opset_import, f"function {f.domain}::{f.name} opset_import")


def _check_imports(imports, where: str) -> None:
    seen = set()
    newest = onnx.defs.onnx_opset_version()
    for o in imports:
        domain = "" if o.domain == "ai.onnx" else o.domain
        if domain in seen:
            raise ModelError(f"{where}: domain {o.domain or 'ai.onnx'!r} is listed twice")
        seen.add(domain)
        if o.version < 1:
            raise ModelError(f"{where}: domain {o.domain or 'ai.onnx'!r} version {o.version} (versions start at 1)")
        if domain == "" and o.version > newest:
            raise ModelError(f"{where}: opset {o.version} of the standard domain is newer than this onnx "
                             f"({onnx.__version__}) knows (at most {newest})")


def _who(n: onnx.NodeProto) -> str:
    return f"node {n.name or '<unnamed>'} ({n.domain + '::' if n.domain else ''}{n.op_type})"


def _cycle(nodes, producer: dict[str, int]) -> list[int] | None:
    """Indices of the nodes on one dependency cycle, or None."""
    deps = [[producer[i] for i in n.input if i in producer] for n in nodes]
    state = [0] * len(nodes)  # 0 new, 1 on the stack, 2 done
    for start in range(len(nodes)):
        if state[start]:
            continue
        stack, path = [(start, iter(deps[start]))], [start]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state[nxt] == 1:
                return path[path.index(nxt):] + [nxt]
            elif state[nxt] == 0:
                state[nxt] = 1
                stack.append((nxt, iter(deps[nxt])))
                path.append(nxt)
    return None


def _check_graph(g: onnx.GraphProto, outer: set[str], where: str) -> None:
    """SSA (each name assigned once), every node input produced somewhere (no dangling
    names), no cycles, graph outputs produced; subgraphs see the names of the scopes around
    them. Node order is left to onnx.checker (the passes sort the graph anyway), domains and
    their opset_import too (the ATC preflight reports those)."""
    defined: dict[str, str] = {}
    for v in g.input:
        if not v.name:
            raise ModelError(f"{where}a graph input has no name")
        if v.name in defined:
            raise ModelError(f"{where}graph input {v.name!r} is listed twice")
        defined[v.name] = "a graph input"
    for t in list(g.initializer) + [s.values for s in g.sparse_initializer]:
        if t.name in defined and defined[t.name] != "a graph input":
            raise ModelError(f"{where}initializer {t.name!r} is defined twice")
        defined[t.name] = "an initializer"
    producer: dict[str, int] = {}
    for idx, n in enumerate(g.node):
        if not n.op_type:
            raise ModelError(f"{where}{_who(n)} has no op_type")
        for o in n.output:
            if not o:
                continue
            if o in producer:
                raise ModelError(f"{where}tensor {o!r} is the output of both {_who(g.node[producer[o]])} and "
                                 f"{_who(n)} (a graph assigns each name once)")
            if o in defined:
                raise ModelError(f"{where}{_who(n)} outputs {o!r}, which is already {defined[o]}")
            producer[o] = idx
    visible = set(outer) | set(defined) | set(producer)
    for n in g.node:
        for i in n.input:
            if i and i not in visible:
                raise ModelError(f"{where}{_who(n)} reads {i!r}, which no node, graph input or initializer produces")
        for a in n.attribute:
            for sub in _subgraphs(a):
                _check_graph(sub, visible, f"{where}subgraph {sub.name!r} of {_who(n)}: ")
    cycle = _cycle(g.node, producer)
    if cycle:
        raise ModelError(f"{where}the graph has a cycle: {' -> '.join(_who(g.node[c]) for c in cycle)}")
    for v in g.output:
        if v.name not in visible:
            raise ModelError(f"{where}graph output {v.name!r} is produced by no node, input or initializer")


# ------------------------------------------------------------------ external data


def _int_field(value: str, key: str, what: str) -> int:
    text = value.strip()
    if not text.lstrip("-").isdigit() or not text.isascii():
        raise ExternalDataError(f"{what}: external data {key} {value!r} is not an integer")
    n = int(text)
    if n < 0:
        raise ExternalDataError(f"{what}: external data {key} {n} is negative")
    return n


def _within(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives
        return False


def _external_ref(t: TensorProto, what: str, folder: str | None) -> tuple[str, int, int]:
    """(real path, offset, length) of a tensor's external data, all checked; nothing opened."""
    entries: dict[str, str] = {}
    for e in t.external_data:
        if e.key in entries:
            raise ExternalDataError(f"{what}: external data key {e.key!r} is given twice")
        if e.key not in EXTERNAL_KEYS:
            raise ExternalDataError(f"{what}: unknown external data key {e.key!r} "
                                    f"(known: {', '.join(EXTERNAL_KEYS)})")
        entries[e.key] = e.value
    if t.data_type == TensorProto.STRING:
        raise ExternalDataError(f"{what}: a string tensor cannot have external data")
    loc = entries.get("location", "")
    if not loc.strip():
        raise ExternalDataError(f"{what}: external data without a location")
    if "\0" in loc:
        raise ExternalDataError(f"{what}: external data location {loc!r} contains a NUL character")
    posix = PurePosixPath(loc.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(loc).is_absolute() or PureWindowsPath(loc).drive:
        raise ExternalDataError(f"{what}: external data location {loc!r} is an absolute path; it must be "
                                "relative to the model's folder")
    if ".." in posix.parts:
        raise ExternalDataError(f"{what}: external data location {loc!r} contains '..'; it must stay "
                                "inside the model's folder")
    if folder is None:
        raise ExternalDataError(f"{what}: has external data ({loc!r}) but the model was given in memory "
                                "without data_dir, the folder its locations are relative to")
    real_folder = os.path.realpath(folder)
    real = os.path.realpath(os.path.join(real_folder, *posix.parts))
    if real == real_folder:
        raise ExternalDataError(f"{what}: external data location {loc!r} is the model's folder itself")
    if not _within(real, real_folder):
        raise ExternalDataError(f"{what}: external data location {loc!r} resolves (through a symlink) to "
                                f"{real}, outside the model's folder {real_folder}")
    try:
        st = os.stat(real)
    except OSError as err:
        raise ExternalDataError(f"{what}: external data file {loc!r}: {err.strerror or err}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ExternalDataError(f"{what}: external data location {loc!r} is not a regular file")
    offset = _int_field(entries.get("offset", "0"), "offset", what)
    if offset > st.st_size:
        raise ExternalDataError(f"{what}: external data offset {offset} is past the end of {loc!r} "
                                f"({st.st_size} bytes)")
    length = _int_field(entries["length"], "length", what) if "length" in entries else st.st_size - offset
    if offset + length > st.st_size:
        raise ExternalDataError(f"{what}: external data offset {offset} + length {length} is past the end of "
                                f"{loc!r} ({st.st_size} bytes)")
    want = tensor_nbytes(t)
    if want is not None and length != want:
        raise ExternalDataError(f"{what}: dims {list(t.dims)} need {_size(want)}, its external data in "
                                f"{loc!r} has {_size(length)}")
    return real, offset, length


def _external_refs(model: onnx.ModelProto, folder: str | None) -> list[tuple[TensorProto, str, int, int]]:
    refs = []
    for t, what in all_tensors(model):
        if t.data_location == TensorProto.EXTERNAL:
            refs.append((t, *_external_ref(t, what, folder)))
    return refs


def open_external(real: str):
    """A checked external-data file (see _external_ref), opened for reading without following
    a symlink swapped in since the check."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    return os.fdopen(os.open(real, flags), "rb")


def read_external_range(real: str, offset: int, length: int) -> bytes:
    with open_external(real) as f:
        f.seek(offset)
        data = f.read(length)
    if len(data) != length:
        raise ExternalDataError(f"external data {real}: read {len(data)} of {length} bytes (the file changed)")
    return data


def _read_external(refs) -> None:
    for t, real, offset, length in refs:
        t.raw_data = read_external_range(real, offset, length)
        del t.external_data[:]
        t.ClearField("data_location")  # DEFAULT


def external_refs(model: onnx.ModelProto, folder: str | os.PathLike | None) -> list[tuple[TensorProto, str, int, int]]:
    """(tensor, real path, offset, length) of every tensor with external data, each checked
    as load_model checks it against `folder` (None: there must be none); nothing opened."""
    return _external_refs(model, None if folder is None else os.fspath(folder))


def read_external(t: TensorProto, folder: str | os.PathLike, what: str = "tensor") -> bytes:
    """The bytes of one tensor's external data in `folder` (checked first)."""
    return read_external_range(*_external_ref(t, f"{what} {t.name!r}", os.fspath(folder)))


def load_external_data(model: onnx.ModelProto, folder: str | os.PathLike, keep_bytes: int | None = None) -> None:
    """Read the model's external data from `folder` into its tensors (checked first).
    keep_bytes: the graph's initializers of at least this many bytes stay external."""
    folder = os.fspath(folder)
    refs = []
    for t, what in all_tensors(model):
        if t.data_location != TensorProto.EXTERNAL:
            continue
        ref = _external_ref(t, what, folder)
        top_level = what == f"initializer {t.name!r}"  # (all_tensors' words for the main graph's)
        if not (keep_bytes is not None and top_level and ref[2] >= keep_bytes):
            refs.append((t, *ref))
    try:
        _read_external(refs)
    except OSError as err:
        raise ExternalDataError(f"external data: {err.strerror or err}") from None


def external_nbytes(model: onnx.ModelProto) -> int:
    """Bytes of the model's tensors held in external data (as their dims say)."""
    return sum(tensor_nbytes(t) or 0 for t, _ in all_tensors(model) if t.data_location == TensorProto.EXTERNAL)


def _varint_bytes(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def proto_bytes(model: onnx.ModelProto) -> int:
    """The model's serialized size, as ByteSize() gives it, summed by parts: ByteSize() of a
    model past 2 GB fails."""
    view = shell(model)
    if not model.HasField("graph"):
        return view.ByteSize()
    rest = view.graph.ByteSize()
    graph = rest + sum(1 + _varint_bytes(n) + n for n in (t.ByteSize() for t in model.graph.initializer))
    return view.ByteSize() - _varint_bytes(rest) - rest + _varint_bytes(graph) + graph


def model_bytes(model: onnx.ModelProto) -> int:
    """The serialized model plus its external data."""
    return proto_bytes(model) + external_nbytes(model)


def data_dir_of(model, data_dir: str | os.PathLike | None = None) -> str | None:
    """The folder a model's external data locations are relative to: a model path's own
    folder, else `data_dir` (for a ModelProto)."""
    if isinstance(model, (str, os.PathLike)):
        return os.path.dirname(os.path.abspath(os.fspath(model)))
    return None if data_dir is None else os.fspath(data_dir)


# ------------------------------------------------------------------ the checks and the loader


def _is_atc_layout(model: onnx.ModelProto) -> bool:
    return any(p.key == LAYOUT_KEY for p in model.metadata_props)


def _check_order(g: onnx.GraphProto, outer: set[str] = frozenset(), where: str = "") -> None:
    """Nodes in topological order (what onnx.checker says in fewer words)."""
    available = set(outer) | {v.name for v in g.input} | {t.name for t in g.initializer} | \
        {s.values.name for s in g.sparse_initializer}
    producer = {o: n for n in g.node for o in n.output if o}
    for n in g.node:
        for i in n.input:
            if i and i not in available and i in producer:
                raise ModelError(f"{where}{_who(n)} reads {i!r} before {_who(producer[i])} produces it "
                                 "(nodes are not in topological order)")
        for a in n.attribute:
            for sub in _subgraphs(a):
                _check_order(sub, available, f"{where}subgraph {sub.name!r} of {_who(n)}: ")
        available.update(o for o in n.output if o)


def _check_custom_nodes(model: onnx.ModelProto) -> None:
    from .ops import defs, functions, npu_ops

    rename = None
    if not _is_atc_layout(model):  # (an ATC layout's keys are the preflight's business)
        ours = {defs.DOMAIN: defs.VERSION, npu_ops.DOMAIN: npu_ops.VERSION}
        for o in model.opset_import:
            if o.domain in ours and o.version != ours[o.domain]:
                raise ModelError(f"opset_import: domain {o.domain!r} version {o.version}: onnx_npuq defines "
                                 f"only version {ours[o.domain]}")
    else:
        from .ops.layout import origin_map, portable_name

        meta = {p.key: p.value for p in model.metadata_props}
        try:
            origin = origin_map(meta)
        except ValueError:
            raise ModelError("metadata onnx_npuq.atc_origin is not a comma-separated list of "
                             "<atc op>=<op> entries") from None

        def rename(n):
            return portable_name(n.domain, n.op_type, origin)
    functions.validate(model, rename=rename)


def _checker(model: onnx.ModelProto | str) -> None:
    """onnx.checker, shallow, on a model whose tensors hold their data (a ModelProto), or on
    a file whose external data load_model has checked (a path: the checker then looks for
    it in the file's folder, not in the working directory)."""
    if isinstance(model, onnx.ModelProto) and (_is_atc_layout(model) or proto_bytes(model) > MAX_PROTOBUF_BYTES):
        return  # the atc pass's own check covers ATC layouts; the checker cannot take > 2 GB
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as err:
        first = str(err).strip().splitlines()
        raise ModelError(f"onnx.checker: {first[0] if first else type(err).__name__}") from None


def _prefixed(what: str):
    @contextlib.contextmanager
    def prefix():
        try:
            yield
        except ModelError as err:
            raise type(err)(f"{what}: {err}") from None
    return prefix()


def check_model(model: onnx.ModelProto, folder: str | os.PathLike | None = None,
                what: str = "model", strict: bool = True) -> list:
    """The checks load_model makes on a parsed model (see the module doc); raises ModelError
    with `what` in front of the message. `folder` is where external data may be (None: the
    model may have none). Returns the checked external-data references.

    strict=False, for in-memory models handed to the passes, the preflight or verify, leaves
    out the custom-node validation and onnx.checker: the passes validate what they attach
    (functions.attach) and check what they produce, the preflight reports unknown ops and
    keys as findings, onnxruntime refuses what it cannot run."""
    with _prefixed(what):
        if not model.HasField("graph"):
            raise ModelError("no graph (not an ONNX model)")
        _check_versions(model)
        _check_graph(model.graph, set(), "")
        for t, where in all_tensors(model):
            _check_tensor(t, where)
        refs = _external_refs(model, None if folder is None else os.fspath(folder))
        if strict:
            _check_order(model.graph)
            _check_custom_nodes(model)
    return refs


def load_model(path: str | os.PathLike, *, load_external_data: bool = True) -> onnx.ModelProto:
    """Read and check an ONNX model file (see the module doc); ModelError on any problem.
    `load_external_data=False` checks the external-data entries but leaves them unread."""
    if isinstance(path, onnx.ModelProto):
        raise TypeError("load_model takes a path; use check_model for a ModelProto")
    path = os.fspath(path)
    what = f"cannot read an ONNX model from {path}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ModelError(f"{what}: no such file") from None
    except OSError as err:
        raise ModelError(f"{what}: {err.strerror or err}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"{what}: not a regular file")
    if st.st_size == 0:
        raise ModelError(f"{what}: the file is empty")
    if st.st_size > MAX_PROTOBUF_BYTES:
        raise ModelError(f"{what}: {_size(st.st_size)} is past protobuf's 2 GiB limit (large weights belong in "
                         "external data)")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PROTOBUF_BYTES + 1)
    except OSError as err:
        raise ModelError(f"{what}: {err.strerror or err}") from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeWarning, ValueError) as err:
        raise ModelError(f"{what}: not an ONNX protobuf ({type(err).__name__}: {err})") from None
    del data
    refs = check_model(model, data_dir_of(path), what=path)
    if refs and load_external_data:
        try:
            _read_external(refs)
        except OSError as err:
            raise ExternalDataError(f"{path}: external data: {err.strerror or err}") from None
    with _prefixed(path):
        _checker(path if refs and not load_external_data and not _is_atc_layout(model) else model)
    return model


# ------------------------------------------------------------------ atomic writes


def file_mode() -> int:
    """0o666 less the umask: the mode open() gives a new file (mkstemp's is 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path next to `path` to write; renamed onto `path` when the block ends
    without an exception, removed otherwise. The file gets the usual permissions (0666 less
    the umask; mkstemp's are 0600)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to a temporary file next to `path`, then rename it into place."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))
