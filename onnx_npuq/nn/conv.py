"""QuantConv: nn.Conv1d/2d/3d and nn.ConvTranspose1d/2d/3d with the weight stored packed.

    q = QuantConv.from_conv(conv, "mxfp4", activation="mxfp8e4m3")
    y = q(x)   # == conv(fake_quant(x, act, axis=1), decoded weight)

Blocks run along what each output sums over: a conv's weight (out, in/g, *k) is blocked
along its flattened in/g x k axis (a 3-channel 7x7 stem has rows of 147, not 3), a
transposed conv's (in, out/g, *k) along in/g. Activations are fake-quantized along the
channel axis, which the conv reduces. Grouped and depthwise convs included.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd

from .spec import parse_spec, spec_str
from .weight import Layout, QuantWeight, fake_quant_input, fit

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
# what a conv keeps besides its tensors (nn.ConvNd's own attribute names)
_HYPER = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
          "padding_mode", "output_padding", "transposed", "_reversed_padding_repeated_twice")


def conv_layout(conv: _ConvNd) -> Layout:
    """Rows along what each output sums over (see the module docstring)."""
    shape = tuple(conv.weight.shape)
    if not conv.transposed:
        return Layout.rows_of(shape, len(shape) - 1)
    g = conv.groups
    view = (g, shape[0] // g, *shape[1:])  # (g, in/g, out/g, *k)
    return Layout(view, (0, *range(2, len(view)), 1), 1)


class QuantConv(QuantWeight):
    """A convolution (or transposed convolution) of any dimension with a packed weight."""

    def __init__(self, conv: _ConvNd, weight_format, activation=None):
        super().__init__()
        if not isinstance(conv, _ConvNd):
            raise TypeError(f"QuantConv needs an nn.ConvNd or nn.ConvTransposeNd, got {type(conv).__name__}")
        self.dims = conv.weight.dim() - 2
        for name in _HYPER:
            setattr(self, name, getattr(conv, name))
        self.source_type = type(conv).__name__
        fmt = parse_spec(weight_format)
        self._store_weight(conv.weight, fmt, fit(conv_layout(conv), fmt, conv.weight.shape))
        self.act_format = None if activation is None else parse_spec(activation)
        bias = conv.bias
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    @classmethod
    def from_conv(cls, conv: _ConvNd, weight, activation=None) -> "QuantConv":
        return cls(conv, weight, activation)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        batched = x.dim() == self.dims + 2
        x = fake_quant_input(self.act_format, x, 1 if batched else 0)
        w = self.dequantized_weight().to(x.dtype)
        if self.transposed:
            output_padding = _ConvTransposeNd._output_padding(
                self, x, output_size, self.stride, self.padding, self.kernel_size, self.dims, self.dilation)
            return _CONV_T[self.dims](x, w, self.bias, self.stride, self.padding, output_padding,
                                      self.groups, self.dilation)
        padding = self.padding
        if self.padding_mode != "zeros":
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
        return _CONV[self.dims](x, w, self.bias, self.stride, padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (
            f"{self.source_type}({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, groups={self.groups}), weight={spec_str(self.weight_format)} "
            f"({self.weight_layout.describe()}), activation={spec_str(self.act_format)}, "
            f"bits_per_weight={self.bits_per_weight:.4g}"
        )
