"""The `Dequantize_<fmt>` bodies: Packed codes / scales -> the decoded float32 rows.
"""
from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto

from ...formats import codecs
from ...formats.asym import Asym
from ...formats.hif4 import HiFX4V12
from ...formats.integer import Sym
from .builder import _Body, FLOAT, INT64, INT64_MAX
from .names import _fmt, _make_function
from .tables import _bit_table, _bytes, _code_table, _f32, _int4_table

# ------------------------------------------------------------------ Dequantize
#
# onnxruntime constant-folds a Dequantize of initializers when it creates a session, node by
# node, and keeps every folded result until the whole graph is done: the session's peak holds
# each full-size intermediate of every weight at once. So the bodies decode in as few
# full-size steps as they can: the codes are reshaped into blocks while still bytes, indices
# are int32 (not int64), the scale multiplies the table values in the block layout, one
# Reshape makes rows, and the crop of the block padding (and of odd int4 blocks' padding
# nibble) runs only when there is one (an If on constants: onnxruntime inlines the branch it
# takes, and folds an Identity branch into a copy, so no branch is one). The If stays at the
# top of the body: nested in a branch, onnxruntime leaves the node after the Dequantize
# unfolded at level 1 (then drops a float16 model's Cast). benchmarks/bench_onnx.py and
# tests/test_onnx_bodies.py measure the session peak.


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


def _rows(g: _Body, y: str, blk: str | None = None, stored: str | None = None) -> str:
    """The decoded blocks as (rows, padded width), cropped to `length` when that is shorter.
    With `blk` / `stored` ([1] int64), y is (R, nb, stored / 2, 2) values of 4-bit blocks of
    `blk` elements stored in `stored` nibbles: an odd block's padding nibble goes as well.
    One If on constants: the usual branch is one Reshape; each branch makes its result
    itself (an Identity branch would be folded into one more copy)."""
    length = g.op("Unsqueeze", g.attr_int("length"), g.i(0))
    shape = g.op("Shape", y)
    width = g.op("ReduceProd", g.op("Slice", shape, g.i(1), g.i(INT64_MAX)), keepdims=1)
    whole = g.op("Or", g.op("Equal", length, g.i(0)), g.op("Equal", length, width))
    if blk is not None:
        whole = g.op("And", whole, g.op("Equal", blk, stored))

    def crop(b: _Body) -> str:
        v = y
        if blk is not None:  # (R, nb, stored) -> (R, nb, blk)
            v = b.op("Slice", b.op("Reshape", y, b.op("Concat", b.i(0, 0), stored, axis=0)), b.i(0), blk, b.i(2))
        v = b.op("Reshape", v, b.i(0, -1))
        end = b.op("Where", b.op("Equal", length, b.i(0)), b.i(INT64_MAX), length)
        return b.op("Slice", v, b.i(0), end, b.i(1))

    return g.branches(whole, lambda b: b.op("Reshape", y, b.i(0, -1)), crop)


def _float32_from_bytes(g: _Body, b4: str) -> str:
    """(..., 4) uint8, little-endian float32 bytes -> (..., 1) float32 values (bit-exact)."""
    b = g.op("Cast", b4, to=INT64)
    return g.float32_from_bits(g.op("ReduceSum", g.op("Mul", b, g.i(1, 1 << 8, 1 << 16, 1 << 24)),
                                    g.i(-1), keepdims=1))


def _scaled_rows_lookup(g: _Body, table: np.ndarray, s4: str, idx: str) -> str:
    """table[code] * the row's scale for (R, n) int32 codes `idx`, `s4` the (R, 4) bytes of each
    row's float32 scale: the table scaled per row, (R, 256), then one GatherElements (the same
    products as value * scale, with no full-size float intermediate)."""
    rows = g.op("Mul", g.const(table.reshape(1, 256)), _float32_from_bytes(g, s4))
    return g.op("GatherElements", rows, idx, axis=1)


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
        # a row per code byte, no padding: no crop. Unscaled (scales (R, 0)): one Gather of
        # the code table. Scaled (scale="row" / "tensor": one float32 per row): each row's
        # table scaled (R, 256), then one GatherElements: the same products as table value
        # * scale, without a full-size float intermediate
        idx = g.op("Cast", "codes", to=TensorProto.INT32)
        unscaled = g.op("Equal", g.op("Gather", g.op("Shape", "scales"), g.i(1)), g.i(0))

        def scaled(b: _Body) -> str:
            # the bytes of 1.0f appended: shape-valid for (R, 0) too, the branch not taken
            one = b.op("Expand", b.const(np.array([[0, 0, 128, 63]], np.uint8)),
                       b.op("Concat", b.op("Gather", b.op("Shape", "scales"), b.i(0)), b.i(4), axis=0))
            s4 = b.op("Slice", b.op("Concat", "scales", one, axis=1), b.i(0), b.i(4), b.i(1))
            return _scaled_rows_lookup(b, _code_table(codecs.HIF8), s4, idx)

        y = g.branches(unscaled, lambda b: b.op("Gather", b.const(_code_table(codecs.HIF8)), idx), scaled)
    elif name in ("mxfp4", "mxfp8e4m3", "mxfp8e5m2", "nvf4", "nvfp4"):
        block = 32 if name.startswith("mx") else 16
        bits = 4 if name in ("mxfp4", "nvf4", "nvfp4") else 8
        if name.startswith("mx"):
            ctable, stable = _code_table(fmt.el.table), _f32(codecs.e8m0_decode(_bytes()))
        else:
            ctable, stable = _code_table(codecs.E2M1), _code_table(codecs.E4M3)
        if bits == 4:
            # value * scale looked up at once: a (256 scale bytes x 256 code bytes, 2) table
            # of the products (made per weight, 512 KiB), indexed by scale byte * 256 + code
            # byte: no full-size float intermediate besides the result
            st = g.op("Reshape", g.const(stable), g.i(256, 1, 1))
            if name == "nvfp4":
                inputs.append("tensor_scale")
                st = g.op("Mul", st, "tensor_scale")
            table = g.op("Reshape", g.op("Mul", g.const(ctable.reshape(1, 256, 2)), st), g.i(65536, 2))
            codes = g.op("Cast", _u8_blocks(g, "codes", block // 2), to=TensorProto.INT32)  # (R, nb, block / 2)
            sbyte = g.op("Cast", _u8_blocks(g, "scales", 1), to=TensorProto.INT32)  # (R, nb, 1)
            idx = g.op("Add", codes, g.op("Mul", sbyte, g.const(np.array(256, np.int32))))
            y = _rows(g, g.op("Gather", table, idx))
        else:
            vals = _lookup(g, ctable, _u8_blocks(g, "codes", block))  # (R, nb, block)
            y = _rows(g, g.op("Mul", vals, _lookup(g, stable, _u8_blocks(g, "scales", 1))))
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
            y = _rows(g, g.op("Mul", vals, g.op("Unsqueeze", scale, g.i(-1))), blk, stored)
    else:  # pragma: no cover - names() and this table move together
        raise ValueError(f"no Dequantize body for {name}")
    g.output("Y", y)
    doc = (f"Decode Packed.codes/scales of format {name} to the (rows, length) float32 matrix "
           "of onnx_npuq.formats.decode (before the reshape to the tensor's shape).")
    return _make_function(f"Dequantize_{name}", inputs, ["Y"], g, attrs, doc)


def rows_scaled(fmt, block: int, length: int) -> bool:
    """Whether a Dequantize of `fmt` with these attributes takes `dequantize_rows_function`:
    8-bit codes with one float32 scale per row (block 0 or the row's length: no padding)."""
    return isinstance(fmt, Sym) and fmt.elem_bits == 8 and (block == 0 or block == length)


def dequantize_rows_function(fmt_name: str) -> onnx.FunctionProto:
    """`Dequantize_<fmt>` for the rows_scaled case (the usual int8 / fp8 weight): each row's
    table scaled, (R, 256), then one GatherElements by the codes, as hif8's scaled decode:
    the same float32 products as the blocks' values times their scales, with no full-size
    product, block view or reshape, and a statically known (R, length) shape, so
    onnxruntime folds what follows (Transpose, a float16 Cast) in the same step."""
    name, fmt = _fmt(fmt_name, {})
    if not rows_scaled(fmt, 0, 0):
        raise ValueError(f"no per-row Dequantize body for {name}")
    g = _Body()
    g.output("Y", _scaled_rows_lookup(g, _sym8_table(fmt), "scales", g.op("Cast", "codes", to=TensorProto.INT32)))
    doc = (f"Decode Packed.codes/scales of format {name} with one scale per row (block 0 or length) to the "
           "(rows, length) float32 matrix of onnx_npuq.formats.decode.")
    return _make_function(f"Dequantize_{name}", ["codes", "scales"], ["Y"], g, {"length": 0, "block": 0}, doc)


def _sym8_table(fmt) -> np.ndarray:
    """byte -> float32 value: DequantizeLinear's float32(fp8), or float32(int8) (wrapping)."""
    return _code_table(fmt.el.grid.table) if fmt.el.grid is not None else _f32(_bytes().view(torch.int8))


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
    return _rows(g, y, blk, stored)
