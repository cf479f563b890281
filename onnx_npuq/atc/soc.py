"""The SoC names ATC's --soc_version takes (shared/spec/ascend.md, hicann/ge
docs/zh/user_guides/atc_tools/CLI_options/--soc_version.md: the `Name` that `npu-smi info`
shows, prefixed "Ascend").

`family` is the compute unit custom operators are compiled for (CMake ASCEND_COMPUTE_UNIT,
OpDef AddConfig). bfloat16 exists only on Atlas A2 / A3, Atlas 200I/500 A2 and Ascend 950
(--precision_mode / --precision_mode_v2 docs, "bfloat16数据类型仅支持以下产品"); shape ranges
(--input_shape "1~10" or a bare -1) are not supported by Atlas 200I/500 A2 (--input_shape docs).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from .errors import SocVersionError


@dataclass(frozen=True)
class Soc:
    name: str
    family: str  # ASCEND_COMPUTE_UNIT of custom-op builds
    product: str
    bf16: bool
    shape_range: bool = True  # --input_shape ranges / bare -1 (dynamic shape)


def _socs():
    out = {}
    for i in range(1, 5):
        out[f"Ascend910B{i}"] = Soc(f"Ascend910B{i}", "ascend910b", "Atlas A2 training/inference series", True)
    for n in ("Ascend310P1", "Ascend310P3"):
        out[n] = Soc(n, "ascend310p", "Atlas inference series (Atlas 300I Pro)", False)
    for i in range(1, 5):
        out[f"Ascend310B{i}"] = Soc(f"Ascend310B{i}", "ascend310b", "Atlas 200I/500 A2 inference product", True,
                                    shape_range=False)
    out["Ascend910A"] = Soc("Ascend910A", "ascend910", "Atlas training series", False)
    return out


SOC_VERSIONS: dict[str, Soc] = _socs()

# The compute units onnx_npuq's custom-op package (custom_ops/) builds kernels for
# (CMakePresets.json ASCEND_COMPUTE_UNIT, the OpDefs' AddConfig). A custom node on any other SoC
# has no kernel: ATC stops with EZ3003.
CUSTOM_OP_FAMILIES = ("ascend910b",)

# Why a family is left out, where that is known from the AscendC sources (shared/spec/ascendc.md,
# asc-devkit impl/dav_m200): the preflight says it with the EZ3003.
NO_KERNELS_WHY = {
    "ascend310p": ("custom_ops builds no kernels for ascend310p: AscendC there has no float->bfloat16 Cast "
                   "(QuantDequant does not compile), and DataCopyPad, level-0 Copy, float->float Cast, "
                   "ShiftLeft and hard SyncAll are no-ops; fold the weights to float (export -w none) or use "
                   "int8 through CANN's own quantized ops (AMCT)"),
}


def soc_info(name: str) -> Soc:
    """The Soc named `name` (exactly as ATC spells it), or SocVersionError listing them all."""
    if isinstance(name, str) and name in SOC_VERSIONS:
        return SOC_VERSIONS[name]
    hint = ""
    if isinstance(name, str):
        close = difflib.get_close_matches(name, SOC_VERSIONS, n=1, cutoff=0.6)
        folded = {k.lower(): k for k in SOC_VERSIONS}.get(name.strip().lower())
        if folded or close:
            hint = f" (did you mean {folded or close[0]}?)"
    raise SocVersionError(f"soc_version {name!r} is not one ATC knows here{hint}; known: "
                          f"{', '.join(SOC_VERSIONS)}")
