"""Running passes: import to onnx-graphsurgeon, rewrite, clean up, export, check, verify.

A pass is a function `fn(graph: gs.Graph, ctx: Context) -> None` registered under a name:

    @register("compress")
    def compress(graph, ctx): ...

`run_passes(model, ["compress", "atc"])` runs them in order. After each pass the graph is
cleaned up and sorted, exported, given its function bodies again (or none, once a pass has
set an ATC layout in the metadata), shape-inferred and checked; with `verify=True`,
onnxruntime runs the model before and after on the same random inputs, and a pass declared
`exact` must leave every output bit-identical. A pass sees no fold-order gates
(ops.fold_order: the exporter's, which let onnxruntime decode packed weights a group at a
time): they come off before it and back on the result, unless that is in an ATC layout.

Large models: a model's initializers in external data (64 KiB or more) stay on disk through
the passes. A pass that reads one gets it from the file then; the others pass through as
references, and the result refers to them in the input's folder (`data_dir`), which save()
and OrtSession() then take to copy or read them. The checks run on a copy whose external
initializers are graph inputs, so no step serializes the weights and the 2 GB protobuf limit
applies to the graph and the tensors the passes create, not to the model.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import torch
from onnx_graphsurgeon.logger import G_LOGGER

from ..errors import ModelError
from ..io import (INPUT_SHAPES_KEY, LARGE_TENSOR_BYTES, LAYOUT_KEY, check_model, checker_copy, data_dir_of, external_refs, load_external_data,
                  load_model, model_bytes)
from ..ops import functions
from ..ops.fold_order import add_gates
from ..runtime.ort import OrtSession, compare
from .graph import read_on_demand, remove_gates

MAX_RANDOM_ELEMENTS = 2**26  # per random test input (256 MiB of float32)
# Verification sessions fold constants (onnxruntime's default) up to this model size. Folding
# the weight decoding peaks at ~2-2.9x the fp32 session (1.1-1.3x past ops.fold_order.MIN_BYTES,
# where exports are gated); unfolded, onnxruntime's CPU fp16 handling drops the rounding of a
# runtime Cast to float16 feeding a float16 op, which a folded Cast keeps, so a rewrite that
# moves such a Cast could show as a mismatch.
VERIFY_FOLDING_MAX_BYTES = 2**28
OVERLOAD_IR_VERSION = 10  # node overloads (which select our function bodies) are IR 10


class PassError(ValueError):
    """A pass cannot do its job on this model; `problems` lists the offending nodes."""

    def __init__(self, message: str, problems: Sequence[str] = ()):
        self.problems = list(problems)
        if self.problems:
            message = f"{message}: " + "; ".join(self.problems)
        super().__init__(message)


@dataclass
class Context:
    """What a pass sees beside the graph: options (e.g. layout, opset), the model's
    metadata_props (which it may edit), and notes for the summary."""

    options: dict = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)


@dataclass(frozen=True)
class Pass:
    name: str
    fn: Callable[[gs.Graph, Context], None]
    exact: bool  # onnxruntime outputs stay bit-identical
    doc: str


PASSES: dict[str, Pass] = {}


def register(name: str, exact: bool = True):
    def add(fn):
        doc = (fn.__doc__ or "").strip().splitlines()
        PASSES[name] = Pass(name, fn, exact, doc[0] if doc else "")
        return fn
    return add


@dataclass
class Report:
    """What one pass changed."""

    name: str
    nodes_before: Counter
    nodes_after: Counter
    bytes_before: int  # the serialized model
    bytes_after: int
    notes: list[str]
    weights_changed: bool = False  # initializers added, removed or rewritten
    max_abs: float | None = None  # against the model before the pass, when verified
    mismatches: int | None = None

    @property
    def changed(self) -> bool:
        return self.nodes_before != self.nodes_after or self.weights_changed

    def line(self) -> str:
        nb, na = sum(self.nodes_before.values()), sum(self.nodes_after.values())
        saved = self.bytes_before - self.bytes_after
        text = f"{self.name}: nodes {nb} -> {na}, {_size(self.bytes_after)} ({_signed(saved)} saved)"
        if self.mismatches is not None:
            text += f", outputs: {self.mismatches} mismatches, max |diff| {self.max_abs:g}"
        return text + "".join(f"\n  {n}" for n in self.notes)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


def _signed(n: int) -> str:
    return ("-" if n < 0 else "") + _size(abs(n))


def op_counts(model: onnx.ModelProto) -> Counter:
    return Counter(f"{n.domain}::{n.op_type}" if n.domain else n.op_type for n in model.graph.node)


def _same_weights(a: onnx.ModelProto, b: onnx.ModelProto) -> bool:
    """Same initializers (one compared at a time; an external one by its reference)."""
    ta, tb = ({t.name: t for t in m.graph.initializer} for m in (a, b))
    return ta.keys() == tb.keys() and all(ta[k] == tb[k] for k in ta)


def load(model: onnx.ModelProto | str | os.PathLike, data_dir: str | os.PathLike | None = None) -> onnx.ModelProto:
    """A checked model: a path through onnx_npuq.io.load_model, a ModelProto through
    io.check_model(strict=False) (finish() attaches and checks); ModelError (a ValueError)
    naming the problem. External data is checked, and read except for the initializers of
    io.LARGE_TENSOR_BYTES or more (a ModelProto with some to read is copied first)."""
    folder = data_dir_of(model, data_dir)
    if isinstance(model, onnx.ModelProto):
        if check_model(model, folder, strict=False):  # (the external references)
            copy = onnx.ModelProto()
            copy.CopyFrom(model)
            model = copy
    elif isinstance(model, (str, os.PathLike)):
        model = load_model(model, load_external_data=False)
    else:
        raise TypeError(f"a model is an onnx.ModelProto or a path, got {type(model).__name__}")
    if folder is not None:
        load_external_data(model, folder, keep_bytes=LARGE_TENSOR_BYTES)
    return model


def is_atc_layout(model: onnx.ModelProto) -> bool:
    return any(p.key == LAYOUT_KEY for p in model.metadata_props)


def lift_opset(model: onnx.ModelProto, target: int) -> onnx.ModelProto:
    """The model with its standard opset raised to `target` by onnx.version_converter (its
    initializers of LARGE_TENSOR_BYTES or more go through as graph inputs and come back as
    they were). The converter drops model-local functions: a model with functions of other
    domains than ours is refused (PassError)."""
    foreign = sorted(f"{f.domain}::{f.name}" for f in model.functions if f.domain not in functions.DOMAINS)
    if foreign:
        raise PassError(f"cannot lift the model to opset {target}: onnx.version_converter would drop its "
                        f"model-local functions {', '.join(foreign)}")
    view = checker_copy(model, LARGE_TENSOR_BYTES)
    large = {t.name: t for t in model.graph.initializer} if view is not model else {}
    large = {k: t for k, t in large.items() if k not in {i.name for i in view.graph.initializer}}
    try:
        new = onnx.version_converter.convert_version(view, target)
    except Exception as err:  # the converter raises RuntimeError / its own C++ errors
        raise PassError(f"onnx.version_converter cannot take the model from opset "
                        f"{functions.model_opset(model)} to {target}: {err}") from None
    if large:
        keep = [v for v in new.graph.input if v.name not in large]
        del new.graph.input[:]
        new.graph.input.extend(keep)
        new.graph.initializer.extend(large.values())
    new.ir_version = max(new.ir_version, model.ir_version)
    del new.functions[:]
    return new


def _attach_at_model_opset(model: onnx.ModelProto, notes: list[str] | None) -> onnx.ModelProto:
    """functions.attach, lifting the model's standard opset first when a body cannot be
    written at it (onnx.version_converter; verification then checks the lift was exact), and
    the IR version to 10 when bodies are attached (node overloads are IR 10)."""
    version = functions.model_opset(model)
    need = functions.required_opset(model)
    if need is not None and version is not None and version < need:
        model = lift_opset(model, need)
        if notes is not None:
            notes.append(f"standard opset lifted from {version} to {need} (onnx.version_converter): the function "
                         f"bodies of the npuq / npu nodes need opset {need}")
    functions.attach(model)
    if model.functions and model.ir_version < OVERLOAD_IR_VERSION:
        if notes is not None:
            notes.append(f"IR version raised from {model.ir_version} to {OVERLOAD_IR_VERSION} "
                         "(function overloads)")
        model.ir_version = OVERLOAD_IR_VERSION
    return model


def _keep_symbolic_shapes(model: onnx.ModelProto, like: onnx.ModelProto) -> None:
    """The value_info onnxruntime sees for the tensors `like` (the model before the pass)
    has too, as `like` has it: `like`'s declaration where inference found the tensor with
    the same element type and rank (or no rank) and no contradicting fixed dimension, and
    no shape where `like` declared none (the element type stays: later passes read it);
    inference's in full only for the tensors the pass made.
    onnxruntime's fusions depend on what it knows of shapes (Add + LayerNormalization ->
    SkipLayerNormalization needs both Add inputs known to be one shape), and the fused op
    rounds differently: inference names unknown dimensions afresh (unk__N), losing that the
    exporter marked two as one (batch, sequence), or, propagating data, knows more than
    onnxruntime's own inference did, so a rewrite would seem to change outputs it does not
    touch."""
    before = {v.name: v for v in like.graph.value_info if v.type.HasField("tensor_type")}
    old = {o for n in like.graph.node for o in n.output}
    have = {v.name for v in model.graph.value_info}
    made = {o for n in model.graph.node for o in n.output} - {o.name for o in model.graph.output}
    keep = [v for name, v in before.items() if name in made and name not in have]
    for v in model.graph.value_info:
        src = before.get(v.name)
        if src is None:
            if v.name in old and v.type.HasField("tensor_type"):  # undeclared before: its type only
                v.type.tensor_type.ClearField("shape")
            keep.append(v)
            continue
        if _compatible(src, v):
            v.type.CopyFrom(src.type)
        elif v.type.HasField("tensor_type") and not src.type.tensor_type.HasField("shape"):
            v.type.tensor_type.ClearField("shape")  # no shape where `like` had none
        keep.append(v)
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)


def _compatible(src: onnx.ValueInfoProto, inferred: onnx.ValueInfoProto) -> bool:
    """Same element type, and the same rank with no fixed dimension of `inferred` that
    `src` contradicts (or `inferred` without a rank)."""
    if not inferred.type.HasField("tensor_type"):
        return False
    a, b = src.type.tensor_type, inferred.type.tensor_type
    if a.elem_type != b.elem_type:
        return False
    if not (a.HasField("shape") and b.HasField("shape")):
        return True  # `src`'s: no shape, or one where inference found none
    return len(a.shape.dim) == len(b.shape.dim) and all(
        not db.HasField("dim_value") or (da.HasField("dim_value") and da.dim_value == db.dim_value)
        for da, db in zip(a.shape.dim, b.shape.dim))


def finish(graph: gs.Graph, like: onnx.ModelProto, metadata: dict[str, str],
           notes: list[str] | None = None) -> onnx.ModelProto:
    """gs graph -> checked ModelProto with `like`'s model fields and `metadata`; what it
    changes beyond the graph (a lifted opset or IR version) goes into `notes`."""
    graph.cleanup(remove_unused_graph_inputs=False).toposort()
    model = gs.export_onnx(graph, do_type_check=False)
    if LAYOUT_KEY not in metadata:
        add_gates(model)
    model.ir_version = like.ir_version
    model.producer_name, model.producer_version = like.producer_name, like.producer_version
    model.doc_string = like.doc_string
    del model.metadata_props[:]
    for k, v in sorted(metadata.items()):
        model.metadata_props.add(key=k, value=v)
    if is_atc_layout(model):
        functions.detach(model)
    else:
        model = _attach_at_model_opset(model, notes)
    # value_info from before the rewrite may be stale: infer it afresh, on a copy without the
    # large weights (which would be serialized, past 2 GB impossibly), and take back what
    # inference adds: value_info, output types, subgraphs' value_info
    del model.graph.value_info[:]
    try:
        view = onnx.shape_inference.infer_shapes(checker_copy(model, LARGE_TENSOR_BYTES), data_prop=True)
        for name in ("value_info", "output", "node"):
            del getattr(model.graph, name)[:]
            getattr(model.graph, name).extend(getattr(view.graph, name))
        _keep_symbolic_shapes(model, like)
        if is_atc_layout(model):
            from .atc import check  # onnx.checker accepts neither ATC layout

            check(model)
        else:
            onnx.checker.check_model(view, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        lines = str(err).strip().splitlines()
        raise PassError(f"the rewritten model fails onnx's checks: {lines[0] if lines else type(err).__name__}"
                        ) from None
    return model


def random_inputs(model: onnx.ModelProto, seed: int = 0, dim: int = 3,
                  shapes: Mapping[str, Sequence[int]] | None = None) -> list[torch.Tensor]:
    """One random tensor per graph input: integer inputs (token ids) in [0, 8), floats standard
    normal. A symbolic dimension takes its size from `shapes` ({input: shape}), else from the
    example shape the exporter recorded (io.INPUT_SHAPES_KEY), else `dim`; a fixed dimension
    `shapes` contradicts is a ModelError."""
    recorded = _recorded_shapes(model)
    asked_for, shapes = shapes, {**recorded, **(shapes or {})}
    g = torch.Generator().manual_seed(seed)
    init = {t.name for t in model.graph.initializer}
    inputs = [v.name for v in model.graph.input if v.name not in init]
    unknown = sorted(set(shapes) - set(inputs) - set(recorded))
    if unknown:
        raise ModelError(f"the model has no input {unknown[0]!r} (inputs: {', '.join(inputs)})")
    out = []
    for v in model.graph.input:
        if v.name in init:
            continue
        if not v.type.HasField("tensor_type"):
            raise ModelError(f"graph input {v.name!r} is not a tensor: no random input for it")
        tt = v.type.tensor_type
        given = shapes.get(v.name)
        if given is not None and len(given) != len(tt.shape.dim):
            raise ModelError(f"graph input {v.name!r} has rank {len(tt.shape.dim)}, its given shape "
                             f"{list(given)} has rank {len(given)}")
        # a negative dim_value (some tools write -1) is as good as a symbol
        fixed = [d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else None for d in tt.shape.dim]
        asked = (asked_for or {}).get(v.name)  # the caller's, not the record: it must fit the model
        if asked is not None and any(f is not None and int(a) != f for a, f in zip(asked, fixed)):
            raise ModelError(f"graph input {v.name!r} has shape {[f if f is not None else '?' for f in fixed]}, "
                             f"the given shape {list(asked)} differs (export with dynamic=True, CLI --dynamic, "
                             "for other shapes)")
        shape = [f if f is not None else int(given[i]) if given is not None else dim for i, f in enumerate(fixed)]
        if math.prod(shape) > MAX_RANDOM_ELEMENTS:
            raise ModelError(f"graph input {v.name!r} has shape {shape}: {math.prod(shape)} elements is too many "
                             f"for a random test input (at most {MAX_RANDOM_ELEMENTS})")
        try:
            np_dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
            dtype = torch.from_numpy(np.zeros(0, np_dtype)).dtype \
                if tt.elem_type != onnx.TensorProto.BFLOAT16 else torch.bfloat16
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"graph input {v.name!r}: no random input of element type "
                             f"{onnx.helper.tensor_dtype_to_string(tt.elem_type) if tt.elem_type else 'undefined'}"
                             ) from None
        if dtype.is_floating_point:
            out.append(torch.randn(shape, generator=g).to(dtype))
        elif dtype == torch.bool:
            out.append(torch.randint(0, 2, shape, generator=g).bool())
        else:
            out.append(torch.randint(0, 8, shape, generator=g).to(dtype))
    return out


def _recorded_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """The exporter's example shapes, where they are well-formed (a foreign file may hold anything)."""
    raw = next((p.value for p in model.metadata_props if p.key == INPUT_SHAPES_KEY), None)
    try:
        shapes = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    if not isinstance(shapes, dict):
        return {}
    return {k: v for k, v in shapes.items() if isinstance(v, list)
            and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d for d in v)}


def _runnable(model: onnx.ModelProto, data_dir: str | None) -> onnx.ModelProto:
    """The model onnxruntime can run: ATC-layout models get their bodies back first."""
    if not is_atc_layout(model):
        return model
    from .atc import to_portable  # the atc pass owns the layout

    return to_portable(model, data_dir)


@contextlib.contextmanager
def _quiet_graphsurgeon():
    """gs warns on stdout about bfloat16 constants and a missing `colored` module."""
    severity = G_LOGGER.severity
    G_LOGGER.severity = G_LOGGER.ERROR
    try:
        yield
    finally:
        G_LOGGER.severity = severity


def run_pass(model: onnx.ModelProto, name: str, *, verify: bool = True, seed: int = 0,
             data_dir: str | os.PathLike | None = None, input_shapes: Mapping[str, Sequence[int]] | None = None,
             **options) -> tuple[onnx.ModelProto, Report]:
    """Run one named pass; returns the new model and its report. `data_dir`: the folder of
    the model's external data (see the module doc); `input_shapes`: sizes of the verification
    inputs' symbolic dimensions (random_inputs)."""
    if name not in PASSES:
        raise PassError(f"unknown pass {name!r}; passes: {', '.join(PASSES)}")
    p = PASSES[name]
    data_dir = None if data_dir is None else os.fspath(data_dir)
    external_refs(model, data_dir)  # checked before a pass reads any
    ctx = Context(options=options, metadata={m.key: m.value for m in model.metadata_props})
    with _quiet_graphsurgeon():
        graph = gs.import_onnx(model)
        remove_gates(graph)
        read_on_demand(graph, data_dir)
        p.fn(graph, ctx)
        out = finish(graph, model, ctx.metadata, ctx.notes)
    report = Report(name, op_counts(model), op_counts(out), model_bytes(model), model_bytes(out), ctx.notes,
                    weights_changed=not _same_weights(model, out))
    if verify:
        feeds = random_inputs(model, seed, shapes=input_shapes)
        fold = report.bytes_before <= VERIFY_FOLDING_MAX_BYTES
        if not fold:
            report.notes.append(f"verified without onnxruntime's constant folding (the model is past "
                                f"{_size(VERIFY_FOLDING_MAX_BYTES)})")
        before = OrtSession(_runnable(model, data_dir), data_dir=data_dir, constant_folding=fold)
        want, names = before.run(*feeds), before.output_names
        del before  # one session at a time
        got = OrtSession(_runnable(out, data_dir), data_dir=data_dir, constant_folding=fold).run(*feeds)
        results = [compare(n, w, g) for n, w, g in zip(names, want, got, strict=True)]
        report.mismatches = sum(r.mismatches for r in results)
        report.max_abs = max((r.max_abs for r in results), default=0.0)
        if p.exact and report.mismatches:
            unfolded = "" if fold else " (verified without constant folding, where onnxruntime's CPU runs a " \
                "float16 Cast feeding a float16 op unrounded and picks other Conv kernels for constant weights: " \
                "a pass that folds such a Cast or weight can show as a mismatch; --no-verify skips it)"
            raise PassError(f"pass {name} changed onnxruntime outputs, which it must not{unfolded}",
                            [f"{r.name}: {r.mismatches} mismatches, max |diff| {r.max_abs:g}"
                             for r in results if r.mismatches])
    return out, report


def run_passes(model, names: Sequence[str], *, verify: bool = True, seed: int = 0,
               data_dir: str | os.PathLike | None = None, input_shapes: Mapping[str, Sequence[int]] | None = None,
               **options) -> tuple[onnx.ModelProto, list[Report]]:
    """Run the named passes in order on a ModelProto or a path. A model with external data
    keeps its large initializers on disk, and so does the result: save() and OrtSession()
    take it with `data_dir=` the input's folder (`io.data_dir_of(path)`), as this takes a
    ModelProto's."""
    data_dir = data_dir_of(model, data_dir)
    model = load(model, data_dir)
    reports = []
    for name in names:
        model, report = run_pass(model, name, verify=verify, seed=seed, data_dir=data_dir,
                                 input_shapes=input_shapes, **options)
        reports.append(report)
    return model, reports
