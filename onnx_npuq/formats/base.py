"""The Format interface and the one driver that blocks, pads, chunks and restores tensors.

A format implements three kernels over a float32 matrix of blocks `(M, block)`:
`fake_blocks`, `encode_blocks` -> (codes, scale bytes) and `decode_blocks`. Each format
computes its element values and its multiplier once, in one private routine that both
fake_blocks and encode_blocks use; decode_blocks forms the same product from the stored
bytes, so `decode(encode(x)) == fake_quant(x)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from .packing import pack_nibbles, unpack_nibbles

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Elements per CPU chunk: small enough that a kernel's temporaries stay in cache.
CHUNK_ELEMENTS = 1 << 18


@dataclass
class Packed:
    """A tensor stored in a format: element codes and scale bytes, both uint8.

    `codes` is (rows, padded_len * elem_bits / 8) and `scales` (rows, blocks * scale_bytes),
    where rows are all dimensions but `axis`, in order, and padded_len the axis length
    rounded up to the block.
    """

    format: str
    codes: torch.Tensor
    scales: torch.Tensor
    shape: tuple[int, ...]
    axis: int
    dtype: torch.dtype
    block: int
    tensor_scale: torch.Tensor | None = None  # nvfp4's per-tensor float32 scale
    options: dict = field(default_factory=dict)

    @property
    def length(self) -> int:
        """Original (unpadded) length of the quantized axis."""
        return self.shape[self.axis]

    @property
    def nbytes(self) -> int:
        extra = 4 if self.tensor_scale is not None else 0
        return self.codes.numel() + self.scales.numel() + extra

    def decode(self) -> torch.Tensor:
        from . import get_format  # registry lives in the package

        return get_format(self.format, **self.options).decode(self)


def check_tensor(x: torch.Tensor, fmt: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fmt}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{fmt}: input dtype {x.dtype} is not supported; use float32, float16 or bfloat16"
        )
    if x.numel() == 0:
        raise ValueError(f"{fmt}: cannot quantize an empty tensor of shape {tuple(x.shape)}")
    if x.dim() == 0:
        raise ValueError(f"{fmt}: cannot quantize a 0-d tensor; give it at least one axis")


def normalize_axis(axis: int, ndim: int, fmt: str) -> int:
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise TypeError(f"{fmt}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{fmt}: axis {axis} is out of range for a {ndim}-d tensor")
    return axis % ndim


def chunk_slices(m: int, width: int, device: torch.device, elements: int = CHUNK_ELEMENTS):
    """Row ranges of about `elements` elements on CPU; one range elsewhere."""
    step = max(1, elements // max(1, width))
    if device.type != "cpu" or m <= step:
        return [slice(0, m)]
    return [slice(s, s + step) for s in range(0, m, step)]


def map_chunks(fn: Callable, rows: torch.Tensor, *more, ts=None):
    """fn(rows, *more, ts) over row-chunks, results written into preallocated outputs."""
    slices = chunk_slices(rows.shape[0], rows[0].numel(), rows.device)
    if len(slices) == 1:
        return fn(rows, *more, ts)
    outs = None
    for sl in slices:
        part = fn(rows[sl], *(t[sl] for t in more), ts)
        single = not isinstance(part, tuple)
        part = (part,) if single else part
        if outs is None:
            outs = tuple(p.new_empty((rows.shape[0], *p.shape[1:])) for p in part)
        for o, p in zip(outs, part):
            o[sl] = p
    return outs[0] if single else outs


class Format:
    """A quantization format. Subclasses set the class attributes and the three kernels."""

    name: str
    block: int | None  # None: the whole axis is one block (per-channel)
    elem_bits: int
    scale_bytes: int  # per block
    elem_type: str
    scale_type: str
    chunk_elements = CHUNK_ELEMENTS  # formats with much per-group work amortize it on more

    def __init__(self, **options):
        if options:
            raise ValueError(f"{self.name}: unknown option(s) {sorted(options)}")

    @property
    def options(self) -> dict:
        return {}

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({self.name!r}{opts})"

    # -- kernels over (M, block) float32; ts is the per-tensor scale or None --
    def encode_blocks(self, xb: torch.Tensor, ts=None):
        """-> (element codes uint8 (M, block), scale bytes uint8 (M, scale_bytes))."""
        raise NotImplementedError

    def decode_blocks(self, codes: torch.Tensor, scales: torch.Tensor, ts=None) -> torch.Tensor:
        raise NotImplementedError

    def fake_blocks(self, xb: torch.Tensor, ts, out: torch.Tensor) -> None:
        """Write the fake-quantized blocks into `out` (same shape as xb).

        Kernels work in place in `out`: fresh cache-sized temporaries for every op make
        the allocator return and re-fault pages, which costs more than the arithmetic.
        """
        raise NotImplementedError

    def tensor_scale(self, x: torch.Tensor) -> torch.Tensor | None:
        """A per-tensor float32 scale for two-level formats; None for the others."""
        return None

    # -- derived facts --
    def bits_per_element(self, length: int | None = None) -> float:
        block = self.block or length
        if block is None:
            raise ValueError(f"{self.name}: bits per element depend on the axis length")
        return self.elem_bits + 8 * self.scale_bytes / block

    def block_for(self, length: int) -> int:
        return self.block or length

    # -- the driver --
    def _blocks(self, x: torch.Tensor, axis: int):
        check_tensor(x, self.name)
        axis = normalize_axis(axis, x.dim(), self.name)
        moved = x.movedim(axis, -1)
        n = moved.shape[-1]
        block = self.block_for(n)
        pad = (-n) % block
        xf = moved.to(torch.float32)
        if pad:
            xf = F.pad(xf, (0, pad))
        return xf.reshape(-1, block), axis, moved.shape, pad

    @staticmethod
    def _restore(yb, moved_shape, pad, axis, dtype):
        n = moved_shape[-1]
        y = yb.reshape(*moved_shape[:-1], n + pad)
        if pad:
            y = y[..., :n]
        return y.movedim(-1, axis).to(dtype).contiguous()

    @torch.no_grad()
    def fake_quant(self, x: torch.Tensor, axis: int = -1) -> torch.Tensor:
        xb, axis, moved_shape, pad = self._blocks(x, axis)
        ts = self.tensor_scale(x)
        yb = torch.empty_like(xb)
        for sl in chunk_slices(xb.shape[0], xb.shape[1], xb.device, self.chunk_elements):
            self.fake_blocks(xb[sl], ts, yb[sl])
        return self._restore(yb, moved_shape, pad, axis, x.dtype)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, axis: int = -1) -> Packed:
        xb, axis, moved_shape, pad = self._blocks(x, axis)
        ts = self.tensor_scale(x)
        codes, scales = map_chunks(self.encode_blocks, xb, ts=ts)
        rows = moved_shape[:-1].numel()
        if self.elem_bits == 4:
            codes = pack_nibbles(codes)
        return Packed(
            format=self.name,
            codes=codes.reshape(rows, -1),
            scales=scales.reshape(rows, -1),
            shape=tuple(x.shape),
            axis=axis,
            dtype=x.dtype,
            block=xb.shape[1],
            tensor_scale=ts,
            options=self.options,
        )

    @torch.no_grad()
    def decode(self, p: Packed) -> torch.Tensor:
        codes = unpack_nibbles(p.codes) if self.elem_bits == 4 else p.codes
        codes = codes.reshape(-1, p.block)
        scales = p.scales.reshape(codes.shape[0], -1)
        yb = map_chunks(self.decode_blocks, codes, scales, ts=p.tensor_scale)
        moved_shape = torch.Size(p.shape[: p.axis] + p.shape[p.axis + 1 :] + (p.length,))
        pad = (-p.length) % p.block
        return self._restore(yb, moved_shape, pad, p.axis, p.dtype)
