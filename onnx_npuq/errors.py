"""Typed errors for bad input models: ValueErrors whose one-line message names the file (or
node) and the problem. The CLI prints the message as `Error: ...` and exits 2.

    ModelError          an ONNX model that cannot be used: unreadable, malformed, wrong
                        versions, a broken graph, tensors whose data does not fit their dims
    ExternalDataError   an external-data reference that is unsafe (a location outside the
                        model's folder) or does not fit the file it names
    NodeError           a custom node (npuq / npu) with missing, mistyped or inconsistent
                        attributes or inputs

Other modules keep their own ValueErrors for their own inputs: passes.PassError,
nn.RecipeError, atc.AtcError, exporter.ExportError (a RuntimeError: the model is fine, the
export failed). AtcError and SocVersionError are defined here (atc.errors re-exports them):
the SoC table (soc.py) raises SocVersionError and sits below atc.
"""
from __future__ import annotations

MAX_MESSAGE = 1000  # characters: a hostile attribute value must not make a megabyte-long line


def one_line(message: str) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " ..."


class ModelError(ValueError):
    """An ONNX model onnx_npuq refuses; the message names the model and the problem."""

    def __init__(self, message: str):
        super().__init__(one_line(message))


class ExternalDataError(ModelError):
    """An external-data entry that escapes the model's folder or does not fit its file."""


class NodeError(ModelError):
    """A custom node (npuq / npu domain) whose attributes or inputs are not what its op takes."""


class AtcError(ValueError):
    """Bad input for ATC: the message is one line, naming the option and what is allowed."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class SocVersionError(AtcError):
    """--soc_version is not one of the known SoC names."""
