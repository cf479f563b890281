"""The `atc` command line for an ATC-layout model, checked against ATC's rules before it runs.

    cmd = plan_command("model.onnx", "Ascend910B1", "out/model", layout="default",
                       input_shapes={"input_ids": [1, -1]}, dynamic_dims=[[16], [32], [64]])
    cmd.write()            # out/model.atc.onnx (if converted) and out/model.keep_dtype.cfg
    subprocess.run(cmd.argv, check=True)   # atc ... -> out/model.om

    argv = build_command(...)   # the same, only the argument list

Rules (shared/spec/ascend.md; hicann/ge api/atc/atc_flags.cc and
docs/zh/user_guides/atc_tools/CLI_options/): --framework=5 is ONNX; --output is a path stem
(ATC writes <stem>.om); --input_shape "a:1,3,224,224;b:..." names model inputs, -1 marks a
dimension set by gears (--dynamic_batch_size "1,2,4" on the first dimension only,
--dynamic_image_size "h,w;h,w" on H and W of NCHW, --dynamic_dims "4;8;16" with
--input_format=ND), 2..100 gears, at most one of the three; without gears -1 and "lo~hi" are
shape ranges (dynamic shape, not on Atlas 200I/500 A2); --precision_mode and
--precision_mode_v2 never both.

Keeping fp32 custom ops fp32. ATC's default precision (force_fp16 / fp16) computes every op
that has an fp16 kernel in fp16. The custom nodes (npuq::QuantDequant, Dequantize, Quantize
and the npu ops) are exact-bit format arithmetic on the dtypes they were exported with, so
they must keep them, while the matmuls around them should run in fp16. Two ways:

  keep_fp32="keep_dtype" (default): a generated --keep_dtype file lists every custom node by
      name, and `OpType::<Ascend IR type>` for the ops onnx_npuq's custom-op package parses
      (ASCEND_IR_TYPES: NpuqQuantDequant, ...). Those nodes keep their dtypes; the rest of the
      graph follows the precision mode, which is what an fp16 deployment wants. --keep_dtype
      "needs --precision_mode or --precision_mode_v2" (its docs): without either, the default
      --precision_mode_v2=fp16 is written out.
  keep_fp32="origin": --precision_mode_v2=origin keeps the whole graph at its original
      precision: simplest and exact, but every fp32 matmul then runs in fp32 (slow). With
      origin (or precision_mode=must_keep_origin_dtype) ATC ignores --keep_dtype, so none is
      written.
  keep_fp32="none": neither (the caller's own --keep_dtype or precision flags decide).

The keep_dtype default is used because it keeps the custom nodes exact without making the
whole model fp32; node names are listed because CANN's own npu ops have Ascend IR types that
differ from their ONNX names (NPUDynamicQuant, ...), which a name line does not depend on.
"""
from __future__ import annotations

import contextlib
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from ..io import write_text_atomic as _write_text_atomic
from .errors import AtcOptionError, DynamicShapeError, InputShapeError, LayoutError, PrecisionError
from .soc import Soc, soc_info

FRAMEWORK_ONNX = "5"
PRECISION_MODES = ("force_fp16", "force_fp32", "cube_fp16in_fp32out", "allow_mix_precision",
                   "allow_fp32_to_fp16", "must_keep_origin_dtype", "allow_mix_precision_fp16",
                   "allow_mix_precision_bf16", "allow_fp32_to_bf16")  # atc_flags.cc
PRECISION_MODES_V2 = ("fp16", "origin", "cube_fp16in_fp32out", "mixed_float16", "mixed_bfloat16",
                      "cube_hif8", "mixed_hif8")  # atc_flags.cc
_BF16_MODES = {"allow_mix_precision_bf16", "allow_fp32_to_bf16", "mixed_bfloat16"}
_HIF8_MODES = {"cube_hif8", "mixed_hif8"}  # hifloat8: Ascend 950 only (--precision_mode_v2 docs)
LOG_LEVELS = ("debug", "info", "warning", "error", "null")
INPUT_FORMATS = ("NCHW", "NCDHW", "ND")  # what ATC takes for ONNX models (spec)
KEEP_FP32 = ("keep_dtype", "origin", "none")
MIN_GEARS, MAX_GEARS = 2, 100  # "(1,100]" on Atlas A2/A3, 200I/500 A2, inference, training series

# Ascend IR op types (REGISTER_CUSTOM_OP names) onnx_npuq's custom-op package parses its ONNX
# ops into (custom_ops/framework/onnx_plugin/*_plugin.cc). --keep_dtype wants Ascend IR types in
# its OpType:: lines; CANN's own npu ops are kept by node name instead.
ASCEND_IR_TYPES = {"QuantDequant": "NpuqQuantDequant", "Dequantize": "NpuqDequantize", "Quantize": "NpuqQuantize",
                   "NPUDequantSwigluQuant": "DequantSwigluQuant"}

# Flags build_command sets itself; `extra` may not repeat them.
_OWN_FLAGS = {"model", "framework", "output", "soc_version", "input_shape", "input_format",
              "dynamic_batch_size", "dynamic_image_size", "dynamic_dims", "precision_mode",
              "precision_mode_v2", "keep_dtype", "log", "input_shape_range"}
# --keep_dtype file names: letters, digits, _ - . and CJK (--keep_dtype docs), plus directories
_KEEP_DTYPE_PATH = re.compile(r"^[A-Za-z0-9_\-./\u4e00-\u9fff]+$")


# ---------------------------------------------------------------- the model


def model_inputs(model: onnx.ModelProto) -> dict[str, list[int | str | None] | None]:
    """Graph inputs that are not initializers: name -> dims (int, a symbol name, or None for an
    unknown dimension), or None when the rank is unknown."""
    init = {t.name for t in model.graph.initializer}
    out = {}
    for v in model.graph.input:
        if v.name in init:
            continue
        t = v.type.tensor_type
        if not t.HasField("shape"):
            out[v.name] = None
            continue
        out[v.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
    return out


def atc_model(model, layout: str | None = None, opset: int | None = None,
              verify: bool = False, data_dir=None) -> tuple[onnx.ModelProto, bool]:
    """The model in an ATC layout, and whether it had to be (re)laid out: an ATC-layout model
    is taken as it is unless `layout` / `opset` ask for another; any other model needs `layout`
    and goes through the atc pass (onnx_npuq.passes.run_passes(model, ["atc"], ...)). Large
    weights stay in external data (in `data_dir`, or the model path's folder)."""
    from ..passes import run_passes
    from ..passes.atc import OPSET_KEY
    from ..io import data_dir_of
    from ..passes.pipeline import LAYOUT_KEY, load

    data_dir = data_dir_of(model, data_dir)
    model = load(model, data_dir)
    meta = {p.key: p.value for p in model.metadata_props}
    current = meta.get(LAYOUT_KEY)
    if current is not None:
        same_layout = layout is None or layout == current
        same_opset = opset is None or str(opset) == meta.get(OPSET_KEY)
        if same_layout and same_opset:
            return model, False
        layout = layout or current
    elif layout is None:
        raise LayoutError("the model is not in an ATC layout (no onnx_npuq.layout metadata from the atc "
                          "pass): give layout='default' or 'domain' to convert it first")
    given = {} if opset is None else {"opset": opset}  # (none: the atc pass picks 18, or 16 for QuantBatchMatMul)
    out, _ = run_passes(model, ["atc"], verify=verify, layout=layout, data_dir=data_dir, **given)
    return out, True


def custom_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The nodes of an ATC-layout model that are custom ops (npuq / npu), by the origin map the
    atc pass records."""
    from ..passes.atc import origin_map, proto_nodes

    meta = {p.key: p.value for p in model.metadata_props}
    origin = origin_map(meta)
    return [n for n in proto_nodes(model.graph) if f"{n.domain or 'ai.onnx'}::{n.op_type}" in origin]


def keep_dtype_lines(model: onnx.ModelProto) -> list[str]:
    """The --keep_dtype file for the custom nodes: OpType::<Ascend IR type> for onnx_npuq's own
    custom ops, then every custom node by name."""
    nodes = custom_nodes(model)
    types = sorted({ASCEND_IR_TYPES[n.op_type] for n in nodes if n.op_type in ASCEND_IR_TYPES})
    names = []
    for n in nodes:
        name = n.name.strip()
        if name and not name.startswith("#") and "\n" not in name and name not in names:
            names.append(name)
    return [f"OpType::{t}" for t in types] + names


# ---------------------------------------------------------------- input shapes

Dim = int | tuple[int, int]  # a size, -1, or a range lo~hi


def _parse_dim(token, where: str) -> Dim:
    if isinstance(token, bool):
        raise InputShapeError(f"input_shape {where}: {token!r} is not a dimension")
    if isinstance(token, int):
        value = token
    elif isinstance(token, tuple) and len(token) == 2:
        return _range(*token, where=where)
    else:
        text = str(token).strip()
        if "~" in text:
            lo, _, hi = text.partition("~")
            try:
                return _range(int(lo), int(hi), where=where)
            except ValueError:
                raise InputShapeError(f"input_shape {where}: {text!r} is not a range lo~hi") from None
        try:
            value = int(text)
        except ValueError:
            raise InputShapeError(f"input_shape {where}: {text!r} is not a dimension (an integer >= 1, -1, "
                                  "or a range lo~hi)") from None
    if value < 1 and value != -1:
        raise InputShapeError(f"input_shape {where}: {value} is not a dimension (>= 1, or -1)")
    return value


def _range(lo: int, hi: int, where: str) -> tuple[int, int]:
    if not 1 <= lo <= hi:
        raise InputShapeError(f"input_shape {where}: range {lo}~{hi} is not valid (need 1 <= lo <= hi)")
    return lo, hi


def parse_input_shapes(spec) -> dict[str, list[Dim]]:
    """'a:1,3,224,224;b:-1,4' (or {name: dims}) -> {name: dims}; 'name:' is a scalar."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        items = []
        for part in filter(None, (p.strip() for p in spec.split(";"))):
            name, sep, dims = part.rpartition(":")
            if not sep or not name.strip():
                raise InputShapeError(f"input_shape {part!r}: expected name:d1,d2,... (inputs separated by ';')")
            items.append((name.strip(), [d for d in dims.split(",") if d.strip()] if dims.strip() else []))
    elif isinstance(spec, Mapping):
        items = list(spec.items())
    else:
        raise InputShapeError(f"input_shape must be a string or a mapping name -> dims, got {type(spec).__name__}")
    out: dict[str, list[Dim]] = {}
    for name, dims in items:
        if not isinstance(name, str) or not name or any(c in name for c in ":;,"):
            raise InputShapeError(f"input_shape: input name {name!r} cannot be written in --input_shape")
        if name in out:
            raise InputShapeError(f"input_shape: input {name!r} is given twice")
        if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence):
            raise InputShapeError(f"input_shape {name}: dims must be a sequence, got {dims!r}")
        out[name] = [_parse_dim(d, f"{name}[{i}]") for i, d in enumerate(dims)]
    return out


def _format_dim(d: Dim) -> str:
    return f"{d[0]}~{d[1]}" if isinstance(d, tuple) else str(d)


def format_input_shapes(shapes: Mapping[str, Sequence[Dim]]) -> str:
    return ";".join(f"{name}:{','.join(_format_dim(d) for d in dims)}" for name, dims in shapes.items())


def _check_against_model(shapes: dict[str, list[Dim]], inputs: dict) -> None:
    for name, dims in shapes.items():
        if name not in inputs:
            raise InputShapeError(f"input_shape: the model has no input {name!r} (inputs: {', '.join(inputs) or 'none'})")
        model_dims = inputs[name]
        if model_dims is None:
            continue
        if len(dims) != len(model_dims):
            raise InputShapeError(f"input_shape {name}: rank {len(dims)} but the model input has rank "
                                  f"{len(model_dims)} {_show(model_dims)}")
        for i, (d, m) in enumerate(zip(dims, model_dims)):
            if isinstance(m, int) and m > 0 and d != m:
                raise InputShapeError(f"input_shape {name}[{i}]: {_format_dim(d)}, but the model fixes this "
                                      f"dimension at {m} {_show(model_dims)}")
    for name, model_dims in inputs.items():
        free = model_dims is None or any(not (isinstance(m, int) and m > 0) for m in model_dims)
        if free and name not in shapes:
            raise InputShapeError(f"input {name} {_show(model_dims)} has dimensions the model leaves open: "
                                  f"give its shape in input_shape (ATC requires it)")


def _show(dims) -> str:
    if dims is None:
        return "[unknown rank]"
    return "[" + ", ".join(str(m) if isinstance(m, int) and m > 0 else (m or "?") for m in dims) + "]"


def _gears(spec, name: str, per_gear: int | None) -> list[list[int]]:
    """'1,2,4' (per_gear None: one value per gear) or '4,4;8,8' / [[4,4],[8,8]] -> gears."""
    if isinstance(spec, str):
        sep = "," if per_gear is None else ";"
        raw = [g.strip() for g in spec.split(sep) if g.strip()]
        try:
            gears = [[int(g)] if per_gear is None else [int(x) for x in g.split(",")] for g in raw]
        except ValueError:
            raise DynamicShapeError(f"{name} {spec!r}: gears must be integers ({'1,2,4' if per_gear is None else '4,4;8,8'})") from None
    elif isinstance(spec, Sequence):
        gears = []
        for g in spec:
            items = g if isinstance(g, Sequence) and not isinstance(g, str) else [g]
            try:
                gears.append([int(x) for x in items])
            except (TypeError, ValueError):
                raise DynamicShapeError(f"{name}: gear {g!r} is not a list of integers") from None
    else:
        raise DynamicShapeError(f"{name} must be a string or a sequence of gears, got {type(spec).__name__}")
    if not MIN_GEARS <= len(gears) <= MAX_GEARS:
        raise DynamicShapeError(f"{name}: {len(gears)} gear(s); ATC takes {MIN_GEARS}..{MAX_GEARS}")
    for g in gears:
        if per_gear is not None and len(g) != per_gear:
            raise DynamicShapeError(f"{name}: gear {','.join(map(str, g))} has {len(g)} value(s), the -1 "
                                    f"dimensions of input_shape need {per_gear}")
        if any(x < 1 for x in g):
            raise DynamicShapeError(f"{name}: gear {','.join(map(str, g))} has a value below 1")
    seen = set()
    for g in gears:
        if tuple(g) in seen:
            raise DynamicShapeError(f"{name}: gear {','.join(map(str, g))} is repeated")
        seen.add(tuple(g))
    return gears


def _format_gears(gears: list[list[int]], batch: bool) -> str:
    return ",".join(str(g[0]) for g in gears) if batch else ";".join(",".join(map(str, g)) for g in gears)


def _dynamic(shapes: dict[str, list[Dim]], soc: Soc, input_format: str, dynamic_batch, dynamic_image_size,
             dynamic_dims) -> tuple[str, str] | None:
    """Validate -1 / ranges against the gears; the (flag, value) of the gear option, if any."""
    given = [(n, v) for n, v in (("dynamic_batch_size", dynamic_batch), ("dynamic_image_size", dynamic_image_size),
                                 ("dynamic_dims", dynamic_dims)) if v is not None]
    if len(given) > 1:
        raise DynamicShapeError(f"{' and '.join(n for n, _ in given)}: ATC takes at most one of "
                                "dynamic_batch_size, dynamic_image_size, dynamic_dims")
    minus = [(name, i) for name, dims in shapes.items() for i, d in enumerate(dims) if d == -1]
    ranges = [(name, i) for name, dims in shapes.items() for i, d in enumerate(dims) if isinstance(d, tuple)]
    if not given:
        if (minus or ranges) and not soc.shape_range:
            where = ", ".join(f"{n}[{i}]" for n, i in minus + ranges)
            raise DynamicShapeError(f"input_shape {where}: -1 / lo~hi without gears is a shape range (dynamic "
                                    f"shape), which {soc.name} ({soc.product}) does not support: give gears "
                                    "(dynamic_batch_size / dynamic_dims) or fixed sizes")
        return None
    name, spec = given[0]
    if ranges:
        raise DynamicShapeError(f"{name}: input_shape ranges ({', '.join(f'{n}[{i}]' for n, i in ranges)}) cannot "
                                "go with gears; use -1 for the geared dimensions")
    if not minus:
        raise DynamicShapeError(f"{name} given, but input_shape has no -1 dimension for the gears to set")
    if name == "dynamic_batch_size":
        bad = [f"{n}[{i}]" for n, i in minus if i != 0]
        if bad:
            raise DynamicShapeError(f"dynamic_batch_size sets the first dimension only, but {', '.join(bad)} is -1 "
                                    "(use dynamic_dims for other dimensions)")
        return name, _format_gears(_gears(spec, name, None), batch=True)
    if name == "dynamic_image_size":
        if input_format != "NCHW":
            raise DynamicShapeError(f"dynamic_image_size sets H and W of NCHW inputs: input_format is {input_format}")
        for n in {n for n, _ in minus}:
            dims = shapes[n]
            if len(dims) != 4 or [i for i, d in enumerate(dims) if d == -1] != [2, 3]:
                raise DynamicShapeError(f"dynamic_image_size: input {n} must be NCHW with -1 exactly at H and W, "
                                        f"got {','.join(map(_format_dim, dims))}")
        return name, _format_gears(_gears(spec, name, 2), batch=False)
    if input_format != "ND":
        raise DynamicShapeError(f"dynamic_dims needs input_format ND, got {input_format}")
    return name, _format_gears(_gears(spec, name, len(minus)), batch=False)


# ---------------------------------------------------------------- precision


def _precision(soc: Soc, precision_mode, precision_mode_v2, keep_fp32: str) -> tuple[str | None, str | None]:
    if keep_fp32 not in KEEP_FP32:
        raise PrecisionError(f"keep_fp32 must be one of {', '.join(KEEP_FP32)}, got {keep_fp32!r}")
    if precision_mode is not None and precision_mode_v2 is not None:
        raise PrecisionError("precision_mode and precision_mode_v2 cannot both be set (ATC takes one)")
    if precision_mode is not None and precision_mode not in PRECISION_MODES:
        raise PrecisionError(f"precision_mode {precision_mode!r} is not one of {', '.join(PRECISION_MODES)}")
    if precision_mode_v2 is not None and precision_mode_v2 not in PRECISION_MODES_V2:
        raise PrecisionError(f"precision_mode_v2 {precision_mode_v2!r} is not one of {', '.join(PRECISION_MODES_V2)}")
    mode = precision_mode or precision_mode_v2
    if mode in _BF16_MODES and not soc.bf16:
        raise PrecisionError(f"precision mode {mode} uses bfloat16, which {soc.name} ({soc.product}) does not have")
    if mode in _HIF8_MODES:
        raise PrecisionError(f"precision mode {mode} uses hifloat8, which only Ascend 950 has (not {soc.name})")
    if keep_fp32 == "origin":
        if precision_mode is not None:
            raise PrecisionError("keep_fp32='origin' sets precision_mode_v2=origin, which cannot go with "
                                 f"precision_mode={precision_mode}")
        if precision_mode_v2 not in (None, "origin"):
            raise PrecisionError(f"keep_fp32='origin' sets precision_mode_v2=origin, not {precision_mode_v2}")
        precision_mode_v2 = "origin"
    return precision_mode, precision_mode_v2


def _keeps_origin(precision_mode, precision_mode_v2) -> bool:
    """ATC ignores --keep_dtype under these (--keep_dtype docs)."""
    return precision_mode == "must_keep_origin_dtype" or precision_mode_v2 == "origin"


# ---------------------------------------------------------------- the command


@dataclass
class AtcCommand:
    """An atc invocation and the files it reads. `write()` writes the model (when it is not
    already on disk in ATC layout) and the --keep_dtype file, each to a temporary name first."""

    argv: list[str]
    model: onnx.ModelProto
    model_path: Path
    write_model: bool
    om_path: Path
    keep_dtype_path: Path | None = None
    keep_dtype_lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data_dir: str | None = None  # where the model's external data is (see passes.pipeline)

    def shell(self) -> str:
        return shlex.join(self.argv)

    def write(self, external_data: bool | None = None) -> list[Path]:
        """Write the files atc reads, each atomically; when one fails, the ones this call
        created before it are removed again (files it replaced stay replaced)."""
        from ..exporter import save

        steps = []
        if self.write_model:
            data = self.model_path.with_name(self.model_path.name + ".data")
            steps.append(([self.model_path, data],
                          lambda: save(self.model, self.model_path, external_data=external_data,
                                       data_dir=self.data_dir)))
        if self.keep_dtype_path is not None and self.keep_dtype_lines:
            text = "\n".join(self.keep_dtype_lines) + "\n"
            steps.append(([self.keep_dtype_path], lambda: write_text_atomic(self.keep_dtype_path, text)))
        written, created = [], []
        try:
            for paths, step in steps:
                new = [p for p in paths if not os.path.lexists(p)]
                written.append(step())
                created += [p for p in new if os.path.lexists(p)]
        except BaseException:
            for p in created:
                with contextlib.suppress(OSError):
                    os.unlink(p)
            raise
        return written


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to a temporary file next to `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _write_text_atomic(path, text)


def _extra(extra) -> list[str]:
    if extra is None:
        return []
    if isinstance(extra, Mapping):
        items = [f"--{k.lstrip('-')}={v}" for k, v in extra.items()]
    elif isinstance(extra, str):
        raise AtcOptionError(f"extra must be a list of '--flag=value' strings or a mapping, got the string {extra!r}")
    else:
        items = [str(x) for x in extra]
    out = []
    for item in items:
        m = re.fullmatch(r"--([a-z][a-z0-9_]*)=(.*)", item, flags=re.DOTALL)
        if not m:
            raise AtcOptionError(f"extra ATC argument {item!r} is not of the form --flag=value")
        if m.group(1) in _OWN_FLAGS:
            raise AtcOptionError(f"extra ATC argument --{m.group(1)} is set by build_command itself; use its parameter")
        out.append(item)
    return out


def _stem(output_stem) -> Path:
    if output_stem is None or not str(output_stem).strip():
        raise AtcOptionError("output_stem is empty: ATC writes <stem>.om")
    stem = Path(os.fspath(output_stem))
    if stem.suffix == ".om":
        raise AtcOptionError(f"output {stem}: give the stem without .om (ATC adds it)")
    if stem.name in ("", ".", ".."):
        raise AtcOptionError(f"output {stem}: not a file stem")
    return stem


def plan_command(model, soc_version: str, output_stem, input_shapes=None, dynamic_batch=None,
                 dynamic_image_size=None, dynamic_dims=None, input_format: str = "ND",
                 precision_mode: str | None = None, precision_mode_v2: str | None = None,
                 keep_dtype: str | os.PathLike | None = None, keep_fp32: str = "keep_dtype",
                 log: str = "error", extra=None, layout: str | None = None, opset: int | None = None,
                 verify: bool = False, data_dir=None) -> AtcCommand:
    """Everything build_command checks and builds, with the model and files it needs
    (`data_dir`: where a ModelProto's external data is)."""
    from ..io import data_dir_of

    soc = soc_info(soc_version)
    stem = _stem(output_stem)
    if input_format not in INPUT_FORMATS:
        raise AtcOptionError(f"input_format {input_format!r} is not one of {', '.join(INPUT_FORMATS)}")
    if log not in LOG_LEVELS:
        raise AtcOptionError(f"log {log!r} is not one of {', '.join(LOG_LEVELS)}")
    extra_args = _extra(extra)
    precision_mode, precision_mode_v2 = _precision(soc, precision_mode, precision_mode_v2, keep_fp32)

    on_disk = isinstance(model, (str, os.PathLike))
    data_dir = data_dir_of(model, data_dir)
    proto, converted = atc_model(model, layout=layout, opset=opset, verify=verify, data_dir=data_dir)
    shapes = parse_input_shapes(input_shapes)
    _check_against_model(shapes, model_inputs(proto))
    gear = _dynamic(shapes, soc, input_format, dynamic_batch, dynamic_image_size, dynamic_dims)
    if gear:
        scalars = [n for n, dims in model_inputs(proto).items() if dims == [] and n not in shapes]
        if scalars:
            raise DynamicShapeError(f"{gear[0]}: with gears ATC needs scalar inputs in input_shape too "
                                    f"(as '{scalars[0]}:'): missing {', '.join(scalars)}")

    notes = []
    if converted or not on_disk:
        model_path, write_model = stem.with_name(stem.name + ".atc.onnx"), True
        if converted:
            meta = {p.key: p.value for p in proto.metadata_props}
            notes.append(f"laid out by the atc pass: layout {meta.get('onnx_npuq.layout')}, "
                         f"opset {meta.get('onnx_npuq.opset')}")
    else:
        model_path, write_model = Path(os.fspath(model)), False
    if write_model and on_disk and Path(os.fspath(model)).resolve() == model_path.resolve():
        raise AtcOptionError(f"output {stem}: {model_path} is the input model, which writing the laid-out model "
                             "would overwrite (choose another output stem)")

    keep_path, lines = None, []
    if keep_dtype is not None:
        keep_path = Path(os.fspath(keep_dtype))
        if _keeps_origin(precision_mode, precision_mode_v2):
            raise PrecisionError("keep_dtype has no effect with precision_mode_v2=origin / "
                                 "precision_mode=must_keep_origin_dtype (ATC ignores it)")
        notes.append(f"--keep_dtype={keep_path} given: used as it is (make sure it lists the custom nodes)")
    elif keep_fp32 == "keep_dtype" and not _keeps_origin(precision_mode, precision_mode_v2):
        lines = keep_dtype_lines(proto)
        if lines:
            keep_path = stem.with_name(stem.name + ".keep_dtype.cfg")
            if precision_mode is None and precision_mode_v2 is None:
                precision_mode_v2 = "fp16"  # ATC's default, explicit: --keep_dtype goes with a precision flag
            notes.append(f"{keep_path} keeps the dtypes of {len(custom_nodes(proto))} custom node(s) "
                         f"({', '.join(line for line in lines if line.startswith('OpType::')) or 'by name'})")
    elif _keeps_origin(precision_mode, precision_mode_v2) and custom_nodes(proto):
        notes.append("precision origin: the whole graph keeps its dtypes (custom nodes included)")
    if keep_path is not None and not _KEEP_DTYPE_PATH.match(str(keep_path)):
        raise AtcOptionError(f"keep_dtype path {str(keep_path)!r}: ATC takes letters, digits, _ - . and "
                             "CJK characters only (choose another output stem)")

    argv = ["atc", f"--model={model_path}", f"--framework={FRAMEWORK_ONNX}", f"--output={stem}",
            f"--soc_version={soc.name}", f"--input_format={input_format}"]
    if shapes:
        argv.append(f"--input_shape={format_input_shapes(shapes)}")
    if gear:
        argv.append(f"--{gear[0]}={gear[1]}")
    if precision_mode:
        argv.append(f"--precision_mode={precision_mode}")
    if precision_mode_v2:
        argv.append(f"--precision_mode_v2={precision_mode_v2}")
    if keep_path is not None:
        argv.append(f"--keep_dtype={keep_path}")
    argv.append(f"--log={log}")
    argv += extra_args
    return AtcCommand(argv, proto, model_path, write_model, stem.with_name(stem.name + ".om"),
                      keep_path, lines, notes, data_dir)


def build_command(model, soc_version: str, output_stem, input_shapes=None, dynamic_batch=None,
                  dynamic_image_size=None, dynamic_dims=None, input_format: str = "ND",
                  precision_mode: str | None = None, precision_mode_v2: str | None = None,
                  keep_dtype: str | os.PathLike | None = None, keep_fp32: str = "keep_dtype",
                  log: str = "error", extra=None, layout: str | None = None,
                  opset: int | None = None) -> list[str]:
    """The checked `atc` argument list (see plan_command, whose .write() puts the model and the
    --keep_dtype file it names on disk)."""
    return plan_command(model, soc_version, output_stem, input_shapes=input_shapes, dynamic_batch=dynamic_batch,
                        dynamic_image_size=dynamic_image_size, dynamic_dims=dynamic_dims,
                        input_format=input_format, precision_mode=precision_mode,
                        precision_mode_v2=precision_mode_v2, keep_dtype=keep_dtype, keep_fp32=keep_fp32,
                        log=log, extra=extra, layout=layout, opset=opset).argv
