"""CANN's deploy ops AscendQuant / AscendDequant / AscendAntiQuant (and pack_deq_scale).

AMCT's and msModelSlim's deploy ops (default domain in their ONNX models), which ATC fuses
with the int8 Conv / Gemm / MatMul between them onto the cube. Not torch_npu APIs: CPU
references of CANN's operators, so that a model in that form can be run and checked."""

from __future__ import annotations

import torch

from ._common import _FLOAT_TYPES, _INT8_RANGE, _decode_packed_scale, _float_arg, _round_saturate, _tensor


def ascend_quant(x, scale: float, offset: float = 0.0, *, sqrt_mode: bool = False, round_mode: str = "Round",
                 dst_type: str = "INT8"):
    """CANN AscendQuant on Atlas A2 / 310P (not 950): in float16, y = saturate_int8(rint(fp16(x) *
    fp16(scale) [* fp16(scale)] + fp16(offset))), each step rounded to float16."""
    # Sources: hicann/ops-nn quant/ascend_quant/tests/assets/golden.py (non-950 branch: cast to
    # float16, scale and offset as float16, multiply / add in float16, np.rint for "Round",
    # clip to [-128, 127]) and framework/ascend_quant_onnx_plugin.cpp (attributes, defaults).
    fn = "ascend_quant"
    _tensor(fn, "x", x, _FLOAT_TYPES)
    scale, offset = _float_arg(fn, "scale", scale), _float_arg(fn, "offset", offset)
    if round_mode != "Round" or dst_type != "INT8":
        raise ValueError(f"{fn}: only round_mode='Round' and dst_type='INT8' are implemented, got "
                         f"{round_mode!r}, {dst_type!r}")
    h = torch.float16
    s = torch.tensor(scale, dtype=torch.float32).to(h)
    v = x.to(h) * s
    if sqrt_mode:
        v = v * s
    v = v + torch.tensor(offset, dtype=torch.float32).to(h)
    return _round_saturate(v.to(torch.float32), *_INT8_RANGE, torch.int8)


def pack_deq_scale(deq_scale: torch.Tensor, weight_offset: torch.Tensor | None = None) -> torch.Tensor:
    """float32 deq_scale (activation scale x weight scale, per channel) -> AscendDequant's
    UINT64 word: bits 31..0 the float32, 39..32 shift_n (0), 47..40 the int8 weight offset;
    as a torch.int64 tensor of the same bits (torch has no uint64 arithmetic)."""
    # Source: Ascend/msmodelslim ascend_utils/mindspore/quant/ptq_quant/deploy/deploy_utils.py
    # (compute_fused_deq_scale: |47:40 offset_w|39:32 shift_N|31:0 deq_scale|) and
    # msmodelslim/onnx/squant_ptq/quant_deploy.py (_convert_dequant: float32 bits | 0).
    low = deq_scale.to(torch.float32).contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    if weight_offset is not None:
        low = low | ((weight_offset.to(torch.int64) & 0xFF) << 40)
    return low


def ascend_dequant(x, deq_scale, *, sqrt_mode: bool = False, relu_flag: bool = False, dtype: int = 0):
    """CANN AscendDequant: int32 x (N, C, ...) * the float32 scale in bits 31..0 of deq_scale (C,)
    or (1,) along axis 1 (NCHW's channels; a Gemm output's columns), 19-bit truncated as the
    fixpipe reads it, [squared,] [relu,] as float32 (dtype 0) or float16 (dtype 1)."""
    # Sources: hicann/ops-nn quant/ascend_dequant/op_graph/ascend_dequant_proto.h (inputs, sqrt_mode,
    # relu_flag, dtype DT_FLOAT default) and framework/ascend_dequant_onnx_plugin.cpp; the 19-bit
    # read of a UINT64 scale: matmul/common/tests/st/arch35/matmul_quant_util.py u64_to_deq_scale.
    fn = "ascend_dequant"
    _tensor(fn, "x", x, (torch.int32,))
    _tensor(fn, "deq_scale", deq_scale, (torch.int64,))
    if dtype not in (0, 1):
        raise ValueError(f"{fn}: dtype must be 0 (float32) or 1 (float16), got {dtype}")
    if x.dim() < 2:
        raise ValueError(f"{fn}: x must have at least 2 dimensions (N, C, ...), got {x.dim()}")
    if deq_scale.dim() != 1 or deq_scale.numel() not in (1, x.shape[1]):
        raise ValueError(f"{fn}: deq_scale must be 1-D of length 1 or {x.shape[1]} (x's channels, dimension 1), "
                         f"got shape {tuple(deq_scale.shape)}")
    s, _ = _decode_packed_scale(deq_scale)
    s = s.reshape(-1, *([1] * (x.dim() - 2)))
    if sqrt_mode:
        s = s * s
    v = x.to(torch.float32) * s
    if relu_flag:
        v = torch.relu(v)
    return v.to(torch.float16 if dtype == 1 else torch.float32)


def ascend_anti_quant(x, scale: float, offset: float = 0.0, *, sqrt_mode: bool = False, dtype: int = 0):
    """CANN AscendAntiQuant as its ONNX node reads: y = (x - offset) * scale [* scale] in float32,
    as float32 (dtype 0) or float16 (dtype 1). (The ONNX plugin negates the attribute: the GE op
    computes (x + offset') * scale with offset' = -offset.)"""
    # Sources: hicann/ops-nn quant/ascend_anti_quant/op_graph/ascend_anti_quant_proto.h (formula,
    # dtype DT_FLOAT default) and framework/ascend_anti_quant_onnx_plugin.cpp (offset = attr * -1).
    fn = "ascend_anti_quant"
    _tensor(fn, "x", x, (torch.int8,))
    scale, offset = _float_arg(fn, "scale", scale), _float_arg(fn, "offset", offset)
    if dtype not in (0, 1):
        raise ValueError(f"{fn}: dtype must be 0 (float32) or 1 (float16), got {dtype}")
    s = torch.tensor(scale, dtype=torch.float32)
    v = (x.to(torch.float32) - torch.tensor(offset, dtype=torch.float32)) * s
    if sqrt_mode:
        v = v * s
    return v.to(torch.float16 if dtype == 1 else torch.float32)
