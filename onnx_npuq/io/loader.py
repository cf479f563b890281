"""check_model / load_model: the checks in order, custom npuq / npu nodes, onnx.checker.
"""
from __future__ import annotations

import contextlib
import os
import stat

import onnx
from google.protobuf.message import DecodeError

from ..errors import ExternalDataError, ModelError
from ..proto import LAYOUT_KEY, MAX_PROTOBUF_BYTES
from .external_data import data_dir_of, _external_refs, proto_bytes, _read_external
from .graph_checks import _check_graph, _check_versions, _who
from .tensors import all_tensors, _check_tensor, _size, _subgraphs

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
    from ..ops import defs, functions, npu_ops

    rename = None
    if not _is_atc_layout(model):  # (an ATC layout's keys are the preflight's business)
        ours = {defs.DOMAIN: defs.VERSION, npu_ops.DOMAIN: npu_ops.VERSION}
        for o in model.opset_import:
            if o.domain in ours and o.version != ours[o.domain]:
                raise ModelError(f"opset_import: domain {o.domain!r} version {o.version}: onnx_npuq defines "
                                 f"only version {ours[o.domain]}")
    else:
        from ..ops.layout import origin_map, portable_name

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
