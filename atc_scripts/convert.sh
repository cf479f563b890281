#!/usr/bin/env bash
# ONNX -> .om with ATC, around onnx-npuq:
#
#   atc_scripts/convert.sh MODEL.onnx SOC OUTPUT_STEM [onnx-npuq convert options...]
#   e.g. atc_scripts/convert.sh llama.onnx Ascend910B1 out/llama --input-shape "input_ids:1,-1" --dynamic-dims "16;32;64"
#
# Sources env.sh (CANN + the custom-op package) when atc is not yet on PATH. With
# NPUQ_PASSES="compress,fuse-npu" (any passes of `onnx-npuq passes`) the model first goes through
# onnx-npuq rewrite into OUTPUT_STEM.rewritten.onnx. onnx-npuq convert then lays it out for ATC
# (the atc pass), runs the preflight (stops on errors), writes OUTPUT_STEM.atc.onnx
# (+ OUTPUT_STEM.keep_dtype.cfg) and runs atc -> OUTPUT_STEM.om; without atc it fails.
set -euo pipefail

usage() {
    echo "usage: $0 MODEL.onnx SOC OUTPUT_STEM [onnx-npuq convert options...]" >&2
    echo "  SOC: Ascend910B1..B4 (the npuq kernels are built for Ascend910B* only)" >&2
    exit 2
}
[ $# -ge 3 ] || usage
model="$1"; soc="$2"; stem="$3"; shift 3
[ -f "${model}" ] || { echo "no such model: ${model}" >&2; exit 2; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! command -v atc >/dev/null 2>&1; then
    set +u
    # shellcheck source=env.sh
    source "${here}/env.sh" || { echo "source env.sh failed: atc will not run" >&2; }
    set -u
fi
npuq="${ONNX_NPUQ:-onnx-npuq}"
if [ -n "${NPUQ_PASSES:-}" ]; then
    "${npuq}" rewrite "${model}" -o "${stem}.rewritten.onnx" -p "${NPUQ_PASSES}"
    model="${stem}.rewritten.onnx"
fi
"${npuq}" convert "${model}" --soc "${soc}" -o "${stem}" --require-atc "$@"
