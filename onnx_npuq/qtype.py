"""quant_cy / quant_cy_npu compatible entry points over `onnx_npuq.formats`.

    from onnx_npuq import QType, quant_dequant_float
    y = quant_dequant_float(x, QType('mxfp4').dim(-1))

Accepts the reference's call shapes and keyword arguments (force_py, force_fp32, ...);
every path computes with the bit-exact formats here, fp32 inside.
"""
from __future__ import annotations

import copy

import torch

from . import __version__, formats

PASSTHROUGH = ("fp32", "fp16", "bf16")


class QType:
    """A format name plus the axis to quantize along (`q_dim`), as in quant_cy."""

    def __init__(self, desc: str, **options):
        if not isinstance(desc, str):
            raise TypeError(f"QType needs a format name string, got {type(desc).__name__}")
        self.desc = desc
        self.q_dim = -1
        self.options = dict(options)
        if desc.strip().lower() in PASSTHROUGH:
            self.format = None
        else:
            self.format = formats.get_format(desc, **options)

    @property
    def blk_size(self) -> int:
        """Elements sharing a scale (1 for scalar formats, the axis for per-channel ones)."""
        return getattr(self.format, "block", None) or 1

    def dim(self, d: int) -> "QType":
        """A copy quantizing along axis d."""
        q = self.copy()
        q.q_dim = d
        return q

    def dim_(self, d: int) -> "QType":
        self.q_dim = d
        return self

    def copy(self) -> "QType":
        return copy.deepcopy(self)

    def __repr__(self) -> str:
        return f"QType: {self.desc}   Dim: {self.q_dim}"

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, QType)
            and (self.desc, self.q_dim, self.options) == (other.desc, other.q_dim, other.options)
        )

    def __hash__(self) -> int:
        return hash((self.desc, self.q_dim, tuple(sorted(self.options.items()))))


def _as_qtype(Q) -> QType:
    return Q if isinstance(Q, QType) else QType(Q)


@torch.no_grad()
def quant_dequant_float(
    x: torch.Tensor, Q: QType | str, force_py: bool = False, force_fp32: bool = False, **kwargs
) -> torch.Tensor:
    """Fake-quantize x along Q.q_dim; same shape, dtype and device as x.

    force_py / force_fp32 and unknown keyword arguments are accepted for compatibility:
    there is one implementation, and it always computes in float32.
    """
    Q = _as_qtype(Q)
    if Q.format is None:
        return x
    return Q.format.fake_quant(x, Q.q_dim)


class _QuantSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, Q):
        return quant_dequant_float(x, Q)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def quant_func(
    x: torch.Tensor, Q: QType | str, force_py: bool = False, force_fp32: bool = False, **kwargs
) -> torch.Tensor:
    """Fake-quantize with a straight-through gradient (d out / d x = identity)."""
    return _QuantSTE.apply(x, _as_qtype(Q))


def get_status() -> dict:
    return {
        "version": __version__,
        "available": _npu_available(),
        "supported_formats": formats.names(),
    }


def _npu_available() -> bool:
    try:
        import torch_npu  # noqa: F401
    except Exception:
        return False
    return bool(getattr(torch, "npu", None) and torch.npu.is_available())


def print_status() -> None:
    s = get_status()
    print(f"onnx_npuq v{s['version']}")
    print(f"NPU Operators Available: {'yes' if s['available'] else 'no'}")
    print(f"Supported Formats: {', '.join(s['supported_formats'])}")
    if not s["available"]:
        print("NPU not available: using the PyTorch implementation (bit-exact, any device).")
