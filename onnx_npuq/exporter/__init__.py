"""torch -> ONNX with the npuq op set, runnable by a plain onnxruntime.InferenceSession.

    onnx_npuq.export(model, (input_ids,), "model.onnx")

Weights of quantized layers (nn.QuantWeight) travel packed (uint8 codes and scale bytes feeding
npuq::Dequantize); so do weights a forward fake-quantizes itself (quant_cy style,
`quant_dequant_float(self.weight, q)`: npuq::QuantDequant on a constant), which the `compress`
pass packs after the export (`compress=False` keeps them as float + QuantDequant). Every npuq
node gets the model-local function body that onnxruntime runs, selected by the node's
`overload` (one function per format configuration used).
Calls of onnx_npuq.ops.npu_ops (torch_npu's quantization APIs) become `npu` domain nodes
named as torch_npu's own ONNX symbolics name them, with bodies too.
"""
from __future__ import annotations

import ast
import contextlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import onnx
import torch

from ..errors import ExternalDataError
from ..io import INPUT_SHAPES_KEY, LAYERS_KEY, external_refs, file_mode, open_external, proto_bytes, read_external_range
from ..ops import functions, npu_ops
from ..ops.defs import TRANSLATIONS
from ..ops.fold_order import add_gates
from ..proto import RAW_DATA, field_bytes, fields_around

OPSET = 21
IR_VERSION = 10  # the IR of opset 21; onnxruntime 1.31 reads <= 13 (spec/onnx.md)
EXTERNAL_DATA_THRESHOLD = 2**31 - 2**24  # protobuf's 2 GB limit, with headroom


class ExportError(RuntimeError):
    """The model could not be exported; the message says which part and why."""


class Logits(torch.nn.Module):
    """A Hugging Face causal LM as input_ids -> logits (no KV cache), the graph to export."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return self.model(input_ids=input_ids, use_cache=False).logits


def _dynamic_shapes(args: tuple, dynamic: bool, dynamic_shapes):
    """torch.export's dynamic_shapes: the caller's; with dynamic=True every dimension of every
    tensor input may vary where the model allows it (torch.export proves the others
    constant); else None, the example inputs' shapes. Static is the default because symbolic
    shapes make torch's tracing ~2x slower (torch.export and its decompositions: most of an
    export's time), and ATC's --input_shape fixes the shapes anyway."""
    if dynamic_shapes is not None:
        if dynamic:
            raise ValueError("give dynamic=True or dynamic_shapes, not both")
        return dynamic_shapes
    if not dynamic:
        return None
    auto = torch.export.Dim.AUTO
    return tuple({d: auto for d in range(a.dim())} if isinstance(a, torch.Tensor) else None
                 for a in args)


def _example_shapes(proto: onnx.ModelProto, program) -> dict[str, list[int]]:
    """The example inputs' shapes by graph input name: shapes that run, for whoever needs test
    inputs of a model whose dimensions are symbolic (a CNN cannot run on 3x3 images)."""
    try:
        args, kwargs = program.example_inputs
    except (AttributeError, TypeError, ValueError):
        return {}
    tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    init = {t.name for t in proto.graph.initializer}
    names = [v.name for v in proto.graph.input if v.name not in init]
    if len(names) != len(tensors):
        return {}
    return {n: list(t.shape) for n, t in zip(names, tensors)}


def _layer_outputs(proto: onnx.ModelProto, model: torch.nn.Module) -> dict[str, str]:
    """The output tensor of every weight layer (nn.is_weight_layer: Linear, conv, Conv1D,
    Embedding, float or quantized), for per-layer comparisons: the last node of the module's
    name scope that computes on data, i.e. depends on a graph input other than through its
    shape. (The scope's last node alone can be shape arithmetic a later module needs, e.g. a
    Flatten's sizes after a Conv.)"""
    from ..nn import is_weight_layer

    wanted = {name for name, m in model.named_modules() if name and is_weight_layer(m)}
    init = {t.name for t in proto.graph.initializer}
    data = {v.name for v in proto.graph.input if v.name not in init}
    found = {}
    for node in proto.graph.node:
        if node.op_type in ("Shape", "Size") or not any(i in data for i in node.input):
            continue
        data.update(node.output)
        meta = {e.key: e.value for e in node.metadata_props}
        try:
            scopes = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))
        except (ValueError, SyntaxError):
            continue
        for scope in scopes:
            if scope in wanted and node.output:
                found[scope] = node.output[0]  # later nodes of the module overwrite
    return found


def strip_metadata(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop the exporter's per-node metadata (stack traces, module scopes, file paths):
    about 2 KB a node, and it would make files depend on where the code lives."""
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for v in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        del v.metadata_props[:]
    for t in model.graph.initializer:
        del t.metadata_props[:]
    return model


def _pin_static_dims(proto: onnx.ModelProto, program) -> onnx.ModelProto:
    """Write as numbers the dimensions torch.export proved constant: the ONNX exporter keeps
    them symbolic (a Linear's in_features as "s81" with range [64, 64]), which misleads
    onnxruntime users and ATC's --input_shape."""
    fixed = {str(sym): int(r.lower) for sym, r in program.range_constraints.items()
             if r.lower == r.upper and r.lower.is_integer}
    if not fixed:
        return proto
    g = proto.graph
    for v in list(g.input) + list(g.output) + list(g.value_info):
        for d in v.type.tensor_type.shape.dim:
            if d.dim_param in fixed:
                d.dim_value = fixed[d.dim_param]  # clears dim_param (a oneof)
    return proto


@contextlib.contextmanager
def _quiet_torch_export():
    """torch's exporter logs that torchvision is missing and warns about its own internals,
    and onnxscript's optimizer about a constant it could not fold (then leaves it: MiniLM's
    mask at static shapes); none is about the user's model."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript.optimizer")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _torch_export(model: torch.nn.Module, args: tuple, dynamic: bool, dynamic_shapes, input_names, output_names):
    """torch.onnx.export (dynamo) with our translations -> its ONNXProgram."""
    if not isinstance(args, tuple):
        raise TypeError(f"args must be a tuple of example inputs, got {type(args).__name__}")
    dynamic_shapes = _dynamic_shapes(args, dynamic, dynamic_shapes)
    try:
        with torch.no_grad(), _quiet_torch_export():
            return torch.onnx.export(
                model, args, dynamo=True, opset_version=OPSET,
                custom_translation_table={**TRANSLATIONS, **npu_ops.TRANSLATIONS},
                dynamic_shapes=dynamic_shapes,
                input_names=input_names, output_names=output_names, verbose=False,
            )
    except Exception as err:
        raise ExportError(f"torch.onnx.export failed: {err}") from err


def _finish(prog, model: torch.nn.Module, keep_metadata: bool) -> onnx.ModelProto:
    """The ONNXProgram as our ModelProto: static dims pinned, IR 10, layer outputs recorded,
    metadata stripped, functions attached. Its initializers are serialized as they stand in
    prog.model (in memory, or references to external data)."""
    proto = _pin_static_dims(prog.model_proto, prog.exported_program)
    proto.ir_version = IR_VERSION
    layers = _layer_outputs(proto, model)
    if layers:
        proto.metadata_props.add(key=LAYERS_KEY, value=json.dumps(layers, sort_keys=True))
    shapes = _example_shapes(proto, prog.exported_program)
    if shapes:
        proto.metadata_props.add(key=INPUT_SHAPES_KEY, value=json.dumps(shapes))
    if not keep_metadata:
        strip_metadata(proto)
    add_gates(proto)
    return functions.attach(proto)


def _copy_metadata(src: onnx.ModelProto, dst: onnx.ModelProto) -> None:
    """Give `dst`'s nodes (and graph inputs, outputs, initializers) the metadata_props and
    doc strings their namesakes in `src` have: onnx-graphsurgeon, which the passes run on,
    drops them, and keep_metadata=True promises torch's per-node metadata."""
    nodes = {n.name: n for n in src.graph.node if n.name}
    for n in dst.graph.node:
        old = nodes.get(n.name)
        if old is not None and not n.metadata_props:
            n.metadata_props.extend(old.metadata_props)
            n.doc_string = n.doc_string or old.doc_string
    for field in ("input", "output", "initializer"):
        olds = {v.name: v for v in getattr(src.graph, field)}
        for v in getattr(dst.graph, field):
            old = olds.get(v.name)
            if old is not None and not v.metadata_props:
                v.metadata_props.extend(old.metadata_props)


def _compress(proto: onnx.ModelProto, keep_metadata: bool, data_dir: str | None = None) -> onnx.ModelProto:
    """`proto` through the `compress` pass (passes.run_pass: graphsurgeon, cleanup, function
    bodies, shape inference, checker; not its onnxruntime verification, which would run the
    model twice): weights fake-quantized by the forward (QuantDequant on a constant, seen
    through the Transpose / Reshape / Cast an axis move adds) become packed codes + scales
    feeding npuq::Dequantize, the float constants dropped. Call it when
    passes.compress.has_work(proto). `data_dir`: the folder of its external data."""
    from ..passes import PassError, run_pass

    try:
        out, _ = run_pass(proto, "compress", verify=False, data_dir=data_dir)
    except PassError as err:
        raise ExportError(f"packing the fake-quantized weights failed ({err}); compress=False exports "
                          "them as float weights + npuq::QuantDequant") from err
    if keep_metadata:
        _copy_metadata(proto, out)
    return out


def _should_compress(proto: onnx.ModelProto, compress: bool) -> bool:
    """compress asked for and something to pack (read without the weights): a model with
    nothing to pack is left exactly as torch exported it."""
    from ..passes.compress import has_work

    return compress and has_work(proto)


def _adopt(model: torch.nn.Module) -> torch.nn.Module:
    """`model`, or a copy (sharing its other modules) whose torchao-quantized Linears are
    QuantLinears holding torchao's own codes and scales: exported packed, not re-quantized."""
    from ..nn.torchao import adopt_torchao

    return adopt_torchao(model)


def to_onnx(model: torch.nn.Module, args: tuple, *, dynamic: bool = False, dynamic_shapes=None,
            input_names=None, output_names=None, keep_metadata=False, compress: bool = True) -> onnx.ModelProto:
    """Export to an in-memory ModelProto (opset 21, IR 10, functions attached).

    The proto holds a copy of every weight; `export` to a file streams the weights of a
    large model to external data instead (see there). compress: weights the forward
    fake-quantizes (npuq::QuantDequant on a constant) are stored packed, as their format's
    bits, feeding npuq::Dequantize (the `compress` pass); False keeps them float.

    Shapes: the example inputs' by default (static, as torch.onnx.export makes them);
    dynamic=True lets every input dimension vary that torch.export does not prove constant
    (those are written as numbers); dynamic_shapes= is torch.export's own argument."""
    model = _adopt(model).eval()
    prog = _torch_export(model, args, dynamic, dynamic_shapes, input_names, output_names)
    try:
        proto = _finish(prog, model, keep_metadata)
    finally:
        _release(prog)
    return _compress(proto, keep_metadata) if _should_compress(proto, compress) else proto


EXTERNAL_MIN_BYTES = 1024  # smaller tensors stay inside the .onnx file


COPY_CHUNK_BYTES = 2**26  # external data is copied through a buffer this large


def _write_external(proto: onnx.ModelProto, model_tmp: str, data_tmp: str, data_name: str, refs) -> None:
    """Save `proto` with its large raw initializers, and its tensors already in external data
    (`refs`, from io.external_refs: copied from their files through a buffer), in `data_tmp`
    (recorded as `data_name`), in initializer order: a model's file does not depend on which
    of its weights were in memory.

    The tensors are changed only while it is written, and put back after:
    onnx.save(save_as_external_data=True) would strip them from the caller's model.
    """
    ref_of = {id(r[0]): r for r in refs}  # (protobuf hands out one object per message while it lives)
    initializers = [(t, ref_of.pop(id(t), None)) for t in proto.graph.initializer]
    rest = [(r[0], r) for r in ref_of.values()]  # external tensors outside the initializers
    moved = []  # (tensor, its raw_data or its external-data entries)
    try:
        with open(data_tmp, "wb") as f:
            for t, ref in initializers + rest:
                if ref is None and len(t.raw_data) < EXTERNAL_MIN_BYTES:
                    continue
                offset = f.tell()
                if ref is None:
                    f.write(t.raw_data)
                    moved.append((t, t.raw_data))
                    t.ClearField("raw_data")
                else:
                    _copy_range(*ref[1:], f)
                    moved.append((t, [(e.key, e.value) for e in t.external_data]))
                    t.ClearField("external_data")
                length = f.tell() - offset
                f.write(b"\0" * (-f.tell() % 64))  # aligned offsets, for mmap
                t.data_location = onnx.TensorProto.EXTERNAL
                for key, value in (("location", data_name), ("offset", offset), ("length", length)):
                    t.external_data.add(key=key, value=str(value))
        onnx.save(proto, model_tmp)
    finally:
        _restore(moved)


def _copy_range(real: str, offset: int, length: int, out) -> None:
    with open_external(real) as src:
        src.seek(offset)
        left = length
        while left:
            chunk = src.read(min(left, COPY_CHUNK_BYTES))
            if not chunk:
                raise ExternalDataError(f"external data {real}: ended {left} bytes early (the file changed)")
            out.write(chunk)
            left -= len(chunk)


def _restore(moved) -> None:
    """Put back what tensors held: raw data (bytes), or external-data entries (a list)."""
    for t, held in moved:
        t.ClearField("raw_data")
        t.ClearField("external_data")
        if isinstance(held, bytes):
            t.ClearField("data_location")  # (DEFAULT: the exporter leaves the field unset)
            t.raw_data = held
        else:
            t.data_location = onnx.TensorProto.EXTERNAL
            for key, value in held:
                t.external_data.add(key=key, value=value)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


# Field numbers (onnx.proto) and tags of the fields written around: length-delimited
_GRAPH, _GRAPH_TAG = 7, b"\x3a"  # ModelProto.graph
_INITIALIZER, _INITIALIZER_TAG = 5, b"\x2a"  # GraphProto.initializer
_RAW_DATA_TAG = b"\x4a"  # TensorProto.raw_data
_EXTERNAL_DATA, _DATA_LOCATION = 13, 14  # TensorProto


def _tensor_fields(t: onnx.TensorProto, ref) -> list:
    """fields_around(t, raw_data); an external tensor's without its location fields."""
    return fields_around(t, RAW_DATA, drop=(_EXTERNAL_DATA, _DATA_LOCATION) if ref is not None else ())


def _serialized(parts) -> bytes:
    return b"".join(p.SerializeToString() for p in parts)


def _save_inline(proto: onnx.ModelProto, model_tmp: str, refs) -> None:
    """Save `proto` in one file, byte for byte what onnx.save writes, one initializer at a
    time: the serialization in field order, written in pieces around the graph's
    initializers and their raw data, an external one (`refs`) read from its file just then.
    onnx.save serializes the whole model at once and holds every weight twice more
    (protobuf's buffer, Python's bytes): 3.3x the packed weights at the peak of a 2 GB
    decoder's mxfp4 export."""
    ref_of = {id(r[0]): r for r in refs}  # (protobuf hands out one object per message while it lives)
    initializers = [(t, ref_of.pop(id(t), None)) for t in proto.graph.initializer]
    moved = []
    try:
        for t, real, offset, length in ref_of.values():  # external tensors inside nodes: few, small
            moved.append((t, [(e.key, e.value) for e in t.external_data]))
            t.ClearField("external_data")
            t.ClearField("data_location")
            t.raw_data = read_external_range(real, offset, length)
        model_head, *model_tail = fields_around(proto, _GRAPH)
        graph_head, *graph_tail = fields_around(proto.graph, _INITIALIZER)
        parts, size = [], sum(p.ByteSize() for p in [graph_head, *graph_tail])
        for t, ref in initializers:  # sizes first, from the fields without raw data (a
            # tensor's own ByteSize serializes it: 2x its bytes at a time)
            raw = ref[3] if ref is not None else len(t.raw_data) if t.HasField("raw_data") else None
            n = sum(p.ByteSize() for p in _tensor_fields(t, ref))
            n += 0 if raw is None else field_bytes(raw)
            parts.append((t, ref, raw, n))
            size += field_bytes(n)
        with open(model_tmp, "wb") as f:
            f.write(model_head.SerializeToString())
            if proto.HasField("graph"):
                f.write(_GRAPH_TAG + _varint(size) + graph_head.SerializeToString())
                for t, ref, raw, n in parts:
                    head, *tail = _tensor_fields(t, ref)  # (typed data fields: made again, not kept)
                    f.write(_INITIALIZER_TAG + _varint(n) + head.SerializeToString())
                    if raw is not None:
                        f.write(_RAW_DATA_TAG + _varint(raw))
                        if ref is None:
                            f.write(t.raw_data)  # one copy of one tensor at a time
                        else:
                            _copy_range(*ref[1:], f)
                    f.write(_serialized(tail))
                f.write(_serialized(graph_tail))
            f.write(_serialized(model_tail))
    finally:
        _restore(moved)


def save(proto: onnx.ModelProto, path: str | os.PathLike, external_data: bool | None = None,
         data_dir: str | os.PathLike | None = None) -> Path:
    """Write `proto` to `path` atomically (temp files in the target folder, then renames).

    external_data: None puts initializers of 1 KB or more in `<path>.data` when the model
    has external data already or is past protobuf's 2 GB limit; True always; False never.
    Tensors already in external data are copied from `data_dir`, the folder their locations
    are relative to (run_passes keeps a large model's weights there; checked as load_model
    checks them). `proto` is left unchanged.
    """
    path = Path(path)
    refs = external_refs(proto, data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    if external_data is None:
        external_data = bool(refs) or proto_bytes(proto) > EXTERNAL_DATA_THRESHOLD
    data_name = path.name + ".data"

    def write(tmp: str, data_tmp: str | None) -> None:
        if data_tmp is None:
            _save_inline(proto, tmp, refs)
        else:
            _write_external(proto, tmp, data_tmp, data_name, refs)

    _write_atomically(path, write, external_data)
    return path


def _write_atomically(path: Path, write, external_data: bool) -> None:
    """`write(model_tmp, data_tmp or None)` into temporary files in the target folder, then
    renamed into place, data first, with the usual file mode. On failure nothing new is left
    and a `<path>.data` the new one replaced is put back."""
    data_path = path.parent / (path.name + ".data")
    temps: list[str] = []
    replaced = None  # (a hard link to the data file the new one replaced, or None) once it has
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        temps.append(tmp)
        data_tmp = None
        if external_data:
            fd, data_tmp = tempfile.mkstemp(prefix=f".{data_path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            temps.append(data_tmp)
        write(tmp, data_tmp)
        for t in temps:
            os.chmod(t, file_mode())  # mkstemp's 0600 -> what open() would have given
        if data_tmp is not None:
            old = _keep(data_path)
            os.replace(data_tmp, data_path)
            replaced = (old,)
        os.replace(tmp, path)
    except BaseException:
        for leftover in temps:
            if os.path.exists(leftover):
                os.unlink(leftover)
        if replaced is not None:  # the model is not in place: the old data file goes back
            if replaced[0] is None:
                os.unlink(data_path)
            else:
                os.replace(replaced[0], data_path)
        raise
    if replaced is not None and replaced[0] is not None:
        os.unlink(replaced[0])


def _keep(path: Path) -> str | None:
    """A hard link to the file at `path` (to put it back), or None when there is none (or the
    file system has no hard links: then a failed save cannot restore it)."""
    if not os.path.isfile(path):
        return None
    backup = tempfile.mktemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent)
    try:
        os.link(path, backup)
    except OSError:
        return None
    return backup


def _initializer_bytes(ir_model) -> int:
    return sum(v.const_value.nbytes for v in ir_model.graph.initializers.values() if v.const_value is not None)


def _stream_initializers(ir_model, f, data_name: str) -> None:
    """Write every initializer of EXTERNAL_MIN_BYTES or more to the open file `f` (64-byte
    aligned offsets, as `save` lays them out) straight from the tensors' memory, and point
    the model's initializers at `data_name` instead."""
    import onnx_ir as ir

    for value in ir_model.graph.initializers.values():
        t = value.const_value
        if t is None or isinstance(t, ir.ExternalTensor) or t.nbytes < EXTERNAL_MIN_BYTES:
            continue
        offset = f.tell()
        t.tofile(f)  # torch's TorchTensor writes from the tensor's own memory: no copy
        length = f.tell() - offset
        if length != t.nbytes:
            raise ExportError(f"initializer {value.name!r}: wrote {length} bytes, expected {t.nbytes}")
        f.write(b"\0" * (-f.tell() % 64))  # aligned offsets, for mmap
        value.const_value = ir.ExternalTensor(data_name, offset, length, t.dtype, shape=t.shape,
                                              name=t.name or value.name)


def _release(prog) -> None:
    """Drop the exported graph's references to the model's tensors.

    onnxscript's rewrite rules keep the last graph they matched (SimplePatternMatcher._graph,
    module globals) after the export returns, and that graph keeps, besides its
    initializers, every value that once was a graph input (onnx_ir's GraphInputs counts
    them in a Counter that never drops a key): torch's exporter first makes each parameter
    such an input. Through them every parameter of the model stayed alive, and a
    quantize_model after an export freed no float weight (measured on a 2.1 GiB model:
    resident memory +0.3 GiB over the quantization instead of -1.8 GiB)."""
    graph = prog.model.graph
    values = list(graph.initializers.values()) + list(getattr(graph.inputs, "_ref_counter", ()))
    for value in values:
        if value.const_value is not None:
            value.const_value = None


def _export_streamed(prog, model: torch.nn.Module, path: Path, keep_metadata: bool,
                     compress: bool) -> onnx.ModelProto:
    """Write `<path>.data` tensor by tensor from the exported program's own tensors, then the
    .onnx (only the graph: every large initializer refers to the data file); each to a
    temporary name in the target folder, renamed into place data first. No copy of the
    weights is made, so peak memory stays near the model's own size: torch's
    ONNXProgram.model_proto would hold all of them once more, and onnx.save needs them in
    one protobuf, which cannot pass 2 GB.

    Compressing: which weights get packed is known only from the finished graph, and the
    pass reads the weights it packs from a file (run_pass keeps external weights on disk),
    so the weights are streamed first, as above, and, when the graph has fake-quantized
    weights, the streamed file moves to a scratch folder beside the target, the pass runs
    with that folder as its data_dir, and the data file is written again from it (save's
    _write_external: untouched weights copied through a buffer, packed ones from memory, in
    initializer order), so it holds no float copy of a packed weight. Memory stays bounded
    by one weight at a time; the cost is a second write of the weights kept float."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data_name = path.name + ".data"
    written = []

    def write(tmp: str, data_tmp: str) -> None:
        with open(data_tmp, "wb") as f:
            _stream_initializers(prog.model, f, data_name)
        proto = _finish(prog, model, keep_metadata)
        if not _should_compress(proto, compress):
            written.append(proto)
            onnx.save(proto, tmp)
            return
        scratch = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".compress", dir=path.parent)
        try:
            os.replace(data_tmp, os.path.join(scratch, data_name))
            out = _compress(proto, keep_metadata, data_dir=scratch)
            _write_external(out, tmp, data_tmp, data_name, external_refs(out, scratch))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        written.append(onnx.load(tmp, load_external_data=False))  # the graph as written

    _write_atomically(path, write, external_data=True)
    return written[0]


def export(model: torch.nn.Module, args: tuple, path: str | os.PathLike, external_data: bool | None = None,
           *, dynamic: bool = False, dynamic_shapes=None, input_names=None, output_names=None,
           keep_metadata=False, compress: bool = True) -> onnx.ModelProto:
    """Export `model` called on `args` to `path`; returns the ModelProto written.

    compress: weights the forward fake-quantizes (quant_dequant_float / quant_func on a
    parameter: npuq::QuantDequant on a constant) are stored packed, as their format's bits,
    feeding npuq::Dequantize (the `compress` pass, see to_onnx); False keeps them float.

    external_data: None puts initializers of 1 KB or more in `<path>.data` when they pass
    protobuf's 2 GB limit; True always; False never. With external data the weights are
    streamed from the model's tensors to the data file, one at a time (no second copy in
    memory), and the returned proto's large initializers refer to `<path>.data` rather
    than hold the bytes. Without, the model goes through `save` (atomic, as above).

    dynamic / dynamic_shapes: the input shapes, as for to_onnx (default: the example inputs').
    """
    model = _adopt(model).eval()
    prog = _torch_export(model, args, dynamic, dynamic_shapes, input_names, output_names)
    try:
        stream = external_data
        if stream is None:
            stream = _initializer_bytes(prog.model) > EXTERNAL_DATA_THRESHOLD
        if stream:
            return _export_streamed(prog, model, Path(path), keep_metadata, compress)
        proto = _finish(prog, model, keep_metadata)
    finally:
        _release(prog)
    if _should_compress(proto, compress):
        proto = _compress(proto, keep_metadata)
    # None: still external if the graph itself tips the proto past the limit
    save(proto, path, external_data=external_data)
    return proto
