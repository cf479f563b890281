"""CPU reference implementations of five torch_npu quantization APIs.

``npu_quantize``, ``npu_dynamic_quant``, ``npu_weight_quant_batchmatmul``,
``npu_dequant_swiglu_quant`` and ``npu_quant_matmul`` (int8 x int8) have the Python signatures, output dtypes, output shapes and
semantics of the ``torch_npu`` functions of the same names, computed with plain torch in
float32 (with the float16/bfloat16 rounding steps the NPU kernels perform, where the sources
say so). When the input tensor is on an NPU device (``tensor.device.type == "npu"``), the real
``torch_npu.<name>`` is called instead; ``torch_npu`` is imported lazily, only then, and the
result of that import is cached. On CPU tensors torch_npu is never imported: installing it
without CANN breaks ``import torch`` (shared/spec/ascend.md).

Conventions shared by the five functions (shared/spec/formats.md, "Integer formats"):
- RNE is round-half-to-even (``torch.round``); "saturate" clamps to the output integer range.
- NaN becomes 0 when converted to an integer (the CANN Quantize golden's rule for int32,
  applied to every integer output so the result never depends on an undefined cast).
- int4 results in an int32 (``torch.quint4x2`` outputs, and int4 weights passed as int32)
  hold 8 values per int32, element j in bits 4j..4j+3 (lowest nibble first).

Sources are repositories as indexed for this project (repo: path); each function's comment
names the ones it follows.

One module per op family (quantize, weight_matmul, swiglu, quant_matmul, deploy); what they
share, including the cached torch_npu import and the export routing, lives in _common (patch
state there, e.g. ``npu._common._TORCH_NPU``). The private helpers re-exported below are used by
ops.npu_ops, passes and the tests.
"""
from __future__ import annotations

from ._common import (
    _FLOAT_TYPES, _HALF_TYPES, _IN_CUSTOM_OP, _INT4_RANGE, _INT8_RANGE, _UNSET, _bool_arg,
    _decode_packed_scale, _exporting, _float_arg, _group_counts, _int_arg, _is_npu, _load_torch_npu,
    _names, _npu_op, _npu_ops, _opt_tensor, _pack_int4, _round_half_away, _round_saturate, _tensor,
    _trunc_fp19, _unpack_int4,
)
from .deploy import ascend_anti_quant, ascend_dequant, ascend_quant, pack_deq_scale
from .quant_matmul import QUANT_MATMUL_OUT, npu_quant_matmul
from .quantize import _quant_v2_param, npu_dynamic_quant, npu_quantize
from .swiglu import npu_dequant_swiglu_quant
from .weight_matmul import npu_weight_quant_batchmatmul

__all__ = [
    "npu_dequant_swiglu_quant",
    "npu_dynamic_quant",
    "npu_quant_matmul",
    "npu_quantize",
    "npu_weight_quant_batchmatmul",
]
