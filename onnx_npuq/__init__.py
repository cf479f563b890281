"""onnx-npuq: low-bit quantized PyTorch models to ONNX and Ascend .om."""
import os

# Large CPU tensors on transparent huge pages fault ~4x faster. torch reads this at its
# first CPU allocation, so it acts only when that comes after this import; a user's
# setting wins. The formats' outputs do not depend on it (formats.base.new_empty advises
# them onto huge pages itself); it helps the rest (a model's tensors, export buffers).
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from ._version import __version__  # noqa: E402
from .qtype import QType, get_status, print_status, quant_dequant_float, quant_func  # noqa: E402

__all__ = [
    "QType", "quant_dequant_float", "quant_func", "print_status", "get_status", "export", "verify",
    "quantize_model", "quantize_",
]


def export(model, args, path, **kwargs):
    """Export to ONNX with the npuq op set (see onnx_npuq.exporter.export)."""
    from .exporter import export as _export  # the exporter stack is slow to import

    return _export(model, args, path, **kwargs)


def verify(model, args, onnx_model, layers: bool = False, data_dir=None):
    """Compare torch and onnxruntime outputs, and with layers=True every Linear layer's
    (see onnx_npuq.runtime.verify)."""
    from .runtime import verify as _verify

    return _verify(model, args, onnx_model, layers=layers, data_dir=data_dir)


def __getattr__(name):
    # quantize_model / quantize_ import the op set (onnx, onnxscript): only when asked for
    if name in ("quantize_model", "quantize_"):
        from . import nn

        return getattr(nn, name)
    raise AttributeError(f"module 'onnx_npuq' has no attribute {name!r}")
