"""Model-local ONNX functions (domain "npuq", version 1) built from standard opset-21 ops.

onnxruntime (CPU) runs them bit-exactly like `onnx_npuq.formats`:

    Dequantize_<fmt>(codes, scales[, tensor_scale]) -> Y     attrs: length, (block)
    QuantDequant_<fmt>[_<option>_<value>...](X) -> Y          attr:  axis (default -1)
    Quantize_<fmt>[_<option>_<value>...](X) -> codes, scales  (last axis; not nvfp4)

`Dequantize_<fmt>` takes `Packed.codes` and `Packed.scales` (uint8, 2-D) and returns the
decoded (rows, length) float32 matrix (rows as in Packed: every dimension but the axis,
in order); `length` crops the block padding (0: keep the padded rows). The float32-scaled
formats (int8sym, int4sym, fp8e4m3, fp8e5m2) also take `block` (elements per float32 scale;
0: the whole row, i.e. `length`).
Decoding does not depend on format options, so there is one Dequantize per format (hif8's
multiplies by the row's float32 scale when `scales` has one: scale="row" / "tensor").

`QuantDequant_<fmt>...` fake-quantizes X (float32, float16 or bfloat16, any rank) along
`axis`, computing in float32 and casting back to X's type (CastLike). Options change the
body, so each configuration is its own function (`function_name`). The axis is handled
inside the body with shape arithmetic (X viewed as (A, n, C) -> (A, C, nb, *block)), so
no Transpose is needed around the node; axis -1 (the default) is the `npuq` op contract.

Standard ops cannot reinterpret float bits, so exponents come from float arithmetic, and
every other float step reproduces the torch kernels' operations in their order:
- per element, 2^floor_log2(v) by Veltkamp's split (v * (2^23 + 1), two Subs: v rounded to
  one significant bit), halved where it exceeds v: exact for v in [2^-126, 2^104);
- per block, where an integer exponent is needed (MX shared exponent), floor(Log(v)/ln 2)
  (off by one binade near powers of two in onnxruntime) corrected by one comparison on each
  side against a Gather from a constant power-of-two table (subnormals included);
- bf16 rounding is Cast to BFLOAT16 and back (RNE in onnxruntime, like bits.to_bf16);
- NaN/Inf blocks are found as NaN in ReduceSum(x * 0): onnxruntime's ReduceMax may drop a
  NaN (torch's amax propagates it);
- a sign is applied by multiplying with Where(neg, -1, 1): onnxruntime's Where returns
  +0.0 for a -0.0 taken from its first value input.

    model = model_for_fake_quant("mxfp4", (4, 96), axis=-1, dtype=torch.bfloat16)
    model = model_for_decode(formats.encode(x, "hif4"))     # runnable, weights inside
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import onnx
import torch
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from .. import formats as F
from ..formats import codecs
from ..formats.hif4 import R7, HiFX4V12
from ..formats.asym import Asym
from ..formats.integer import Sym
from ..formats.packing import unpack_bits

DOMAIN = "npuq"
DOMAIN_VERSION = 1
OPSET = 21
IR_VERSION = 10  # onnxruntime 1.31 rejects onnx's default (14); 10 goes with opset 21

FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64
INF = float("inf")
NAN = float("nan")
INT64_MAX = np.iinfo(np.int64).max

# Power-of-two tables are indexed by k = e + OFF, e in [-OFF, NPOW - OFF): 2^e underflows
# to 0 below 2^-149 and is inf from 2^128 on, as float32 arithmetic would give.
OFF = 160
NPOW = 300
INV_LN2 = float(np.float32(1.0 / math.log(2.0)))

TORCH_TO_ONNX = {
    torch.float32: TensorProto.FLOAT,
    torch.float16: TensorProto.FLOAT16,
    torch.bfloat16: TensorProto.BFLOAT16,
}


# ------------------------------------------------------------------ tables (from the reference)


def _pow2_table(sign: int = 1, shift: int = 0) -> np.ndarray:
    """T[k] = 2^(sign * (k - OFF) + shift) in float32 (0 / inf outside the range)."""
    e = sign * (np.arange(NPOW) - OFF) + shift
    with np.errstate(over="ignore"):
        return np.ldexp(1.0, e).astype(np.float32)


def _f32(t: torch.Tensor) -> np.ndarray:
    return t.to(torch.float32).numpy().astype(np.float32)


def _bytes() -> torch.Tensor:
    return torch.arange(256, dtype=torch.int32).to(torch.uint8)


def _code_table(table: codecs.CodeTable) -> np.ndarray:
    """byte -> value (8-bit codes) or byte -> (low nibble value, high nibble value)."""
    if table.bits == 8:
        return _f32(table.decode(_bytes()))
    lo = table.decode(_bytes() & 0x0F)
    hi = table.decode(_bytes() >> 4)
    return _f32(torch.stack((lo, hi), dim=1))


def _int4_table() -> np.ndarray:
    """byte -> (low nibble, high nibble) as sign-extended int4 values."""
    lo = (_bytes().to(torch.int8) << 4) >> 4
    hi = ((_bytes() >> 4).to(torch.int8) << 4) >> 4
    return _f32(torch.stack((lo, hi), dim=1))


def _bit_table() -> np.ndarray:
    """byte -> its 8 bits MSB first, plus one (the HiF4 level-2/3 factors 1 or 2)."""
    return _f32(unpack_bits(_bytes().view(-1, 1)).to(torch.float32) + 1)


# ------------------------------------------------------------------ graph builder


class _Body:
    """Collects the nodes of one function body; names are local to the function."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self._n = 0
        self._consts: dict = {}

    def _name(self) -> str:
        self._n += 1
        return f"_{self._n}"

    def op(self, op_type: str, *inputs: str, n_out: int = 1, **attrs):
        outs = [self._name() for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def output(self, name: str, value: str) -> None:
        self.nodes.append(helper.make_node("Identity", [value], [name]))

    def const(self, arr) -> str:
        arr = np.asarray(arr, order="C")  # ascontiguousarray would make a scalar 1-D
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            name = self._name()
            tensor = numpy_helper.from_array(arr, name)
            self.nodes.append(helper.make_node("Constant", [], [name], value=tensor))
            self._consts[key] = name
        return self._consts[key]

    def f(self, v: float) -> str:
        return self.const(np.array(v, np.float32))

    def i(self, *v: int) -> str:
        """A 1-D int64 constant."""
        return self.const(np.array(v, np.int64))

    def k(self, v: int) -> str:
        """A scalar int64 constant."""
        return self.const(np.array(v, np.int64))

    def attr_int(self, name: str) -> str:
        """The function's int attribute `name` as a scalar int64 tensor."""
        out = self._name()
        node = helper.make_node("Constant", [], [out])
        node.attribute.append(
            helper.make_attribute_ref("value_int", AttributeProto.INT, ref_attr_name=name)
        )
        self.nodes.append(node)
        return out

    # -- exact numerics --
    def pow2(self, k: str, sign: int = 1, shift: int = 0) -> str:
        """2^(sign * (k - OFF) + shift) for an int64 table index k."""
        return self.op("Gather", self.const(_pow2_table(sign, shift)), k)

    def floor_log2(self, v: str) -> str:
        """Table index k = floor_log2(v) + OFF (int64) of a finite v > 0, subnormals too.

        Log is within one binade of the truth; one comparison on each side fixes it. Used
        on per-block tensors only: Gather costs ~10x an element-wise op in onnxruntime.
        """
        t = self.op("Mul", self.op("Log", v), self.f(INV_LN2))
        k0 = self.op("Cast", self.op("Floor", self.op("Add", t, self.f(OFF))), to=INT64)
        low = self.op("Cast", self.op("Less", v, self.pow2(k0)), to=INT64)
        high = self.op("Cast", self.op("GreaterOrEqual", v, self.pow2(k0, shift=1)), to=INT64)
        return self.op("Add", self.op("Sub", k0, low), high)

    def pow2_floor(self, v: str) -> str:
        """2^floor_log2(v), exactly, for v in [2^-126, 2^104) (bits.pow2_floor); NaN stays NaN.

        Veltkamp's split with C = 2^23 + 1 rounds v to nearest with one significant bit:
        hi is 2^e or 2^(e+1); halve it where it exceeds v.
        """
        c = self.op("Mul", v, self.f(2.0**23 + 1))
        hi = self.op("Sub", c, self.op("Sub", c, v))
        return self.op("Mul", hi, self.op("Where", self.op("Greater", hi, v), self.f(0.5), self.f(1.0)))

    def pow2_steps(self, v: str, lo: float, binades: int, scale: float) -> str:
        """scale * 2^floor_log2(max(v, lo)), by comparisons: for v < lo * 2^binades, and
        beyond that the step of the last binade."""
        step = self.f(lo * scale)
        for j in range(1, binades):
            edge = lo * 2.0**j
            step = self.op("Where", self.op("GreaterOrEqual", v, self.f(edge)), self.f(edge * scale), step)
        return step

    def float32_from_bits(self, bits: str) -> str:
        """int64 in [0, 2^32): the float32 with these bits (bit-exact, NaN payloads aside)."""
        exp = self.op("Mod", self.op("Div", bits, self.k(1 << 23)), self.k(256))
        man = self.op("Mod", bits, self.k(1 << 23))
        normal = self.op("Greater", exp, self.k(0))
        sig = self.op("Cast", self.op("Where", normal, self.op("Add", man, self.k(1 << 23)), man), to=FLOAT)
        # value = significand * 2^(max(exp, 1) - 150): exact, the product is the float itself
        k = self.op("Add", self.op("Max", exp, self.k(1)), self.k(OFF - 150))
        mag = self.op("Mul", sig, self.pow2(k))
        special = self.op("Where", self.op("Equal", man, self.k(0)), self.f(INF), self.f(NAN))
        mag = self.op("Where", self.op("Equal", exp, self.k(255)), special, mag)
        return self.negate_where(self.op("GreaterOrEqual", bits, self.k(1 << 31)), mag)

    def bf16(self, v: str) -> str:
        """Round float32 to bfloat16 (RNE) and back (bits.to_bf16)."""
        return self.op("Cast", self.op("Cast", v, to=TensorProto.BFLOAT16), to=FLOAT)

    def round_ta(self, v: str) -> str:
        """bits.round_ta: floor(v + 0.5) in float32, as the torch kernels do it."""
        return self.op("Floor", self.op("Add", v, self.f(0.5)))

    def negate_where(self, neg: str, y: str) -> str:
        """-y where neg, else y. A multiply by -1/1: onnxruntime's Where turns a -0.0 taken
        from its first value input into +0.0, so Where(neg, Neg(y), y) loses -0.0."""
        return self.op("Mul", y, self.op("Where", neg, self.f(-1.0), self.f(1.0)))

    def copysign(self, y: str, x: str) -> str:
        """torch.copysign(y, x) for y >= 0 and finite x (-0.0 included: 1/-0 = -inf)."""
        neg = self.op("Less", self.op("Div", self.f(1.0), x), self.f(0.0))
        return self.negate_where(neg, y)

    def nan_where(self, bad: str, v: str) -> str:
        return self.op("Where", bad, self.f(NAN), v)

    def unsqueeze(self, v: str, count: int = 1) -> str:
        """Trailing unit dimensions, to broadcast a per-block tensor over its elements."""
        return self.op("Unsqueeze", v, self.i(*range(-count, 0)))

    def reduce_max(self, v: str, *axes: int) -> str:
        return self.op("ReduceMax", v, self.i(*axes), keepdims=0)

    def non_finite(self, x: str, *axes: int) -> str:
        """True for blocks holding a NaN or Inf (x * 0 is NaN exactly there). onnxruntime's
        ReduceMax may drop a NaN that torch's amax propagates, so it cannot tell."""
        z = self.op("ReduceSum", self.op("Mul", x, self.f(0.0)), self.i(*axes), keepdims=0)
        return self.op("IsNaN", z)


# ------------------------------------------------------------------ names and signatures


def _fmt(fmt_name: str, options: dict):
    fmt = F.get_format(fmt_name, **options)
    return F.canonical(fmt_name), fmt


def _suffix(options: dict) -> str:
    parts = []
    for key, value in sorted(options.items()):
        parts.append(key if value is True else f"{key}_{value}")
    return "".join("_" + p for p in parts)


def function_name(kind: str, fmt_name: str, **options) -> str:
    """Op type of a function: 'Dequantize_<fmt>' or 'QuantDequant_<fmt>[_<opt>_<val>...]'.

    Only non-default options appear (e.g. QuantDequant_mxfp4_rounding_even,
    QuantDequant_int4sym_group_32, QuantDequant_hif8_saturate, QuantDequant_hif4_variant_amct).
    """
    name, fmt = _fmt(fmt_name, options)
    if kind == "Dequantize":
        return f"Dequantize_{name}"
    if kind == "QuantDequant":
        return f"QuantDequant_{name}{_suffix(fmt.options)}"
    raise ValueError(f"kind must be 'Dequantize' or 'QuantDequant', got {kind!r}")


def _make_function(name, inputs, outputs, body: _Body, attrs: dict, doc: str) -> onnx.FunctionProto:
    return helper.make_function(
        DOMAIN,
        name,
        inputs,
        outputs,
        body.nodes,
        [helper.make_opsetid("", OPSET)],
        attribute_protos=[helper.make_attribute(k, v) for k, v in attrs.items()],
        doc_string=doc,
    )


# ------------------------------------------------------------------ Dequantize
#
# onnxruntime constant-folds a Dequantize of initializers when it creates a session, node by
# node, and keeps every folded result until the whole graph is done: the session's peak holds
# each full-size intermediate of every weight at once. So the bodies decode in as few
# full-size steps as they can: the codes are reshaped into blocks while still bytes, indices
# are int32 (not int64), the scale multiplies the table values in the block layout, one
# Reshape makes rows, and the crop of the block padding (and of odd int4 blocks' padding
# nibble) runs only when there is one (an If on constants: onnxruntime inlines the branch it
# takes). benchmarks/bench_onnx.py measures the session peak.


def _u8_blocks(g: _Body, u8: str, *inner: int | str) -> str:
    """(rows, k * prod(inner)) bytes -> (rows, k, *inner); `inner` ints or [1] tensors. The
    target shape is computed (from the input's row count), not a constant: onnxruntime then
    learns the sizes of the decoding steps only as it folds them, and folds them in more
    passes, each holding fewer full-size results (measured: about one weight less at peak)."""
    dims = [g.i(d) if isinstance(d, int) else d for d in inner]
    rows = g.op("Gather", g.op("Shape", u8), g.i(0))
    return g.op("Reshape", u8, g.op("Concat", rows, g.i(-1), *dims, axis=0))


def _lookup(g: _Body, table: np.ndarray, u8: str) -> str:
    """table[byte] for each byte (int32 indices: half the memory of int64 ones)."""
    return g.op("Gather", g.const(table), g.op("Cast", u8, to=TensorProto.INT32))


def _rows(g: _Body, y: str, flat: bool = False) -> str:
    """The decoded blocks as (rows, padded width) (`flat`: y is that already), cropped to
    `length` when that is shorter."""
    y2 = y if flat else g.op("Reshape", y, g.i(0, -1))
    length = g.op("Unsqueeze", g.attr_int("length"), g.i(0))
    width = g.op("Gather", g.op("Shape", y2), g.i(1))  # (Shape's start / end: opset 15)
    whole = g.op("Or", g.op("Equal", length, g.i(0)), g.op("Equal", length, width))
    return _slice_unless(g, whole, y2, g.i(0), length, g.i(1))


def _slice_unless(g: _Body, keep: str, y: str, *bounds: str, view: str | None = None) -> str:
    """y where `keep` (a [1] bool), else Slice(y, *bounds) (of y reshaped to `view` when
    given): a copy only when it crops."""
    out = g._name()
    then = helper.make_graph([helper.make_node("Identity", [y], [f"{out}_keep"])], f"{out}_keep", [],
                             [helper.make_tensor_value_info(f"{out}_keep", FLOAT, None)])
    nodes, src = [], y
    if view is not None:
        src = f"{out}_view"
        nodes.append(helper.make_node("Reshape", [y, view], [src]))
    nodes.append(helper.make_node("Slice", [src, *bounds], [f"{out}_crop"]))
    other = helper.make_graph(nodes, f"{out}_crop", [], [helper.make_tensor_value_info(f"{out}_crop", FLOAT, None)])
    g.nodes.append(helper.make_node("If", [g.op("Squeeze", keep)], [out], then_branch=then, else_branch=other))
    return out


def _float32_from_bytes(g: _Body, b4: str) -> str:
    """(..., 4) uint8, little-endian float32 bytes -> (..., 1) float32 values (bit-exact)."""
    b = g.op("Cast", b4, to=INT64)
    return g.float32_from_bits(g.op("ReduceSum", g.op("Mul", b, g.i(1, 1 << 8, 1 << 16, 1 << 24)),
                                    g.i(-1), keepdims=1))


def _sym_block(g: _Body) -> str:
    """Attribute `block` as a [1] int64, 0 meaning `length` (the whole row)."""
    length = g.op("Unsqueeze", g.attr_int("length"), g.i(0))
    blk = g.op("Unsqueeze", g.attr_int("block"), g.i(0))
    return g.op("Where", g.op("Greater", blk, g.i(0)), blk, length)


def _nibble_blocks(g: _Body, codes: str, table: np.ndarray, blk: str) -> tuple[str, str]:
    """4-bit codes of blocks of `blk` elements (an odd block carries one padding nibble) ->
    (values (rows, blocks, stored / 2, 2), stored: blk rounded up to even, a [1] int64)."""
    stored = g.op("Add", blk, g.op("Mod", blk, g.i(2)))
    vals = _lookup(g, table, _u8_blocks(g, codes, g.op("Div", stored, g.i(2))))  # (R, nb, stored/2, 2)
    return vals, stored


def dequantize_function(fmt_name: str, **options) -> onnx.FunctionProto:
    """The `Dequantize_<fmt>` function (options are accepted and do not matter)."""
    name, fmt = _fmt(fmt_name, options)
    g = _Body()
    inputs = ["codes", "scales"]
    attrs = {"length": 0}
    if name == "hif8":
        # scaled HiF8 (scale="row" / "tensor") has one float32 per row, unscaled none: the
        # bytes of 1.0f appended to every row make one rule of both (times 1.0 is exact);
        # a row per code byte, no padding
        one = g.op("Expand", g.const(np.array([[0, 0, 128, 63]], np.uint8)),
                   g.op("Concat", g.op("Gather", g.op("Shape", "scales"), g.i(0)), g.i(4), axis=0))
        s4 = g.op("Slice", g.op("Concat", "scales", one, axis=1), g.i(0), g.i(4), g.i(1))
        # each row's table scaled (R, 256), then one GatherElements: the same products as
        # table value * scale, without a full-size float intermediate
        rows = g.op("Mul", g.const(_code_table(codecs.HIF8).reshape(1, 256)), _float32_from_bytes(g, s4))
        y = g.op("GatherElements", rows, g.op("Cast", "codes", to=TensorProto.INT32), axis=1)
        y = _rows(g, y, flat=True)
    elif name in ("mxfp4", "mxfp8e4m3", "mxfp8e5m2", "nvf4", "nvfp4"):
        block = 32 if name.startswith("mx") else 16
        bits = 4 if name in ("mxfp4", "nvf4", "nvfp4") else 8
        if name.startswith("mx"):
            ctable, stable = _code_table(fmt.el.table), _f32(codecs.e8m0_decode(_bytes()))
        else:
            ctable, stable = _code_table(codecs.E2M1), _code_table(codecs.E4M3)
        vals = _lookup(g, ctable, _u8_blocks(g, "codes", block * bits // 8))  # (R, nb, bytes[, 2])
        s = _lookup(g, stable, _u8_blocks(g, "scales", *([1, 1] if bits == 4 else [1])))
        if name == "nvfp4":
            inputs.append("tensor_scale")
            s = g.op("Mul", s, "tensor_scale")
        y = _rows(g, g.op("Mul", vals, s))
    elif name in ("hif4", "hifx4_v12"):
        # 64 elements a group: sub-groups of 4 elements (2 code bytes) s = 0..15 as (s // 8,
        # s % 8 // 2, s % 2); scale bytes [level 1, 8 level-2 bits (one per s // 2), 16
        # level-3 bits (one per s), MSB first]. Each factor comes from its table already in
        # the shape that broadcasts over the values: no full-size reshape of scale factors
        vals = _lookup(g, _code_table(codecs.S1P2), _u8_blocks(g, "codes", 2, 4, 2, 2))  # (R, g, 2, 4, 2, 2, 2)
        l1, b8, b4 = g.op("Split", _u8_blocks(g, "scales", 4), g.i(1, 1, 2), axis=2, n_out=3)
        if name == "hif4":
            l1_table = _f32(codecs.e6m2_decode(_bytes()))
        else:
            l1_table = _f32(HiFX4V12()._level1_value(_bytes()))
        level1 = _lookup(g, l1_table.reshape(256, 1, 1, 1, 1, 1), g.op("Squeeze", l1, g.i(2)))  # (R, g, 1, ...)
        bits = _bit_table()
        s8 = _lookup(g, bits.reshape(256, 2, 4, 1, 1, 1), g.op("Squeeze", b8, g.i(2)))  # (R, g, 2, 4, 1, 1, 1)
        s4 = _lookup(g, bits.reshape(256, 4, 2, 1, 1), b4)  # (R, g, 2, 4, 2, 1, 1)
        y = _rows(g, g.op("Mul", vals, g.op("Mul", g.op("Mul", s8, s4), level1)))
    elif isinstance(fmt, Asym):  # DequantizeLinear's float32(code - zero point) * scale
        attrs["block"] = 0
        y = _dequantize_asym(g, fmt)
    elif isinstance(fmt, Sym):
        attrs["block"] = 0
        blk = _sym_block(g)
        scale = _float32_from_bytes(g, _u8_blocks(g, "scales", 4))  # (R, nb, 1)
        if fmt.elem_bits == 8:
            c3 = _u8_blocks(g, "codes", blk)
            if fmt.el.grid is not None:  # FP8: DequantizeLinear's float32(fp8) * scale
                vals = _lookup(g, _code_table(fmt.el.grid.table), c3)
            else:  # uint8 -> int8 wraps (two's complement): no table needed
                vals = g.op("Cast", g.op("Cast", c3, to=TensorProto.INT8), to=FLOAT)
            y = _rows(g, g.op("Mul", vals, scale))
        else:
            vals, stored = _nibble_blocks(g, "codes", _int4_table(), blk)
            y = _rows(g, _odd_blocks(g, g.op("Mul", vals, g.op("Unsqueeze", scale, g.i(-1))), blk, stored))
    else:  # pragma: no cover - names() and this table move together
        raise ValueError(f"no Dequantize body for {name}")
    g.output("Y", y)
    doc = (f"Decode Packed.codes/scales of format {name} to the (rows, length) float32 matrix "
           "of onnx_npuq.formats.decode (before the reshape to the tensor's shape).")
    return _make_function(f"Dequantize_{name}", inputs, ["Y"], g, attrs, doc)


def _odd_blocks(g: _Body, y4: str, blk: str, stored: str) -> str:
    """(R, nb, stored / 2, 2) values of blocks of `blk` 4-bit elements, as they are for even
    blocks, or (R, nb, blk) without the padding nibble of odd ones."""
    view = g.op("Concat", g.i(0, 0), stored, axis=0)
    return _slice_unless(g, g.op("Equal", blk, stored), y4, g.i(0), blk, g.i(2), view=view)


def _uint4_table() -> np.ndarray:
    """byte -> (low nibble, high nibble) as unsigned values."""
    return _f32(torch.stack((_bytes() & 0x0F, _bytes() >> 4), dim=1))


def _dequantize_asym(g: _Body, fmt) -> str:
    """uint8asym / uint4asym: (code - zero point) * scale per block of `block` (0: the row);
    scales are 5 bytes a block: float32 (little-endian), then the zero point."""
    blk = _sym_block(g)
    s4, zp = g.op("Split", _u8_blocks(g, "scales", 5), g.i(4, 1), axis=2, n_out=2)
    scale, zp = _float32_from_bytes(g, s4), g.op("Cast", zp, to=FLOAT)  # (R, nb, 1)
    if fmt.elem_bits == 8:
        vals = g.op("Cast", _u8_blocks(g, "codes", blk), to=FLOAT)
        y = g.op("Mul", g.op("Sub", vals, zp), scale)  # exact: integers below 2^8
        return _rows(g, y)
    vals, stored = _nibble_blocks(g, "codes", _uint4_table(), blk)
    y = g.op("Mul", g.op("Sub", vals, g.op("Unsqueeze", zp, g.i(-1))), g.op("Unsqueeze", scale, g.i(-1)))
    return _rows(g, _odd_blocks(g, y, blk, stored))


# ------------------------------------------------------------------ QuantDequant: layout


class _Layout:
    """X (any rank) as blocks along attribute `axis`: (A, C, nb, *inner).

    X is viewed as (A, n, C) and transposed to (A, C, n) (a copy when C == 1), so the
    block is innermost; n is zero-padded to a block multiple. Per-block tensors are kept
    without trailing unit dimensions (keepdims=0): onnxruntime broadcasts a scalar over a
    tensor whose last dimension is 1 about 30x slower than over a flat one.
    """

    def __init__(self, g: _Body, xf: str, inner: Sequence[int] | None):
        self.g = g
        shp = g.op("Shape", xf)
        rank = g.op("Size", shp)
        ax = g.op("Mod", g.op("Add", g.attr_int("axis"), rank), rank)
        ax1 = g.op("Unsqueeze", ax, g.i(0))
        ax2 = g.op("Add", ax1, g.i(1))
        pre = g.op("ReduceProd", g.op("Concat", g.i(1), g.op("Slice", shp, g.i(0), ax1), axis=0), keepdims=1)
        post = g.op("ReduceProd", g.op("Concat", g.i(1), g.op("Slice", shp, ax2, g.i(INT64_MAX)), axis=0), keepdims=1)
        n = g.op("Slice", shp, ax1, ax2)
        self.shp, self.pre, self.post, self.n, self.inner = shp, pre, post, n, inner
        xt = g.op("Transpose", g.op("Reshape", xf, g.op("Concat", pre, n, post, axis=0)), perm=[0, 2, 1])
        if inner is None:  # the whole axis is one block
            self.x = g.op("Reshape", xt, g.op("Concat", pre, post, g.i(1), n, axis=0))
            return
        pad = g.op("Mod", g.op("Neg", n), g.i(int(np.prod(inner))))
        xp = g.op("Pad", xt, g.op("Concat", g.i(0, 0, 0, 0, 0), pad, axis=0))
        self.x = g.op("Reshape", xp, g.op("Concat", pre, post, g.i(-1, *inner), axis=0))

    @property
    def block_axes(self) -> list[int]:
        """Axes of one block in the (A, C, nb, *inner) view."""
        return list(range(3, 3 + (1 if self.inner is None else len(self.inner))))

    def restore(self, y: str) -> str:
        g = self.g
        if self.inner is None:
            yt = g.op("Reshape", y, g.op("Concat", self.pre, self.post, self.n, axis=0))
        else:
            yt = g.op("Reshape", y, g.op("Concat", self.pre, self.post, g.i(-1), axis=0))
            yt = g.op("Slice", yt, g.i(0), self.n, g.i(2))
        return g.op("Reshape", g.op("Transpose", yt, perm=[0, 2, 1]), self.shp)


# ------------------------------------------------------------------ QuantDequant: kernels


def _qd_hif8(g: _Body, x: str, fmt) -> str:
    """hif8.quantize_reference, element-wise (NaN flows through to NaN)."""
    a = g.op("Abs", x)
    # 2^E, E = floor_log2(a) clamped to [-22, 16]: below 2^-23 the result is 0, from
    # 40960 on +-Inf (or MAX), and in between the clamp changes nothing
    p2e = g.pow2_floor(g.op("Clip", a, g.f(2.0**-22), g.f(2.0**16)))
    r = g.op("Max", p2e, g.op("Div", g.f(1.0), p2e))  # 2^|E|
    # step = 2^(E - p): p = 3 for |E| <= 3, 2 to 7, 1 to 15, 0 beyond
    f = g.f(0.125)
    for edge, factor in ((8.0, 0.25), (128.0, 0.5), (32768.0, 1.0)):
        f = g.op("Where", g.op("Greater", r, g.f(edge)), g.f(factor), f)
    step = g.op("Mul", p2e, f)
    y = g.op("Mul", g.round_ta(g.op("Div", a, step)), step)
    big = 32768.0 if fmt.saturate or fmt.scale else INF  # scaled: clamped to +-32768
    y = g.op("Where", g.op("GreaterOrEqual", a, g.f(40960.0)), g.f(big), y)
    y = g.op("Where", g.op("Less", a, g.f(2.0**-23)), g.f(0.0), y)
    # copysign(y, x) + 0.0: one zero only (0 - 0 is +0)
    return g.op("Where", g.op("Less", x, g.f(0.0)), g.op("Sub", g.f(0.0), y), y)


def _block_amax(g: _Body, x: str, a: str, axes) -> tuple[str, str]:
    """(max |x| per block, 0 in blocks with NaN/Inf; the mask of those blocks)."""
    bad = g.non_finite(x, *axes)
    return g.op("Where", bad, g.f(0.0), g.reduce_max(a, *axes)), bad


def _mx_scale(g: _Body, x: str, fmt, axes) -> tuple[str, str, str]:
    """MX shared exponent on (A, C, nb, 32): (|x|, table index of the exponent, NaN-block mask)."""
    el = fmt.el
    a = g.op("Abs", x)
    amax, bad = _block_amax(g, x, a, axes)
    if fmt.scale_rule == "floor":
        s = g.op("Sub", g.floor_log2(g.op("Max", amax, g.f(2.0**-126))), g.k(el.emax))
    else:  # ceil_log2(amax / max); -127 where that is 0 (zero amax, or underflow)
        q = g.op("Div", amax, g.f(el.max))
        qpos = g.op("Greater", q, g.f(0.0))
        qs = g.op("Where", qpos, q, g.f(1.0))
        kq = g.floor_log2(qs)
        up = g.op("Cast", g.op("Greater", qs, g.pow2(kq)), to=INT64)
        s = g.op("Where", qpos, g.op("Add", kq, up), g.k(OFF - 127))
    s = g.op("Clip", s, g.k(OFF - 127), g.k(OFF + 127))  # table index of the shared exponent
    return a, s, bad


def _mx_round(g: _Body, y: str, el, rounding: str) -> str:
    """mx.round_element_ of y >= 0, y < 2^(emax + 1): the unsigned element value."""
    binades = el.emax - el.emin + 1
    if binades <= 3:  # E2M1: the step by comparisons
        step = g.pow2_steps(y, 2.0**el.emin, binades, 2.0**-el.mbits)
    else:
        step = g.op("Mul", g.pow2_floor(g.op("Max", y, g.f(2.0**el.emin))), g.f(2.0**-el.mbits))
    t = g.op("Div", y, step)
    r = g.round_ta(t) if rounding == "away" else g.op("Round", t)
    return g.op("Min", g.op("Mul", r, step), g.f(el.max))


def _qd_mx(g: _Body, x: str, fmt, axes) -> str:
    """MX._elements + MX.fake_blocks on (A, C, nb, 32)."""
    a, s, bad = _mx_scale(g, x, fmt, axes)
    y = g.op("Mul", a, g.unsqueeze(g.pow2(s, sign=-1)))  # y < 2^(emax + 1) in finite blocks
    q = _mx_round(g, y, fmt.el, fmt.rounding)
    return g.op("Mul", g.copysign(q, x), g.unsqueeze(g.nan_where(bad, g.pow2(s))))


def _round_e4m3(g: _Body, sf: str) -> str:
    """nvfp4.round_e4m3 of sf in [0, 448] (NaN stays NaN)."""
    step = g.op("Mul", g.pow2_floor(g.op("Max", sf, g.f(2.0**-6))), g.f(2.0**-3))
    return g.op("Min", g.op("Mul", g.op("Round", g.op("Div", sf, step)), step), g.f(448.0))


def _qd_nvf4(g: _Body, x: str, fmt, axes, ts: str | None) -> str:
    """NVF4._elements + fake_blocks on (A, C, nb, 16); ts: nvfp4's tensor scale or None."""
    a = g.op("Abs", x)
    amax, bad = _block_amax(g, x, a, axes)
    if ts is None:
        sf = g.op("Div", amax, g.f(6.0))
    else:
        sf = g.op("Div", amax, g.op("Mul", g.f(6.0), ts))
    s = _round_e4m3(g, g.op("Min", sf, g.f(448.0)))
    mult = s if ts is None else g.op("Mul", s, ts)
    div = g.op("Where", g.op("Greater", mult, g.f(0.0)), mult, g.f(1.0))
    v = g.op("Div", a, g.unsqueeze(div))
    # round_e2m1_: step 2^max(floor_log2 v, 0) / 2; from v >= 8 on the result is 6 anyway
    step = g.pow2_steps(v, 1.0, 3, 0.5)
    q = g.op("Min", g.op("Mul", g.op("Round", g.op("Div", v, step)), step), g.f(6.0))
    return g.op("Mul", g.copysign(q, x), g.unsqueeze(g.nan_where(bad, mult)))


def _tensor_scale(g: _Body, xf: str) -> str:
    """NVFP4.tensor_scale: amax over finite |x| / (6 * 448), or 1 when that is 0."""
    a = g.op("Abs", xf)
    amax = g.op("ReduceMax", g.op("Where", g.op("Less", a, g.f(INF)), a, g.f(0.0)), keepdims=0)
    return g.op("Where", g.op("Greater", amax, g.f(0.0)),
                g.op("Div", amax, g.f(6.0 * 448.0)), g.f(1.0))


def _qd_hif4(g: _Body, x: str, fmt) -> str:
    """HiF4._codes with HiF4._scales on (A, C, nb, 8, 2, 4)."""
    a = g.op("Abs", x)
    m4 = g.reduce_max(a, 5)  # (A, C, nb, 8, 2)
    m8 = g.reduce_max(m4, 4)  # (A, C, nb, 8)
    m64, bad = g.reduce_max(m8, 3), g.non_finite(x, 3, 4, 5)  # (A, C, nb)
    m64 = g.op("Where", bad, g.f(0.0), m64)
    sf = g.op("Clip", g.bf16(g.op("Mul", m64, g.f(R7))), g.f(2.0**-48), g.f(49152.0))
    step = g.op("Mul", g.pow2_floor(sf), g.f(0.25))  # E6M2: RNE on 2 mantissa bits
    sf = g.op("Mul", g.op("Round", g.op("Div", sf, step)), step)
    rec = g.bf16(g.op("Div", g.f(1.0), sf))
    one = g.f(1.0)
    s8 = g.op("GreaterOrEqual", g.op("Mul", m8, g.unsqueeze(rec)), g.f(4.0))
    s8 = g.unsqueeze(g.op("Add", g.op("Cast", s8, to=FLOAT), one))  # (A, C, nb, 8, 1)
    s4 = g.op("GreaterOrEqual", g.op("Div", g.op("Mul", m4, g.unsqueeze(rec, 2)), s8), g.f(2.0))
    s84 = g.op("Mul", g.op("Add", g.op("Cast", s4, to=FLOAT), one), s8)  # (A, C, nb, 8, 2)
    into = g.op("Div", g.unsqueeze(g.op("Mul", rec, g.f(4.0)), 2), s84)
    back = g.op("Mul", g.op("Mul", s84, g.unsqueeze(g.nan_where(bad, sf), 2)), g.f(0.25))
    c = g.op("Mul", a, g.unsqueeze(into))
    if fmt.variant == "amct":
        c = g.bf16(c)
    c = g.op("Min", g.round_ta(c), g.f(7.0))
    return g.copysign(g.op("Mul", c, g.unsqueeze(back)), x)


def _qd_hifx4_v12(g: _Body, x: str, fmt) -> str:
    """HiFX4V12._scales + HiF4._codes on (A, C, nb, 8, 2, 4), exponents as powers of two:
    eb + b1 = eb + [em >= eb + 2], e = eb + b1 + [eg >= eb + b1 + 1]."""
    a = g.op("Abs", x)
    m4 = g.reduce_max(a, 5)
    bad = g.non_finite(x, 3, 4, 5)
    # 2^eg, eg = floor_log2(m4 + 2^-45); m4 capped at 2^100 (eb saturates at 16 long before)
    pg = g.pow2_floor(g.op("Add", g.op("Min", m4, g.f(2.0**100)), g.f(2.0**-45)))
    pm = g.reduce_max(pg, 4)  # 2^em (A, C, nb, 8)
    pb = g.op("Clip", g.op("Mul", g.reduce_max(pm, 3), g.f(0.25)), g.f(2.0**-46), g.f(2.0**16))
    two, one = g.f(2.0), g.f(1.0)
    b1 = g.op("GreaterOrEqual", pm, g.unsqueeze(g.op("Mul", pb, g.f(4.0))))
    p1 = g.op("Mul", g.unsqueeze(pb), g.op("Where", b1, two, one))  # 2^(eb + b1) (A, C, nb, 8)
    b2 = g.op("GreaterOrEqual", pg, g.unsqueeze(g.op("Mul", p1, two)))
    pe = g.op("Mul", g.unsqueeze(p1), g.op("Where", b2, two, one))  # 2^e (A, C, nb, 8, 2)
    into = g.op("Div", g.f(4.0), pe)
    back = g.op("Mul", pe, g.unsqueeze(g.nan_where(bad, g.f(0.25)), 2))
    c = g.op("Min", g.round_ta(g.op("Mul", a, g.unsqueeze(into))), g.f(7.0))
    return g.copysign(g.op("Mul", c, g.unsqueeze(back)), x)


def _sym_levels(g: _Body, x: str, scale: str, fmt) -> tuple[str, str]:
    """Sym._levels before its NaN rows, on (..., block) with the per-block scale: (signed
    element values, for FP8 their magnitudes (None for the integers))."""
    el = fmt.el
    div = g.unsqueeze(g.op("Where", g.op("Greater", scale, g.f(0.0)), scale, g.f(1.0)))
    if el.grid is None:
        q = g.op("Clip", g.op("Round", g.op("Div", x, div)), g.f(-el.max), g.f(el.max))
        return q, None
    # from 2^(emax + 1) on the element saturates anyway (y can exceed max where the scale
    # is a coarse subnormal; in NaN/Inf rows anything goes, they are NaN at the end)
    y = g.op("Min", g.op("Div", g.op("Abs", x), div), g.f(2.0 ** (el.grid.emax + 1)))
    mag = _mx_round(g, y, el.grid, "even")
    return g.copysign(mag, x), mag


def _qd_sym(g: _Body, x: str, fmt, axes) -> str:
    """Sym._levels + fake_blocks on (A, C, nb, block)."""
    bad = g.non_finite(x, *axes)
    scale = g.op("Div", g.reduce_max(g.op("Abs", x), *axes), g.f(fmt.el.max))
    q, _ = _sym_levels(g, x, scale, fmt)
    return g.op("Mul", q, g.unsqueeze(g.nan_where(bad, scale)))  # (q * 1 or NaN) * scale


def _hif8_scaled(g: _Body, x: str, scale: str, fmt) -> str:
    """HiF8._scaled: hif8(x / where(scale > 0, scale, 1)) clamped to +-32768, per row (or
    tensor) float32 scale broadcast over x; NaN where the scale is not finite."""
    div = g.op("Where", g.op("Greater", scale, g.f(0.0)), scale, g.f(1.0))
    q = _qd_hif8(g, g.op("Div", x, div), fmt)
    return g.nan_where(g.op("Not", g.op("Less", scale, g.f(INF))), q)


def _qd_hif8_row(g: _Body, x: str, fmt, axes) -> str:
    """HiF8 scale="row" on (A, C, 1, n): amax / 32768 per row, NaN in rows with NaN / Inf."""
    bad = g.non_finite(x, *axes)
    scale = g.unsqueeze(g.nan_where(bad, g.op("Div", g.reduce_max(g.op("Abs", x), *axes), g.f(32768.0))))
    return g.op("Mul", _hif8_scaled(g, x, scale, fmt), scale)


def _qd_hif8_tensor(g: _Body, xf: str, fmt) -> str:
    """HiF8 scale="tensor": one amax / 32768 for all of X (NaN if X holds NaN / Inf)."""
    bad = g.op("IsNaN", g.op("ReduceSum", g.op("Mul", xf, g.f(0.0)), keepdims=0))
    scale = g.nan_where(bad, g.op("Div", g.op("ReduceMax", g.op("Abs", xf), keepdims=0), g.f(32768.0)))
    return g.op("Mul", _hif8_scaled(g, xf, scale, fmt), scale)


def _q_hif8_scaled(g: _Body, x2: str, fmt) -> tuple[str, str]:
    """HiF8 scale="row" / "tensor" on (R, n): codes (R, n) and the float32 scale of each row
    (R, 4); the scale is amax / 32768 as torch's amax gives it (NaN if the row / tensor holds
    NaN, else +Inf if it holds Inf), the codes of a non-finite row all NaN (0x80)."""
    axes = (1,) if fmt.scale == "row" else ()
    isnan = g.op("Cast", g.op("IsNaN", x2), to=FLOAT)
    amax = g.op("ReduceMax", g.op("Abs", x2), *([g.i(*axes)] if axes else []), keepdims=0)
    has_nan = g.op("Greater", g.op("ReduceMax", isnan, *([g.i(*axes)] if axes else []), keepdims=0), g.f(0.0))
    scale = g.nan_where(has_nan, g.op("Div", amax, g.f(32768.0)))  # onnxruntime's ReduceMax may drop a NaN
    if fmt.scale == "tensor":  # one per row
        scale = g.op("Expand", scale, g.op("Slice", g.op("Shape", x2), g.i(0), g.i(1)))
    scale = g.unsqueeze(scale)  # (R, 1)
    codes = _u8(g, _hif8_byte(g, _hif8_scaled(g, x2, scale, fmt)))
    return codes, _float32_bytes(g, scale)


def quant_dequant_function(fmt_name: str, **options) -> onnx.FunctionProto:
    """The `QuantDequant_<fmt>[...]` function for one format configuration."""
    name, fmt = _fmt(fmt_name, options)
    g = _Body()
    xf = g.op("Cast", "X", to=FLOAT)
    if name == "hif8" and fmt.scale == "tensor":
        y = _qd_hif8_tensor(g, xf, fmt)
    elif name == "hif8" and fmt.scale is None:  # element-wise: `axis` is accepted for a uniform signature
        y = _qd_hif8(g, xf, fmt)
    else:
        ts = _tensor_scale(g, xf) if name == "nvfp4" else None
        if name in ("hif4", "hifx4_v12"):
            inner = [8, 2, 4]
        elif fmt.block is None:
            inner = None
        else:
            inner = [fmt.block]
        lay = _Layout(g, xf, inner)
        axes = lay.block_axes
        if name.startswith("mx"):
            yb = _qd_mx(g, lay.x, fmt, axes)
        elif name in ("nvf4", "nvfp4"):
            yb = _qd_nvf4(g, lay.x, fmt, axes, ts)
        elif name == "hif4":
            yb = _qd_hif4(g, lay.x, fmt)
        elif name == "hifx4_v12":
            yb = _qd_hifx4_v12(g, lay.x, fmt)
        elif isinstance(fmt, Sym):
            yb = _qd_sym(g, lay.x, fmt, axes)
        elif name == "hif8":  # scale="row"
            yb = _qd_hif8_row(g, lay.x, fmt, axes)
        else:  # pragma: no cover
            raise ValueError(f"no QuantDequant body for {name}")
        y = lay.restore(yb)
    g.output("Y", g.op("CastLike", y, "X"))
    fname = function_name("QuantDequant", name, **fmt.options)
    doc = (f"onnx_npuq.formats.fake_quant(X, {name!r}, axis{''.join(f', {k}={v!r}' for k, v in fmt.options.items())})"
           ": float32 inside, the result in X's type.")
    return _make_function(fname, ["X"], ["Y"], g, {"axis": -1}, doc)


# ------------------------------------------------------------------ Quantize

# Formats whose Quantize body exists (the torch op npuq::quantize covers every one-level format).
QUANTIZE_FORMATS = ("hif8", "hif4", "hifx4_v12", "mxfp4", "mxfp8e4m3", "mxfp8e5m2", "nvf4",
                    "int8sym", "int4sym", "fp8e4m3", "fp8e5m2")


def _signbit(g: _Body, x: str) -> str:
    """torch.signbit for non-NaN x: negative, -0.0 (1/-0 = -inf) and -inf."""
    return g.op("Or", g.op("Less", x, g.f(0.0)), g.op("Less", g.op("Div", g.f(1.0), x), g.f(0.0)))


def _minifloat_code(g: _Body, q: str, mbits: int, emin: int) -> str:
    """Unsigned code (float) of a finite q >= 0 on a minifloat grid with bias 1 - emin:
    2^mbits * (e - emin + q / 2^e), e = max(floor_log2 q, emin) (subnormals included)."""
    p = g.pow2_floor(g.op("Max", q, g.f(2.0**emin)))
    # p is an exact power of two: Log is within far less than 1/2 of the integer
    er = g.op("Round", g.op("Mul", g.op("Log", g.op("Mul", p, g.f(2.0**-emin))), g.f(INV_LN2)))
    return g.op("Mul", g.op("Add", er, g.op("Div", q, p)), g.f(2.0**mbits))


def _signed_code(g: _Body, code: str, x: str, bits: int) -> str:
    return g.op("Add", code, g.op("Mul", g.op("Cast", _signbit(g, x), to=FLOAT), g.f(2.0 ** (bits - 1))))


def _not_finite(g: _Body, v: str) -> str:
    """NaN or +-Inf."""
    return g.op("Not", g.op("Less", g.op("Abs", v), g.f(INF)))


def _u8(g: _Body, v: str) -> str:
    return g.op("Cast", v, to=TensorProto.UINT8)


def _pack_rows(g: _Body, c: str, bits: int) -> str:
    """Float codes (R, nb, block) -> uint8 (R, bytes): 4-bit codes two per byte, element 2k
    low, an odd block padded with one zero nibble (formats.base.encode)."""
    if bits == 8:
        return _u8(g, g.op("Reshape", c, g.i(0, -1)))
    odd = g.op("Mod", g.op("Slice", g.op("Shape", c), g.i(-1), g.i(INT64_MAX)), g.i(2))
    c = g.op("Pad", c, g.op("Concat", g.i(0, 0, 0, 0, 0), odd, axis=0))
    lo, hi = g.op("Split", g.op("Reshape", c, g.i(0, -1, 2)), g.i(1, 1), axis=2, n_out=2)
    byte = g.op("Add", lo, g.op("Mul", hi, g.f(16.0)))
    return _u8(g, g.op("Reshape", byte, g.i(0, -1)))


def _float32_bytes(g: _Body, v: str) -> str:
    """(R, nb) float32, v >= 0, +Inf or NaN -> (R, nb * 4) uint8 little-endian bytes of v
    (NaN as 0x7FC00000, the quiet NaN that |NaN| / q gives)."""
    fin = g.op("Less", v, g.f(INF))
    vs = g.op("Where", fin, g.op("Max", v, g.f(2.0**-126)), g.f(1.0))
    k = g.floor_log2(vs)  # e + OFF, e >= -126
    sig = g.op("Mul", g.op("Mul", g.op("Where", fin, v, g.f(0.0)), g.pow2(k, sign=-1)), g.f(2.0**23))
    # (e + 126) * 2^23 + significand: the hidden bit carries into the exponent field
    bits = g.op("Add", g.op("Cast", sig, to=INT64),
                g.op("Mul", g.op("Sub", k, g.k(OFF - 126)), g.k(1 << 23)))
    special = g.op("Where", g.op("IsNaN", v), g.k(0x7FC00000), g.k(0x7F800000))
    bits = g.op("Where", fin, bits, special)
    b4 = g.op("Mod", g.op("Div", g.op("Unsqueeze", bits, g.i(-1)), g.i(1, 1 << 8, 1 << 16, 1 << 24)), g.k(256))
    return _u8(g, g.op("Reshape", b4, g.i(0, -1)))


def _q_mx(g: _Body, x: str, fmt) -> tuple[str, str]:
    el = fmt.el
    a, s, bad = _mx_scale(g, x, fmt, [2])
    y = g.op("Mul", a, g.unsqueeze(g.pow2(s, sign=-1)))
    # NaN-block elements (shared exponent -127) may exceed the grid: torch saturates finite
    # ones at max and turns Inf into NaN
    q = _mx_round(g, g.op("Min", y, g.f(2.0 ** (el.emax + 1))), el, fmt.rounding)
    code = _signed_code(g, _minifloat_code(g, q, el.mbits, el.emin), x, el.table.bits)
    code = g.op("Where", _not_finite(g, y), g.f(float(el.table.nan_code or 0)), code)
    byte = g.op("Where", bad, g.k(255), g.op("Sub", s, g.k(OFF - 127)))
    return _pack_rows(g, code, el.table.bits), _u8(g, byte)


def _q_nvf4(g: _Body, x: str, fmt) -> tuple[str, str]:
    a = g.op("Abs", x)
    amax, bad = _block_amax(g, x, a, [2])
    s = _round_e4m3(g, g.op("Min", g.op("Div", amax, g.f(6.0)), g.f(448.0)))
    div = g.op("Where", g.op("Greater", s, g.f(0.0)), s, g.f(1.0))
    v = g.op("Div", a, g.unsqueeze(div))
    vc = g.op("Min", v, g.f(8.0))  # from 8 on the result is 6 anyway
    step = g.pow2_steps(vc, 1.0, 3, 0.5)
    q = g.op("Min", g.op("Mul", g.op("Round", g.op("Div", vc, step)), step), g.f(6.0))
    code = _signed_code(g, _minifloat_code(g, q, 1, 0), x, 4)
    code = g.op("Where", _not_finite(g, v), g.f(0.0), code)
    sbyte = g.op("Where", bad, g.f(float(codecs.E4M3.nan_code)), _minifloat_code(g, s, 3, -6))
    return _pack_rows(g, code, 4), _u8(g, sbyte)


def _q_sym(g: _Body, x: str, fmt) -> tuple[str, str]:
    has_nan = g.op("Greater", g.op("ReduceMax", g.op("Cast", g.op("IsNaN", x), to=FLOAT),
                                   g.i(2), keepdims=0), g.f(0.0))
    scale = g.op("Div", g.reduce_max(g.op("Abs", x), 2), g.f(fmt.el.max))
    scale = g.nan_where(has_nan, scale)  # onnxruntime's ReduceMax may drop a NaN
    q, mag = _sym_levels(g, x, scale, fmt)
    finite = g.unsqueeze(g.op("Less", scale, g.f(INF)))
    grid = fmt.el.grid
    if grid is None:
        q = g.op("Where", finite, q, g.f(0.0))  # NaN rows: 0
        code = g.op("Where", g.op("Less", q, g.f(0.0)), g.op("Add", q, g.f(2.0**fmt.elem_bits)), q)
    else:  # NaN rows: the NaN code
        code = _signed_code(g, _minifloat_code(g, mag, grid.mbits, grid.emin), x, 8)
        code = g.op("Where", finite, code, g.f(float(grid.table.nan_code)))
    return _pack_rows(g, code, fmt.elem_bits), _float32_bytes(g, scale)


def _q_hif8(g: _Body, x: str, fmt) -> str:
    """HiF8 byte of each element: the value of _qd_hif8 laid out field by field."""
    return _hif8_byte(g, _qd_hif8(g, x, fmt))


def _hif8_byte(g: _Body, y: str) -> str:
    """The HiF8 byte of each value y of the HiF8 grid (NaN: 0x80)."""
    ay = g.op("Abs", y)
    ayc = g.op("Clip", ay, g.f(2.0**-23), g.f(2.0**15))
    p = g.pow2_floor(ayc)
    e = g.op("Round", g.op("Mul", g.op("Log", p), g.f(INV_LN2)))
    ae = g.op("Abs", e)
    es = g.op("Cast", g.op("Less", e, g.f(0.0)), to=FLOAT)
    m8 = g.op("Mul", g.op("Sub", g.op("Div", ayc, p), g.f(1.0)), g.f(8.0))  # 3 mantissa bits

    def lin(base, es_w, ae0, ae_w, m_w):
        t = g.op("Add", g.f(float(base)), g.op("Mul", es, g.f(float(es_w))))
        t = g.op("Add", t, g.op("Mul", g.op("Sub", ae, g.f(float(ae0))), g.f(float(ae_w))))
        return g.op("Add", t, g.op("Mul", m8, g.f(m_w)))

    b = lin(8, 0, 0, 0, 1.0)  # |E| = 0
    for edge, args in ((1, (16, 8, 1, 0, 1.0)), (2, (32, 16, 2, 8, 1.0)),
                       (4, (64, 16, 4, 4, 0.5)), (8, (96, 16, 8, 2, 0.25))):
        b = g.op("Where", g.op("GreaterOrEqual", ae, g.f(float(edge))), lin(*args), b)
    b = g.op("Where", g.op("GreaterOrEqual", ae, g.f(16.0)), g.op("Add", e, g.f(23.0)), b)
    b = g.op("Where", g.op("Equal", ay, g.f(0.0)), g.f(0.0), b)
    b = g.op("Where", g.op("Equal", ay, g.f(INF)), g.f(float(0x6F)), b)
    b = g.op("Add", b, g.op("Mul", g.op("Cast", g.op("Less", y, g.f(0.0)), to=FLOAT), g.f(128.0)))
    return g.op("Where", g.op("IsNaN", y), g.f(128.0), b)


def _bits_to_bytes(g: _Body, flags: str, groups: int) -> str:
    """(R, nb, ...) booleans, 8 * groups per block -> (R, nb, groups) float bytes, MSB first."""
    f = g.op("Reshape", g.op("Cast", flags, to=FLOAT), g.i(0, 0, groups, 8))
    w = g.const(np.array([128, 64, 32, 16, 8, 4, 2, 1], np.float32))
    return g.op("ReduceSum", g.op("Mul", f, w), g.i(-1), keepdims=0)


def _hif4_tail(g: _Body, x: str, c: str, l1: str, bit8: str, bit4: str) -> tuple[str, str]:
    """Element codes c (0..7, NaN where torch casts NaN: 0) with x's sign bit, and the 4
    scale bytes [level 1, bits per 8, bits per 4 (2 bytes)] of each group of 64."""
    c = g.op("Where", g.op("Or", g.op("IsNaN", c), g.op("IsNaN", x)), g.f(0.0), c)
    code = g.op("Reshape", _signed_code(g, c, x, 4), g.i(0, -1, 64))
    sc = g.op("Concat", g.op("Unsqueeze", l1, g.i(-1)), _bits_to_bytes(g, bit8, 1),
              _bits_to_bytes(g, bit4, 2), axis=2)
    return _pack_rows(g, code, 4), _u8(g, g.op("Reshape", sc, g.i(0, -1)))


def _q_hif4(g: _Body, x: str, fmt) -> tuple[str, str]:
    """HiF4._codes/_scales on (R, nb, 8, 2, 4) as torch runs them in non-finite groups too:
    a NaN group has NaN scales (codes 0, bits 0), an Inf group saturates sf at 49152."""
    a = g.op("Abs", x)
    nan_g = g.op("Greater", g.op("ReduceMax", g.op("Cast", g.op("IsNaN", x), to=FLOAT),
                                 g.i(2, 3, 4), keepdims=0), g.f(0.0))  # (R, nb)
    bad = g.non_finite(x, 2, 3, 4)
    m4 = g.reduce_max(a, 4)  # (R, nb, 8, 2)
    m8 = g.reduce_max(m4, 3)  # (R, nb, 8)
    m64 = g.reduce_max(m8, 2)  # (R, nb); +Inf in Inf groups
    sf = g.op("Clip", g.bf16(g.op("Mul", m64, g.f(R7))), g.f(2.0**-48), g.f(49152.0))
    step = g.op("Mul", g.pow2_floor(sf), g.f(0.25))
    sf = g.op("Mul", g.op("Round", g.op("Div", sf, step)), step)
    rec = g.nan_where(nan_g, g.bf16(g.op("Div", g.f(1.0), sf)))
    one = g.f(1.0)
    b8 = g.op("GreaterOrEqual", g.op("Mul", m8, g.unsqueeze(rec)), g.f(4.0))
    s8 = g.unsqueeze(g.op("Add", g.op("Cast", b8, to=FLOAT), one))  # (R, nb, 8, 1)
    b4 = g.op("GreaterOrEqual", g.op("Div", g.op("Mul", m4, g.unsqueeze(rec, 2)), s8), g.f(2.0))
    s84 = g.op("Mul", g.op("Add", g.op("Cast", b4, to=FLOAT), one), s8)
    into = g.op("Div", g.unsqueeze(g.op("Mul", rec, g.f(4.0)), 2), s84)
    c = g.op("Mul", a, g.unsqueeze(into))
    if fmt.variant == "amct":
        c = g.bf16(c)
    c = g.op("Min", g.round_ta(c), g.f(7.0))
    c = g.op("Where", g.unsqueeze(nan_g, 3), g.f(NAN), c)
    l1 = g.op("Where", bad, g.f(255.0), g.op("Sub", _minifloat_code(g, sf, 2, -48), g.f(4.0)))
    return _hif4_tail(g, x, c, l1, b8, b4)


def _q_hifx4_v12(g: _Body, x: str, fmt) -> tuple[str, str]:
    """HiFX4V12._scales + HiF4._codes on (R, nb, 8, 2, 4); a sub-group of 4 holding NaN/Inf
    counts as 0 for the exponents (torch: where(isfinite(m4), m4, 0))."""
    a = g.op("Abs", x)
    bad = g.non_finite(x, 2, 3, 4)
    m4 = g.op("Where", g.non_finite(x, 4), g.f(0.0), g.reduce_max(a, 4))
    pg = g.pow2_floor(g.op("Add", g.op("Min", m4, g.f(2.0**100)), g.f(2.0**-45)))
    pm = g.reduce_max(pg, 3)
    pb = g.op("Clip", g.op("Mul", g.reduce_max(pm, 2), g.f(0.25)), g.f(2.0**-46), g.f(2.0**16))
    two, one = g.f(2.0), g.f(1.0)
    b1 = g.op("GreaterOrEqual", pm, g.unsqueeze(g.op("Mul", pb, g.f(4.0))))
    p1 = g.op("Mul", g.unsqueeze(pb), g.op("Where", b1, two, one))
    b2 = g.op("GreaterOrEqual", pg, g.unsqueeze(g.op("Mul", p1, two)))
    pe = g.op("Mul", g.unsqueeze(p1), g.op("Where", b2, two, one))
    c = g.op("Min", g.round_ta(g.op("Mul", a, g.unsqueeze(g.op("Div", g.f(4.0), pe)))), g.f(7.0))
    # 2^eb's biased exponent, eb in [-46, 16]
    eb = g.op("Round", g.op("Mul", g.op("Log", g.op("Mul", pb, g.f(2.0**46))), g.f(INV_LN2)))
    l1 = g.op("Where", bad, g.f(255.0), g.op("Add", eb, g.f(127.0 - 46.0)))
    return _hif4_tail(g, x, c, l1, b1, b2)


def quantize_function(fmt_name: str, **options) -> onnx.FunctionProto:
    """The `Quantize_<fmt>[...]` function: X (float32/float16/bfloat16, any rank) ->
    (codes, scales), formats.encode(X, fmt, axis=-1)'s Packed.codes and Packed.scales."""
    name, fmt = _fmt(fmt_name, options)
    if name == "nvfp4":
        raise ValueError("npuq::Quantize: nvfp4 is a two-level format (a per-tensor scale); "
                         "Quantize has no tensor-scale output")
    if name not in QUANTIZE_FORMATS:
        raise NotImplementedError(f"no npuq::Quantize function body for format {name!r} yet "
                                  f"(bodies exist for {', '.join(QUANTIZE_FORMATS)})")
    g = _Body()
    xf = g.op("Cast", "X", to=FLOAT)
    n = g.op("Slice", g.op("Shape", xf), g.i(-1), g.i(INT64_MAX))
    x2 = g.op("Reshape", xf, g.op("Concat", g.i(-1), n, axis=0))  # (R, n)
    if name == "hif8" and fmt.scale is not None:
        codes, scales = _q_hif8_scaled(g, x2, fmt)
    elif name == "hif8":
        codes = _u8(g, _q_hif8(g, x2, fmt))
        scales = g.op("Slice", codes, g.i(0), g.i(0), g.i(1))  # (R, 0)
    else:
        inner = [8, 2, 4] if name in ("hif4", "hifx4_v12") else [fmt.block]
        if fmt.block is None:
            xb = g.op("Reshape", x2, g.i(0, 1, -1))
        else:
            pad = g.op("Mod", g.op("Neg", n), g.i(fmt.block))
            xp = g.op("Pad", x2, g.op("Concat", g.i(0, 0, 0), pad, axis=0))
            xb = g.op("Reshape", xp, g.i(0, -1, *inner))  # (R, nb, block) or (R, nb, 8, 2, 4)
        if name == "hif4":
            codes, scales = _q_hif4(g, xb, fmt)
        elif name == "hifx4_v12":
            codes, scales = _q_hifx4_v12(g, xb, fmt)
        elif name.startswith("mx"):
            codes, scales = _q_mx(g, xb, fmt)
        elif name == "nvf4":
            codes, scales = _q_nvf4(g, xb, fmt)
        else:
            codes, scales = _q_sym(g, xb, fmt)
    g.output("codes", codes)
    g.output("scales", scales)
    fname = f"Quantize_{name}{_suffix(fmt.options)}"
    doc = (f"onnx_npuq.formats.encode(X, {name!r}, -1{''.join(f', {k}={v!r}' for k, v in fmt.options.items())})"
           ": its codes and scales (uint8, rows = all dimensions of X but the last).")
    return _make_function(fname, ["X"], ["codes", "scales"], g, {}, doc)


# ------------------------------------------------------------------ runnable models


def _model(graph: onnx.GraphProto, functions: list[onnx.FunctionProto]) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
        ir_version=IR_VERSION,
        functions=functions,
        producer_name="onnx_npuq",
    )
    return model


def _onnx_dtype(dtype) -> int:
    if isinstance(dtype, torch.dtype):
        if dtype not in TORCH_TO_ONNX:
            raise TypeError(f"dtype {dtype} is not float32, float16 or bfloat16")
        return TORCH_TO_ONNX[dtype]
    if isinstance(dtype, int):
        return dtype
    if isinstance(dtype, str):
        return TORCH_TO_ONNX[getattr(torch, dtype)]
    raise TypeError(f"unsupported dtype {dtype!r}")


def model_for_decode(packed: F.Packed, as_inputs: bool = False) -> onnx.ModelProto:
    """A runnable model that decodes `packed` to `decode(packed)` (shape, axis and dtype).

    codes, scales (and nvfp4's tensor_scale) are initializers, or graph inputs of the
    same names with `as_inputs=True`. The output is `Y`.
    """
    name = F.canonical(packed.format)
    func = dequantize_function(name)
    arrays = {"codes": packed.codes.contiguous().numpy(), "scales": packed.scales.contiguous().numpy()}
    if name == "nvfp4":
        arrays["tensor_scale"] = packed.tensor_scale.to(torch.float32).reshape(()).numpy()
    attrs = {"length": packed.length}
    if isinstance(F.get_format(name), (Sym, Asym)):
        attrs["block"] = packed.block
    shape, axis = tuple(packed.shape), packed.axis
    moved = shape[:axis] + shape[axis + 1:] + (shape[axis],)
    rank = len(shape)
    perm = [i if i < axis else (rank - 1 if i == axis else i - 1) for i in range(rank)]
    nodes = [
        helper.make_node(func.name, list(arrays), ["decoded"], domain=DOMAIN, **attrs),
        helper.make_node("Reshape", ["decoded", "moved_shape"], ["moved"]),
        helper.make_node("Transpose", ["moved"], ["restored"], perm=perm),
        helper.make_node("Cast", ["restored"], ["Y"], to=_onnx_dtype(packed.dtype)),
    ]
    inits = [numpy_helper.from_array(np.array(moved, np.int64), "moved_shape")]
    inputs = []
    for key, arr in arrays.items():
        if as_inputs:
            inputs.append(helper.make_tensor_value_info(
                key, helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape))
        else:
            inits.append(numpy_helper.from_array(arr, key))
    out = helper.make_tensor_value_info("Y", _onnx_dtype(packed.dtype), shape)
    graph = helper.make_graph(nodes, f"decode_{name}", inputs, [out], initializer=inits)
    return _model(graph, [func])


def model_for_fake_quant(fmt_name: str, shape: Sequence[int | str | None], axis: int = -1,
                         dtype=torch.float32, **options) -> onnx.ModelProto:
    """A runnable model Y = fake_quant(X, fmt, axis, **options); X and Y of `dtype`.

    Dimensions given as a string or None are symbolic (dynamic).
    """
    func = quant_dequant_function(fmt_name, **options)
    elem = _onnx_dtype(dtype)
    rank = len(shape)
    if isinstance(axis, bool) or not isinstance(axis, int) or not -rank <= axis < rank:
        raise ValueError(f"axis {axis!r} is out of range for a {rank}-d input")
    dims = [d if isinstance(d, (int, str)) else None for d in shape]
    node = helper.make_node(func.name, ["X"], ["Y"], domain=DOMAIN, axis=int(axis))
    graph = helper.make_graph(
        [node],
        f"fake_quant_{F.canonical(fmt_name)}",
        [helper.make_tensor_value_info("X", elem, dims)],
        [helper.make_tensor_value_info("Y", elem, dims)],
    )
    return _model(graph, [func])


def all_functions() -> list[onnx.FunctionProto]:
    """Dequantize and default-option QuantDequant functions of every format."""
    funcs = [dequantize_function(n) for n in F.names()]
    funcs += [quant_dequant_function(n) for n in F.names()]
    return funcs


__all__ = [
    "DOMAIN",
    "DOMAIN_VERSION",
    "IR_VERSION",
    "OPSET",
    "all_functions",
    "dequantize_function",
    "function_name",
    "model_for_decode",
    "model_for_fake_quant",
    "quant_dequant_function",
    "quantize_function",
]
