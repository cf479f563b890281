"""QuantLinear: an nn.Linear (or GPT-2 Conv1D) whose weight is stored packed.

    q = QuantLinear.from_linear(linear, "mxfp4", activation="mxfp8e4m3")
    y = q(x)   # == F.linear(fake_quant(x, act, -1), decode(encode(w, fmt, 1)), b)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .spec import parse_spec, spec_str
from .weight import Layout, QuantWeight, fake_quant_input

WEIGHT_AXIS = 1  # (out, in) weight: blocks run along the input features, as the matmul reduces


class QuantLinear(QuantWeight):
    """y = x_q @ dequant(W)^T + b, with W (out, in) kept as the bytes a packed format stores,
    blocked along the input features (see QuantWeight for the buffers)."""

    def __init__(self, weight: torch.Tensor, weight_format, bias: torch.Tensor | None = None,
                 activation=None):
        super().__init__()
        if weight.dim() != 2:
            raise ValueError(f"QuantLinear needs a 2-d (out, in) weight, got shape {tuple(weight.shape)}")
        self.out_features, self.in_features = weight.shape
        self._store_weight(weight, parse_spec(weight_format), Layout.rows_of(weight.shape, 1))
        self.act_format = None if activation is None else parse_spec(activation)
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
        return cls(linear.weight, weight, linear.bias, activation)

    @classmethod
    def from_conv1d(cls, conv, weight, activation=None) -> "QuantLinear":
        """transformers' GPT-2 `Conv1D` (y = x @ W + b, W of shape (in, out)): a Linear with
        the weight transposed."""
        return cls(conv.weight.t(), weight, conv.bias, activation)

    @classmethod
    def empty(cls, in_features: int, out_features: int, bias: bool = True, weight="mxfp4",
              activation=None, dtype: torch.dtype = torch.float32) -> "QuantLinear":
        """A QuantLinear with zero weights, to load a saved state_dict into."""
        w = torch.zeros(out_features, in_features, dtype=dtype)
        b = torch.zeros(out_features, dtype=dtype) if bias else None
        return cls(w, weight, b, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = fake_quant_input(self.act_format, x, -1)
        return F.linear(x, self.dequantized_weight().to(x.dtype), self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, weight={spec_str(self.weight_format)}, "
            f"activation={spec_str(self.act_format)}, bits_per_weight={self.bits_per_weight:.4g}"
        )
