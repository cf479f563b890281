"""`onnx-npuq`: a thin shell over the Python API, one module per group of commands."""
from . import atc, demo, graph, models  # noqa: F401  (each module registers its commands on `main`)
from .app import main

__all__ = ["main"]
