"""Function bodies of the npu ops (standard opset-21 ONNX an onnxruntime can run), one per
configuration (`overload_key`), and attaching them to a model's npu nodes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..proto import LARGE_TENSOR_BYTES, checker_copy
from .bodies import OFF, _Body
from .npu_defs import (
    DOMAIN, DT_BF16, DT_FLOAT16, DT_INT32, DT_INT4, DT_INT8, DT_UINT8, OPS, OPSET, VERSION, _GE_TYPES,
    _attrs_with_defaults, _present, overload_key,
)


# ------------------------------------------------------------------ function bodies


class _G(_Body):
    """Nodes of one npu function body (bodies._Body plus the npu ops' integer steps)."""

    def cast_f(self, v: str) -> str:
        return self.op("Cast", v, to=TensorProto.FLOAT)

    def round_sat(self, v: str, lo: int, hi: int, to: int) -> str:
        """RNE (Round), NaN -> 0, clamp to [lo, hi], cast: onnx_npuq.npu._round_saturate."""
        r = self.op("Round", v)
        r = self.op("Where", self.op("IsNaN", r), self.f(0.0), r)
        if to == TensorProto.INT32:  # int32 bounds are not float32 values: clamp in double
            r = self.op("Cast", r, to=TensorProto.DOUBLE)
            r = self.op("Clip", r, self.const(np.array(lo, np.float64)), self.const(np.array(hi, np.float64)))
        else:
            r = self.op("Clip", r, self.f(lo), self.f(hi))
        return self.op("Cast", r, to=to)

    def pack_int4(self, q: str) -> str:
        """int8 values in [-8, 7] -> int32 words, 8 per word, lowest nibble first."""
        q = self.op("Cast", q, to=TensorProto.INT64)
        nib = self.op("Where", self.op("Less", q, self.k(0)), self.op("Add", q, self.k(16)), q)
        shape = self.op("Concat", self.op("Shape", q, end=-1), self.i(-1, 8), axis=0)
        nib = self.op("Reshape", nib, shape)
        word = self.op("ReduceSum", self.op("Mul", nib, self.i(*[16**j for j in range(8)])),
                       self.i(-1), keepdims=0)
        wrap = self.op("GreaterOrEqual", word, self.k(2**31))
        word = self.op("Where", wrap, self.op("Sub", word, self.k(2**32)), word)
        return self.op("Cast", word, to=TensorProto.INT32)

    def unpack_int4(self, w: str, axis: int) -> str:
        """2-D int32 words -> float32 int4 values, 8 per word along `axis` (0 or 1), lowest
        nibble first: the inverse of pack_int4 along the last axis (npu._unpack_int4)."""
        u = self.op("Cast", w, to=TensorProto.INT64)
        u = self.op("Where", self.op("Less", u, self.k(0)), self.op("Add", u, self.k(2**32)), u)
        powers = np.array([16**j for j in range(8)], np.int64).reshape((8, 1) if axis == 0 else (8,))
        nib = self.op("Mod", self.op("Div", self.op("Unsqueeze", u, self.i(axis + 1)), self.const(powers)),
                      self.k(16))
        nib = self.op("Where", self.op("GreaterOrEqual", nib, self.k(8)), self.op("Sub", nib, self.k(16)), nib)
        return self.cast_f(nib)  # (R, C, 8) or (R, 8, C): flattened by the caller

    def trunc_fp19(self, s: str) -> str:
        """float32 with the low 13 bits cleared (npu._trunc_fp19): toward zero to a multiple
        of 2^(e - 10), e = floor_log2(|s|), at least 2^-136 (subnormals); Inf / NaN kept."""
        a = self.op("Abs", s)
        special = self.op("Or", self.op("IsNaN", s), self.op("IsInf", s))
        pos = self.op("Greater", a, self.f(0.0))
        safe = self.op("Where", pos, self.op("Where", special, self.f(1.0), a), self.f(1.0))
        k = self.op("Max", self.op("Sub", self.floor_log2(safe), self.k(10)), self.k(OFF - 136))
        step = self.pow2(k)
        t = self.op("Mul", self.op("Floor", self.op("Div", safe, step)), step)
        t = self.op("Where", pos, t, self.f(0.0))
        # a -0.0 survives Where only as its second value input (and Where(Not(c), ..) is
        # rewritten by onnxruntime into Where(c, ..) with the inputs swapped)
        return self.op("Where", special, s, self.copysign(t, s))

    def packed_scale(self, p: str) -> tuple[str, str]:
        """int64 from npu_trans_quant_param -> (float32 scale, float32 offset): npu._decode_packed_scale."""
        low = self.op("Mod", p, self.k(2**32))  # Mod takes the divisor's sign: bits 0..31
        scale = self.float32_from_bits(self.op("Sub", low, self.op("Mod", low, self.k(8192))))
        high = self.op("Div", self.op("Sub", p, self.op("Mod", p, self.k(2**37))), self.k(2**37))  # exact
        off = self.op("Mod", high, self.k(512))
        off = self.op("Where", self.op("GreaterOrEqual", off, self.k(256)), self.op("Sub", off, self.k(512)), off)
        return scale, self.cast_f(off)

    def row_amax_scale(self, t: str, qmax: float) -> str:
        """amax(|t|, -1, keepdim) / qmax, NaN where a row holds a NaN (torch.amax propagates it;
        onnxruntime's ReduceMax does not reliably)."""
        amax = self.op("ReduceMax", self.op("Abs", t), self.i(-1), keepdims=1)
        nan = self.op("ReduceMax", self.op("Cast", self.op("IsNaN", t), to=TensorProto.FLOAT),
                      self.i(-1), keepdims=1)
        s = self.op("Div", amax, self.f(qmax))
        return self.op("Where", self.op("Greater", nan, self.f(0.0)), self.f(float("nan")), s)

    def safe_div(self, t: str, s: str) -> str:
        """t / where(s > 0, s, 1)."""
        return self.op("Div", t, self.op("Where", self.op("Greater", s, self.f(0.0)), s, self.f(1.0)))

    def row_groups(self, rows: str, ends: str) -> str:
        """For each row index, the number of group ends <= it (int64): its group."""
        le = self.op("LessOrEqual", self.op("Unsqueeze", ends, self.i(0)), self.op("Unsqueeze", rows, self.i(1)))
        return self.op("ReduceSum", self.op("Cast", le, to=TensorProto.INT64), self.i(1), keepdims=0)

    def range_of(self, v: str, axis: int) -> str:
        """0 .. v.shape[axis] - 1 (int64)."""
        dim = self.op("Shape", v, start=axis, end=axis + 1) if axis != -1 else self.op("Shape", v, start=-1)
        n = self.op("Squeeze", dim, self.i(0))
        return self.op("Range", self.k(0), n, self.k(1))


def _quantize_body(g: _G, a: dict, p) -> None:
    x = g.cast_f("input")
    dtype, axis, div_mode = a["dtype"], a["axis"], a["div_mode"]
    if div_mode:
        if dtype not in (DT_INT8, DT_UINT8, DT_INT32):
            raise ValueError(f"npu::NPUQuantize: dtype {dtype} is not 2, 3 or 4 (int8, int32, uint8) with div_mode=1")
        # scales along `axis`: reshape to [1, .., -1 (at axis), .., 1] for any rank
        shape = g.op("Shape", "input")
        ones = g.op("ConstantOfShape", g.op("Shape", shape), value=numpy_helper.from_array(np.array([1], np.int64)))
        target = g.op("ScatterElements", ones, g.i(axis), g.i(-1), axis=0)
        v = g.op("Div", x, g.op("Reshape", g.cast_f("scales"), target))
        if p[2]:
            v = g.op("Add", v, g.op("Reshape", g.cast_f("zero_points"), target))
        lo, hi, to = {DT_INT8: (-128, 127, TensorProto.INT8), DT_UINT8: (0, 255, TensorProto.UINT8),
                      DT_INT32: (-(2**31), 2**31 - 1, TensorProto.INT32)}[dtype]
        g.output("y", g.round_sat(v, lo, hi, to))
        return
    if dtype not in (DT_INT8, DT_INT4):
        raise ValueError(f"npu::NPUQuantize: dtype {dtype} is not 2 or 29 (int8, int4) with div_mode=0")
    # AscendQuantV2: scales per tensor or along the last axis (axis == -2: the second-to-last);
    # every dimension but that one has size 1, so a flat view broadcasts.
    flat = g.i(-1, 1) if axis == -2 else g.i(-1)
    v = g.op("Mul", x, g.op("Reshape", g.cast_f("scales"), flat))
    if p[2]:
        v = g.op("Add", v, g.op("Reshape", g.cast_f("zero_points"), flat))
    lo, hi = (-8, 7) if dtype == DT_INT4 else (-128, 127)
    q = g.round_sat(v, lo, hi, TensorProto.INT8)
    g.output("y", g.pack_int4(q) if dtype == DT_INT4 else q)


def _dynamic_quant_body(g: _G, a: dict, p) -> None:
    dst = a["dst_type"]
    if dst not in (DT_INT8, DT_INT4):
        raise ValueError(f"npu::NPUDynamicQuant: dst_type {dst} is not 2 or 29 (int8, int4)")
    qmax = 7 if dst == DT_INT4 else 127
    xshape = g.op("Shape", "x")
    x = g.op("Reshape", g.cast_f("x"), g.op("Concat", g.i(-1), g.op("Shape", "x", start=-1), axis=0))
    if p[1] and p[2]:
        # row r uses smooth row #(group ends <= r) (group_index: cumulative row ends)
        grp = g.row_groups(g.range_of(x, 0), g.op("Cast", "group_index", to=TensorProto.INT64))
        t = g.op("Mul", x, g.op("Gather", g.cast_f("smooth_scales"), grp, axis=0))
    elif p[1]:
        t = g.op("Mul", x, g.cast_f("smooth_scales"))
    elif p[2]:
        raise ValueError("npu::NPUDynamicQuant: group_index requires smooth_scales")
    else:
        t = x
    s = g.row_amax_scale(t, float(qmax))
    q = g.round_sat(g.safe_div(t, s), -qmax - 1, qmax, TensorProto.INT8)
    q = g.op("Reshape", q, xshape)
    g.output("y", g.pack_int4(q) if dst == DT_INT4 else q)
    g.output("scale", g.op("Reshape", s, g.op("Shape", "x", end=-1)))


def _weight_quant_batchmatmul_body(g: _G, a: dict, p) -> None:
    gs = a["antiquant_group_size"]
    k = g.op("Shape", "x", start=-1)

    def rnd(v):  # round a float32 value to x's dtype (float16 / bfloat16), back to float32
        return g.cast_f(g.op("CastLike", v, "x"))

    def expand(name):
        pf = g.cast_f(name)
        if gs > 0:
            idx = g.op("Div", g.range_of("x", -1), g.k(gs))
            return g.op("Gather", pf, idx, axis=0)
        return g.op("Reshape", pf, g.i(1, -1))  # per-tensor (1,)/(1, 1) or per-channel (N,)/(1, N)

    if p[1] == TensorProto.INT32:
        # int4 packed 8 per int32: (K, N/8) along N, or (K/8, N) along K (the transpose of a
        # (N, K/8) tensor, as npu_convert_weight_to_int4pack gives it). Both unpack to K * N
        # values; the first dimension tells which one is meant.
        to_kn = g.op("Concat", k, g.i(-1), axis=0)
        along_n = g.op("Reshape", g.unpack_int4("weight", 1), to_kn)
        along_k = g.op("Reshape", g.unpack_int4("weight", 0), to_kn)
        w = g.op("Where", g.op("Equal", g.op("Shape", "weight", end=1), k), along_n, along_k)
    else:
        w = g.cast_f("weight")

    if p[2] == TensorProto.INT64:
        # fixpipe per-channel mode: (weight + int32 offset) in float16, scale after the matmul
        if p[3]:
            w = g.op("Add", w, g.op("Reshape", g.cast_f("antiquant_offset"), g.i(1, -1)))
        w = g.cast_f(g.op("Cast", w, to=TensorProto.FLOAT16))
        deq, _ = g.packed_scale(g.op("Reshape", "antiquant_scale", g.i(-1)))
        deq = g.cast_f(g.op("Cast", deq, to=TensorProto.FLOAT16))
        acc = g.op("Mul", g.op("MatMul", g.cast_f("x"), w), g.op("Reshape", deq, g.i(1, -1)))
    else:
        # the int weight is exact in x's dtype; each add / multiply is rounded to x's dtype
        # (float32 result of two float16/bfloat16 values rounded once more: exact, 24 >= 2p + 2)
        if p[3]:
            w = rnd(g.op("Add", w, expand("antiquant_offset")))
        w = rnd(g.op("Mul", w, expand("antiquant_scale")))
        acc = g.op("MatMul", g.cast_f("x"), w)
    if p[6]:
        acc = g.op("Add", acc, g.op("Reshape", g.cast_f("bias"), g.i(1, -1)))
    if not p[4]:
        g.output("y", g.op("CastLike", acc, "x"))
        return
    qs = g.op("Reshape", "quant_scale", g.i(1, -1))
    if p[4] == TensorProto.INT64:
        qs, qo = g.packed_scale(qs)
    else:
        qs = g.trunc_fp19(qs)
        if p[5]:  # round half away from zero, clamped to [-256, 255]
            o = g.op("Reshape", "quant_offset", g.i(1, -1))
            qo = g.op("Mul", g.op("Sign", o), g.op("Floor", g.op("Add", g.op("Abs", o), g.f(0.5))))
            qo = g.op("Clip", qo, g.f(-256.0), g.f(255.0))
        else:
            qo = g.f(0.0)
    g.output("y", g.round_sat(g.op("Add", g.op("Mul", acc, qs), qo), -128, 127, TensorProto.INT8))


def _dequant_swiglu_quant_body(g: _G, a: dict, p) -> None:
    h2 = g.op("Shape", "x", start=-1)
    lead = g.op("Shape", "x", end=-1)
    xr = g.op("Reshape", "x", g.op("Concat", g.i(-1), h2, axis=0))
    if p[6]:
        # token r belongs to group #(cumulative counts <= r); tokens past the sum are zeros
        counts = g.op("Shape", "group_index")
        rows = g.range_of(xr, 0)
        grp = g.row_groups(rows, g.op("CumSum", "group_index", g.k(0)))
        used = g.op("Less", grp, g.op("Squeeze", counts, g.i(0)))
        grp = g.op("Min", grp, g.op("Squeeze", g.op("Sub", counts, g.i(1)), g.i(0)))

        def per_group(name):  # (G, width) rows of the tokens' groups
            v = g.op("Reshape", g.cast_f(name), g.op("Concat", counts, g.i(-1), axis=0))
            return g.op("Gather", v, grp, axis=0)
    else:
        def per_group(name):  # (width,), (1, width), or one value
            return g.op("Reshape", g.cast_f(name), g.i(1, -1))

    if p[2]:  # int32 x: dequant
        if p[3] == TensorProto.INT32:
            xr = g.op("Add", xr, g.op("Reshape", "bias", g.i(1, -1)))
        v = g.cast_f(xr)
        if p[1]:
            v = g.op("Mul", v, per_group("weight_scale"))
        v = g.op("Mul", v, g.op("Reshape", g.cast_f("activation_scale"), g.i(-1, 1)))
        if p[3] and p[3] != TensorProto.INT32:
            v = g.op("Add", v, g.op("Reshape", g.cast_f("bias"), g.i(1, -1)))
    else:  # float x is used as is
        v = g.cast_f(xr)
    if a["swiglu_mode"] == 0:
        left, right = g.op("Split", v, axis=-1, num_outputs=2, n_out=2)
        act, other = (left, right) if a["activate_left"] else (right, left)
        neg = g.f(-1.0)
    else:  # even columns, clamped above; odd columns, clamped both sides, plus glu_bias
        pairs = g.op("Reshape", v, g.i(0, -1, 2))
        act, other = (g.op("Squeeze", t, g.i(-1)) for t in g.op("Split", pairs, axis=-1, num_outputs=2, n_out=2))
        lim, nlim = g.f(a["clamp_limit"]), g.f(-a["clamp_limit"])
        act = g.op("Where", g.op("Greater", act, lim), lim, act)  # NaN passes, as in torch.clamp
        other = g.op("Where", g.op("Greater", other, lim), lim,
                     g.op("Where", g.op("Less", other, nlim), nlim, other))
        other = g.op("Add", other, g.f(a["glu_bias"]))
        neg = g.f(-a["glu_alpha"])
    e = g.op("Exp", g.op("Mul", act, neg))
    out = g.op("Mul", g.op("Div", act, g.op("Add", e, g.f(1.0))), other)
    if a["quant_mode"] == 1:
        if p[4]:
            out = g.op("Mul", out, per_group("quant_scale"))
        s = g.row_amax_scale(out, 127.0)
        q = g.safe_div(out, s)
        scale = g.op("Reshape", s, g.i(-1))
    else:
        q = out
        if p[4]:  # per channel or one scalar (per group)
            q = g.op("Div", q, per_group("quant_scale"))
            if p[5]:
                q = g.op("Add", q, per_group("quant_offset"))
        scale = g.op("ConstantOfShape", g.op("Shape", xr, end=1),
                     value=numpy_helper.from_array(np.array([0.0], np.float32)))
    y = g.round_sat(q, -128, 127, TensorProto.INT8)
    if p[6]:
        y = g.op("Where", g.op("Unsqueeze", used, g.i(1)), y, g.const(np.array(0, np.int8)))
        scale = g.op("Where", used, scale, g.f(0.0))
    h = g.op("Div", h2, g.i(2))
    g.output("y", g.op("Reshape", y, g.op("Concat", lead, h, axis=0)))
    g.output("scale", g.op("Reshape", scale, lead))


def _quant_batch_matmul_body(g: _G, a: dict, p) -> None:
    """npu.npu_quant_matmul; p[2] / p[4]: the element types of scale / bias (see overload_key)."""
    dtype = a["dtype"]
    T = TensorProto
    x1, x2 = "x1", "x2"
    if a["transpose_x1"]:  # (2-D operands: a function body does not know the rank)
        x1 = g.op("Transpose", x1, perm=[1, 0])
    if a["transpose_x2"]:
        x2 = g.op("Transpose", x2, perm=[1, 0])
    acc = g.op("MatMulInteger", x1, x2)  # exact int32 (onnxruntime: int8 x int8)
    int_bias = p[4] == T.INT32
    float_bias = bool(p[4]) and not int_bias
    if int_bias:
        acc = g.op("Add", acc, "bias")
    if dtype == DT_INT32:
        if float_bias:
            raise ValueError("npu::QuantBatchMatMul: an int32 output takes no float bias")
        g.output("y", g.op("Identity", acc))
        return
    v = g.cast_f(acc)
    fb = g.cast_f("bias") if float_bias else None
    if p[5]:  # per-token: float32 scale * pertoken, float bias after
        if p[2] == T.INT64 or dtype not in (DT_FLOAT16, DT_BF16):
            raise ValueError("npu::QuantBatchMatMul: pertoken_scale takes a float scale and a float16 / bfloat16 output")
        v = g.op("Mul", g.op("Mul", v, g.cast_f("scale")), g.op("Unsqueeze", "pertoken_scale", g.i(-1)))
        if fb:
            v = g.op("Add", v, fb)
        g.output("y", g.op("Cast", v, to=_GE_TYPES[dtype]))
        return
    if dtype == DT_BF16:
        if p[2] == T.INT64:
            raise ValueError("npu::QuantBatchMatMul: a bfloat16 output takes a float scale")
        s = g.cast_f("scale")
        if not float_bias:  # truncated when per tensor (one value)
            one = g.op("Equal", g.op("Size", "scale"), g.k(1))
            s = g.op("Where", one, g.trunc_fp19(s), s)
        v = g.op("Mul", v, s)
        if fb:
            v = g.op("Add", v, fb)
        g.output("y", g.op("Cast", v, to=T.BFLOAT16))
        return
    if dtype not in (DT_INT8, DT_FLOAT16) or float_bias:
        raise ValueError(f"npu::QuantBatchMatMul: dtype {dtype} with these inputs is not a supported combination")
    if p[2] == T.INT64:
        s, o = g.packed_scale("scale")
    else:
        s = g.trunc_fp19(g.cast_f("scale"))
        if p[3]:  # round half away from zero, clamped to [-256, 255] (npu_trans_quant_param)
            off = "offset"
            o = g.op("Mul", g.op("Sign", off), g.op("Floor", g.op("Add", g.op("Abs", off), g.f(0.5))))
            o = g.op("Clip", o, g.f(-256.0), g.f(255.0))
        else:
            o = g.f(0.0)
    if dtype == DT_FLOAT16:
        g.output("y", g.op("Cast", g.op("Mul", v, s), to=T.FLOAT16))
        return
    r = g.op("Add", g.op("Clip", g.op("Round", g.op("Mul", v, s)), g.f(-256.0), g.f(255.0)), o)
    g.output("y", g.op("Cast", g.op("Clip", r, g.f(-128.0), g.f(127.0)), to=T.INT8))


def _ascend_quant_body(g: _G, a: dict, p) -> None:
    """npu.ascend_quant: each float16 step emulated in float32 and rounded to float16 (the product
    of two float16 values is exact in float32; their sum rounded twice is still RNE: 24 >= 2p + 2)."""
    def f16(v):
        return g.cast_f(g.op("Cast", v, to=TensorProto.FLOAT16))

    s = g.f(float(np.float16(np.float32(a["scale"]))))
    v = f16(g.op("Mul", f16("x"), s))
    if a["sqrt_mode"]:
        v = f16(g.op("Mul", v, s))
    v = f16(g.op("Add", v, g.f(float(np.float16(np.float32(a["offset"]))))))
    g.output("y", g.round_sat(v, -128, 127, TensorProto.INT8))


def _ascend_dequant_body(g: _G, a: dict, p) -> None:
    s, _ = g.packed_scale(g.op("Cast", g.op("Reshape", "deq_scale", g.i(-1)), to=TensorProto.INT64))
    if a["sqrt_mode"]:
        s = g.op("Mul", s, s)
    # (C,) -> (C, 1, ..., 1): per channel along axis 1 whatever x's rank
    ones = g.op("ConstantOfShape", g.op("Sub", g.op("Shape", g.op("Shape", "x")), g.i(2)),
                value=numpy_helper.from_array(np.array([1], np.int64)))
    s = g.op("Reshape", s, g.op("Concat", g.i(-1), ones, axis=0))
    v = g.op("Mul", g.cast_f("x"), s)
    if a["relu_flag"]:
        v = g.op("Relu", v)
    g.output("y", g.op("Cast", v, to=TensorProto.FLOAT16 if a["dtype"] == DT_FLOAT16 else TensorProto.FLOAT))


def _ascend_anti_quant_body(g: _G, a: dict, p) -> None:
    s = g.f(a["scale"])
    v = g.op("Mul", g.op("Sub", g.cast_f("x"), g.f(a["offset"])), s)
    if a["sqrt_mode"]:
        v = g.op("Mul", v, s)
    g.output("y", g.op("Cast", v, to=TensorProto.FLOAT16 if a["dtype"] == DT_FLOAT16 else TensorProto.FLOAT))


_BODIES = {
    "AscendAntiQuant": _ascend_anti_quant_body,
    "AscendQuant": _ascend_quant_body,
    "AscendDequant": _ascend_dequant_body,
    "QuantBatchMatMul": _quant_batch_matmul_body,
    "NPUQuantize": _quantize_body,
    "NPUDynamicQuant": _dynamic_quant_body,
    "NPUWeightQuantBatchMatmulV2": _weight_quant_batchmatmul_body,
    "NPUDequantSwigluQuant": _dequant_swiglu_quant_body,
}


def function_body(op_type: str, attrs: dict, inputs: Sequence[int] | None = None
                  ) -> tuple[str, onnx.FunctionProto]:
    """(overload key, model-local function) running npu::<op_type> with standard opset-21 ops.

    `inputs`: the node's input element types (TensorProto codes), 0 / None / False where an
    optional input is absent (missing trailing entries count as absent); None: all present.
    Raises ValueError for configurations the op does not accept.
    """
    if op_type not in OPS:
        raise KeyError(f"no npu op {op_type!r}")
    op = OPS[op_type]
    a = _attrs_with_defaults(op_type, attrs)
    p = _present(op_type, inputs)
    for (name, _, optional), t in zip(op.inputs, p):
        if not optional and not t:
            raise ValueError(f"npu::{op_type}: required input {name} is absent")
    g = _G()
    _BODIES[op_type](g, a, p)
    key = overload_key(op_type, attrs, inputs)
    fn = helper.make_function(
        DOMAIN, op_type, [n for n, _, _ in op.inputs], [n for n, _ in op.outputs], g.nodes,
        [helper.make_opsetid("", OPSET)],
        attribute_protos=[helper.make_attribute(k, v) for k, v in a.items()],
        doc_string=f"{op_type} ({key}) in standard ops; see onnx_npuq.ops.npu_ops.",
    )
    fn.overload = key
    return key, fn


# ------------------------------------------------------------------ attaching bodies to a model


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    types = {}
    g = model.graph
    for v in list(g.input) + list(g.output) + list(g.value_info):
        if v.type.HasField("tensor_type"):
            types[v.name] = v.type.tensor_type.elem_type
    for t in g.initializer:
        types[t.name] = t.data_type
    for n in g.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            types[n.output[0]] = n.attribute[0].t.data_type
    return types


def attach_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every npu-domain node of the main graph its body (by overload) and its full
    input list (absent optional inputs as empty names, as many as the schema has); in place."""
    types = _elem_types(model)
    nodes = [n for n in model.graph.node if n.domain == DOMAIN]
    if any(i and i not in types for n in nodes for i in n.input):
        types.update(_elem_types(onnx.shape_inference.infer_shapes(checker_copy(model, LARGE_TENSOR_BYTES))))
    have = {(f.domain, f.name, f.overload) for f in model.functions}
    for node in nodes:
        # the exporter drops trailing absent optional inputs; torch_npu's nodes have them all
        node.input.extend([""] * (len(OPS[node.op_type].inputs) - len(node.input)))
        attrs = {at.name: helper.get_attribute_value(at) for at in node.attribute}
        inputs = [types.get(i, 1) if i else 0 for i in node.input]
        key, fn = function_body(node.op_type, attrs, inputs)
        node.overload = key
        if (DOMAIN, node.op_type, key) not in have:
            model.functions.append(fn)
            have.add((DOMAIN, node.op_type, key))
    if nodes and not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, VERSION))
    return model
