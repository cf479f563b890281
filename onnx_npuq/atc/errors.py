"""Typed errors of the ATC helpers: ValueErrors with a one-line message (the CLI prints it and
exits 2)."""
from __future__ import annotations

from ..errors import AtcError, SocVersionError  # noqa: F401 (defined with soc, below the atc layer)


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
