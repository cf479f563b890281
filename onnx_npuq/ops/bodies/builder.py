"""The graph builder of the npuq function bodies (`_Body`: nodes, constants and the exact
float32 steps standard ops can express), with the domain / opset constants they share.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
import torch
from onnx import AttributeProto, TensorProto, helper, numpy_helper


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

def _pow2_table(sign: int = 1, shift: int = 0) -> np.ndarray:
    """T[k] = 2^(sign * (k - OFF) + shift) in float32 (0 / inf outside the range)."""
    e = sign * (np.arange(NPOW) - OFF) + shift
    with np.errstate(over="ignore"):
        return np.ldexp(1.0, e).astype(np.float32)

# ------------------------------------------------------------------ graph builder


class _Body:
    """Collects the nodes of one function body; names are local to the function."""

    def __init__(self, prefix: str = ""):
        self.nodes: list[onnx.NodeProto] = []
        self._n = 0
        self._consts: dict = {}
        self._prefix = prefix

    def _name(self) -> str:
        self._n += 1
        return f"{self._prefix}_{self._n}"

    def branches(self, cond: str, then, other, elem_type: int = FLOAT) -> str:
        """If(cond), cond a [1] bool: `then(g)` / `other(g)` build each branch in its own
        _Body (reading this body's values) and return its output's name. onnxruntime inlines
        the branch a constant condition takes; a branch that only passes an outer value on
        (an Identity) costs a folded copy, so let each branch compute its result."""
        out = self._name()
        graphs = []
        for tag, build in (("t", then), ("e", other)):
            sub = _Body(f"{out}{tag}")
            y = build(sub)
            if y not in {o for n in sub.nodes for o in n.output}:  # an outer value: copy it out
                y = sub.op("Identity", y)
            graphs.append(helper.make_graph(sub.nodes, f"{out}{tag}", [],
                                            [helper.make_tensor_value_info(y, elem_type, None)]))
        self.nodes.append(helper.make_node("If", [self.op("Squeeze", cond)], [out],
                                           then_branch=graphs[0], else_branch=graphs[1]))
        return out

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
