"""Run exported models and compare them: onnxruntime here, ACL on an Ascend machine."""
from .ort import Comparison, OrtSession, compare, verify

__all__ = ["OrtSession", "Comparison", "compare", "verify"]
