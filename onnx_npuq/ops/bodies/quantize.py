"""The `Quantize_<fmt>[...]` bodies: X -> (codes, scales) as formats.encode packs them
(last axis).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto

from ...formats import codecs
from ...formats.hif4 import R7
from .builder import _Body, FLOAT, INF, INT64, INT64_MAX, INV_LN2, NAN, OFF
from .names import _fmt, _make_function, _suffix
from .quant_dequant import _block_amax, _hif8_scaled, _mx_round, _mx_scale, _qd_hif8, _round_e4m3, _sym_levels

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
