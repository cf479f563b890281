"""onnxruntime sessions over torch tensors, and torch-vs-onnxruntime comparison."""
from __future__ import annotations

import ctypes
import json
import os
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
import torch

from ..errors import ModelError
from .metrics import describe as metrics_line
from .metrics import msprobe_metrics, precision_errors
from ..io import (LARGE_TENSOR_BYTES, LAYERS_KEY, MAX_PROTOBUF_BYTES, check_model, checker_copy, data_dir_of, external_refs,
                  load_model, proto_bytes, shell, tensor_bytes)


class OrtSession:
    """A CPU InferenceSession fed and answered with torch tensors (bf16 included).

    A ModelProto whose tensors are in external data needs `data_dir`, the folder their
    locations are relative to (checked as load_model checks a file's). One past protobuf's
    2 GB in memory is handed over with its large initializers apart. constant_folding=False
    keeps onnxruntime from folding the weight decoding at creation: that fold peaks at about
    ~2-2.5x the fp32 session (docs/benchmarks.md); unfolded, each run decodes them again, in 1x."""

    def __init__(self, model: str | os.PathLike | onnx.ModelProto, *, data_dir: str | os.PathLike | None = None,
                 constant_folding: bool = True):
        options = ort.SessionOptions()
        if isinstance(model, onnx.ModelProto):
            if external_refs(model, data_dir):
                options.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                                 os.fspath(data_dir))
            if proto_bytes(model) > SERIALIZE_MAX_BYTES:
                model, self._weights = _weights_apart(model, options)
            src, where = model.SerializeToString(), "the model"
        else:
            # checked first (external data inside the model's folder, ...); onnxruntime then
            # reads the file and its external data itself
            load_model(model, load_external_data=False)
            src = where = os.fspath(model)
        # onnxruntime fuses a constant int8 / int4 DequantizeLinear -> MatMul into MatMulNBits,
        # which quantizes the activations to int8: we compare what the graph says
        options.add_session_config_entry("session.disable_quant_qdq", "1")
        if not constant_folding:
            options.add_session_config_entry("optimization.disable_specified_optimizers", "ConstantFolding")
            options.enable_cpu_mem_arena = False  # the arena would keep each run's decoded weights
        try:
            self.session = ort.InferenceSession(src, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's Fail, InvalidGraph, ... (not ValueErrors)
            raise ModelError(f"onnxruntime cannot load {where}: {_first_line(err)}") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        if len(inputs) != len(self.input_names):
            raise ValueError(f"model takes {len(self.input_names)} input(s) "
                             f"{self.input_names}, got {len(inputs)}")
        binding = self.session.io_binding()
        for name, t in zip(self.input_names, inputs, strict=True):
            t = t.detach().cpu().contiguous()
            if t.dtype == torch.bfloat16:
                value = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(
                    t.view(torch.uint16).numpy(), onnx.TensorProto.BFLOAT16)
            else:
                value = ort.OrtValue.ortvalue_from_numpy(t.numpy())
            binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name)
        try:
            self.session.run_with_iobinding(binding)
        except Exception as err:  # onnxruntime's RuntimeException, InvalidArgument, ...
            raise ModelError(f"onnxruntime cannot run the model: {_first_line(err)}") from None
        return [_ortvalue_to_torch(v) for v in binding.get_outputs()]


SERIALIZE_MAX_BYTES = MAX_PROTOBUF_BYTES - 2**24  # a model larger in memory goes as _weights_apart
IN_MEMORY = "onnx_npuq:in-memory"  # the location of a placeholder add_external_initializers fills


def _weights_apart(model: onnx.ModelProto, options: ort.SessionOptions) -> tuple[onnx.ModelProto, list]:
    """A copy of the model whose large raw initializers are placeholders in external data,
    and their values, given to onnxruntime from the model's bytes (add_external_initializers)
    instead of serialized: what protobuf cannot do past 2 GB."""
    view = shell(model)
    names, values = [], []
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL or not t.HasField("raw_data") \
                or tensor_bytes(t) < LARGE_TENSOR_BYTES or t.data_type not in _ITEM_BITS:
            view.graph.initializer.add().CopyFrom(t)
            continue
        bits = np.frombuffer(t.raw_data, np.dtype(f"u{_ITEM_BITS[t.data_type] // 8}")).reshape(list(t.dims))
        names.append(t.name)
        values.append(ort.OrtValue.ortvalue_from_numpy_with_onnx_type(bits, t.data_type))
        placeholder = view.graph.initializer.add(name=t.name, data_type=t.data_type, dims=t.dims,
                                                 data_location=onnx.TensorProto.EXTERNAL)
        placeholder.external_data.add(key="location", value=IN_MEMORY)
    options.add_external_initializers(names, values)
    return view, values  # (the values must outlive the session)


_T = onnx.TensorProto
_ITEM_BITS = {_T.FLOAT: 32, _T.FLOAT16: 16, _T.BFLOAT16: 16, _T.DOUBLE: 64, _T.INT8: 8, _T.UINT8: 8, _T.INT16: 16,
              _T.UINT16: 16, _T.INT32: 32, _T.UINT32: 32, _T.INT64: 64, _T.UINT64: 64}


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _ortvalue_to_torch(v: ort.OrtValue) -> torch.Tensor:
    """bf16, which onnxruntime will not hand to numpy, is copied out as its raw bits."""
    if v.data_type() != "tensor(bfloat16)":
        return torch.from_numpy(v.numpy())
    shape = v.shape()
    n = int(np.prod(shape)) if shape else 1
    raw = (ctypes.c_uint16 * n).from_address(v.data_ptr())
    return torch.from_numpy(np.array(raw, dtype=np.uint16).reshape(shape)).view(torch.bfloat16)


@dataclass
class Comparison:
    """One output: torch vs onnxruntime."""

    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    mismatches: int  # elements not bit-identical (NaN == NaN)
    cosine: float
    metrics: dict = field(default_factory=dict)  # msprobe's metrics by name (runtime.metrics)
    precision_errors: list = field(default_factory=list)  # those past msprobe's thresholds

    @property
    def exact(self) -> bool:
        return self.mismatches == 0

    def describe(self) -> str:
        """One line: bit-exactness, then msprobe's judged metrics and verdict."""
        return (f"{self.name}: {tuple(self.shape)} {self.mismatches} mismatches, max |diff| {self.max_abs:g}, "
                f"max rel {self.max_rel:g}; {metrics_line(self.metrics, self.precision_errors)}")


def compare(name: str, expected: torch.Tensor, got: torch.Tensor) -> Comparison:
    """`got` against the golden `expected`: bit-exactness, and msprobe's metrics (`got` is
    msprobe's "my output", `expected` its ground truth)."""
    if tuple(expected.shape) != tuple(got.shape):
        raise ValueError(f"output {name!r}: shape {tuple(got.shape)} != {tuple(expected.shape)}")
    e, g = expected.detach().float().flatten(), got.detach().float().flatten()
    both_nan = torch.isnan(e) & torch.isnan(g)
    same = (e == g) | both_nan
    diff = torch.where(same, 0.0, (e - g).abs())
    rel = torch.where(same, 0.0, diff / e.abs().clamp(min=torch.finfo(torch.float32).tiny))
    finite = ~torch.isnan(e) & ~torch.isnan(g)
    ef, gf = e[finite], g[finite]
    cos = torch.nn.functional.cosine_similarity(ef, gf, dim=0).item() if ef.numel() else 1.0
    metrics = msprobe_metrics(g.numpy().reshape(got.shape), e.numpy().reshape(expected.shape))
    return Comparison(name, tuple(expected.shape), diff.max().item() if diff.numel() else 0.0,
                      rel.max().item() if rel.numel() else 0.0, int((~same).sum()), cos, metrics,
                      precision_errors(metrics))


def _flatten(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict) or hasattr(out, "values"):
        return [t for v in out.values() for t in _flatten(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in _flatten(v)]
    return []




def _with_layer_outputs(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, str]]:
    """A copy of `proto` that also outputs each recorded layer's tensor (those still there)."""
    meta = {p.key: p.value for p in proto.metadata_props}
    layers = json.loads(meta.get(LAYERS_KEY, "{}"))
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    info = {v.name: v for v in out.graph.value_info}
    if not all(t in info for t in layers.values()):
        inferred = onnx.shape_inference.infer_shapes(checker_copy(out, LARGE_TENSOR_BYTES))
        info.update({v.name: v for v in inferred.graph.value_info})
    have = {o.name for o in out.graph.output}
    kept = {m: t for m, t in layers.items() if t in info or t in have}
    for t in sorted(set(kept.values()) - have):
        out.graph.output.append(info[t])
    return out, kept


def verify(model: torch.nn.Module, args: tuple, onnx_model, layers: bool = False,
           data_dir: str | os.PathLike | None = None) -> list[Comparison]:
    """Run `model(*args)` and the exported model on the same inputs; compare each output and,
    with `layers=True`, each Linear layer's output the exporter recorded (named "layer:<module>").
    A model file's external data stays on disk (onnxruntime reads it); a ModelProto's is in
    `data_dir`."""
    if isinstance(onnx_model, onnx.ModelProto):
        check_model(onnx_model, data_dir, strict=False)  # onnxruntime checks the rest
        proto = onnx_model
    else:
        proto = load_model(onnx_model, load_external_data=False)
        data_dir = data_dir_of(onnx_model)
    n_outputs = len(proto.graph.output)
    captured: dict[str, torch.Tensor] = {}
    kept: dict[str, str] = {}
    hooks = []
    if layers:
        proto, kept = _with_layer_outputs(proto)
        modules = dict(model.named_modules())
        for name in kept:
            if name in modules:
                hooks.append(modules[name].register_forward_hook(
                    lambda _m, _i, out, name=name: captured.__setitem__(name, out.detach())))
    try:
        with torch.no_grad():
            expected = _flatten(model.eval()(*args))
    finally:
        for h in hooks:
            h.remove()
    session = OrtSession(proto, data_dir=data_dir)
    got = dict(zip(session.output_names, session.run(*[a for a in args if isinstance(a, torch.Tensor)]),
                   strict=True))
    outputs = session.output_names[:n_outputs]  # layer outputs were appended after the model's
    if len(outputs) != len(expected):
        raise ValueError(f"torch gave {len(expected)} output(s), onnxruntime {len(outputs)}")
    results = [compare(n, e, got[n]) for n, e in zip(outputs, expected, strict=True)]
    for name, tensor in kept.items():
        if name in captured:
            results.append(compare(f"layer:{name}", captured[name], got[tensor]))
    return results
