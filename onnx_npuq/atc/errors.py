"""Typed errors of the ATC helpers: ValueErrors with a one-line message (the CLI prints it and
exits 2)."""
from __future__ import annotations


class AtcError(ValueError):
    """Bad input for ATC: the message is one line, naming the option and what is allowed."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class SocVersionError(AtcError):
    """--soc_version is not one of the known SoC names."""


class InputShapeError(AtcError):
    """--input_shape names an input the model lacks, or a rank / dimension that cannot be."""


class DynamicShapeError(AtcError):
    """The -1 dimensions and the gears (--dynamic_batch_size / _image_size / _dims) disagree."""


class PrecisionError(AtcError):
    """--precision_mode / --precision_mode_v2 / --keep_dtype that cannot go together."""


class LayoutError(AtcError):
    """The model is not in an ATC layout and no layout was given to convert it."""


class AtcOptionError(AtcError):
    """Any other ATC option: --log, --input_format, extra flags, output paths."""
