"""Quantized PyTorch modules: QuantLinear, recipes, and quantize_model.

    from onnx_npuq.nn import quantize_model
    quantize_model(model, recipe={"default": {"weights": "mxfp4"}, "exclude": ["lm_head"]})
"""
from .analysis import LayerError, layer_errors, snr_db
from .linear import QuantLinear, parse_spec
from .quantize import QuantizationError, quantize_, quantize_model
from .recipe import Recipe, RecipeError, Rule

__all__ = [
    "QuantLinear", "Recipe", "RecipeError", "Rule", "QuantizationError",
    "quantize_model", "quantize_", "parse_spec", "LayerError", "layer_errors", "snr_db",
]
