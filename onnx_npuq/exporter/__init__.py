"""torch -> ONNX with the npuq op set, runnable by a plain onnxruntime.InferenceSession.

    onnx_npuq.export(model, (input_ids,), "model.onnx")

Weights of QuantLinear layers travel packed (uint8 codes and scale bytes feeding
npuq::Dequantize); every npuq node gets the model-local function body that onnxruntime
runs, selected by the node's `overload` (one function per format configuration used).
Calls of onnx_npuq.ops.npu_ops (torch_npu's quantization APIs) become `npu` domain nodes
named as torch_npu's own ONNX symbolics name them, with bodies too.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx
import torch
from onnx import helper

from ..ops import bodies, npu_ops
from ..ops.defs import DOMAIN, TRANSLATIONS, format_from_attrs, overload_name

OPSET = 21
IR_VERSION = 10  # the IR of opset 21; onnxruntime 1.31 reads <= 13 (spec/onnx.md)
EXTERNAL_DATA_THRESHOLD = 2**31 - 2**24  # protobuf's 2 GB limit, with headroom


class ExportError(RuntimeError):
    """The model could not be exported; the message says which part and why."""


def _node_attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _body(op_type: str, fmt) -> onnx.FunctionProto:
    if op_type == "Dequantize":
        return bodies.dequantize_function(fmt.name, **fmt.options)
    if op_type == "QuantDequant":
        return bodies.quant_dequant_function(fmt.name, **fmt.options)
    if op_type == "Quantize":
        return bodies.quantize_function(fmt.name, **fmt.options)
    raise ExportError(f"no function body for npuq::{op_type}")


def attach_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give each npuq node its function body (by overload) so onnxruntime can run it."""
    have = {(f.domain, f.name, f.overload) for f in model.functions}
    for node in model.graph.node:
        if node.domain != DOMAIN:
            continue
        attrs = _node_attrs(node)
        fmt = format_from_attrs(attrs)
        node.overload = overload_name(fmt)
        if (DOMAIN, node.op_type, node.overload) in have:
            continue
        fn = _body(node.op_type, fmt)
        fn.name, fn.overload = node.op_type, node.overload
        # Declare every attribute the node carries (format, options) so checkers accept it.
        declared = {a.name for a in fn.attribute_proto} | set(fn.attribute)
        for name, value in attrs.items():
            if name not in declared:
                fn.attribute_proto.append(helper.make_attribute(name, value))
        model.functions.append(fn)
        have.add((DOMAIN, node.op_type, node.overload))
    return model


def _default_dynamic_shapes(args: tuple):
    """Every dimension of every tensor input may vary, where the model allows it."""
    auto = torch.export.Dim.AUTO
    return tuple({d: auto for d in range(a.dim())} if isinstance(a, torch.Tensor) else None
                 for a in args)


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


def to_onnx(model: torch.nn.Module, args: tuple, *, dynamic_shapes=None,
            input_names=None, output_names=None, keep_metadata=False) -> onnx.ModelProto:
    """Export to an in-memory ModelProto (opset 21, IR 10, functions attached)."""
    if not isinstance(args, tuple):
        raise TypeError(f"args must be a tuple of example inputs, got {type(args).__name__}")
    model = model.eval()
    try:
        with torch.no_grad():
            prog = torch.onnx.export(
                model, args, dynamo=True, opset_version=OPSET,
                custom_translation_table={**TRANSLATIONS, **npu_ops.TRANSLATIONS},
                dynamic_shapes=dynamic_shapes if dynamic_shapes is not None
                else _default_dynamic_shapes(args),
                input_names=input_names, output_names=output_names, verbose=False,
            )
    except Exception as err:
        raise ExportError(f"torch.onnx.export failed: {err}") from err
    proto = prog.model_proto
    proto.ir_version = IR_VERSION
    if not keep_metadata:
        strip_metadata(proto)
    npu_ops.attach_functions(proto)  # torch_npu-compatible ops, domain "npu"
    return attach_functions(proto)


EXTERNAL_MIN_BYTES = 1024  # smaller tensors stay inside the .onnx file


def _write_external(proto: onnx.ModelProto, model_tmp: str, data_tmp: str, data_name: str) -> None:
    """Save `proto` with its large raw initializers in `data_tmp` (recorded as `data_name`).

    The tensors are swapped out of `proto` only while it is written, and put back after:
    onnx.save(save_as_external_data=True) would strip them from the caller's model.
    """
    big = [t for t in proto.graph.initializer if len(t.raw_data) >= EXTERNAL_MIN_BYTES]
    raws = []
    try:
        with open(data_tmp, "wb") as f:
            for t in big:
                offset = f.tell()
                f.write(t.raw_data)
                f.write(b"\0" * (-f.tell() % 64))  # aligned offsets, for mmap
                raws.append(t.raw_data)
                t.ClearField("raw_data")
                t.data_location = onnx.TensorProto.EXTERNAL
                for key, value in (("location", data_name), ("offset", offset), ("length", len(raws[-1]))):
                    t.external_data.add(key=key, value=str(value))
        onnx.save(proto, model_tmp)
    finally:
        for t, raw in zip(big, raws):
            t.ClearField("external_data")
            t.ClearField("data_location")
            t.raw_data = raw


def save(proto: onnx.ModelProto, path: str | os.PathLike, external_data: bool | None = None) -> Path:
    """Write `proto` to `path` atomically (temp files in the target folder, then renames).

    external_data: None puts initializers of 1 KB or more in `<path>.data` when the model
    is past protobuf's 2 GB limit; True always; False never. `proto` is left unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if external_data is None:
        external_data = proto.ByteSize() > EXTERNAL_DATA_THRESHOLD
    data_name = path.name + ".data"
    temps = []
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        temps.append(tmp)
        if external_data:
            fd, data_tmp = tempfile.mkstemp(prefix=f".{data_name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            temps.append(data_tmp)
            _write_external(proto, tmp, data_tmp, data_name)
            os.replace(data_tmp, path.parent / data_name)
        else:
            onnx.save(proto, tmp)
        os.replace(tmp, path)
    except BaseException:
        for leftover in temps:
            if os.path.exists(leftover):
                os.unlink(leftover)
        raise
    return path


def export(model: torch.nn.Module, args: tuple, path: str | os.PathLike, external_data: bool | None = None,
           **kwargs) -> onnx.ModelProto:
    """Export `model` called on `args` to `path` (`save`); returns the ModelProto."""
    proto = to_onnx(model, args, **kwargs)
    save(proto, path, external_data=external_data)
    return proto
