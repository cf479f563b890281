"""Small helpers over onnx-graphsurgeon graphs shared by the passes."""
from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import torch
from onnx_graphsurgeon.ir.tensor import LazyValues

from .. import formats
from ..io import read_external
from ..ops.defs import DOMAIN
from ..ops.fold_order import GEMM_A, GEMM_M, GEMM_T, PREFIX as FOLD_ORDER_PREFIX, carried


class ExternalValues(LazyValues):
    """A constant whose data stays in its external-data file (in `folder`, checked) until a
    pass reads it; one no pass reads is exported as the reference it came as."""

    def __init__(self, tensor: onnx.TensorProto, folder: str | None):
        super().__init__(tensor)
        self.folder = folder

    def with_data(self) -> onnx.TensorProto:
        t = onnx.TensorProto()
        t.CopyFrom(self.tensor)
        t.ClearField("external_data")
        t.ClearField("data_location")
        t.raw_data = read_external(self.tensor, self.folder, "initializer")
        return t

    def load(self) -> np.ndarray:
        return np.array(onnx.numpy_helper.to_array(self.with_data()))


def read_on_demand(graph: gs.Graph, folder: str | None) -> None:
    """Make the graph's constants with external data ExternalValues."""
    for t in graph.tensors().values():
        v = getattr(t, "_values", None)
        if type(v) is LazyValues and v.tensor.data_location == onnx.TensorProto.EXTERNAL:
            t._values = ExternalValues(v.tensor, folder)  # noqa: SLF001


def is_standard(node: gs.Node, op: str) -> bool:
    return node.op == op and node.domain in (None, "", "ai.onnx")


def constant(t: gs.Tensor | None, graph: gs.Graph | None = None) -> gs.Constant | None:
    """The gs.Constant behind a tensor: an initializer (not one that is also a graph input,
    which can change), or a Constant node's value; else None."""
    if isinstance(t, gs.Constant):
        return None if graph is not None and t in graph.inputs else t
    if isinstance(t, gs.Variable) and len(t.inputs) == 1 and is_standard(t.inputs[0], "Constant"):
        attrs = t.inputs[0].attrs
        if isinstance(attrs.get("value"), gs.Constant):
            return attrs["value"]
        for key in ("value_float", "value_floats", "value_int", "value_ints"):
            if key in attrs:
                dtype = np.float32 if "float" in key else np.int64
                return gs.Constant(t.name, np.array(attrs[key], dtype=dtype))
    return None


def constant_array(c: gs.Constant) -> np.ndarray:
    """A constant's values, read from its TensorProto where gs still has it: gs cannot give
    bfloat16 values without converting, nor export a loaded INT4 constant (it writes a byte
    per element)."""
    v = c._values  # noqa: SLF001 - gs has no public way to read lazily
    if isinstance(v, ExternalValues):
        return onnx.numpy_helper.to_array(v.with_data())
    return onnx.numpy_helper.to_array(v.tensor) if isinstance(v, LazyValues) else np.asarray(v)


def constant_type(c: gs.Constant) -> int:
    """The ONNX element type of a constant."""
    v = c._values  # noqa: SLF001
    if isinstance(v, LazyValues):
        return v.tensor.data_type
    return onnx.helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype)


def constant_torch(t: gs.Tensor, graph: gs.Graph | None = None) -> torch.Tensor | None:
    """The value of a constant float32 / float16 / bfloat16 tensor as torch, else None."""
    c = constant(t, graph)
    if c is None:
        return None
    kind = constant_type(c)
    if kind not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16):
        return None
    values = np.array(constant_array(c))  # a writable copy
    if kind == onnx.TensorProto.BFLOAT16:  # ml_dtypes bfloat16
        return torch.from_numpy(values.view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(values)


ONNX_FLOAT = {torch.float32: onnx.TensorProto.FLOAT, torch.float16: onnx.TensorProto.FLOAT16,
              torch.bfloat16: onnx.TensorProto.BFLOAT16}


def dequantize_packed(graph: gs.Graph, p: formats.Packed, name: str, out: gs.Variable | None = None
                      ) -> gs.Variable:
    """Nodes giving back the tensor `p` holds (shape, axis, dtype): npuq::Dequantize over
    uint8 constants `<name>.codes` / `.scales` (/ `.tensor_scale`), then the Reshape,
    Transpose and Cast the layout needs. Writes into `out` when given."""
    inputs = [gs.Constant(f"{name}.codes", p.codes.contiguous().numpy()),
              gs.Constant(f"{name}.scales", p.scales.contiguous().numpy())]
    if p.tensor_scale is not None:
        inputs.append(gs.Constant(f"{name}.tensor_scale", p.tensor_scale.float().reshape(-1).numpy()))
    rows = gs.Variable(f"{name}.rows", dtype=np.float32)
    graph.nodes.append(gs.Node("Dequantize", name=f"{name}.Dequantize", domain=DOMAIN, inputs=inputs,
                               outputs=[rows], attrs={"format": p.format, "block": p.block, "length": p.length}))
    steps = []
    moved = tuple(p.shape[: p.axis]) + tuple(p.shape[p.axis + 1:]) + (p.length,)
    if len(moved) != 2:
        steps.append(("Reshape", [gs.Constant(f"{name}.shape", np.array(moved, np.int64))], {}))
    last = len(p.shape) - 1
    if p.axis != last:
        perm = list(range(p.axis)) + [last] + list(range(p.axis, last))
        steps.append(("Transpose", [], {"perm": perm}))
    if p.dtype != torch.float32:
        steps.append(("Cast", [], {"to": ONNX_FLOAT[p.dtype]}))
    value = rows
    for i, (op, extra, attrs) in enumerate(steps):
        final = i == len(steps) - 1
        nxt = out if final and out is not None else gs.Variable(f"{name}.{op.lower()}")
        graph.nodes.append(gs.Node(op, name=f"{name}.{op}", inputs=[value, *extra], outputs=[nxt], attrs=attrs))
        value = nxt
    if out is not None and value is rows:  # no steps: Dequantize writes `out` itself
        graph.nodes[-1].outputs = [out]
        return out
    return value


def replace_uses(old: gs.Tensor, new: gs.Tensor) -> None:
    """Every node that reads `old` reads `new` instead (graph outputs are the caller's)."""
    for user in list(old.outputs):
        for i, t in enumerate(user.inputs):
            if t is old:
                user.inputs[i] = new


def detach_outputs(node: gs.Node) -> None:
    """Unhook `node` from its outputs so that cleanup removes it."""
    node.outputs.clear()


# ---- constants seen through pure layout ops ----

LAYOUT_OPS = ("Identity", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Cast")
_FLOAT_KINDS = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
_TORCH_FLOAT = {v: k for k, v in ONNX_FLOAT.items()}
MAX_LAYOUT_STEPS = 16


def _int_values(t: gs.Tensor) -> list[int] | None:
    """The values of a constant integer tensor (a shape, axes), else None."""
    c = constant(t)
    if c is None:
        return None
    a = np.asarray(constant_array(c))
    return [int(v) for v in a.reshape(-1)] if a.dtype.kind in "iu" else None


def layout_step(node: gs.Node):
    """A function of torch tensors computing `node`, when it is a pure layout op (Identity,
    Transpose, Reshape, Squeeze, Unsqueeze, Cast to float32 / float16 / bfloat16) whose
    inputs but the first are constants; else None. Values are moved or cast as ONNX does
    (a float cast rounds to nearest even, as onnxruntime's)."""
    if not any(is_standard(node, op) for op in LAYOUT_OPS) or not node.inputs or len(node.outputs) != 1:
        return None
    op = node.op
    if op == "Identity":
        return lambda x: x
    if op == "Transpose":
        perm = node.attrs.get("perm")
        return lambda x: x.permute(*(perm if perm is not None else range(x.dim() - 1, -1, -1)))
    if op == "Cast":
        dtype = _TORCH_FLOAT.get(node.attrs.get("to"))
        return None if dtype is None else (lambda x: x.to(dtype))
    if op == "Reshape":
        shape = _int_values(node.inputs[1]) if len(node.inputs) > 1 else None
        if shape is None:
            return None
        allowzero = bool(node.attrs.get("allowzero", 0))
        return lambda x: x.reshape([x.shape[i] if d == 0 and not allowzero else d for i, d in enumerate(shape)])
    # Squeeze / Unsqueeze: axes from the input (opset >= 13; an omitted input has no name)
    # or the attribute (older); none: Squeeze drops every 1
    has_input = len(node.inputs) > 1 and node.inputs[1].name
    axes = _int_values(node.inputs[1]) if has_input else node.attrs.get("axes")
    if has_input and axes is None:
        return None
    if op == "Squeeze":
        def squeeze(x):
            drop = {i for i, d in enumerate(x.shape) if d == 1} if axes is None else {a % x.dim() for a in axes}
            return x.reshape([d for i, d in enumerate(x.shape) if i not in drop])
        return squeeze
    if axes is None:
        return None

    def unsqueeze(x):  # axes refer to the output's rank
        rank = x.dim() + len(axes)
        for a in sorted(a % rank for a in axes):
            x = x.unsqueeze(a)
        return x
    return unsqueeze


def layout_chain(t: gs.Tensor):
    """(the float constant tensor behind `t`, the layout steps from it to `t` in order), when
    `t` is a float32 / float16 / bfloat16 constant seen through at most MAX_LAYOUT_STEPS pure
    layout ops (see layout_step); else None. Reads no values but small shape / axes inputs."""
    steps = []
    while (c := constant(t)) is None:
        if not isinstance(t, gs.Variable) or len(t.inputs) != 1 or len(steps) == MAX_LAYOUT_STEPS:
            return None
        node = t.inputs[0]
        step = layout_step(node)
        if step is None:
            return None
        steps.append(step)
        t = node.inputs[0]
    if constant_type(c) not in _FLOAT_KINDS:
        return None
    return t, steps[::-1]


def constant_through_layout(t: gs.Tensor) -> torch.Tensor | None:
    """The value of `t` as torch (contiguous), when layout_chain finds a float constant
    behind it: the constant's values with the layout ops applied; else None."""
    chain = layout_chain(t)
    if chain is None:
        return None
    source, steps = chain
    x = constant_torch(source)
    if x is None:
        return None
    for step in steps:
        x = step(x)
    return x.contiguous()


def remove_gates(graph: gs.Graph) -> None:
    """Undo ops.fold_order.add_gates: each Dequantize reads its codes and scales again, each
    Gemm(transB=1) of a weight is its Transpose -> MatMul again, the gates' nodes go."""
    ours = [n for n in graph.nodes if n.name.startswith(FOLD_ORDER_PREFIX)]
    products = {}
    for n in ours:
        if n.op == "Where":  # Where(open, x, x)
            replace_uses(n.outputs[0], n.inputs[1])
        elif n.op == "Gemm":  # Flatten(a) -> Gemm(., w) -> Reshape -> y
            flat, reshape = n.inputs[0].inputs[0], next(r for r in n.outputs[0].outputs if r.op == "Reshape")
            products[id(n)] = (flat.inputs[0], n.inputs[1], reshape.outputs[0], flat.name, flat.outputs[0].name, n.name)
    for n in ours:
        n.inputs.clear()
        n.outputs.clear()
    nodes = []
    for n in graph.nodes:
        if id(n) in products:
            a, w, y, flat_name, a2_name, gemm_name = products[id(n)]
            wt = gs.Variable(a2_name[len(GEMM_A):], dtype=w.dtype, shape=None if w.shape is None else w.shape[::-1])
            nodes += [gs.Node("Transpose", carried(GEMM_T, y.name, flat_name), {"perm": [1, 0]}, [w], [wt]),
                      gs.Node("MatMul", carried(GEMM_M, y.name, gemm_name), inputs=[a, wt], outputs=[y])]
        elif not n.name.startswith(FOLD_ORDER_PREFIX):
            nodes.append(n)
    graph.nodes = nodes
