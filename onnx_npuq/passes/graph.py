"""Small helpers over onnx-graphsurgeon graphs shared by the passes."""
from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import torch

from .. import formats
from ..ops.defs import DOMAIN


def _tensor_proto(c: gs.Constant) -> onnx.TensorProto | None:
    lazy = getattr(c, "_values", None)
    return getattr(lazy, "tensor", None)


def constant_tensor(t: gs.Tensor) -> gs.Constant | None:
    """The gs.Constant behind `t` (an initializer, or a Constant node's value), else None."""
    if isinstance(t, gs.Constant):
        return t
    if len(t.inputs) == 1 and t.inputs[0].op == "Constant" and t.inputs[0].domain in ("", "ai.onnx"):
        value = t.inputs[0].attrs.get("value")
        return value if isinstance(value, gs.Constant) else None
    return None


def constant_torch(t: gs.Tensor) -> torch.Tensor | None:
    """The value of a constant float tensor as torch (bfloat16 kept), else None. Read from the
    TensorProto where gs still has it: gs cannot give bfloat16 values without converting."""
    c = constant_tensor(t)
    if c is None:
        return None
    proto = _tensor_proto(c)
    if proto is not None and proto.data_type == onnx.TensorProto.BFLOAT16:
        raw = onnx.numpy_helper.to_array(proto)  # ml_dtypes bfloat16
        return torch.from_numpy(np.array(raw).view(np.uint16)).view(torch.bfloat16)
    values = np.asarray(c.values)
    if values.dtype not in (np.float32, np.float16):
        return None
    return torch.from_numpy(values.copy())


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


def detach_outputs(node: gs.Node) -> None:
    """Unhook `node` from its outputs so that cleanup removes it."""
    node.outputs.clear()
