"""quant_cy / quant_cy_npu compatible entry points over `onnx_npuq.formats`.

    from onnx_npuq import QType, quant_dequant_float
    y = quant_dequant_float(x, QType('mxfp4').dim(-1))

Accepts the reference's call shapes and keyword arguments (force_py, force_fp32, ...);
every path computes with the bit-exact formats here, fp32 inside.

Eager and torch.compile calls run Format.fake_quant (inductor fuses its arithmetic). While
torch exports (torch.compiler.is_exporting(): torch.export.export, torch.onnx.export,
onnx_npuq.export) they go through the custom op torch.ops.npuq.quant_dequant instead (the
axis moved last and back around it), so an export holds one npuq::QuantDequant node per
call, for every format and option, rather than the kernels' arithmetic.
"""
from __future__ import annotations

import copy

import torch

from . import formats
from ._version import __version__

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
        """A new QType with its own options; the Format (immutable configuration, whose
        code tables are shared module-level tensors) is shared, not deep-copied: a deep copy
        clones those tensors, which torch.export cannot trace (q.dim() in a forward)."""
        q = copy.copy(self)
        q.options = copy.deepcopy(self.options)
        return q

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


def quant_dequant_float(
    x: torch.Tensor, Q: QType | str, force_py: bool = False, force_fp32: bool = False, **kwargs
) -> torch.Tensor:
    """Fake-quantize x along Q.q_dim; same shape, dtype and device as x. No gradient flows
    through it (see quant_func).

    force_py / force_fp32 and unknown keyword arguments are accepted for compatibility:
    there is one implementation, and it always computes in float32. While exporting, the
    call goes through torch.ops.npuq.quant_dequant (npuq::QuantDequant); otherwise it runs
    Format.fake_quant (itself under no_grad).
    """
    Q = _as_qtype(Q)
    if Q.format is None:
        return x
    if torch.compiler.is_exporting():
        return _traced_quant_dequant(x, Q)
    return Q.format.fake_quant(x, Q.q_dim)


def _traced_quant_dequant(x: torch.Tensor, Q: QType) -> torch.Tensor:
    """quant_dequant_float as the custom op (last axis only): the axis moved last and back
    around it, which export writes as Transposes. Checks what the eager path checks (dtype,
    rank, axis), all static while tracing."""
    from .formats.base import FLOAT_DTYPES, normalize_axis
    from .ops.defs import quant_dequant  # registers torch.ops.npuq (imports onnxscript: lazily)

    name = Q.format.name
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: input dtype {x.dtype} is not supported; use float32, float16 or bfloat16")
    if x.dim() == 0:
        raise ValueError(f"{name}: cannot quantize a 0-d tensor; give it at least one axis")
    axis = normalize_axis(Q.q_dim, x.dim(), name)
    # detach: as eagerly, no gradient (the op has no autograd). contiguous: the op's fake
    # gives its input's strides and its kernel a contiguous result; inductor checks they agree
    y = quant_dequant(x.detach().movedim(axis, -1).contiguous(), Q.format)
    return y.movedim(-1, axis).contiguous()


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
    """Fake-quantize with a straight-through gradient (d out / d x = identity). Exports as
    quant_dequant_float does: torch.export inlines the autograd.Function's forward."""
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
