"""torchao's quantized models in onnx_npuq: their exact codes and scales, no re-quantization.

    model = adopt_torchao(model)          # a copy; the torchao layers swapped, the rest shared
    onnx_npuq.export(model, args, "m.onnx")
    report = from_torchao(model)          # the same, in place; -> QuantReport

A Linear whose weight is one of torchao's quantized tensors becomes a TorchaoLinear (a
QuantLinear: it exports as packed npuq::Dequantize weights) holding that tensor's own codes
and scales, packed in the onnx_npuq format that decodes them to the values torchao's
`weight.dequantize()` gives (bit for bit, float32):

| torchao weight | onnx_npuq format |
|---|---|
| Float8Tensor e4m3 / e5m2: per row, per group along K, per tensor | fp8e4m3 / fp8e5m2 (per tensor: the weight as one row, one scale) |
| Int8Tensor (symmetric: zero points 0): per row, group, tensor | int8sym |
| IntxUnpackedToInt8Tensor, symmetric: int4 (int1..int3 stored as int4) / int8 (int5..int7 as int8) | int4sym / int8sym, group = torchao's block |
| Int8Tensor / IntxUnpackedToInt8Tensor with zero points | int4sym / int8sym rows [codes, zero points] with scale 1.0, then (code - zero point) * scale per group (standard ONNX ops) |
| MXTensor fp8 e4m3 / e5m2, fp4 (swizzled scales or not) | mxfp8e4m3 / mxfp8e5m2 / mxfp4, rounding="even", scale_rule from the activation config |
| NVFP4Tensor with / without a per-tensor scale (swizzled or not) | nvfp4 / nvf4 |

Decoding: element value * scale in float32 for every row above (torchao's order of operations;
with zero points (q - zp) * scale, the difference exact), then the cast to the weight's dtype.
Zero points: each packed row holds the row's codes and then its zero points (int4 or int8
like the codes; torchao clamps them to the codes' range), decoded by npuq::Dequantize with a
scale of 1.0 (the integers, exactly); Slice, Sub and Mul by the float32 group scales follow.
That costs 32 bits a row (the unit scale) beyond torchao's element + scale + zero-point bits,
and saves 4 bits a group for int4 (4-bit zero points). It uses the int4sym / int8sym
Dequantize that the NPU kernels implement; the asymmetric import formats (uint4asym,
uint8asym: formats/asym.py) would store the same values in one node, but no NPU kernel takes
them.

Activation quantization recorded on a weight is exported as npuq::QuantDequant where torchao's
rule is exactly an onnx_npuq format, and left out (the layer weight-only, said in the report's
`note`) where it is not:
- MX (QuantizeTensorToMXKwargs): mxfp8e4m3 / mxfp8e5m2 / mxfp4, rounding="even", scale_rule
  "floor" or "rceil" (torchao's CEIL and EVEN modes: left). Exact for float32 and bfloat16.
- Float8 (QuantizeTensorToFloat8Kwargs, per row or per tensor, no hp_value bounds): fp8e4m3 /
  fp8e5m2 for float32 models. torchao takes amax / max in the input's dtype, so a bfloat16
  model's scales are rounded to bfloat16: left. (An all-zero row is NaN in torchao, 0 here.)
- int8 (Int8Tensor's QuantizeTensorToInt8Kwargs, Intx 'int8_asym_per_token') and NVFP4
  (NVFP4Tensor's act_quant_kwargs): left; their rules are not int8sym / nvfp4 (see NOTES).

QAT modules (torchao's FakeQuantizedLinear, MXFakeQuantizedLinear, NVFP4FakeQuantizedLinear)
become TorchaoLinear too: the weight is quantized by torchao's own code for that fake quantizer
(Float8Tensor.from_hp's scale and cast, the Intx fake quantizer's qparams and rounding,
MXTensor.to_mx, NVFP4Tensor.to_nvfp4), so the stored weight decodes to exactly what the fake
quantizer returns (checked at conversion: a layer where it does not is left as it is, with the
reason); the activation fake quantizer becomes npuq::QuantDequant under the rules above.

torchao is optional: without it (or before anything imported it, when no torchao tensor can
exist) every function here is a no-op.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib.util
import math
import sys
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import formats
from ..ops import defs as ops
from .linear import QuantLinear
from .spec import spec_str
from .weight import Layout

SOURCE = "torchao"

# Why torchao's activation rules that have no onnx_npuq format are left out.
NOTES = {
    "int8": "torchao's int8 activation rule (scale max(amax / 127.5, eps) taken in the input's dtype, "
            "codes round(x * (1 / scale)) in [-128, 127]) is not int8sym (amax / 127, x / scale, [-127, 127])",
    "int8_asym": "asymmetric int8 per token (a zero point per row): onnx_npuq.formats has no "
                 "asymmetric fake-quant format",
    "nvfp4": "torchao's NVFP4 rule clamps block scales at 2^-6 and multiplies by a reciprocal "
             "(x * ((1 / tensor_scale) / block_scale)): not nvfp4's division and subnormal E4M3 scales",
    "float8_bf16": "torchao takes a float8 scale as amax / max in the input's dtype: for a {dtype} "
                   "model that is rounded to {dtype}, which fp8e4m3 / fp8e5m2 (float32 scales) are not",
    "float8_bounds": "hp_value_lb / hp_value_ub clamp torchao's float8 amax: no such option in fp8e4m3 / fp8e5m2",
    "static": "a static activation scale (act_quant_scale): onnx_npuq fake-quantizes with dynamic scales",
    "mx_mode": "MX scaling mode {mode}: onnx_npuq's MX scale rules are floor and rceil",
}

_FP8_FORMATS = {torch.float8_e4m3fn: "fp8e4m3", torch.float8_e5m2: "fp8e5m2"}
_MX_FORMATS = {torch.float8_e4m3fn: "mxfp8e4m3", torch.float8_e5m2: "mxfp8e5m2",
               getattr(torch, "float4_e2m1fn_x2", None): "mxfp4"}
_MX_RULES = {"FLOOR": "floor", "RCEIL": "rceil"}
_INT_BITS = {**{getattr(torch, f"int{b}"): b for b in range(1, 8) if hasattr(torch, f"int{b}")}, torch.int8: 8}


def available() -> bool:
    """Whether torchao is installed."""
    return importlib.util.find_spec("torchao") is not None


def _loaded() -> bool:
    """A torchao tensor or module exists only once torchao has been imported."""
    return "torchao" in sys.modules


def is_torchao_tensor(t) -> bool:
    return isinstance(t, torch.Tensor) and type(t).__module__.split(".", 1)[0] == "torchao"


def _torchao_class(module: nn.Module) -> bool:
    return type(module).__module__.split(".", 1)[0] == "torchao"


def _is_torchao_layer(m: nn.Module) -> bool:
    return (_torchao_class(m) and isinstance(m, nn.Linear)) or any(
        is_torchao_tensor(p) for p in m.parameters(recurse=False))


def torchao_layers(model: nn.Module) -> list[str]:
    """Names of the submodules from_torchao acts on: modules with a torchao weight of their
    own, and torchao's QAT modules."""
    if not _loaded():
        return []
    return [name for name, m in model.named_modules() if name and _is_torchao_layer(m)]


class Unsupported(Exception):
    """A torchao layer from_torchao leaves as it is; the message says why."""


# ---- a torchao weight -> the packed weight of a QuantLinear --------------------------------

@dataclass
class Adopted:
    """What a torchao weight becomes: a packed matrix (Layout.matrix, blocked along axis 1)."""

    fmt: formats.Format
    layout: Layout
    packed: formats.Packed
    group_scale: torch.Tensor | None = None  # with zero points: float32 (rows, groups)
    activation: formats.Format | None = None
    act_per_tensor: bool = False
    note: str | None = None  # activation quantization left out, and why


def _f32_bytes(scale: torch.Tensor, rows: int) -> torch.Tensor:
    return scale.detach().to(torch.float32).contiguous().reshape(rows, -1).view(torch.uint8)


def _blocking(block_size, shape) -> tuple[str, int | None]:
    """torchao's block_size on an (N, K) weight -> ("row", group or None) or ("tensor", None)."""
    n, k = shape
    bn, bk = (int(b) for b in block_size)
    if bn == n and bk == k and n > 1:
        return "tensor", None
    if bn == 1 and k % bk == 0:
        return "row", (None if bk == k else bk)
    raise Unsupported(f"block size {list(block_size)} on a {n}x{k} weight: onnx_npuq blocks run along "
                      "rows (per row, per group of a row, or the whole tensor)")


def _packed(name: str, codes: torch.Tensor, scales: torch.Tensor, layout: Layout, block: int, dtype,
            tensor_scale=None, **options) -> tuple[formats.Format, formats.Packed]:
    fmt = formats.get_format(name, **options)
    rows, length = layout.matrix
    p = formats.Packed(format=fmt.name, codes=codes.reshape(rows, -1), scales=scales.reshape(rows, -1),
                       shape=(rows, length), axis=1, dtype=dtype, block=block,
                       tensor_scale=tensor_scale, options=dict(fmt.options))
    return fmt, p


def _int_codes(q: torch.Tensor, bits: int) -> torch.Tensor:
    """int8 values (fitting `bits`) of an (rows, length) matrix -> Packed codes of int{bits}sym."""
    c = q.contiguous().view(torch.uint8)
    if bits == 4:
        c = c & 0x0F
        if c.shape[1] % 2:
            c = F.pad(c, (0, 1))
        c = formats.base.pack_nibbles(c)
    return c


def _integer(w, qdata, scale, zero_point, block_size, bits: int) -> Adopted:
    """Integer codes q (int8 tensor), float scales and int8 zero points per block."""
    shape = tuple(qdata.shape)
    kind, group = _blocking(block_size, shape)
    name = "int4sym" if bits <= 4 else "int8sym"
    if zero_point is not None and zero_point.dtype.is_floating_point:
        raise Unsupported("a floating-point zero point (zero_point_domain FLOAT): onnx_npuq's "
                          "integer formats take integer zero points")
    asym = zero_point is not None and bool((zero_point != 0).any())
    if not asym:
        layout = Layout.flat(shape) if kind == "tensor" else Layout.rows_of(shape, 1)
        rows, length = layout.matrix
        q = qdata.reshape(rows, length)
        block = group or length
        codes = _int_codes(q, 4 if name == "int4sym" else 8)
        fmt, p = _packed(name, codes, _f32_bytes(scale, rows), layout, block, w.dtype,
                         **({"group": group} if group else {}))
        return Adopted(fmt, layout, p)
    # zero points: each row holds its codes, then its zero points (int4 / int8 like the codes),
    # decoded with scale 1.0 (exact integers); (code - zp) * scale per group beside them
    n, k = shape
    groups = 1 if kind == "tensor" else k // (group or k)
    zp = zero_point.detach().reshape(-1, groups).expand(n, groups)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if bool((zp < lo).any() or (zp > hi).any()) or bool((qdata < lo).any() or (qdata > hi).any()):
        raise Unsupported(f"codes or zero points outside the int{bits} range [{lo}, {hi}]")
    rows = torch.cat([qdata.to(torch.int8), zp.to(torch.int8)], dim=1)
    layout = Layout.rows_of(shape, 1)
    ones = torch.ones(n, 1, dtype=torch.float32)
    fmt = formats.get_format(name)
    p = formats.Packed(format=name, codes=_int_codes(rows, 4 if name == "int4sym" else 8),
                       scales=_f32_bytes(ones, n), shape=(n, k + groups), axis=1, dtype=w.dtype,
                       block=k + groups)
    gs = scale.detach().to(torch.float32).reshape(-1, groups).expand(n, groups).contiguous()
    return Adopted(fmt, layout, p, group_scale=gs)


def _float8(w) -> Adopted:
    name = _FP8_FORMATS.get(w.qdata.dtype)
    if name is None:
        raise Unsupported(f"float8 dtype {w.qdata.dtype}: onnx_npuq has fp8e4m3 (float8_e4m3fn) and fp8e5m2")
    if w.qdata.dim() != 2:
        raise Unsupported(f"a {w.qdata.dim()}-d Float8Tensor (only Linear weights are adopted)")
    shape = tuple(w.qdata.shape)
    kind, group = _blocking(w.block_size, shape)
    layout = Layout.flat(shape) if kind == "tensor" else Layout.rows_of(shape, 1)
    rows, length = layout.matrix
    codes = w.qdata.contiguous().view(torch.uint8).reshape(rows, length)
    fmt, p = _packed(name, codes, _f32_bytes(w.scale, rows), layout, group or length, w.dtype,
                     **({"group": group} if group else {}))
    out = Adopted(fmt, layout, p)
    k = getattr(w, "act_quant_kwargs", None)
    if k is not None:
        _float8_activation(out, k.float8_dtype, k.granularity, k.hp_value_lb, k.hp_value_ub, w.dtype)
    return out


def _float8_activation(out: Adopted, dtype, granularity, lb, ub, model_dtype) -> None:
    name = _FP8_FORMATS.get(dtype)
    gran = type(granularity).__name__
    if name is None:
        out.note = f"activation float8 dtype {dtype}: not fp8e4m3 / fp8e5m2"
    elif gran not in ("PerRow", "PerTensor") or (gran == "PerRow" and getattr(granularity, "dim", -1) != -1):
        out.note = f"activation granularity {granularity}: onnx_npuq fake-quantizes per row (last axis) or per tensor"
    elif lb is not None or ub is not None:
        out.note = NOTES["float8_bounds"]
    elif model_dtype != torch.float32:
        out.note = NOTES["float8_bf16"].format(dtype=str(model_dtype).replace("torch.", ""))
    else:
        out.activation = formats.get_format(name)
        out.act_per_tensor = gran == "PerTensor"


def _int8(w) -> Adopted:
    if w.qdata.dim() != 2:
        raise Unsupported(f"a {w.qdata.dim()}-d Int8Tensor (only Linear weights are adopted)")
    if getattr(w, "act_pre_scale", None) is not None:
        raise Unsupported("act_pre_scale (AWQ / SmoothQuant input scaling) is not exported")
    out = _integer(w, w.qdata, w.scale, w.zero_point, w.block_size, 8)
    if w.act_quant_kwargs is not None:
        static = getattr(w, "act_quant_scale", None) is not None
        out.note = NOTES["static" if static else "int8"]
    return out


def _intx(w) -> Adopted:
    bits = _INT_BITS.get(w.target_dtype)
    if bits is None:
        raise Unsupported(f"target dtype {w.target_dtype}: onnx_npuq has int4sym and int8sym")
    if w.qdata.dim() != 2:
        raise Unsupported(f"a {w.qdata.dim()}-d IntxUnpackedToInt8Tensor (only Linear weights are adopted)")
    out = _integer(w, w.qdata, w.scale, w.zero_point, w.block_size, bits)
    if w.activation_quantization is not None:
        out.note = NOTES["int8_asym"]  # activation_quantization 'int8_asym_per_token'
    return out


def _unswizzle(scale: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    from torchao.prototype.mx_formats.utils import from_blocked

    return from_blocked(scale, rows, cols)


def _mx(w) -> Adopted:
    name = _MX_FORMATS.get(w.elem_dtype)
    if name is None:
        raise Unsupported(f"MX element {w.elem_dtype}: onnx_npuq has mxfp8e4m3, mxfp8e5m2 and mxfp4")
    if w.block_size != 32:
        raise Unsupported(f"MX block size {w.block_size}: onnx_npuq's MX formats block 32 elements")
    if w.qdata.dim() != 2 or not w.qdata.is_contiguous():
        raise Unsupported("a non-contiguous or not 2-d MXTensor (only Linear weights are adopted)")
    n, k = w.shape
    scale = w.scale.view(torch.uint8)
    if w.is_swizzled_scales:
        scale = _unswizzle(scale, n, k // 32)
    options = {"rounding": "even"}
    out_note, act = None, None
    kw = w.act_quant_kwargs
    if kw is not None:
        rule = _MX_RULES.get(kw.scaling_mode.name)
        act_name = _MX_FORMATS.get(kw.elem_dtype)
        if rule is None:
            out_note = NOTES["mx_mode"].format(mode=kw.scaling_mode.name)
        elif act_name is None or kw.block_size != 32:
            out_note = f"MX activation element {kw.elem_dtype}, block {kw.block_size}: no onnx_npuq format"
        else:
            options["scale_rule"] = rule
            act = formats.get_format(act_name, rounding="even", scale_rule=rule)
    layout = Layout.rows_of((n, k), 1)
    codes = w.qdata.contiguous().view(torch.uint8)
    fmt, p = _packed(name, codes, scale.contiguous(), layout, 32, w.dtype, **options)
    return Adopted(fmt, layout, p, activation=act, note=out_note)


def _nvfp4(w) -> Adopted:
    if w.block_size != 16:
        raise Unsupported(f"NVFP4 block size {w.block_size}: nvfp4 blocks 16 elements")
    if w.qdata.dim() != 2 or not w.qdata.is_contiguous():
        raise Unsupported("a non-contiguous or not 2-d NVFP4Tensor (only Linear weights are adopted)")
    n, k = w.shape
    scale = w.scale.view(torch.uint8)
    if w.is_swizzled_scales:
        scale = _unswizzle(scale, n, k // 16)
    ts = w.per_tensor_scale
    name = "nvf4" if ts is None else "nvfp4"
    if ts is not None:
        if ts.numel() != 1:
            raise Unsupported("a per-expert tensor scale: nvfp4 has one per tensor")
        ts = ts.detach().to(torch.float32).reshape(()).clone()
    layout = Layout.rows_of((n, k), 1)
    fmt, p = _packed(name, w.qdata.contiguous().view(torch.uint8), scale.contiguous(), layout, 16, w.dtype,
                     tensor_scale=ts)
    note = NOTES["nvfp4"] if w.act_quant_kwargs is not None else None
    return Adopted(fmt, layout, p, note=note)


_WEIGHTS = {"Float8Tensor": _float8, "Int8Tensor": _int8, "IntxUnpackedToInt8Tensor": _intx,
            "MXTensor": _mx, "NVFP4Tensor": _nvfp4}


@torch.no_grad()
def adopt_weight(w: torch.Tensor) -> Adopted:
    """A torchao quantized weight (N, K) -> what it becomes (codes and scales as they are)."""
    convert = _WEIGHTS.get(type(w).__name__)
    if convert is None:
        raise Unsupported(f"torchao weight type {type(w).__name__} (adopted: {', '.join(_WEIGHTS)})")
    return convert(w)


# ---- QAT: the weight quantized by torchao's own code for its fake quantizer -----------------

def _fq_float8(fq, weight):
    """The Float8Tensor Float8FakeQuantizer's arithmetic rounds the weight to (the same
    _choose_scale_float8 and _quantize_affine_float8)."""
    from torchao.quantization import Float8Tensor

    c = fq.config
    if c.hp_value_lb is not None or c.hp_value_ub is not None:
        raise Unsupported(NOTES["float8_bounds"])
    return Float8Tensor.from_hp(weight, float8_dtype=c.dtype, granularity=c.granularity)


def _fq_intx(fq, weight):
    """The codes IntxFakeQuantizer rounds the weight to, as an IntxUnpackedToInt8Tensor-like
    record (its own qparams and _quantize_affine_no_dtype_cast)."""
    from torchao.quantization.granularity import PerAxis, PerGroup
    from torchao.quantization.quant_primitives import (
        _DTYPE_TO_QVALUE_BOUNDS,
        ZeroPointDomain,
        _quantize_affine_no_dtype_cast,
    )

    c = fq.config
    if not isinstance(c.granularity, (PerAxis, PerGroup)):
        raise Unsupported(f"weight granularity {c.granularity}")
    if c.zero_point_domain != ZeroPointDomain.INT or c.range_learning or not c.is_dynamic:
        raise Unsupported("zero_point_domain other than INT, range learning or static qparams")
    if c.dtype not in _INT_BITS:
        raise Unsupported(f"fake-quantized dtype {c.dtype}: onnx_npuq has int4sym and int8sym")
    group = weight.shape[-1] if isinstance(c.granularity, PerAxis) else c.granularity.group_size
    fq(weight)  # computes (and keeps) the scale and zero point it uses
    scale, zp = fq.scale.detach(), fq.zero_point.detach()
    qmin, qmax = _DTYPE_TO_QVALUE_BOUNDS[c.dtype]
    q = _quantize_affine_no_dtype_cast(weight, [1, group], scale, zp, qmin, qmax)
    if zp.dtype.is_floating_point:
        if not torch.equal(zp, zp.round()):
            raise Unsupported("a fractional zero point")
    record = _IntxRecord(q.to(torch.int8), scale, zp.to(torch.int8), (1, group), c.dtype, weight.dtype, None)
    return record


@dataclass
class _IntxRecord:
    qdata: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor
    block_size: tuple
    target_dtype: torch.dtype
    dtype: torch.dtype
    activation_quantization: object


def _qat_activation(fq, out: Adopted, model_dtype) -> None:
    """An activation fake quantizer -> out.activation, or out.note when it is not ours."""
    if fq is None or not getattr(fq, "enabled", True):
        return
    kind = type(fq).__name__
    if kind == "Float8FakeQuantizer":
        c = fq.config
        _float8_activation(out, c.dtype, c.granularity, c.hp_value_lb, c.hp_value_ub, model_dtype)
    elif kind == "IntxFakeQuantizer":
        out.note = NOTES["int8" if fq.config.is_symmetric else "int8_asym"]
    else:
        out.note = f"activation fake quantizer {kind}: no onnx_npuq format"


def _qat_linear(m: nn.Module) -> Adopted:
    kind = type(m).__name__
    weight = m.weight.detach()
    if kind == "FakeQuantizedLinear":
        wfq = m.weight_fake_quantizer
        if wfq is None or not getattr(wfq, "enabled", True):
            raise Unsupported("no (enabled) weight fake quantizer: the weight is float")
        wfq = copy.deepcopy(wfq)  # calling it caches its qparams: leave the model's as they are
        wkind = type(wfq).__name__
        if wkind == "Float8FakeQuantizer":
            out = _float8(_fq_float8(wfq, weight))
        elif wkind == "IntxFakeQuantizer":
            out = _intx(_fq_intx(wfq, weight))
        else:
            raise Unsupported(f"weight fake quantizer {wkind}: no onnx_npuq format")
        expect = wfq(weight)
        _qat_activation(m.activation_fake_quantizer, out, weight.dtype)
    elif kind == "MXFakeQuantizedLinear":
        from torchao.prototype.mx_formats.mx_tensor import MXTensor, QuantizeTensorToMXKwargs

        wc, ac = m.weight_config, m.activation_config
        act = QuantizeTensorToMXKwargs(elem_dtype=ac.dtype, block_size=ac.block_size, scaling_mode=ac.scaling_mode)
        t = MXTensor.to_mx(weight, wc.dtype, wc.block_size, scaling_mode=wc.scaling_mode, act_quant_kwargs=act)
        out = _mx(t)  # (decoding does not depend on the weight's scaling mode)
        expect = t.dequantize(weight.dtype)
    elif kind == "NVFP4FakeQuantizedLinear":
        from torchao.prototype.mx_formats.nvfp4_tensor import NVFP4Tensor, per_tensor_amax_to_scale

        ts = per_tensor_amax_to_scale(weight.abs().max()) if m.weight_config.use_per_tensor_scale else None
        t = NVFP4Tensor.to_nvfp4(weight, per_tensor_scale=ts, is_swizzled_scales=False)
        out = _nvfp4(t)
        out.note = NOTES["nvfp4"]
        expect = t.dequantize(weight.dtype)
    else:
        raise Unsupported(f"torchao module {kind} (adopted: FakeQuantizedLinear, MXFakeQuantizedLinear, "
                          "NVFP4FakeQuantizedLinear)")
    got = _decode(out, weight.shape).to(weight.dtype)
    if not torch.equal(got, expect):
        bad = (got != expect).sum().item()
        raise Unsupported(f"its stored weight would differ from the fake quantizer's output in {bad} "
                          f"of {expect.numel()} values")
    return out


def _decode(a: Adopted, shape) -> torch.Tensor:
    """The float32 weight an Adopted stores, as TorchaoLinear.dequantized_weight computes it."""
    m = dataclasses.replace(a.packed, dtype=torch.float32).decode()
    if a.group_scale is not None:
        m = _apply_zero_point(m, a.group_scale)
    return a.layout.from_matrix(m, tuple(shape))


def _apply_zero_point(m: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Decoded rows [codes (K), zero points (G)] (float32 integers) -> (code - zp) * scale per
    group of K / G codes: torchao's dequantize_affine, (q - zp) exact, one rounding."""
    rows, groups = scale.shape
    k = m.shape[1] - groups
    c, zp = m[:, :k].reshape(rows, groups, -1), m[:, k:]
    return ((c - zp.unsqueeze(-1)) * scale.unsqueeze(-1)).reshape(rows, k)


# ---- the modules ---------------------------------------------------------------------------

class TorchaoLinear(QuantLinear):
    """A QuantLinear built from a torchao weight's own codes and scales (see the module doc).

    With zero points, each packed row holds the row's codes and then its zero points (in the
    same int4sym / int8sym element, scale 1.0), `weight_group_scale` the float32 scales (out,
    groups), and the weight is (code - zero point) * scale per group. `act_per_tensor` fake-quantizes
    the input as one row (a per-tensor scale)."""

    def __init__(self, adopted: Adopted, shape, bias: torch.Tensor | None, source: str = ""):
        nn.Module.__init__(self)
        self.out_features, self.in_features = shape
        p = adopted.packed
        self.weight_format = adopted.fmt
        self.weight_shape = tuple(shape)
        self.weight_dtype = p.dtype
        self.weight_layout = adopted.layout
        self.weight_block = p.block
        self.register_buffer("weight_codes", p.codes.contiguous().clone())
        self.register_buffer("weight_scales", p.scales.contiguous().clone())
        ts = p.tensor_scale
        self.register_buffer("weight_tensor_scale", None if ts is None else ts.detach().float().clone())
        # zero points: stored after each row's codes (weight_zero_points per row), the group
        # scales as float32 (out, groups)
        gs = adopted.group_scale
        self.weight_zero_points = 0 if gs is None else gs.shape[1]
        self.register_buffer("weight_group_scale", None if gs is None else gs.contiguous().clone())
        self.act_format = adopted.activation
        self.act_per_tensor = adopted.act_per_tensor
        self.source = source
        self.note = adopted.note  # activation quantization torchao applies and this layer leaves out
        if bias is not None:
            bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
        self.bias = bias

    def dequantized_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The weight through npuq::Dequantize (and the zero points), in `dtype` (default: the
        torchao weight's dtype); float32 is torchao's `weight.dequantize(torch.float32)`."""
        p = dataclasses.replace(self.packed_weight(), dtype=torch.float32)
        m = ops.dequantize(p)
        if self.weight_zero_points:
            m = _apply_zero_point(m, self.weight_group_scale)
        return self.weight_layout.from_matrix(m, self.weight_shape).to(dtype or self.weight_dtype)

    def packed_weight(self) -> formats.Packed:
        p = super().packed_weight()
        if self.weight_zero_points:  # each row: its codes, then its zero points
            p = dataclasses.replace(p, shape=(p.shape[0], p.shape[1] + self.weight_zero_points))
        return p

    @property
    def weight_bytes(self) -> int:
        extra = 0 if self.weight_group_scale is None else 4 * self.weight_group_scale.numel()
        return super().weight_bytes + extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act_format is not None and self.act_per_tensor:
            x = ops.quant_dequant(x.reshape(1, -1), self.act_format).reshape(x.shape)
        elif self.act_format is not None:
            x = ops.quant_dequant(x, self.act_format, -1)
        return F.linear(x, self.dequantized_weight().to(x.dtype), self.bias)

    def extra_repr(self) -> str:
        zp = ", zero points" if self.weight_zero_points else ""
        tensor = " per tensor" if self.act_per_tensor else ""
        return super().extra_repr() + f"{zp}{tensor}, from {self.source}"


def adopt_module(m: nn.Module) -> TorchaoLinear:
    """One torchao Linear (quantized weight or QAT module) -> its TorchaoLinear; raises
    Unsupported with the reason when it cannot be adopted exactly."""
    if not isinstance(m, nn.Linear):
        raise Unsupported(f"a torchao weight on {type(m).__name__}: only Linear layers are adopted")
    w = m.weight
    if is_torchao_tensor(w):
        a = adopt_weight(w)
        source = f"torchao {type(w).__name__}"
    elif _torchao_class(m):
        a = _qat_linear(m)
        source = f"torchao {type(m).__name__}"
    else:
        raise Unsupported("not a torchao layer")
    return TorchaoLinear(a, tuple(w.shape), m.bias, source)


# ---- whole models ----------------------------------------------------------------------------

def _row(name: str, m: nn.Module, q: TorchaoLinear) -> dict:
    return {
        "name": name,
        "type": type(m).__name__,
        "format": spec_str(q.weight_format),
        "activation": None if q.act_format is None else spec_str(q.act_format),
        "shape": list(q.weight_shape),
        "layout": q.weight_layout.describe()
        + (f", {q.weight_zero_points} zero points each" if q.weight_zero_points else ""),
        "fp32_bytes": 4 * math.prod(q.weight_shape),
        "packed_bytes": q.weight_bytes,
        "source": q.source,
    }


def _parent(model: nn.Module, name: str):
    parent_name, _, child = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), child


@torch.no_grad()
def from_torchao(model: nn.Module, names: list[str] | None = None):
    """Swap every torchao layer of `model` (in place) for its TorchaoLinear; -> QuantReport.

    Report rows carry `source` ("torchao <type>") and, where torchao quantizes activations
    in a way onnx_npuq has no format for, a `note` (the layer is then weight-only). Layers it
    cannot adopt exactly stay as they are, in `left_float` with the reason."""
    from .quantize import QuantReport

    report = QuantReport()
    if not _loaded():
        return report
    for name in torchao_layers(model) if names is None else names:
        parent, child = _parent(model, name)
        m = getattr(parent, child)
        try:
            q = adopt_module(m)
        except Unsupported as err:
            report.left_float.append({"name": name, "type": type(m).__name__,
                                      "reason": f"torchao layer left as it is: {err}", "source": SOURCE})
            continue
        q.train(m.training)
        setattr(parent, child, q)
        row = _row(name, m, q)
        if q.note:
            row["note"] = f"activation quantization left out (weight-only): {q.note}"
        report.layers.append(row)
    if report.left_float or any("note" in r for r in report.layers):
        parts = [f"{r['name']} ({r['reason']})" for r in report.left_float[:3]]
        parts += [f"{r['name']}: {r['note']}" for r in report.layers if "note" in r][:3]
        warnings.warn("onnx_npuq: torchao layers not adopted exactly: " + "; ".join(parts), stacklevel=3)
    return report


def _cow_copy(model: nn.Module, names: list[str]) -> nn.Module:
    """A shallow copy of `model` with its own module dicts along the paths to `names`: setting
    those modules on it leaves `model` untouched; every other module is shared."""
    def own(m: nn.Module) -> nn.Module:
        c = copy.copy(m)
        # its own dicts: a .to() / .float() of the copy must not rewrite the original's
        c._modules, c._parameters, c._buffers = m._modules.copy(), m._parameters.copy(), m._buffers.copy()
        return c

    root = own(model)
    copies = {"": root}
    for name in names:
        parent, path = root, ""
        for part in name.split(".")[:-1]:
            path = f"{path}.{part}" if path else part
            if path not in copies:
                copies[path] = parent._modules[part] = own(parent._modules[part])
            parent = copies[path]
    return root


def adopt_torchao(model: nn.Module) -> nn.Module:
    """`model` with its torchao layers swapped for TorchaoLinear, without changing `model`: a
    copy that shares every module it does not swap (no weights are copied; the modules on the
    paths to the swapped ones are shallow copies). `model` itself when it has no torchao layer
    (or torchao is not installed). The copy's `npuq_report` adds the torchao layers to any
    report `model` had. Meant to be read (exported, run), not trained or moved: a `.to()` of
    the copy converts the shared modules of `model` too."""
    if _loaded() and _is_torchao_layer(model):  # the model is one torchao Linear
        out = nn.Sequential()
        out.add_module("layer", model)
        out = adopt_torchao(out)
        if not isinstance(out.layer, TorchaoLinear):
            return model
        for row in out.npuq_report.layers:
            row["name"] = ""  # the model itself, as named_modules names it
        out.layer.npuq_report = out.npuq_report
        return out.layer
    names = torchao_layers(model)
    if not names:
        return model
    out = _cow_copy(model, names)
    report = from_torchao(out, names)
    previous = getattr(model, "npuq_report", None)
    if previous is not None:
        report.layers[:0] = previous.layers
        report.left_float[:0] = previous.left_float
    out.npuq_report = report
    out.npuq_summary = report.layers
    return out


__all__ = ["available", "adopt_torchao", "from_torchao", "adopt_module", "adopt_weight", "torchao_layers",
           "is_torchao_tensor", "TorchaoLinear", "Unsupported", "NOTES"]
