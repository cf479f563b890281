"""Huawei ATC (ONNX -> .om): the checked command line and a preflight of the model.

    from onnx_npuq.atc import plan_command, preflight
    report = preflight(model, "Ascend910B1")          # parsers / kernels / dtypes ATC would miss
    cmd = plan_command(model, "Ascend910B1", "out/model", layout="default")
    cmd.write(); print(cmd.shell())                   # atc --model=out/model.atc.onnx --framework=5 ...

The model must be in an ATC layout (onnx_npuq.passes.atc) or be given `layout` to be laid out
by the atc pass first. Nothing here runs ATC itself: `onnx-npuq convert` does, when `atc` is on
PATH. What is known about ATC's rules, the SoC names and the ONNX ops CANN parses comes from
public sources (shared/spec/ascend.md; onnx_op_keys.json: the parser keys of CANN's plugins, each with its source file).
"""
from .command import (ASCEND_IR_TYPES, AtcCommand, atc_model, build_command, custom_nodes, keep_dtype_lines,
                      parse_input_shapes, plan_command)
from .errors import (AtcError, AtcOptionError, DynamicShapeError, InputShapeError, LayoutError, PrecisionError,
                     SocVersionError)
from .ops import PARSER_OPS, Plugin, parser_keys, plugins
from .preflight import Finding, Report, preflight
from .soc import CUSTOM_OP_FAMILIES, SOC_VERSIONS, Soc, soc_info

__all__ = ["ASCEND_IR_TYPES", "CUSTOM_OP_FAMILIES", "PARSER_OPS", "SOC_VERSIONS", "AtcCommand", "AtcError",
           "AtcOptionError", "DynamicShapeError", "Finding", "InputShapeError", "LayoutError", "Plugin", "PrecisionError",
           "Report", "Soc", "SocVersionError", "atc_model", "build_command", "custom_nodes", "keep_dtype_lines",
           "parse_input_shapes", "parser_keys", "plan_command", "plugins", "preflight", "soc_info"]
