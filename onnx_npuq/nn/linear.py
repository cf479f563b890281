"""QuantLinear: an nn.Linear whose weight is stored packed (uint8 codes + scale bytes).

    q = QuantLinear.from_linear(linear, "mxfp4", activation="mxfp8e4m3")
    y = q(x)   # == F.linear(fake_quant(x, act, -1), decode(encode(w, fmt, 1)), b)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import formats
from ..ops import defs as ops

WEIGHT_AXIS = 1  # (out, in) weight: blocks run along the input features, as the matmul reduces


def parse_spec(spec) -> formats.Format:
    """A format spec, "name" or {"format": name, **options} (or a Format), -> a Format."""
    if isinstance(spec, formats.Format):
        return spec
    if isinstance(spec, str):
        return formats.get_format(spec)
    if isinstance(spec, dict):
        options = dict(spec)
        if "format" not in options:
            raise ValueError(f"format spec {spec!r} has no 'format' key")
        return formats.get_format(options.pop("format"), **options)
    raise TypeError(
        f"format spec must be a name or a dict with a 'format' key, got {type(spec).__name__}"
    )


def spec_of(fmt: formats.Format | None):
    """The canonical spec of a Format: its name, or {"format": name, **options}."""
    if fmt is None:
        return None
    return {"format": fmt.name, **fmt.options} if fmt.options else fmt.name


def spec_str(fmt: formats.Format | None) -> str:
    if fmt is None:
        return "none"
    opts = ",".join(f"{k}={v}" for k, v in fmt.options.items())
    return f"{fmt.name}({opts})" if opts else fmt.name


class QuantLinear(nn.Module):
    """y = x_q @ dequant(W)^T + b, with W kept as the bytes a packed format stores.

    Buffers: weight_codes, weight_scales (uint8) and, for two-level formats (nvfp4),
    weight_tensor_scale (float32 scalar); the Packed metadata (format, options, shape,
    axis, dtype, block) are plain attributes fixed at construction, so a state_dict only
    ever holds tensors and loads into any QuantLinear built with the same configuration.
    """

    def __init__(self, packed: formats.Packed, bias: torch.Tensor | None = None, activation=None):
        super().__init__()
        if len(packed.shape) != 2 or packed.axis != WEIGHT_AXIS:
            raise ValueError(
                f"QuantLinear needs a 2-d weight packed along axis {WEIGHT_AXIS}, "
                f"got shape {packed.shape} axis {packed.axis}"
            )
        self.out_features, self.in_features = packed.shape
        self.weight_format = formats.get_format(packed.format, **packed.options)
        self.weight_shape = tuple(packed.shape)
        self.weight_axis = packed.axis
        self.weight_dtype = packed.dtype
        self.weight_block = packed.block
        self.act_format = None if activation is None else parse_spec(activation)
        # Copies: the module must not alias the source Linear or a caller's Packed.
        self.register_buffer("weight_codes", packed.codes.detach().clone())
        self.register_buffer("weight_scales", packed.scales.detach().clone())
        ts = packed.tensor_scale
        ts = None if ts is None else ts.detach().to(torch.float32).clone()
        self.register_buffer("weight_tensor_scale", ts)  # None: not in the state_dict
        # Frozen like the weight codes; a Parameter so it sits where nn.Linear's bias does.
        if bias is not None:
            bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
        self.bias = bias

    @classmethod
    def from_linear(cls, linear: nn.Linear, weight, activation=None) -> "QuantLinear":
        """Quantize `linear`'s weight with the `weight` spec; `activation` (or None) is
        fake-quantized along the last axis of the input at every call."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"from_linear needs an nn.Linear, got {type(linear).__name__}")
        packed = formats.encode(linear.weight.detach(), parse_spec(weight), axis=WEIGHT_AXIS)
        return cls(packed, linear.bias, activation)

    @classmethod
    def empty(cls, in_features: int, out_features: int, bias: bool = True, weight="mxfp4",
              activation=None, dtype: torch.dtype = torch.float32) -> "QuantLinear":
        """A QuantLinear with zero weights, to load a saved state_dict into."""
        w = torch.zeros(out_features, in_features, dtype=dtype)
        b = torch.zeros(out_features, dtype=dtype) if bias else None
        return cls(formats.encode(w, parse_spec(weight), axis=WEIGHT_AXIS), b, activation)

    # forward goes through these two methods: export swaps them for custom ops.
    def packed_weight(self) -> formats.Packed:
        return formats.Packed(
            format=self.weight_format.name,
            codes=self.weight_codes,
            scales=self.weight_scales,
            shape=self.weight_shape,
            axis=self.weight_axis,
            dtype=self.weight_dtype,
            block=self.weight_block,
            tensor_scale=self.weight_tensor_scale,
            options=dict(self.weight_format.options),
        )

    # Both go through the npuq custom ops (computed by onnx_npuq.formats), so an export
    # keeps the packed bytes and emits npuq::Dequantize / npuq::QuantDequant nodes.
    def dequantized_weight(self) -> torch.Tensor:
        return ops.dequantize(self.packed_weight())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act_format is not None:
            x = ops.quant_dequant(x, self.act_format, -1)
        return F.linear(x, self.dequantized_weight().to(x.dtype), self.bias)

    @property
    def weight_bytes(self) -> int:
        """Bytes the packed weight occupies: codes + scales (+ 4 for a tensor scale)."""
        extra = 4 if self.weight_tensor_scale is not None else 0
        return self.weight_codes.numel() + self.weight_scales.numel() + extra

    @property
    def bits_per_weight(self) -> float:
        """Stored bits per weight element, padding and tensor scale included."""
        return 8 * self.weight_bytes / (self.in_features * self.out_features)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, weight={spec_str(self.weight_format)}, "
            f"activation={spec_str(self.act_format)}, bits_per_weight={self.bits_per_weight:.4g}"
        )
