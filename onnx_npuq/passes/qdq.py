"""Foreign QDQ weights -> npuq::Dequantize: the `import-qdq` pass (exact).

    DequantizeLinear(W constant, scale[, zero point])          ("" / ai.onnx or com.microsoft)
      -> npuq::Dequantize(codes, scales[, tensor_scale]) [-> Reshape] [-> Transpose] [-> Reshape] [-> Cast]

A DequantizeLinear computes float32(x - zero point) * scale, once per element; the formats
below decode the same product from the same numbers, so the rewrite is bit-exact once every
block of a row sees one scale (and one zero point). The data type picks the format:
- INT8 / UINT8 / INT4 / UINT4: int8sym / int4sym with codes x - zero point when every
  difference fits the signed range of the same width (zero point 0 on signed data always
  does); else uint8asym / uint4asym (formats/asym.py): unsigned codes (signed ones shifted
  by 128 / 8, and their zero point with them) and a zero point per block;
- FLOAT8E4M3FN / FLOAT8E5M2 (zero point 0): fp8e4m3 / fp8e5m2 with float scales;
  mxfp8e4m3 / mxfp8e5m2 with FLOAT8E8M0 scales in blocks of 32;
- FLOAT4E2M1: nvfp4 when the scale is itself a DequantizeLinear of FLOAT8E4M3FN block
  scales by one float32 (NVIDIA's two-level NVFP4) in blocks of 16; nvf4 when float scales
  in blocks of 16 are all E4M3 values; mxfp4 with FLOAT8E8M0 scales (or float32 powers of
  two) in blocks of 32;
- INT32 (biases: scale = activation scale x weight scale) with a float32 scale: folded into
  the float32 constant it computes (the same bytes; no format holds 32-bit integers);
- AMCT / msModelSlim's AscendAntiQuant on a constant INT8 weight ((x - offset) * scale as its
  ONNX node reads, cast to its dtype): as a DequantizeLinear with zero point offset. Their
  int8 activation pipeline (AscendQuant -> Conv / MatMul on int8 weights -> AscendDequant
  with the UINT64 deq_scale) is ATC's alone: onnxruntime has no kernels, nothing could be
  checked, and it holds no DequantizeLinear: a PassError says so, with the decoded scales.
A DequantizeLinear reading its constant through a Gather (onnxruntime's dynamic
quantization gathers embeddings so) or a layout op, with one scale, is moved before it first.
The layout (`Layout`) picks the rows so that a block sees one scale:
- per tensor: rows are the tensor viewed as (first dim, -1), the one scale repeated per row
  (uint8asym / uint4asym: one row, one scale and zero point);
- per axis `a` (every slice along a shares a scale): rows along the dims after a, one per
  index of a (no Transpose), or, when a is the last axis, the tensor transposed so that the
  rows run along the leading dims ((K, N) axis=1 -> rows N, length K, like a torch Linear);
- blocked (`block_size` B along a): rows run along a, group=B (a ragged last block is
  padded, as formats.encode pads it).
Reshape / Transpose give back the original shape and orientation; a Cast the DQ's output
type when its scale is float16 / bfloat16 (the float32 product of a small code and a 16-bit
scale is exact, so the Cast rounds once, as onnxruntime does).

`fold_qdq` first turns QuantizeLinear on a constant float32 weight into its constant
output (numpy, as ONNX computes it: x / scale in float32, round half to even, saturate),
so the DequantizeLinear behind it reads a constant; the weight may be seen through layout
ops or a DequantizeLinear of constants (onnxruntime's quantizer re-quantizes initializers
the TorchScript exporter shares through Identity nodes). `import_all` repeats both while
they change something; the compress pass calls both.

Function bodies are attached at the model's standard opset (ops.functions.at_opset; a
model older than the bodies allow is lifted by the pipeline, with a note).

Left as they are, each with the reason in a note: DequantizeLinear on activations (static
quantization's Q -> DQ pairs keep running in onnxruntime as they were), data types and scale
layouts no format holds, and integer-arithmetic ops on constant quantized weights
(MatMulInteger, ConvInteger, QLinear*, MatMulNBits ...: onnxruntime's dynamic / QOperator
quantization), which a float rewrite would not compute exactly.

Checking against onnxruntime needs its QDQ fusions off (session config
`session.disable_quant_qdq=1`): by default it fuses a constant int8/int4 DequantizeLinear ->
MatMul into MatMulNBits with accuracy_level 4, which quantizes the activations to int8, so
the original model does not compute what it says (tests/test_pass_qdq.py).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import ml_dtypes
import numpy as np
import onnx
import onnx_graphsurgeon as gs
import torch
from onnx import TensorProto, numpy_helper
from onnx_graphsurgeon.ir.tensor import LazyValues

from .. import formats
from ..ops.defs import DOMAIN
from .graph import (MAX_LAYOUT_STEPS, constant, constant_array, constant_through_layout, constant_type,
                    layout_step, replace_uses)
from .pipeline import Context, register

QDQ_DOMAINS = ("", "ai.onnx", "com.microsoft")  # where QuantizeLinear / DequantizeLinear come from
# ONNX element type -> (symmetric npuq format, bits per code)
FORMATS = {
    TensorProto.INT8: ("int8sym", 8),
    TensorProto.INT4: ("int4sym", 4),
    TensorProto.FLOAT8E4M3FN: ("fp8e4m3", 8),
    TensorProto.FLOAT8E5M2: ("fp8e5m2", 8),
}
# integer data: (bits, signed)
INTEGERS = {TensorProto.INT8: (8, True), TensorProto.UINT8: (8, False),
            TensorProto.INT4: (4, True), TensorProto.UINT4: (4, False)}
SYM = {8: "int8sym", 4: "int4sym"}
ASYM = {8: "uint8asym", 4: "uint4asym"}
FP8 = {TensorProto.FLOAT8E4M3FN: "fp8e4m3", TensorProto.FLOAT8E5M2: "fp8e5m2"}
MX_FP8 = {TensorProto.FLOAT8E4M3FN: "mxfp8e4m3", TensorProto.FLOAT8E5M2: "mxfp8e5m2"}
FLOAT4 = getattr(TensorProto, "FLOAT4E2M1", None)
E8M0 = getattr(TensorProto, "FLOAT8E8M0", None)
SCALE_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16)
FOLDED_TYPES = (TensorProto.INT32,)  # DequantizeLinear folded to its float32 value
# QuantizeLinear output type -> (numpy type, saturation range); FP8 ranges are their max
Q_TYPES = {
    TensorProto.INT8: (np.int8, -128, 127),
    TensorProto.UINT8: (np.uint8, 0, 255),
    TensorProto.INT4: (ml_dtypes.int4, -8, 7),
    TensorProto.UINT4: (ml_dtypes.uint4, 0, 15),
    TensorProto.INT16: (np.int16, -(1 << 15), (1 << 15) - 1),
    TensorProto.UINT16: (np.uint16, 0, (1 << 16) - 1),
    TensorProto.FLOAT8E4M3FN: (ml_dtypes.float8_e4m3fn, -448.0, 448.0),
    TensorProto.FLOAT8E5M2: (ml_dtypes.float8_e5m2, -57344.0, 57344.0),
}
# ops that compute on quantized integer weights themselves (not through a DequantizeLinear)
INTEGER_OPS = ("MatMulInteger", "ConvInteger", "QLinearConv", "QLinearMatMul", "QGemm", "MatMulNBits",
               "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QAttention", "QLinearAdd", "QLinearMul",
               "GatherBlockQuantized", "MatMulBnb4", "QMoE")
MAX_LISTED = 8  # node names per note


class Unfit(Exception):
    """This node does not fit; the message says why (it goes into a note)."""


def is_qdq(node: gs.Node, op: str) -> bool:
    """A QuantizeLinear / DequantizeLinear of the standard or the com.microsoft domain."""
    return node.op == op and (node.domain or "") in QDQ_DOMAINS


# ------------------------------------------------------------------ constants


def _type_name(t: int) -> str:
    return onnx.helper.tensor_dtype_to_string(t).replace("TensorProto.", "")


def _proto_constant(name: str, arr: np.ndarray) -> gs.Constant:
    """A gs.Constant exported from its TensorProto as is (INT4 and FP8 stay packed)."""
    return gs.Constant(name, LazyValues(numpy_helper.from_array(arr, name)))


def _absent(t) -> bool:
    return isinstance(t, gs.Variable) and t.name == ""


# ------------------------------------------------------------------ scales and layout


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise Unfit(f"axis {axis} out of range for a {rank}-d tensor")
    return axis % rank


def expand_scale(scale: np.ndarray, shape: tuple[int, ...], axis: int, block_size: int):
    """(kind, axis, per-element scale broadcast to `shape`) of an ONNX Q/DQ scale, kind
    'tensor', 'axis' or 'block'."""
    rank = len(shape)
    if block_size == 0 and scale.size == 1:
        return "tensor", rank - 1, np.broadcast_to(scale.reshape(()), shape)
    a = _axis(axis, rank) if rank else 0
    if block_size < 0:
        raise Unfit(f"block_size {block_size} < 0")
    if block_size == 0:
        if scale.ndim != 1 or scale.size != shape[a]:
            raise Unfit(f"scale shape {scale.shape} fits neither per tensor nor per axis {a} of {shape}")
        view = [1] * rank
        view[a] = shape[a]
        return "axis", a, np.broadcast_to(scale.reshape(view), shape)
    want = shape[:a] + (-(-shape[a] // block_size),) + shape[a + 1:]
    if scale.shape != want:
        raise Unfit(f"scale shape {scale.shape} != {want} for block_size {block_size} on axis {a}")
    return "block", a, np.repeat(scale, block_size, axis=a)[(slice(None),) * a + (slice(0, shape[a]),)]


@dataclass(frozen=True)
class Layout:
    """How a tensor of `shape` maps onto Packed rows: the decoded (rows, length) matrix
    reshapes to `view`, `perm` transposes it (None: no Transpose), and that reshapes to
    `shape`. One float32 scale per `block` elements of a row."""

    shape: tuple[int, ...]
    view: tuple[int, ...]
    perm: tuple[int, ...] | None
    block: int

    @property
    def length(self) -> int:
        return self.view[-1]

    @property
    def rows(self) -> int:
        return math.prod(self.view[:-1])

    def to_rows(self, x: np.ndarray) -> np.ndarray:
        """The tensor (of `shape`) as the (rows, length) matrix, in Packed row order."""
        if self.perm is None:
            return x.reshape(self.rows, self.length)
        moved = x.reshape([self.view[p] for p in self.perm])
        return moved.transpose(np.argsort(self.perm)).reshape(self.rows, self.length)

    def back(self) -> list[tuple[str, tuple[int, ...]]]:
        """The ops from the (rows, length) matrix to the tensor: ('Reshape', shape) and
        ('Transpose', perm); a Transpose that moves only unit dims is a Reshape."""
        start = (self.rows, self.length)
        if self.perm is not None:
            big = [p for p in self.perm if self.view[p] != 1]
            if big != sorted(big):
                ops = [] if self.view == start else [("Reshape", self.view)]
                ops.append(("Transpose", self.perm))
                moved = tuple(self.view[p] for p in self.perm)
                return ops + ([] if moved == self.shape else [("Reshape", self.shape)])
        return [] if self.shape == start else [("Reshape", self.shape)]


def layout(kind: str, shape: tuple[int, ...], axis: int, block_size: int = 0) -> Layout:
    """Rows for a scale of `kind` (see expand_scale) such that each block has one scale."""
    if kind == "tensor":  # rows along the first dim: long rows (a conv's last dim is its kernel width)
        n = math.prod(shape[1:]) if len(shape) > 1 else math.prod(shape)
        return Layout(shape, (math.prod(shape) // n, n), None, n)
    lead, n, trail = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    if kind == "axis":
        if trail > 1:  # one row per index of axis (and of the dims before it)
            return Layout(shape, (lead * n, trail), None, trail)
        return Layout(shape, (n, lead), (1, 0), lead)  # axis is last: rows along the lead dims
    rank = len(shape)
    view = shape[:axis] + shape[axis + 1:] + (n,)
    perm = tuple(range(axis)) + (rank - 1,) + tuple(range(axis, rank - 1))
    return Layout(shape, view, perm if axis != rank - 1 else None, min(block_size, n))


# ------------------------------------------------------------------ packing


def pack(codes: np.ndarray, per_block: np.ndarray, block: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, length) element codes (uint8; 4-bit ones in the low nibble) and (rows, blocks)
    float32 scales or (rows, blocks, k) scale bytes -> Packed.codes / .scales: rows padded
    to whole blocks with code 0, 4-bit codes two per byte (low nibble first, an odd block
    padded by one nibble), float32 scales as their little-endian bytes."""
    rows, length = codes.shape
    nb = per_block.shape[1]
    c = np.zeros((rows, nb * block), np.uint8)
    c[:, :length] = codes.view(np.uint8)
    if bits == 4:
        c = (c & 0x0F).reshape(rows, nb, block)
        if block % 2:
            c = np.pad(c, ((0, 0), (0, 0), (0, 1)))
        c = c[..., 0::2] | (c[..., 1::2] << 4)
    if per_block.dtype != np.uint8:
        per_block = np.ascontiguousarray(per_block, "<f4").view(np.uint8)
    return c.reshape(rows, -1), np.ascontiguousarray(per_block).reshape(rows, -1)


# ------------------------------------------------------------------ DequantizeLinear


@dataclass
class _Plan:
    """One DequantizeLinear as a Packed weight: what the new nodes need."""

    fmt: str
    codes: np.ndarray  # Packed.codes
    scales: np.ndarray  # Packed.scales
    layout: Layout
    out_type: int  # the DQ's output type
    block: int  # the Dequantize's `block`
    tensor_scale: np.ndarray | None = None  # nvfp4's float32 scalar


@dataclass
class _Fold:
    """A DequantizeLinear replaced by the constant it computes."""

    values: np.ndarray


@dataclass
class _Operands:
    data: gs.Constant
    dtype: int
    x: np.ndarray
    scale: np.ndarray  # float32
    stype: int
    zp: np.ndarray | None  # as stored
    axis: int
    block_size: int
    out_type: int
    tensor_scale: np.ndarray | None = None  # two-level: the scale DQ's float32 scale
    scale_codes: np.ndarray | None = None  # two-level: the scale DQ's FP8 data


def _attrs(dq: gs.Node) -> tuple[int, int, int]:
    """axis, block_size, output_dtype (com.microsoft's DequantizeLinear has only axis)."""
    return int(dq.attrs.get("axis", 1)), int(dq.attrs.get("block_size", 0)), int(dq.attrs.get("output_dtype", 0))


def _zero_point(dq: gs.Node, graph: gs.Graph, dtype: int) -> np.ndarray | None:
    if len(dq.inputs) <= 2 or _absent(dq.inputs[2]):
        return None
    zp = constant(dq.inputs[2], graph)
    if zp is None:
        raise Unfit("zero point is not a constant")
    if constant_type(zp) != dtype:
        raise Unfit(f"zero point is {_type_name(constant_type(zp))}, data {_type_name(dtype)}")
    return constant_array(zp)


def _two_level(t: gs.Tensor, graph: gs.Graph):
    """(FP8 E4M3 block-scale codes, float32 tensor scale) when `t` is a DequantizeLinear of
    a constant FLOAT8E4M3FN tensor by one float32 scale (NVIDIA's NVFP4), else None."""
    if not isinstance(t, gs.Variable) or len(t.inputs) != 1 or not is_qdq(t.inputs[0], "DequantizeLinear"):
        return None
    sdq = t.inputs[0]
    data = constant(sdq.inputs[0], graph)
    scale = constant(sdq.inputs[1], graph) if len(sdq.inputs) > 1 else None
    if data is None or scale is None or constant_type(data) != TensorProto.FLOAT8E4M3FN:
        return None
    if constant_type(scale) != TensorProto.FLOAT or constant_array(scale).size != 1:
        return None
    if _attrs(sdq)[2] not in (0, TensorProto.FLOAT):
        return None
    zp = _zero_point(sdq, graph, TensorProto.FLOAT8E4M3FN) if len(sdq.inputs) > 2 else None
    if zp is not None and np.any(zp.astype(np.float32) != 0):
        return None
    return constant_array(data), constant_array(scale).astype(np.float32).reshape(())


def _operands(dq: gs.Node, graph: gs.Graph) -> _Operands:
    """What a DequantizeLinear that may fit reads, else Unfit."""
    data = constant(dq.inputs[0], graph)
    if data is None:
        raise Unfit("data is not a constant")
    dtype = constant_type(data)
    axis, block_size, output_dtype = _attrs(dq)
    if len(dq.inputs) < 2:
        raise Unfit("no scale")
    scale = constant(dq.inputs[1], graph)
    two = None
    if scale is None:
        two = _two_level(dq.inputs[1], graph) if dtype == FLOAT4 else None
        if two is None:
            raise Unfit("scale is not a constant")
        sv, stype = (two[0].astype(np.float32) * two[1]).astype(np.float32), TensorProto.FLOAT
    else:
        stype = constant_type(scale)
        if stype not in SCALE_TYPES and stype != E8M0:
            raise Unfit(f"{_type_name(stype)} scale")
        sv = constant_array(scale).astype(np.float32)
    x = constant_array(data)
    if x.size == 0:
        raise Unfit("empty tensor")
    out_type = output_dtype or stype
    if out_type not in SCALE_TYPES:
        raise Unfit(f"{_type_name(out_type)} output")
    zp = _zero_point(dq, graph, dtype)
    ops = _Operands(data, dtype, x, sv, stype, zp, axis, block_size, out_type)
    if two is not None:
        ops.scale_codes, ops.tensor_scale = two
    return ops


def _rows(ops: _Operands, values: np.ndarray, lay: Layout, what: str) -> np.ndarray:
    """A per-element tensor of `ops` (scale, zero point) -> one value per block of the rows."""
    per_elem = np.ascontiguousarray(lay.to_rows(values))
    per_block = np.ascontiguousarray(per_elem[:, ::lay.block])
    same = np.ascontiguousarray(np.repeat(per_block, lay.block, axis=1)[:, :lay.length])
    if not np.array_equal(same.view(np.uint8), per_elem.view(np.uint8)):  # layout() bug guard
        raise AssertionError(f"a block of {lay} sees more than one {what}")
    return per_block


def _scale_layout(ops: _Operands) -> tuple[Layout, np.ndarray]:
    """(Layout, per-element scale) of a DQ's scale."""
    shape = tuple(ops.x.shape)
    kind, axis, full = expand_scale(ops.scale, shape, ops.axis, ops.block_size)
    return layout(kind, shape, axis, ops.block_size), full


def _plan_integer(ops: _Operands, lay: Layout, full: np.ndarray) -> _Plan:
    bits, signed = INTEGERS[ops.dtype]
    x = ops.x.astype(np.int32)
    zp = np.zeros((), np.int32) if ops.zp is None else ops.zp.astype(np.int32)
    zfull = expand_scale(zp, x.shape, ops.axis, ops.block_size)[2] if zp.size > 1 else \
        np.broadcast_to(zp.reshape(()), x.shape)
    scales = _rows(ops, full, lay, "scale")
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    diff = lay.to_rows(x - zfull)
    if diff.min() >= lo and diff.max() <= hi:  # the symmetric format holds x - zero point
        codes, per_block, fmt = diff.astype(np.int8).view(np.uint8), scales, SYM[bits]
    else:
        if ops.scale.size == 1 and ops.block_size == 0 and lay.rows > 1:
            # per tensor: one row, so one scale and zero point (5 bytes) for the tensor. The
            # import formats have no NPU kernel whose block length a long row could exceed.
            lay = Layout(lay.shape, (1, math.prod(lay.shape)), None, math.prod(lay.shape))
            scales = _rows(ops, full, lay, "scale")
        shift = (1 << (bits - 1)) if signed else 0
        zrows = _rows(ops, zfull.astype(np.int32), lay, "zero point") + shift
        if zrows.min() < 0 or zrows.max() > (1 << bits) - 1:
            raise Unfit(f"zero point outside the {bits}-bit range")
        codes = (lay.to_rows(x) + shift).astype(np.uint8)
        s4 = np.ascontiguousarray(scales, "<f4").view(np.uint8).reshape(*scales.shape, 4)
        per_block, fmt = np.concatenate((s4, zrows.astype(np.uint8)[..., None]), axis=2), ASYM[bits]
    c, s = pack(np.ascontiguousarray(codes), per_block, lay.block, bits)
    return _Plan(fmt, c, s, lay, ops.out_type, lay.block)


def _no_zero_point(ops: _Operands) -> None:
    if ops.zp is not None and np.any(ops.zp.astype(np.float32) != 0):
        raise Unfit(f"nonzero zero point on {_type_name(ops.dtype)} data")


def _e4m3_codes(v: np.ndarray) -> np.ndarray | None:
    """The FLOAT8E4M3FN bytes of float32 values that all are E4M3 values, else None."""
    codes = v.astype(ml_dtypes.float8_e4m3fn)
    if not np.array_equal(codes.astype(np.float32).view(np.uint32), v.view(np.uint32)):
        return None
    return codes.view(np.uint8)


def _e8m0_codes(v: np.ndarray) -> np.ndarray | None:
    """The E8M0 bytes of float32 values that all are powers of two 2^-127..2^127, else None."""
    mant, exp = np.frexp(v)
    ok = (mant == 0.5) & (exp - 1 >= -127) & (exp - 1 <= 127)
    return (exp - 1 + 127).astype(np.uint8) if ok.all() else None


def _plan_fixed(ops: _Operands, lay: Layout, full: np.ndarray, fmt: str, block: int, bits: int,
                scale_codes: np.ndarray, tensor_scale: np.ndarray | None = None) -> _Plan:
    """A format with a fixed block and one-byte scales (nvf4 / nvfp4 / MX): `scale_codes`
    is the per-element scale byte (broadcast like the scale)."""
    if lay.block != min(block, lay.length) or ops.block_size != block:
        raise Unfit(f"{fmt} needs blocks of {block} (block_size {ops.block_size})")
    codes = lay.to_rows(ops.x.view(np.uint8))
    per_block = _rows(ops, scale_codes, lay, "scale")[..., None]
    c, s = pack(np.ascontiguousarray(codes), per_block, block, bits)
    ts = None if tensor_scale is None else np.asarray(tensor_scale, np.float32).reshape(1)
    return _Plan(fmt, c, s, lay, ops.out_type, block, ts)


def _plan_float(ops: _Operands, lay: Layout, full: np.ndarray) -> _Plan:
    """FP8 and FP4 data."""
    _no_zero_point(ops)
    dtype = ops.dtype
    if ops.stype == E8M0:
        fmt = MX_FP8.get(dtype) or ("mxfp4" if dtype == FLOAT4 else None)
        if fmt is None:
            raise Unfit(f"{_type_name(dtype)} data with FLOAT8E8M0 scales")
        codes = _e8m0_codes(full.astype(np.float32))
        if codes is None:  # NaN scales (0xFF): their code straight from the stored bytes
            raise Unfit("FLOAT8E8M0 scale that is NaN")
        return _plan_fixed(ops, lay, full, fmt, 32, 8 if dtype in MX_FP8 else 4, codes)
    if dtype in FP8:
        scales = _rows(ops, full, lay, "scale")
        c, s = pack(np.ascontiguousarray(lay.to_rows(ops.x.view(np.uint8))), scales, lay.block, 8)
        return _Plan(FP8[dtype], c, s, lay, ops.out_type, lay.block)
    # FLOAT4E2M1
    if ops.tensor_scale is not None:
        if ops.out_type != TensorProto.FLOAT:
            raise Unfit(f"two-level FP4 with a {_type_name(ops.out_type)} output")
        sc = expand_scale(ops.scale_codes.view(np.uint8), tuple(ops.x.shape), ops.axis, ops.block_size)[2]
        return _plan_fixed(ops, lay, full, "nvfp4", 16, 4, sc, ops.tensor_scale)
    if ops.block_size == 16 and (codes := _e4m3_codes(full.astype(np.float32))) is not None:
        return _plan_fixed(ops, lay, full, "nvf4", 16, 4, codes)
    if ops.block_size == 32 and (codes := _e8m0_codes(full.astype(np.float32))) is not None:
        return _plan_fixed(ops, lay, full, "mxfp4", 32, 4, codes)
    raise Unfit("FLOAT4E2M1 with scales that are neither E4M3 values in blocks of 16 (nvf4), powers of two "
                "in blocks of 32 (mxfp4) nor a DequantizeLinear of E4M3 block scales (nvfp4)")


def _fold(ops: _Operands) -> _Fold:
    """INT32 data: float32(x - zero point) * scale, as DequantizeLinear computes it."""
    if ops.stype != TensorProto.FLOAT or ops.out_type != TensorProto.FLOAT:
        raise Unfit(f"{_type_name(ops.dtype)} data with a {_type_name(ops.stype)} scale")
    _, _, full = expand_scale(ops.scale, tuple(ops.x.shape), ops.axis, ops.block_size)
    x = ops.x.astype(np.int64)
    if ops.zp is not None:
        x = x - expand_scale(ops.zp.astype(np.int64), x.shape, ops.axis, ops.block_size)[2]
        if x.min() < -(1 << 31) or x.max() >= (1 << 31):
            raise Unfit("x - zero point overflows INT32")
    return _Fold(np.multiply(x.astype(np.float32), full, dtype=np.float32))


def plan_dq(dq: gs.Node, graph: gs.Graph) -> _Plan | _Fold:
    """How `dq` becomes an npuq::Dequantize (or a float32 constant), or Unfit."""
    ops = _operands(dq, graph)
    if ops.dtype in FOLDED_TYPES:
        return _fold(ops)
    if ops.dtype not in INTEGERS and ops.dtype not in FP8 and ops.dtype != FLOAT4:
        raise Unfit(f"{_type_name(ops.dtype)} data: no format holds it")
    if ops.stype == E8M0 and ops.out_type not in SCALE_TYPES:
        raise Unfit("FLOAT8E8M0 scale without a float output_dtype")
    lay, full = _scale_layout(ops)
    if ops.dtype in INTEGERS:
        if ops.stype == E8M0:
            raise Unfit(f"{_type_name(ops.dtype)} data with FLOAT8E8M0 scales")
        plan = _plan_integer(ops, lay, full)
    else:
        plan = _plan_float(ops, lay, full)
    if plan.fmt not in formats.names() and plan.fmt not in formats.IMPORT_FORMATS:
        raise Unfit(f"format {plan.fmt} is not available")
    return plan


class _Names:
    """Fresh tensor names from a prefix, unique in the graph."""

    def __init__(self, graph: gs.Graph):
        self.used = set(graph.tensors().keys()) | {n.name for n in graph.nodes}

    def __call__(self, name: str) -> str:
        out, i = name, 1
        while out in self.used:
            out, i = f"{name}_{i}", i + 1
        self.used.add(out)
        return out


def _emit(graph: gs.Graph, dq: gs.Node, plan: _Plan, packed: list[gs.Constant], fresh: _Names) -> None:
    """Replace `dq` by Dequantize and the ops back to its output (which keeps its name)."""
    lay, base = plan.layout, dq.name or dq.outputs[0].name
    steps = lay.back() + ([("Cast", plan.out_type)] if plan.out_type != TensorProto.FLOAT else [])
    out = dq.outputs[0]
    dq.outputs.clear()

    def result(op: str, shape) -> gs.Variable:  # the last node yields the DQ's output
        return out if not steps else gs.Variable(fresh(f"{base}/npuq_{op}"), np.float32, shape)

    y = result("rows", (lay.rows, lay.length))
    attrs = {"format": plan.fmt, "block": plan.block, "length": lay.length}
    graph.nodes.append(gs.Node("Dequantize", fresh(f"{base}/npuq_dequantize"), attrs, list(packed), [y],
                               domain=DOMAIN))
    while steps:
        op, arg = steps.pop(0)
        if op == "Reshape":
            inputs = [y, gs.Constant(fresh(f"{base}/npuq_shape"), np.array(arg, np.int64))]
            nattrs, shape = {}, arg
        elif op == "Transpose":
            inputs, nattrs, shape = [y], {"perm": list(arg)}, tuple(y.shape[p] for p in arg)
        else:
            inputs, nattrs, shape = [y], {"to": arg}, y.shape
        nxt = result(op.lower(), shape)
        graph.nodes.append(gs.Node(op, fresh(f"{base}/npuq_{op.lower()}"), nattrs, inputs, [nxt]))
        y = nxt
    dq.inputs.clear()  # its inputs no longer count it as a consumer (a two-level scale DQ goes)


def _emit_fold(graph: gs.Graph, dq: gs.Node, fold: _Fold, fresh: _Names) -> None:
    """Replace `dq` by its value: consumers read a float32 constant (a graph output gets it
    through an Identity)."""
    out = dq.outputs[0]
    dq.outputs.clear()
    const = gs.Constant(fresh(f"{out.name}.folded"), fold.values)
    replace_uses(out, const)
    if out in graph.outputs:
        graph.nodes.append(gs.Node("Identity", fresh(f"{dq.name or out.name}/npuq_folded"), {}, [const], [out]))
    dq.inputs.clear()


def _packed_constants(plan: _Plan, dq: gs.Node, cache: dict, fresh: _Names) -> list[gs.Constant]:
    """Codes / scales (/ tensor scale) initializers, shared by DQ nodes that read the same
    weight the same way."""
    key = (dq.op, tuple(id(t) for t in dq.inputs), tuple(sorted(dq.attrs.items())), plan.fmt, plan.layout,
           plan.block)
    if key not in cache:
        base = dq.inputs[0].name or dq.name
        cache[key] = [gs.Constant(fresh(f"{base}.npuq_codes"), plan.codes),
                      gs.Constant(fresh(f"{base}.npuq_scales"), plan.scales)]
        if plan.tensor_scale is not None:
            cache[key].append(gs.Constant(fresh(f"{base}.npuq_tensor_scale"), plan.tensor_scale))
    return cache[key]


def _note_left(ctx: Context, op: str, left: dict[str, list[str]]) -> None:
    for reason, names in sorted(left.items()):
        shown = ", ".join(names[:MAX_LISTED]) + (f", ... ({len(names)} in all)" if len(names) > MAX_LISTED else "")
        ctx.note(f"{len(names)} {op} left as is: {reason}: {shown}")


def _unused(t: gs.Tensor, graph: gs.Graph) -> bool:
    return not t.outputs and t not in graph.outputs


GATHERS = ("Gather", "Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten")


def hoist_dq(graph: gs.Graph, ctx: Context) -> int:
    """DequantizeLinear(Gather(W constant, indices)) with one scale (and zero point) for the
    whole tensor -> Gather(DequantizeLinear(W), indices): the same values (the DQ works
    element by element), and the DQ then reads a constant weight that import_dq takes.
    onnxruntime's dynamic quantization gathers embeddings so; also Reshape / Transpose /
    Squeeze / Unsqueeze / Identity / Flatten between a constant and its DQ. Only where the
    moved op's output feeds nothing but the DQ. Returns how many were moved."""
    done = 0
    for dq in [n for n in graph.nodes if is_qdq(n, "DequantizeLinear")]:
        src = dq.inputs[0]
        if not isinstance(src, gs.Variable) or len(src.inputs) != 1 or len(src.outputs) != 1:
            continue
        mover = src.inputs[0]
        if mover.op not in GATHERS or (mover.domain or "") not in ("", "ai.onnx") or len(mover.outputs) != 1:
            continue
        if src in graph.outputs or constant(mover.inputs[0], graph) is None:
            continue
        if any(not _absent(t) and constant(t, graph) is None for t in dq.inputs[1:]):
            continue
        if any(not _absent(t) and math.prod(constant(t, graph).shape or ()) != 1 for t in dq.inputs[1:]):
            continue  # per axis / blocked: the axis would move
        data = mover.inputs[0]
        moved = gs.Variable(f"{data.name}/npuq_dequantized", dtype=dq.outputs[0].dtype, shape=data.shape)
        new_dq = gs.Node("DequantizeLinear", f"{dq.name or dq.outputs[0].name}/npuq_hoisted", dict(dq.attrs),
                         [data, *dq.inputs[1:]], [moved], domain=dq.domain)
        out = dq.outputs[0]
        dq.outputs.clear()
        mover.inputs[0] = moved
        mover.outputs[0] = out
        graph.nodes.append(new_dq)
        done += 1
    if done:
        ctx.note(f"{done} DequantizeLinear moved before the Gather / layout op between it and its constant")
    return done


# ------------------------------------------------------------------ AMCT / msModelSlim deploy ops

AMCT_OPS = ("AscendQuant", "AscendDequant", "AscendAntiQuant")  # default domain (shared/spec/ascend.md)
# ge::DataType codes AscendAntiQuant may output (ops-nn ascend_anti_quant_proto.h: DT_FLOAT, DT_FLOAT16)
ANTIQUANT_OUT_TYPES = {0: TensorProto.FLOAT, 1: TensorProto.FLOAT16}


def is_amct(node: gs.Node, op: str) -> bool:
    return node.op == op and (node.domain or "") in ("", "ai.onnx")


def deq_scale_parts(deq_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AscendDequant's UINT64 deq_scale -> (float32 scale: bits 31..0, int8 weight offset:
    bits 47..40), per output channel."""
    v = np.asarray(deq_scale).astype(np.uint64)
    scale = (v & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.float32)
    offset = ((v >> np.uint64(40)) & np.uint64(0xFF)).astype(np.uint8).view(np.int8)
    return scale, offset


def _antiquant_operands(node: gs.Node, graph: gs.Graph) -> _Operands:
    """AscendAntiQuant(x) = (x - offset) * scale cast to `dtype` (npu.ascend_anti_quant: CANN's
    ONNX plugin negates the offset attribute for the GE op's (x + offset) * scale): on constant
    INT8 data with an integral offset it is DequantizeLinear's float32(x - zero point) * scale
    with zero point offset."""
    data = constant(node.inputs[0], graph) if node.inputs else None
    if data is None:
        raise Unfit("data is not a constant")
    if constant_type(data) != TensorProto.INT8:
        raise Unfit(f"{_type_name(constant_type(data))} data")
    if node.attrs.get("sqrt_mode", 0):
        raise Unfit("sqrt_mode: (x - offset) * scale * scale rounds twice")
    if "scale" not in node.attrs:
        raise Unfit("no scale attribute")
    offset = float(node.attrs.get("offset", 0.0))
    if offset != round(offset) or not -255 <= offset <= 255:
        raise Unfit(f"offset {offset:g} is not an integer in [-255, 255]")
    out_type = ANTIQUANT_OUT_TYPES.get(int(node.attrs.get("dtype", 0)))  # the plugin's default: DT_FLOAT
    if out_type is None:
        raise Unfit(f"dtype {node.attrs.get('dtype')} is not float32 (0) or float16 (1)")
    x = constant_array(data)
    if x.size == 0:
        raise Unfit("empty tensor")
    return _Operands(data, TensorProto.INT8, x, np.array(node.attrs["scale"], np.float32), TensorProto.FLOAT,
                     np.array(int(offset), np.int32), 1, 0, out_type)


def plan_antiquant(node: gs.Node, graph: gs.Graph) -> _Plan:
    ops = _antiquant_operands(node, graph)
    lay, full = _scale_layout(ops)
    return _plan_integer(ops, lay, full)


def refuse_amct_pipeline(graph: gs.Graph) -> None:
    """AscendQuant / AscendDequant (AMCT's int8 activation pipeline) -> PassError saying what
    they are and why nothing can be imported from them."""
    found = [n for n in graph.nodes if is_amct(n, "AscendQuant") or is_amct(n, "AscendDequant")]
    if not found:
        return
    problems = []
    for n in found[:MAX_LISTED]:
        what = f"{n.op} {n.name or n.outputs[0].name}"
        if n.op == "AscendQuant":
            what += f" (scale {n.attrs.get('scale')}, offset {n.attrs.get('offset', 0.0)})"
        elif len(n.inputs) > 1 and (c := constant(n.inputs[1], graph)) is not None and \
                constant_type(c) == TensorProto.UINT64:
            sc, off = deq_scale_parts(constant_array(c))
            what += (f" (deq_scale: {sc.size} channels, float32 scales {np.nanmin(sc):.3g}..{np.nanmax(sc):.3g}, "
                     f"weight offsets {'all 0' if not off.any() else f'{off.min()}..{off.max()}'})")
        problems.append(what)
    if len(found) > MAX_LISTED:
        problems.append(f"... ({len(found)} in all)")
    from .pipeline import PassError

    raise PassError(
        "AMCT / msModelSlim deploy ops: ATC's int8 pipeline (int8 activations from AscendQuant, the int8 weights "
        "read by Conv / Gemm / MatMul themselves, int32 results scaled back by AscendDequant's deq_scale = "
        "activation scale x weight scale): onnxruntime has no kernels for them, so no rewrite could be checked "
        "against the model, and there is no DequantizeLinear to import; give the model to ATC as it is "
        "(AscendAntiQuant on constant weights alone is imported)", problems)


def import_dq(graph: gs.Graph, ctx: Context) -> int:
    """DequantizeLinear on constant weights -> npuq::Dequantize (INT32: a float32 constant);
    returns how many were rewritten. The others stay, with a note per reason; integer ops
    on constant quantized weights are noted too. Consumers go first, so that a two-level
    scale (a DequantizeLinear feeding one) is taken with the weight it scales."""
    refuse_amct_pipeline(graph)
    hoist_dq(graph, ctx)
    graph.toposort()
    fresh, cache, left, done, folded = _Names(graph), {}, defaultdict(list), 0, 0
    amct = defaultdict(list)
    for dq in reversed([n for n in graph.nodes if is_qdq(n, "DequantizeLinear") or is_amct(n, "AscendAntiQuant")]):
        if not dq.outputs or _unused(dq.outputs[0], graph):
            continue  # a two-level scale already taken with its weight
        try:
            plan = plan_antiquant(dq, graph) if dq.op == "AscendAntiQuant" else plan_dq(dq, graph)
        except Unfit as why:
            (amct if dq.op == "AscendAntiQuant" else left)[str(why)].append(dq.name or dq.outputs[0].name)
            continue
        if isinstance(plan, _Fold):
            _emit_fold(graph, dq, plan, fresh)
            folded += 1
        else:
            _emit(graph, dq, plan, _packed_constants(plan, dq, cache, fresh), fresh)
        done += 1
    for reasons in (left, amct):
        for reason in reasons:
            reasons[reason].reverse()
    _note_left(ctx, "DequantizeLinear", left)
    if amct:
        from .pipeline import PassError

        raise PassError("AscendAntiQuant nodes that cannot be imported (onnxruntime and onnx's checker know no "
                        "such op, so they cannot stay)",
                        [f"{reason}: {', '.join(names[:MAX_LISTED])}" for reason, names in sorted(amct.items())])
    _note_integer_ops(graph, ctx)
    if folded:
        ctx.note(f"{folded} INT32 DequantizeLinear (biases) folded into the float32 constants they compute")
    return done


def _note_integer_ops(graph: gs.Graph, ctx: Context) -> None:
    """Integer-arithmetic ops reading constant quantized weights: listed, left as they are."""
    left = defaultdict(list)
    for node in graph.nodes:
        if node.op not in INTEGER_OPS:
            continue
        weights = [t for t in node.inputs if not _absent(t) and (c := constant(t, graph)) is not None
                   and constant_type(c) in INTEGERS and math.prod(c.shape or ()) > 1]
        if weights:
            left[node.op].append(node.name or node.outputs[0].name)
    for op, names in sorted(left.items()):
        _note_left(ctx, op, {"integer arithmetic on constant quantized weights, not a DequantizeLinear "
                             "(rewritten in float it would not compute the same)": names})


# ------------------------------------------------------------------ QuantizeLinear folding


def quantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, out_type: int,
             axis: int = 1, block_size: int = 0, saturate: int = 1) -> np.ndarray:
    """ONNX QuantizeLinear in numpy for float32 x and scale: integers
    saturate(rint(x / scale) + zero point), FP8 x / scale rounded to nearest even
    (saturated to +-max unless saturate=0: then NaN / Inf as ONNX's cast gives)."""
    np_type, lo, hi = Q_TYPES[out_type]
    _, _, full = expand_scale(scale, x.shape, axis, block_size)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.divide(x, full, dtype=np.float32)
    if out_type in (TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E5M2):
        if zero_point is not None and np.any(zero_point.astype(np.float32) != 0):
            raise Unfit("nonzero FP8 zero point")
        return (np.clip(v, lo, hi) if saturate else v).astype(np_type)
    zp = 0 if zero_point is None else expand_scale(zero_point.astype(np.float32), x.shape, axis, block_size)[2]
    return np.clip(np.rint(v) + zp, lo, hi).astype(np_type)


def _q_output_type(q: gs.Node, graph: gs.Graph) -> tuple[int, np.ndarray | None]:
    """(output type, zero point values or None) of a QuantizeLinear."""
    if len(q.inputs) > 2 and q.inputs[2].name != "":
        zp = constant(q.inputs[2], graph)
        if zp is None:
            raise Unfit("zero point is not a constant")
        return constant_type(zp), constant_array(zp)
    return q.attrs.get("output_dtype", 0) or TensorProto.UINT8, None


def dq_values(dq: gs.Node, graph: gs.Graph) -> np.ndarray:
    """What a DequantizeLinear of constant integer (or FP8) data with float32 scales
    computes: float32(x - zero point) * scale, element by element; else Unfit."""
    ops = _operands(dq, graph)
    if ops.stype != TensorProto.FLOAT or ops.out_type != TensorProto.FLOAT or ops.tensor_scale is not None:
        raise Unfit("not a float32 DequantizeLinear")
    if ops.dtype in INTEGERS or ops.dtype in FOLDED_TYPES:
        x = ops.x.astype(np.int64)
        if ops.zp is not None:
            x = x - expand_scale(ops.zp.astype(np.int64), x.shape, ops.axis, ops.block_size)[2]
    elif ops.dtype in FP8:
        _no_zero_point(ops)
        x = ops.x
    else:
        raise Unfit(f"{_type_name(ops.dtype)} data")
    _, _, full = expand_scale(ops.scale, tuple(ops.x.shape), ops.axis, ops.block_size)
    return np.multiply(x.astype(np.float32), full, dtype=np.float32)


def _weight_values(t: gs.Tensor, graph: gs.Graph) -> np.ndarray | None:
    """A float32 constant's values, also seen through pure layout ops (Identity, Reshape,
    Transpose, ...: the TorchScript exporter reads a deduplicated initializer through an
    Identity) and through a DequantizeLinear of constants (which onnxruntime's quantizer
    puts before them); None when `t` is none of these (float16 / bfloat16 neither)."""
    c = constant(t, graph)
    if c is not None:
        return constant_array(c) if constant_type(c) == TensorProto.FLOAT else None
    x = constant_through_layout(t)
    if x is not None:
        return x.numpy() if x.dtype == torch.float32 else None
    steps = []
    while isinstance(t, gs.Variable) and len(t.inputs) == 1 and len(steps) < MAX_LAYOUT_STEPS:
        node = t.inputs[0]
        if is_qdq(node, "DequantizeLinear"):
            try:
                v = torch.from_numpy(dq_values(node, graph))
            except Unfit:
                return None
            for step in reversed(steps):
                v = step(v)
            return v.contiguous().numpy() if v.dtype == torch.float32 else None
        step = layout_step(node)
        if step is None:
            return None
        steps.append(step)
        t = node.inputs[0]
    return None


def plan_q(q: gs.Node, graph: gs.Graph) -> np.ndarray:
    """The constant output of a QuantizeLinear on a constant weight feeding DQs, or Unfit."""
    users = q.outputs[0].outputs
    if q.outputs[0] in graph.outputs or not users or not all(is_qdq(u, "DequantizeLinear") for u in users):
        raise Unfit("its output goes elsewhere than to DequantizeLinear")
    xv, scale = _weight_values(q.inputs[0], graph), constant(q.inputs[1], graph)
    if scale is None:
        raise Unfit("scale is not a constant")
    if xv is None or constant_type(scale) != TensorProto.FLOAT:
        raise Unfit("not float32 weight and scale")
    out_type, zp = _q_output_type(q, graph)
    if out_type not in Q_TYPES:
        raise Unfit(f"{_type_name(out_type)} output")
    sv = constant_array(scale)
    if not (np.isfinite(xv).all() and np.isfinite(sv).all() and (sv != 0).all()):
        raise Unfit("a non-finite weight or a non-finite or zero scale")
    return quantize(xv, sv, zp, out_type, q.attrs.get("axis", 1), q.attrs.get("block_size", 0),
                    q.attrs.get("saturate", 1))


def fold_qdq(graph: gs.Graph, ctx: Context) -> int:
    """QuantizeLinear on a constant float32 weight, read by DequantizeLinear nodes -> its
    constant output (exactly what onnxruntime computes); returns how many were folded."""
    fresh, left, done = _Names(graph), defaultdict(list), 0
    for q in [n for n in graph.nodes if is_qdq(n, "QuantizeLinear")]:
        if _weight_values(q.inputs[0], graph) is None:
            continue  # activations: not a weight
        try:
            values = plan_q(q, graph)
        except Unfit as why:
            left[str(why)].append(q.name or q.outputs[0].name)
            continue
        out = q.outputs[0]
        const = _proto_constant(fresh(f"{out.name}.folded"), values)
        replace_uses(out, const)
        q.outputs.clear()
        done += 1
    _note_left(ctx, "QuantizeLinear on a constant", left)
    return done


MAX_ROUNDS = 4


def import_all(graph: gs.Graph, ctx: Context) -> tuple[int, int]:
    """fold_qdq then import_dq, again while they change something: a DequantizeLinear made
    a constant (an INT32 bias folded) can feed a QuantizeLinear that then folds (the
    TorchScript exporter shares equal initializers through Identity nodes, which
    onnxruntime's quantizer re-quantizes as activations). The "left as is" notes are the
    last round's; -> (QuantizeLinear folded, DequantizeLinear rewritten)."""
    folded = done = 0
    left: list[str] = []
    for _ in range(MAX_ROUNDS):
        scratch = Context(options=ctx.options, metadata=ctx.metadata)
        f = fold_qdq(graph, scratch)
        d = import_dq(graph, scratch)
        folded, done = folded + f, done + d
        left = [n for n in scratch.notes if " left as is: " in n]
        ctx.notes.extend(n for n in scratch.notes if " left as is: " not in n)
        if not (f or d):
            break
        graph.cleanup(remove_unused_graph_inputs=False).toposort()
    ctx.notes.extend(left)
    return folded, done


@register("import-qdq", exact=True)
def import_qdq(graph: gs.Graph, ctx: Context) -> None:
    """Foreign Q/DQ weights (INT8/4 with zero points, FP8, FP4, NVFP4; com.microsoft too) -> npuq::Dequantize."""
    folded, done = import_all(graph, ctx)
    ctx.note(f"folded {folded} QuantizeLinear, rewrote {done} DequantizeLinear as npuq::Dequantize")
