"""The `QuantDequant_<fmt>[...]` bodies: fake quantization of X along `axis`, in float32
and cast back to X's type (the axis handled by shape arithmetic, `_Layout`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx

from ...formats.hif4 import R7
from ...formats.integer import Sym
from .builder import _Body, FLOAT, INF, INT64, INT64_MAX, OFF
from .names import _fmt, function_name, _make_function

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
