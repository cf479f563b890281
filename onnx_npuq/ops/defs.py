"""The `npuq` op set, each op defined once: ONNX schema, torch custom op, export lowering.

    y = quant_dequant(x, "mxfp4")                  # torch.ops.npuq.quant_dequant
    w = dequantize(formats.encode(w, "hif4", 1))   # torch.ops.npuq.dequantize
    torch.onnx.export(..., custom_translation_table=TRANSLATIONS)

Contracts are kept small so function bodies and AscendC kernels stay small: QuantDequant
works along the last axis, Dequantize yields the float32 (rows, length) matrix of packed
rows. Moving an axis or casting to bf16/fp16 happens around them, as standard ops.
Format options travel as one ONNX attribute each (rounding, scale_rule, saturate, variant,
group, scale), so an ATC plugin can read them; a node's `overload` names the configuration, which
selects the model-local function body that onnxruntime runs (ONNX IR >= 10 overloads).
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx
import onnxscript
import torch
from onnx.defs import OpSchema

from .. import formats

DOMAIN = "npuq"
VERSION = 1

# Format option -> (ONNX attribute default). Defaults mean "option not given".
OPTION_DEFAULTS = {"rounding": "away", "scale_rule": "floor", "saturate": 0, "variant": "quant_cy", "group": 0,
                   "scale": "none"}

_FLOAT_TYPES = ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"]


def format_attrs(fmt: formats.Format) -> dict:
    """The ONNX attributes naming a configured format (options at their defaults if unset)."""
    opts = {k: OPTION_DEFAULTS[k] for k in OPTION_DEFAULTS}
    for k, v in fmt.options.items():
        opts[k] = int(v) if isinstance(v, bool) else v
    return {"format": fmt.name, **opts}


def format_from_attrs(attrs: dict) -> formats.Format:
    """Inverse of format_attrs; attributes left at their defaults are not passed on."""
    options = {}
    for k, default in OPTION_DEFAULTS.items():
        v = attrs.get(k, default)
        if v != default:
            options[k] = bool(v) if k == "saturate" else v
    return formats.get_format(attrs["format"], **options)


def overload_name(fmt: formats.Format) -> str:
    """Function-overload key of a configuration, e.g. 'mxfp4' or 'mxfp4.rounding=even'."""
    return fmt.name + "".join(f".{k}={v}" for k, v in sorted(fmt.options.items()))


@dataclass(frozen=True)
class Attr:
    name: str
    type: OpSchema.AttrType
    default: object = None  # None: required


@dataclass(frozen=True)
class OpDef:
    """One op of the set: its ONNX signature and the keys ATC finds its parser under."""

    name: str
    inputs: tuple[tuple[str, str, bool], ...]  # (name, type constraint, optional)
    outputs: tuple[tuple[str, str], ...]
    types: tuple[tuple[str, tuple[str, ...]], ...]
    attrs: tuple[Attr, ...]
    doc: str
    domain: str = DOMAIN
    version: int = VERSION

    def schema(self) -> OpSchema:
        opt, single = OpSchema.FormalParameterOption.Optional, OpSchema.FormalParameterOption.Single
        attrs = [
            OpSchema.Attribute(a.name, a.type, "") if a.default is None
            else OpSchema.Attribute(a.name, _attr_value(a), "")
            for a in self.attrs
        ]
        return OpSchema(
            self.name, self.domain, self.version, doc=self.doc,
            inputs=[OpSchema.FormalParameter(n, t, param_option=opt if o else single)
                    for n, t, o in self.inputs],
            outputs=[OpSchema.FormalParameter(n, t) for n, t in self.outputs],
            type_constraints=[(t, list(allowed), "") for t, allowed in self.types],
            attributes=attrs,
        )

    def atc_keys(self, layout: str = "domain", versions=range(11, 19)) -> list[str]:
        """Parser keys `<domain>::<version>::<op>` for ATC (spec/ascend.md)."""
        if layout == "domain":
            return [f"{self.domain}::{self.version}::{self.name}"]
        return [f"ai.onnx::{v}::{self.name}" for v in versions]


def _attr_value(a: Attr) -> onnx.AttributeProto:
    return onnx.helper.make_attribute(a.name, a.default)


_S, _I = OpSchema.AttrType.STRING, OpSchema.AttrType.INT
_OPTION_ATTRS = tuple(
    Attr(k, _S if isinstance(v, str) else _I, v) for k, v in OPTION_DEFAULTS.items()
)

QUANT_DEQUANT = OpDef(
    "QuantDequant",
    inputs=(("X", "T", False),),
    outputs=(("Y", "T"),),
    types=(("T", tuple(_FLOAT_TYPES)),),
    attrs=(Attr("format", _S),) + _OPTION_ATTRS,
    doc="Fake-quantize X along its last axis in `format` (onnx_npuq.formats).",
)
DEQUANTIZE = OpDef(
    "Dequantize",
    inputs=(("codes", "U", False), ("scales", "U", False), ("tensor_scale", "F", True)),
    outputs=(("Y", "F"),),
    types=(("U", ("tensor(uint8)",)), ("F", ("tensor(float)",))),
    attrs=(Attr("format", _S), Attr("block", _I), Attr("length", _I)),
    doc="Decode packed rows (onnx_npuq.formats.Packed codes/scales) to float32 (rows, length).",
)
QUANTIZE = OpDef(
    "Quantize",
    inputs=(("X", "T", False),),
    outputs=(("codes", "U"), ("scales", "U")),
    types=(("T", tuple(_FLOAT_TYPES)), ("U", ("tensor(uint8)",))),
    attrs=(Attr("format", _S),) + _OPTION_ATTRS,
    doc="Quantize X along its last axis in `format`: Packed codes and scale bytes (uint8, 2-D: "
        "rows = all dimensions but the last), the inputs of npuq::Dequantize.",
)
OPS = {op.name: op for op in (QUANT_DEQUANT, DEQUANTIZE, QUANTIZE)}

for _op in OPS.values():
    if not onnx.defs.has(_op.name, DOMAIN):
        onnx.defs.register_schema(_op.schema())


# ---- torch side: custom ops computed by onnx_npuq.formats ----

@torch.library.custom_op("npuq::quant_dequant", mutates_args=())
def _quant_dequant(
    x: torch.Tensor, format: str, rounding: str, scale_rule: str,
    saturate: int, variant: str, group: int, scale: str = "none",
) -> torch.Tensor:
    attrs = dict(format=format, rounding=rounding, scale_rule=scale_rule,
                 saturate=saturate, variant=variant, group=group, scale=scale)
    return format_from_attrs(attrs).fake_quant(x, -1)


@_quant_dequant.register_fake
def _(x, format, rounding, scale_rule, saturate, variant, group, scale="none"):
    return torch.empty_like(x)


@torch.library.custom_op("npuq::dequantize", mutates_args=())
def _dequantize(
    codes: torch.Tensor, scales: torch.Tensor, tensor_scale: torch.Tensor | None,
    format: str, block: int, length: int,
) -> torch.Tensor:
    return dequantize_rows(codes, scales, tensor_scale, format, block, length)


def dequantize_rows(codes: torch.Tensor, scales: torch.Tensor, tensor_scale: torch.Tensor | None,
                    format: str, block: int, length: int) -> torch.Tensor:
    """What an npuq::Dequantize node computes: formats' decode of its inputs and attributes,
    float32 (rows, length)."""
    rows = codes.shape[0]
    p = formats.Packed(format=format, codes=codes, scales=scales, shape=(rows, length), axis=1,
                       dtype=torch.float32, block=block, tensor_scale=tensor_scale)
    return formats.get_format(format).decode(p)


@_dequantize.register_fake
def _(codes, scales, tensor_scale, format, block, length):
    return codes.new_empty((codes.shape[0], length), dtype=torch.float32)


def _quantize_format(attrs: dict) -> formats.Format:
    fmt = format_from_attrs(attrs)
    if fmt.tensor_scale(torch.ones(1)) is not None:
        raise ValueError(
            f"npuq::Quantize: {fmt.name} is a two-level format (a per-tensor scale besides the "
            "block scales); Quantize has no tensor-scale output, use formats.encode instead"
        )
    return fmt


def packed_widths(fmt: formats.Format, length):
    """(codes width, scales width) of one row of `length` elements (ints or SymInts)."""
    block = fmt.block or length
    blocks = (length + block - 1) // block
    return blocks * ((block * fmt.elem_bits + 7) // 8), blocks * fmt.scale_bytes


@torch.library.custom_op("npuq::quantize", mutates_args=())
def _quantize(
    x: torch.Tensor, format: str, rounding: str, scale_rule: str,
    saturate: int, variant: str, group: int, scale: str = "none",
) -> tuple[torch.Tensor, torch.Tensor]:
    attrs = dict(format=format, rounding=rounding, scale_rule=scale_rule,
                 saturate=saturate, variant=variant, group=group, scale=scale)
    p = _quantize_format(attrs).encode(x, -1)
    return p.codes.contiguous(), p.scales.contiguous()


@_quantize.register_fake
def _(x, format, rounding, scale_rule, saturate, variant, group, scale="none"):
    attrs = dict(format=format, rounding=rounding, scale_rule=scale_rule,
                 saturate=saturate, variant=variant, group=group, scale=scale)
    fmt = _quantize_format(attrs)
    rows = 1
    for d in x.shape[:-1]:
        rows = rows * d
    cw, sw = packed_widths(fmt, x.shape[-1])
    return (x.new_empty((rows, cw), dtype=torch.uint8), x.new_empty((rows, sw), dtype=torch.uint8))


def quantize(x: torch.Tensor, fmt: str | formats.Format, **options):
    """(codes, scales) of formats.encode(x, fmt, axis=-1) through the custom op (exports as
    npuq::Quantize). Two-level formats (nvfp4) are rejected: no tensor-scale output."""
    f = formats.get_format(fmt, **options)
    a = format_attrs(f)
    return torch.ops.npuq.quantize(
        x, a["format"], a["rounding"], a["scale_rule"], a["saturate"], a["variant"], a["group"], a["scale"]
    )


def quant_dequant(x: torch.Tensor, fmt: str | formats.Format, axis: int = -1, **options):
    """Fake-quantize through the custom op (exports as npuq::QuantDequant on the last axis)."""
    f = formats.get_format(fmt, **options)
    a = format_attrs(f)
    last = axis in (-1, x.dim() - 1)
    xm = x if last else x.movedim(axis, -1)
    y = torch.ops.npuq.quant_dequant(
        xm, a["format"], a["rounding"], a["scale_rule"], a["saturate"], a["variant"], a["group"], a["scale"]
    )
    return y if last else y.movedim(-1, axis).contiguous()


def dequantize(p: formats.Packed) -> torch.Tensor:
    """Decode a Packed tensor through the custom op (exports as npuq::Dequantize)."""
    rows = torch.ops.npuq.dequantize(p.codes, p.scales, p.tensor_scale, p.format, p.block, p.length)
    moved = p.shape[: p.axis] + p.shape[p.axis + 1 :] + (p.length,)
    return rows.reshape(moved).movedim(-1, p.axis).to(p.dtype).contiguous()


# ---- export lowering: torch custom op -> npuq node ----

_opset = onnxscript.values.Opset(DOMAIN, VERSION)
_QD = onnxscript.values.Op(_opset, "QuantDequant", QUANT_DEQUANT.schema())
_DQ = onnxscript.values.Op(_opset, "Dequantize", DEQUANTIZE.schema())
_Q = onnxscript.values.Op(_opset, "Quantize", QUANTIZE.schema())


def _lower_quant_dequant(x, format: str, rounding: str, scale_rule: str,
                         saturate: int, variant: str, group: int, scale: str = "none"):
    return _QD(x, format=format, rounding=rounding, scale_rule=scale_rule,
               saturate=saturate, variant=variant, group=group, scale=scale)


def _lower_dequantize(codes, scales, tensor_scale, format: str, block: int, length: int):
    inputs = (codes, scales) if tensor_scale is None else (codes, scales, tensor_scale)
    return _DQ(*inputs, format=format, block=block, length=length)


def _lower_quantize(x, format: str, rounding: str, scale_rule: str,
                    saturate: int, variant: str, group: int, scale: str = "none"):
    return _Q(x, format=format, rounding=rounding, scale_rule=scale_rule,
              saturate=saturate, variant=variant, group=group, scale=scale)


TRANSLATIONS = {
    torch.ops.npuq.quantize.default: _lower_quantize,
    torch.ops.npuq.quant_dequant.default: _lower_quant_dequant,
    torch.ops.npuq.dequantize.default: _lower_dequantize,
}
