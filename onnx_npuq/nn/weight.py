"""QuantWeight: what every quantized layer shares, a weight kept as its format's bytes.

A layer's weight is stored as a 2-D matrix packed along its rows (axis 1): the layer's
reduction axis, so that a block's elements meet in one dot product. `Layout` says how the
weight becomes that matrix (reshape, permute, flatten) and back:

    Linear (out, in)                      rows out,              row = in
    ConvNd (out, in/g, *k)                rows out,              row = in/g x k (flattened)
    ConvTransposeNd (in, out/g, *k)       rows g x out/g x k,    row = in/g
    GPT-2 Conv1D (in, out)                as Linear, transposed
    Embedding (num, dim)                  rows num,              row = dim

A row that a block format would pad by more than MAX_PADDING (a depthwise 3x3 conv has
rows of 9) is not worth its padding: such a weight is stored as one row in storage order
instead, blocks of consecutive weights, padded once at the end.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .. import formats
from ..ops import defs as ops

MAX_PADDING = 0.10  # of a row, before a weight is stored as one row instead


@dataclass(frozen=True)
class Layout:
    """weight.reshape(view).permute(perm) -> flatten the last `row_dims` dims into the row."""

    view: tuple[int, ...]
    perm: tuple[int, ...]
    row_dims: int

    @classmethod
    def rows_of(cls, shape, row_dims: int) -> "Layout":
        """The weight as is: its last `row_dims` dimensions make a row."""
        shape = tuple(shape)
        return cls(shape, tuple(range(len(shape))), row_dims)

    @classmethod
    def flat(cls, shape) -> "Layout":
        return cls((1, math.prod(shape)), (0, 1), 1)

    @property
    def permuted(self) -> tuple[int, ...]:
        return tuple(self.view[p] for p in self.perm)

    @property
    def matrix(self) -> tuple[int, int]:
        p = self.permuted
        return math.prod(p[: len(p) - self.row_dims]), math.prod(p[len(p) - self.row_dims:])

    @property
    def is_flat(self) -> bool:
        return self.view[0] == 1 and len(self.view) == 2

    def to_matrix(self, w: torch.Tensor) -> torch.Tensor:
        return w.reshape(self.view).permute(self.perm).reshape(self.matrix)

    def from_matrix(self, m: torch.Tensor, shape) -> torch.Tensor:
        inverse = [0] * len(self.perm)
        for i, p in enumerate(self.perm):
            inverse[p] = i
        if self.perm != tuple(range(len(self.perm))):
            m = m.reshape(self.permuted).permute(inverse)
        return m.reshape(shape)

    def describe(self) -> str:
        rows, length = self.matrix
        return f"one row of {length}" if self.is_flat else f"{rows} rows of {length}"


def padding_of(fmt: formats.Format, length: int) -> float:
    """The fraction of a row of `length` that `fmt`'s blocks pad."""
    if not fmt.block:
        return 0.0
    return (-length % fmt.block) / length


def fit(layout: Layout, fmt: formats.Format, shape) -> Layout:
    """`layout`, or the one-row layout when `fmt` would pad its rows by more than MAX_PADDING."""
    if padding_of(fmt, layout.matrix[1]) > MAX_PADDING and math.prod(shape) > layout.matrix[1]:
        return Layout.flat(shape)
    return layout


class QuantWeight(nn.Module):
    """A module whose `weight` is stored packed: buffers weight_codes and weight_scales
    (uint8) and, for two-level formats (nvfp4), weight_tensor_scale (float32 scalar).
    The format, the weight's shape and dtype and its Layout are attributes fixed at
    construction, so a state_dict holds only tensors and loads into a module built with
    the same configuration."""

    def _store_weight(self, w: torch.Tensor, fmt: formats.Format, layout: Layout) -> None:
        w = w.detach()
        packed = fmt.encode(layout.to_matrix(w), axis=1)
        self.weight_format = fmt
        self.weight_shape = tuple(w.shape)
        self.weight_dtype = w.dtype
        self.weight_layout = layout
        self.weight_block = packed.block
        # codes may be views into the encoder's buffers: own copies, aliasing nothing
        self.register_buffer("weight_codes", packed.codes.contiguous().clone())
        self.register_buffer("weight_scales", packed.scales.contiguous().clone())
        ts = packed.tensor_scale
        self.register_buffer("weight_tensor_scale", None if ts is None else ts.detach().float().clone())

    def packed_weight(self) -> formats.Packed:
        """The stored weight matrix (Layout.matrix, packed along axis 1)."""
        return formats.Packed(
            format=self.weight_format.name, codes=self.weight_codes, scales=self.weight_scales,
            shape=self.weight_layout.matrix, axis=1, dtype=self.weight_dtype, block=self.weight_block,
            tensor_scale=self.weight_tensor_scale, options=dict(self.weight_format.options),
        )

    def dequantized_weight(self) -> torch.Tensor:
        """The weight in its own shape and dtype, through the npuq custom op (an export keeps
        the packed bytes and emits npuq::Dequantize)."""
        return self.weight_layout.from_matrix(ops.dequantize(self.packed_weight()), self.weight_shape)

    @property
    def weight_bytes(self) -> int:
        """Bytes the packed weight occupies: codes + scales (+ 4 for a tensor scale)."""
        extra = 4 if self.weight_tensor_scale is not None else 0
        return self.weight_codes.numel() + self.weight_scales.numel() + extra

    @property
    def bits_per_weight(self) -> float:
        """Stored bits per weight element, padding and tensor scale included."""
        return 8 * self.weight_bytes / math.prod(self.weight_shape)


def fake_quant_input(fmt, x: torch.Tensor, axis: int) -> torch.Tensor:
    """x fake-quantized in `fmt` along `axis` (or x when fmt is None), through the custom op."""
    return x if fmt is None else ops.quant_dequant(x, fmt, axis)
