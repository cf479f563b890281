"""External data, read only from the model's own folder: every reference checked before
any file is opened; the model's serialized and external sizes.
"""
from __future__ import annotations

import os
import stat
from pathlib import PurePosixPath, PureWindowsPath

import onnx
from onnx import TensorProto

from ..errors import ExternalDataError
from ..proto import field_bytes, shell, tensor_bytes, varint_len
from .tensors import all_tensors, _size, tensor_nbytes


EXTERNAL_KEYS = ("location", "offset", "length", "checksum")

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


def proto_bytes(model: onnx.ModelProto) -> int:
    """The model's serialized size, as ByteSize() gives it, summed by parts: ByteSize() of a
    model past 2 GB fails."""
    view = shell(model)
    if not model.HasField("graph"):
        return view.ByteSize()
    rest = view.graph.ByteSize()
    graph = rest + sum(field_bytes(tensor_bytes(t)) for t in model.graph.initializer)
    return view.ByteSize() - varint_len(rest) - rest + varint_len(graph) + graph


def model_bytes(model: onnx.ModelProto) -> int:
    """The serialized model plus its external data."""
    return proto_bytes(model) + external_nbytes(model)


def data_dir_of(model, data_dir: str | os.PathLike | None = None) -> str | None:
    """The folder a model's external data locations are relative to: a model path's own
    folder, else `data_dir` (for a ModelProto)."""
    if isinstance(model, (str, os.PathLike)):
        return os.path.dirname(os.path.abspath(os.fspath(model)))
    return None if data_dir is None else os.fspath(data_dir)
