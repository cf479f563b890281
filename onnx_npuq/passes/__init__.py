"""Graph rewrites over onnx-graphsurgeon graphs; see pipeline.py for how they run.

    model, reports = run_passes("model.onnx", ["compress", "fuse-npu", "atc"], layout="default")
"""
from . import atc, compress, fold, fuse, qdq  # noqa: F401  (each module registers its passes)
from .pipeline import PASSES, Context, Pass, PassError, Report, random_inputs, register, run_pass, run_passes

__all__ = ["PASSES", "Context", "Pass", "PassError", "Report", "random_inputs", "register", "run_pass",
           "run_passes"]
