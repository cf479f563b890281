"""Quantized PyTorch modules, recipes, and quantize_model.

    from onnx_npuq.nn import quantize_model
    quantize_model(model, recipe={"default": {"weights": "mxfp4"}, "exclude": ["lm_head"]})
"""
from .analysis import LayerError, layer_errors, snr_db
from .conv import QuantConv
from .embedding import QuantEmbedding
from .linear import QuantLinear
from .quantize import QuantizationError, QuantReport, is_weight_layer, quantize_, quantize_model
from .recipe import Recipe, RecipeError, Rule
from .spec import parse_spec
from .torchao import TorchaoLinear, adopt_torchao, from_torchao
from .weight import QuantWeight

__all__ = [
    "QuantWeight", "QuantLinear", "QuantConv", "QuantEmbedding", "Recipe", "RecipeError", "Rule",
    "QuantizationError", "QuantReport", "quantize_model", "quantize_", "parse_spec", "is_weight_layer",
    "LayerError", "layer_errors", "snr_db", "TorchaoLinear", "adopt_torchao", "from_torchao",
]
