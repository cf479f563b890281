"""The Format interface and the one driver that blocks, pads, chunks and restores tensors.

A format implements three kernels over a float32 matrix of blocks `(M, block)`:
`fake_blocks`, `encode_blocks` -> (codes, scale bytes) and `decode_blocks`. Each format
computes its element values and its multiplier once, in one private routine that both
fake_blocks and encode_blocks use; decode_blocks forms the same product from the stored
bytes, so `decode(encode(x)) == fake_quant(x)`.
"""
from __future__ import annotations

import os
import re
import types
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from .buffers import new_empty
from .packing import pack_nibbles, unpack_nibbles

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Elements per CPU chunk: small enough that a kernel's temporaries stay in cache.
CHUNK_ELEMENTS = 1 << 18

# Fake-quant and encode backend. "eager": the kernels as written, chunked on CPU.
# "compile": the same kernels through torch.compile (fused into a few loops), run per
# chunk of COMPILE_CHUNK_ELEMENTS. "auto": compile for CPU tensors of COMPILE_MIN_ELEMENTS
# or more, eager otherwise, and eager for good
# if compiling fails (e.g. no C++ compiler).
BACKENDS = ("auto", "eager", "compile")
COMPILE_MIN_ELEMENTS = 1 << 22
COMPILE_CHUNK_ELEMENTS = 1 << 21
_backend = os.environ.get("ONNX_NPUQ_BACKEND", "auto")
if _backend not in BACKENDS:
    warnings.warn(
        f"ONNX_NPUQ_BACKEND={_backend!r} is not one of {BACKENDS}; using 'auto'", stacklevel=2
    )
    _backend = "auto"
_compiled: dict = {}
_compile_broken = False


def set_backend(name: str) -> str:
    """Select the fake-quant backend; returns the previous one."""
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    previous, _backend = _backend, name
    return previous


def get_backend() -> str:
    return _backend


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
    """Row ranges of about `elements` elements on CPU; one range elsewhere. Steps of 64
    rows or more are multiples of 64, so chunks of float32 and uint8 rows stay aligned."""
    step = max(1, elements // max(1, width))
    if device.type != "cpu" or m <= step:
        return [slice(0, m)]
    if step >= 64:
        step -= step % 64
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
            outs = tuple(new_empty((rows.shape[0], *p.shape[1:]), p.dtype, p.device) for p in part)
        for o, p in zip(outs, part, strict=True):
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
    # fake_quant(fake_quant(x)) == fake_quant(x) for float32 and bfloat16 x (not float16,
    # whose results can round up past 65504 to Inf); the others recompute a block scale from
    # rounded values (tests/test_properties.py)
    idempotent = False

    def __init__(self, **options):
        if options:
            name = getattr(self, "name", type(self).__name__)
            raise ValueError(f"{name}: unknown option(s) {sorted(options)}")

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

    def tensor_amax(self, x: torch.Tensor) -> torch.Tensor | None:
        """A per-tensor float32 statistic the kernels get as `ts` but that is not stored
        (HiF8 scale="tensor" keeps its scale per row); None for the others."""
        return None

    def _kernel_ts(self, x: torch.Tensor):
        """(what the kernels get as `ts`, the stored Packed.tensor_scale)."""
        ts = self.tensor_scale(x)
        return (ts if ts is not None else self.tensor_amax(x)), ts

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
        if not pad and moved.dtype == torch.float32 and moved.is_contiguous():
            return moved.reshape(-1, block), axis, moved.shape, pad
        # Kernels view blocks as sub-blocks and bits: they need contiguous float32 rows.
        # One copy_ converts, gathers and pads, into a buffer the pool can reuse.
        xf = new_empty((*moved.shape[:-1], n + pad), torch.float32, x.device)
        xf[..., :n].copy_(moved)
        xf[..., n:].zero_()
        return xf.view(-1, block), axis, moved.shape, pad

    @staticmethod
    def _restore(yb, moved_shape, pad, axis, dtype):
        n = moved_shape[-1]
        y = yb.view(*moved_shape[:-1], n + pad)[..., :n]
        if not pad and dtype == torch.float32 and axis == len(moved_shape) - 1:
            return y
        shape = list(moved_shape)
        shape.insert(axis, shape.pop())
        out = new_empty(shape, dtype, yb.device)
        return out.copy_(y.movedim(-1, axis))  # (a strided source copies 3x faster than a strided target)

    def block_stats(self, xb: torch.Tensor, ts):
        """Per-block values (scales from block maxima) that the kernels then get as `ts`
        in place of the per-tensor one; None (the default): the kernels get `ts` itself.

        Compiled, they are a graph of their own, computed vectorized across blocks; fused
        into the kernel, inductor recomputes them in scalar code per block of 16 or 32,
        which took about half of nvf4's and MX's kernel time.
        """
        return None

    # -- per chunk, both backends: the kernels write into preallocated outputs. The graph
    # break stays in these top-level functions: each configuration has its own copy --
    def _fake_chunk(self, xb, ts, out):
        stats = self.block_stats(xb, ts)
        if stats is not None:
            torch._dynamo.graph_break()
            ts = stats
        self.fake_blocks(xb, ts, out)

    def _encode_chunk(self, xb, ts, codes_out, scales_out):
        stats = self.block_stats(xb, ts)
        if stats is not None:
            torch._dynamo.graph_break()
            ts = stats
        codes, scales = self.encode_blocks(xb, ts)
        if self.elem_bits == 4:
            if codes.shape[1] % 2:  # odd block (int4 per channel/group): pad one nibble
                codes = F.pad(codes, (0, 1))
            codes = pack_nibbles(codes)
        codes_out.copy_(codes)
        scales_out.copy_(scales)

    def _compiled(self, kind: str):
        """torch.compile of _fake_chunk or _encode_chunk, one per configuration (its own code
        object, so dynamo's per-code recompile limit is not shared between formats)."""
        key = (kind, type(self).__name__, self.name, tuple(sorted(self.options.items())))
        if key not in _compiled:
            fn = getattr(type(self), f"_{kind}_chunk")
            tag = re.sub(r"\W+", "_", "_".join(map(str, key[2:])))
            code = fn.__code__.replace(co_name=f"{kind}_{tag}")
            unique = types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__)
            # Not dynamic=True: that also lifts float attributes (qmax, element max) into
            # graph inputs while inductor bakes them into the kernel as constants, so two
            # formats with the same graph shared one kernel (int8sym's +-127 clamp ran for
            # int4sym). Only the number of blocks varies.
            _compiled[key] = torch.compile(types.MethodType(unique, self))
        return _compiled[key]

    def _use_compile(self, xb: torch.Tensor) -> bool:
        if _backend == "eager" or _compile_broken:
            return False
        if _backend == "compile":
            return True
        return xb.device.type == "cpu" and xb.numel() >= COMPILE_MIN_ELEMENTS

    def _run(self, kind: str, xb: torch.Tensor, ts, *outs) -> None:
        """_{kind}_chunk over row chunks of xb into the row chunks of outs. Compiled code
        runs on chunks too: the few loops inductor makes of a kernel then re-read a chunk
        from cache, not the whole tensor from memory."""
        global _compile_broken
        if self._use_compile(xb):
            try:
                fn = self._compiled(kind)
                for sl in chunk_slices(xb.shape[0], xb.shape[1], xb.device, COMPILE_CHUNK_ELEMENTS):
                    args = [xb[sl], *(o[sl] for o in outs)]
                    for a in args:
                        torch._dynamo.maybe_mark_dynamic(a, 0)
                    fn(args[0], ts, *args[1:])
                return
            except Exception as err:  # no compiler, unsupported platform, ...
                if _backend == "compile":
                    raise
                _compile_broken = True
                warnings.warn(
                    f"onnx_npuq: torch.compile unavailable ({err!s:.200}); using eager",
                    stacklevel=3,
                )
        fn = getattr(self, f"_{kind}_chunk")
        for sl in chunk_slices(xb.shape[0], xb.shape[1], xb.device):
            fn(xb[sl], ts, *(o[sl] for o in outs))

    @torch.no_grad()
    def fake_quant(self, x: torch.Tensor, axis: int = -1) -> torch.Tensor:
        xb, axis, moved_shape, pad = self._blocks(x, axis)
        ts, _ = self._kernel_ts(x)
        yb = new_empty(xb.shape, xb.dtype, xb.device)
        self._run("fake", xb, ts, yb)
        return self._restore(yb, moved_shape, pad, axis, x.dtype)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, axis: int = -1) -> Packed:
        xb, axis, moved_shape, pad = self._blocks(x, axis)
        ts, stored = self._kernel_ts(x)
        m, block = xb.shape
        width = (block + block % 2) // 2 if self.elem_bits == 4 else block
        codes = new_empty((m, width), torch.uint8, xb.device)
        scales = new_empty((m, self.scale_bytes), torch.uint8, xb.device)
        self._run("encode", xb, ts, codes, scales)
        rows = moved_shape[:-1].numel()
        return Packed(
            format=self.name,
            codes=codes.reshape(rows, -1),
            scales=scales.reshape(rows, -1),
            shape=tuple(x.shape),
            axis=axis,
            dtype=x.dtype,
            block=block,
            tensor_scale=stored,
            options=self.options,
        )

    @torch.no_grad()
    def decode(self, p: Packed) -> torch.Tensor:
        if self.elem_bits == 4:
            codes = unpack_nibbles(p.codes).reshape(-1, p.block + p.block % 2)[:, : p.block]
        else:
            codes = p.codes.reshape(-1, p.block)
        scales = p.scales.reshape(codes.shape[0], -1)
        yb = map_chunks(self.decode_blocks, codes, scales, ts=p.tensor_scale)
        moved_shape = torch.Size(p.shape[: p.axis] + p.shape[p.axis + 1 :] + (p.length,))
        pad = (-p.length) % p.block
        return self._restore(yb, moved_shape, pad, p.axis, p.dtype)
