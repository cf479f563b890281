"""The torch_npu quantization ops under their torch_npu ONNX names (domain "npu", version 1).

    y = npu_quantize(x, scales, zps, torch.qint8, axis=1)      # torch.ops.npuq_npu.quantize
    torch.onnx.export(..., custom_translation_table=TRANSLATIONS)  # -> npu::NPUQuantize
    attach_functions(model_proto)                              # bodies onnxruntime can run

Each op is defined once, as in defs.py: ONNX schema (registered with onnx.defs), a torch
custom op computed by onnx_npuq.npu (the CPU reference), its fake, the export lowering and
`function_body`, a model-local FunctionProto of standard opset-21 ops.

Names, input order and attributes follow torch_npu/onnx/wrapper_onnx_ops.py
(shared/spec/ascend.md): NPUQuantize(input, scales, zero_points; dtype, axis, div_mode),
NPUDynamicQuant(x, smooth_scales, group_index; dst_type) -> (y, scale),
NPUWeightQuantBatchMatmulV2(x, weight, antiquant_scale, antiquant_offset, quant_scale,
quant_offset, bias; antiquant_group_size, dtype). torch_npu has no exporter for
npu_dequant_swiglu_quant: NPUDequantSwigluQuant takes the inputs of its Python signature
in order and its scalar keyword arguments as attributes. Integer "dtype" attributes are GE
DataType codes (DT_INT8=2, DT_INT32=3, DT_UINT8=4, DT_FLOAT16=1, DT_INT4=29). Absent
optional inputs are empty input names (torch_npu writes empty constants instead).

A function body depends on the attributes and on which optional inputs are present (and,
for NPUDequantSwigluQuant, on whether bias is int32), so each configuration is its own
function, selected by the node's `overload` (`overload_key`).

This module is the facade: the definitions (npu_defs), the torch side (npu_torch: custom ops,
wrappers, export lowering) and the function bodies (npu_bodies) each live in their own module.
"""

from __future__ import annotations

from .npu_bodies import (
    attach_functions, function_body, _BODIES, _G, _ascend_anti_quant_body, _ascend_dequant_body,
    _ascend_quant_body, _dequant_swiglu_quant_body, _dynamic_quant_body, _elem_types,
    _quant_batch_matmul_body, _quantize_body, _weight_quant_batchmatmul_body,
)
from .npu_defs import (
    ASCEND_ANTI_QUANT, ASCEND_DEQUANT, ASCEND_QUANT, DOMAIN, DT_BF16, DT_FLOAT, DT_FLOAT16, DT_INT32,
    DT_INT4, DT_INT8, DT_UINT8, NPU_DEQUANT_SWIGLU_QUANT, NPU_DYNAMIC_QUANT, NPU_QUANTIZE,
    NPU_WEIGHT_QUANT_BATCH_MATMUL_V2, OPS, OPSET, QUANT_BATCH_MATMUL, VERSION, overload_key, _ANY,
    _CHOICES, _F, _FLOATS, _GE_TYPES, _I, _MINIMUM, _S, _TYPED, _attrs_with_defaults, _make_inference,
    _npu_op, _out_shapes, _out_types, _present,
)
from .npu_torch import (
    TRANSLATIONS, ascend_anti_quant, ascend_dequant, ascend_quant, npu_dequant_swiglu_quant,
    npu_dynamic_quant, npu_quant_matmul, npu_quantize, npu_weight_quant_batchmatmul, _CODE_DIV, _CODE_MUL,
    _DYN_CODE, _OPS, _QMM_CODE, _QUANTIZE_DIV, _QUANTIZE_MUL, _ascend_anti_quant, _ascend_dequant,
    _ascend_quant, _computing, _dequant_swiglu_quant, _dynamic_quant, _lower_ascend_anti_quant,
    _lower_ascend_dequant, _lower_ascend_quant, _lower_dequant_swiglu_quant, _lower_dynamic_quant,
    _lower_quant_matmul, _lower_quantize, _lower_weight_quant_batchmatmul, _opset, _quant_matmul,
    _quantize, _weight_quant_batchmatmul,
)
