#!/usr/bin/env bash
# Run an offline model on the NPU (pyACL, else ais_bench), optionally against its ONNX model:
#
#   atc_scripts/run_om.sh MODEL.om [--inputs in.npz] [--compare MODEL.onnx] [--device N] [-o out.npz]
set -euo pipefail

usage() {
    echo "usage: $0 MODEL.om [onnx-npuq run options: --inputs in.npz --compare MODEL.onnx --device N -o out.npz]" >&2
    exit 2
}
[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage ;; esac
om="$1"; shift
[ -f "${om}" ] || { echo "no such offline model: ${om}" >&2; exit 2; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! python3 -c "import acl" >/dev/null 2>&1; then
    set +u
    # shellcheck source=env.sh
    source "${here}/env.sh" || echo "source env.sh failed: pyACL may be missing" >&2
    set -u
fi
exec "${ONNX_NPUQ:-onnx-npuq}" run "${om}" "$@"
