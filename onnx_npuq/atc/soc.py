"""onnx_npuq.atc.soc is onnx_npuq.soc (the SoC table moved below the passes, which read it)."""
import sys

from .. import soc

sys.modules[__name__] = soc
