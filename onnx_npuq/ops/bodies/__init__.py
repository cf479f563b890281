"""Model-local ONNX functions (domain "npuq", version 1) built from standard opset-21 ops.

onnxruntime (CPU) runs them bit-exactly like `onnx_npuq.formats`:

    Dequantize_<fmt>(codes, scales[, tensor_scale]) -> Y     attrs: length, (block)
    QuantDequant_<fmt>[_<option>_<value>...](X) -> Y          attr:  axis (default -1)
    Quantize_<fmt>[_<option>_<value>...](X) -> codes, scales  (last axis; not nvfp4)

`Dequantize_<fmt>` takes `Packed.codes` and `Packed.scales` (uint8, 2-D) and returns the
decoded (rows, length) float32 matrix (rows as in Packed: every dimension but the axis,
in order); `length` crops the block padding (0: keep the padded rows). The float32-scaled
formats (int8sym, int4sym, fp8e4m3, fp8e5m2) also take `block` (elements per float32 scale;
0: the whole row, i.e. `length`).
Decoding does not depend on format options, so there is one Dequantize per format (hif8's
multiplies by the row's float32 scale when `scales` has one: scale="row" / "tensor"), and a
second for 8-bit codes with one float32 scale per row (`rows_scaled`: int8sym, fp8e4m3,
fp8e5m2 weights by default), overload `<fmt>.rows`: one GatherElements of the rows' scaled
tables, whose static shape lets onnxruntime fold it with no full-size intermediate but the
indices.

`QuantDequant_<fmt>...` fake-quantizes X (float32, float16 or bfloat16, any rank) along
`axis`, computing in float32 and casting back to X's type (CastLike). Options change the
body, so each configuration is its own function (`function_name`). The axis is handled
inside the body with shape arithmetic (X viewed as (A, n, C) -> (A, C, nb, *block)), so
no Transpose is needed around the node; axis -1 (the default) is the `npuq` op contract.

Standard ops cannot reinterpret float bits, so exponents come from float arithmetic, and
every other float step reproduces the torch kernels' operations in their order:
- per element, 2^floor_log2(v) by Veltkamp's split (v * (2^23 + 1), two Subs: v rounded to
  one significant bit), halved where it exceeds v: exact for v in [2^-126, 2^104);
- per block, where an integer exponent is needed (MX shared exponent), floor(Log(v)/ln 2)
  (off by one binade near powers of two in onnxruntime) corrected by one comparison on each
  side against a Gather from a constant power-of-two table (subnormals included);
- bf16 rounding is Cast to BFLOAT16 and back (RNE in onnxruntime, like bits.to_bf16);
- NaN/Inf blocks are found as NaN in ReduceSum(x * 0): onnxruntime's ReduceMax may drop a
  NaN (torch's amax propagates it);
- a sign is applied by multiplying with Where(neg, -1, 1): onnxruntime's Where returns
  +0.0 for a -0.0 taken from its first value input.

    model = model_for_fake_quant("mxfp4", (4, 96), axis=-1, dtype=torch.bfloat16)
    model = model_for_decode(formats.encode(x, "hif4"))     # runnable, weights inside

One module per part: builder (`_Body`, the graph builder, and the domain / opset constants),
tables (lookup tables from the reference codecs), names (function names, FunctionProto
assembly), dequantize, quant_dequant and quantize (one kind of body each), models (runnable
models). This package re-exports their names.
"""
from __future__ import annotations

from .builder import (DOMAIN, DOMAIN_VERSION, OPSET, IR_VERSION, FLOAT, INT64, INF, NAN, INT64_MAX, OFF, NPOW,  # noqa: F401
                      INV_LN2, TORCH_TO_ONNX, _Body)
from .names import function_name  # noqa: F401
from .dequantize import dequantize_function, dequantize_rows_function, rows_scaled  # noqa: F401
from .quant_dequant import quant_dequant_function  # noqa: F401
from .quantize import QUANTIZE_FORMATS, quantize_function  # noqa: F401
from .models import _model, model_for_decode, model_for_fake_quant, all_functions  # noqa: F401

__all__ = [
    "DOMAIN",
    "DOMAIN_VERSION",
    "IR_VERSION",
    "OPSET",
    "all_functions",
    "dequantize_function",
    "dequantize_rows_function",
    "function_name",
    "model_for_decode",
    "model_for_fake_quant",
    "quant_dequant_function",
    "quantize_function",
    "rows_scaled",
]
