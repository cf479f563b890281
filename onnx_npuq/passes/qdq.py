"""Standard QDQ weights -> npuq::Dequantize: the `import-qdq` pass (exact).

    DequantizeLinear(W int8 | int4 | fp8 constant, scale[, zero point 0])
      -> npuq::Dequantize(codes, scales) [-> Reshape] [-> Transpose] [-> Reshape] [-> Cast]

A DequantizeLinear computes float32(x) * scale (zero point 0); int8sym, int4sym, fp8e4m3 and
fp8e5m2 decode float32(code) * float32 scale per block of a row: the same product, so the
rewrite is bit-exact once every block of a row sees one scale. The layout (`Layout`) picks
the rows so that it does:
- per tensor: rows are the tensor viewed as (-1, last dim), the one scale repeated per row;
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
so the DequantizeLinear behind it reads a constant. The compress pass calls both.

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
from onnx import TensorProto, numpy_helper
from onnx_graphsurgeon.ir.tensor import LazyValues

from .. import formats
from ..ops.defs import DOMAIN
from .graph import constant, constant_array, constant_type, is_standard
from .pipeline import Context, register

# ONNX element type -> (npuq format, bits per code)
FORMATS = {
    TensorProto.INT8: ("int8sym", 8),
    TensorProto.INT4: ("int4sym", 4),
    TensorProto.FLOAT8E4M3FN: ("fp8e4m3", 8),
    TensorProto.FLOAT8E5M2: ("fp8e5m2", 8),
}
SCALE_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16)
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
MAX_LISTED = 8  # node names per note


class Unfit(Exception):
    """This node does not fit; the message says why (it goes into a note)."""


# ------------------------------------------------------------------ constants


def _type_name(t: int) -> str:
    return onnx.helper.tensor_dtype_to_string(t).replace("TensorProto.", "")


def _proto_constant(name: str, arr: np.ndarray) -> gs.Constant:
    """A gs.Constant exported from its TensorProto as is (INT4 and FP8 stay packed)."""
    return gs.Constant(name, LazyValues(numpy_helper.from_array(arr, name)))


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
    if kind == "tensor":
        n = shape[-1] if shape else 1
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


def _codes_of(x: np.ndarray, onnx_type: int) -> np.ndarray:
    """Element codes: int8 values for the integers, the FP8 bytes for FP8."""
    if onnx_type in (TensorProto.INT8, TensorProto.INT4):
        return x.astype(np.int8)
    return x.view(np.uint8)


def pack(codes: np.ndarray, scales: np.ndarray, block: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, length) codes and (rows, blocks) float32 scales -> Packed.codes / .scales:
    rows padded to whole blocks with code 0, 4-bit codes two per byte (low nibble first,
    an odd block padded by one nibble), scales as little-endian float32 bytes."""
    rows, length = codes.shape
    nb = scales.shape[1]
    c = np.zeros((rows, nb * block), np.uint8)
    c[:, :length] = codes.view(np.uint8)
    if bits == 4:
        c = (c & 0x0F).reshape(rows, nb, block)
        if block % 2:
            c = np.pad(c, ((0, 0), (0, 0), (0, 1)))
        c = c[..., 0::2] | (c[..., 1::2] << 4)
    return c.reshape(rows, -1), np.ascontiguousarray(scales, "<f4").view(np.uint8).reshape(rows, -1)


# ------------------------------------------------------------------ DequantizeLinear


@dataclass
class _Plan:
    """One DequantizeLinear as a Packed weight: what the new nodes need."""

    fmt: str
    codes: np.ndarray
    scales: np.ndarray
    layout: Layout
    out_type: int  # the DQ's output type


def _dq_inputs(dq: gs.Node, graph: gs.Graph):
    """(data, data type, scale as float32, scale type) of a DQ that may fit, else Unfit."""
    data = constant(dq.inputs[0], graph)
    if data is None:
        raise Unfit("data is not a constant")
    dtype = constant_type(data)
    if dtype not in FORMATS:
        raise Unfit(f"{_type_name(dtype)} data has no symmetric format")
    fmt = FORMATS[dtype][0]
    if fmt not in formats.names():
        raise Unfit(f"{_type_name(dtype)} data: format {fmt} is not available")
    scale = constant(dq.inputs[1], graph) if len(dq.inputs) > 1 else None
    if scale is None:
        raise Unfit("scale is not a constant")
    stype = constant_type(scale)
    if stype not in SCALE_TYPES:
        raise Unfit(f"{_type_name(stype)} scale")
    if len(dq.inputs) > 2 and not (isinstance(dq.inputs[2], gs.Variable) and dq.inputs[2].name == ""):
        zp = constant(dq.inputs[2], graph)
        if zp is None:
            raise Unfit("zero point is not a constant")
        if np.any(constant_array(zp).astype(np.float32) != 0):
            raise Unfit("nonzero zero point")
    return data, dtype, constant_array(scale).astype(np.float32), stype


def plan_dq(dq: gs.Node, graph: gs.Graph) -> _Plan:
    """How `dq` becomes an npuq::Dequantize, or Unfit."""
    data, dtype, scale, stype = _dq_inputs(dq, graph)
    x = constant_array(data)
    if x.size == 0:
        raise Unfit("empty tensor")
    out_type = dq.attrs.get("output_dtype", 0) or stype
    kind, axis, full = expand_scale(scale, tuple(x.shape), dq.attrs.get("axis", 1), dq.attrs.get("block_size", 0))
    lay = layout(kind, tuple(x.shape), axis, dq.attrs.get("block_size", 0))
    per_elem = np.ascontiguousarray(lay.to_rows(full))
    per_block = np.ascontiguousarray(per_elem[:, ::lay.block])
    same = np.ascontiguousarray(np.repeat(per_block, lay.block, axis=1)[:, :lay.length])
    if not np.array_equal(same.view(np.uint32), per_elem.view(np.uint32)):  # layout() bug guard
        raise AssertionError(f"{dq.name}: a block of {lay} sees more than one scale")
    codes, scales = pack(lay.to_rows(_codes_of(x, dtype)), per_block, lay.block, FORMATS[dtype][1])
    return _Plan(FORMATS[dtype][0], codes, scales, lay, out_type)


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


def _emit(graph: gs.Graph, dq: gs.Node, plan: _Plan, packed: tuple[gs.Constant, gs.Constant],
          fresh: _Names) -> None:
    """Replace `dq` by Dequantize and the ops back to its output (which keeps its name)."""
    lay, base = plan.layout, dq.name or dq.outputs[0].name
    steps = lay.back() + ([("Cast", plan.out_type)] if plan.out_type != TensorProto.FLOAT else [])
    out = dq.outputs[0]
    dq.outputs.clear()

    def result(op: str, shape) -> gs.Variable:  # the last node yields the DQ's output
        return out if not steps else gs.Variable(fresh(f"{base}/npuq_{op}"), np.float32, shape)

    y = result("rows", (lay.rows, lay.length))
    attrs = {"format": plan.fmt, "block": lay.block, "length": lay.length}
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


def _packed_constants(plan: _Plan, dq: gs.Node, cache: dict, fresh: _Names):
    """Codes / scales initializers, shared by DQ nodes that read the same weight the same way."""
    key = (id(dq.inputs[0]), id(dq.inputs[1]), plan.fmt, plan.layout)
    if key not in cache:
        base = dq.inputs[0].name or dq.name
        cache[key] = (gs.Constant(fresh(f"{base}.npuq_codes"), plan.codes),
                      gs.Constant(fresh(f"{base}.npuq_scales"), plan.scales))
    return cache[key]


def _note_left(ctx: Context, op: str, left: dict[str, list[str]]) -> None:
    for reason, names in sorted(left.items()):
        shown = ", ".join(names[:MAX_LISTED]) + (f", ... ({len(names)} in all)" if len(names) > MAX_LISTED else "")
        ctx.note(f"{len(names)} {op} left as is: {reason}: {shown}")


def import_dq(graph: gs.Graph, ctx: Context) -> int:
    """DequantizeLinear on constant INT8 / INT4 / FP8 weights -> npuq::Dequantize; returns
    how many were rewritten. The others stay, with a note per reason."""
    fresh, cache, left, done = _Names(graph), {}, defaultdict(list), 0
    for dq in [n for n in graph.nodes if is_standard(n, "DequantizeLinear")]:
        try:
            plan = plan_dq(dq, graph)
        except Unfit as why:
            left[str(why)].append(dq.name or dq.outputs[0].name)
            continue
        _emit(graph, dq, plan, _packed_constants(plan, dq, cache, fresh), fresh)
        done += 1
    _note_left(ctx, "DequantizeLinear", left)
    return done


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


def plan_q(q: gs.Node, graph: gs.Graph) -> np.ndarray:
    """The constant output of a QuantizeLinear on a constant weight feeding DQs, or Unfit."""
    users = q.outputs[0].outputs
    if q.outputs[0] in graph.outputs or not users or not all(is_standard(u, "DequantizeLinear") for u in users):
        raise Unfit("its output goes elsewhere than to DequantizeLinear")
    x, scale = constant(q.inputs[0], graph), constant(q.inputs[1], graph)
    if scale is None:
        raise Unfit("scale is not a constant")
    if constant_type(x) != TensorProto.FLOAT or constant_type(scale) != TensorProto.FLOAT:
        raise Unfit("not float32 weight and scale")
    out_type, zp = _q_output_type(q, graph)
    if out_type not in Q_TYPES:
        raise Unfit(f"{_type_name(out_type)} output")
    xv, sv = constant_array(x), constant_array(scale)
    if not (np.isfinite(xv).all() and np.isfinite(sv).all() and (sv != 0).all()):
        raise Unfit("a non-finite weight or a non-finite or zero scale")
    return quantize(xv, sv, zp, out_type, q.attrs.get("axis", 1), q.attrs.get("block_size", 0),
                    q.attrs.get("saturate", 1))


def fold_qdq(graph: gs.Graph, ctx: Context) -> int:
    """QuantizeLinear on a constant float32 weight, read by DequantizeLinear nodes -> its
    constant output (exactly what onnxruntime computes); returns how many were folded."""
    fresh, left, done = _Names(graph), defaultdict(list), 0
    for q in [n for n in graph.nodes if is_standard(n, "QuantizeLinear")]:
        if constant(q.inputs[0], graph) is None:
            continue  # activations: not a weight
        try:
            values = plan_q(q, graph)
        except Unfit as why:
            left[str(why)].append(q.name or q.outputs[0].name)
            continue
        out = q.outputs[0]
        const = _proto_constant(fresh(f"{out.name}.folded"), values)
        for user in list(out.outputs):
            user.inputs[user.inputs.index(out)] = const
        q.outputs.clear()
        done += 1
    _note_left(ctx, "QuantizeLinear on a constant", left)
    return done


@register("import-qdq", exact=True)
def import_qdq(graph: gs.Graph, ctx: Context) -> None:
    """Standard Q/DQ weights (INT8, INT4, FP8) -> npuq::Dequantize (int8sym, int4sym, fp8)."""
    folded = fold_qdq(graph, ctx)
    done = import_dq(graph, ctx)
    ctx.note(f"folded {folded} QuantizeLinear, rewrote {done} DequantizeLinear as npuq::Dequantize")
