"""Format specs as users write them: "mxfp4", {"format": "mxfp4", "rounding": "even"}."""
from __future__ import annotations

from .. import formats


def parse_spec(spec) -> formats.Format:
    """A format spec, "name" or {"format": name, **options} (or a Format), -> a Format."""
    if isinstance(spec, formats.Format):
        return spec
    if isinstance(spec, str):
        return formats.get_format(spec)
    if isinstance(spec, dict):
        options = dict(spec)
        if "format" not in options:
            raise ValueError(f"format spec {spec!r} has no 'format' key")
        return formats.get_format(options.pop("format"), **options)
    raise TypeError(
        f"format spec must be a name or a dict with a 'format' key, got {type(spec).__name__}"
    )


def spec_of(fmt: formats.Format | None):
    """The canonical spec of a Format: its name, or {"format": name, **options}."""
    if fmt is None:
        return None
    return {"format": fmt.name, **fmt.options} if fmt.options else fmt.name


def spec_str(fmt: formats.Format | None) -> str:
    if fmt is None:
        return "none"
    opts = ",".join(f"{k}={v}" for k, v in fmt.options.items())
    return f"{fmt.name}({opts})" if opts else fmt.name
