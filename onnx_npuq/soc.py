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
    # weight formats CANN's own kernels compute (see _A2_WEIGHTS), and whether per group too
    native_weights: frozenset[str] = frozenset()
    grouped_weights: bool = False


# Weight formats a SoC computes with CANN's own kernels: weight-only matmul
# (WeightQuantBatchMatmulV2; onnx_npuq's fuse-npu pass emits it). torch_npu's
# npu_weight_quant_batchmatmul docs (hiascend.com Pytorch 7.0.0 apiref ptaoplist_000179): Atlas A2
# takes int8 and int4 (int32-packed) weights per tensor / channel / group; the Atlas inference
# series (310P) int8 only, per tensor / channel. Every other format (HiF8, HiF4, MX, NV, FP8) has
# CANN kernels only on Ascend 950 (shared/spec/ascend.md): on these SoCs it is decoded by
# onnx_npuq's custom Dequantize kernel (CUSTOM_OP_FAMILIES) or folded (passes/fold.py).
_A2_WEIGHTS = frozenset({"int8sym", "int4sym"})
_INFERENCE_WEIGHTS = frozenset({"int8sym"})


def _socs():
    out = {}
    for i in range(1, 5):
        out[f"Ascend910B{i}"] = Soc(f"Ascend910B{i}", "ascend910b", "Atlas A2 training/inference series", True,
                                    native_weights=_A2_WEIGHTS, grouped_weights=True)
    for n in ("Ascend310P1", "Ascend310P3"):
        out[n] = Soc(n, "ascend310p", "Atlas inference series (Atlas 300I Pro)", False,
                     native_weights=_INFERENCE_WEIGHTS)
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
                   "ShiftLeft and hard SyncAll are no-ops; `convert --weights fold` leaves no weight decode, and "
                   "int8 layers can run on CANN's own quantized ops (fuse-npu)"),
}
# Formats some SoC here computes natively: what fold-weights keeps when it is given no SoC.
NATIVE_ANYWHERE = frozenset().union(*(s.native_weights for s in SOC_VERSIONS.values()))


def native_weight(soc: Soc | None, fmt: str, grouped: bool = False) -> bool:
    """Whether `soc`'s own kernels compute weights of format `fmt` (grouped: a scale per group
    of the row, not per row); soc None: whether any SoC here does."""
    if soc is None:
        return fmt in NATIVE_ANYWHERE
    return fmt in soc.native_weights and (soc.grouped_weights or not grouped)


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
