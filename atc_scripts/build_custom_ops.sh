#!/usr/bin/env bash
# Build onnx_npuq's AscendC custom-op package (custom_ops/) and install it.
#
#   atc_scripts/build_custom_ops.sh [--install-path DIR]
#
# Needs the CANN toolkit (ASCEND_HOME_PATH, see env.sh). custom_ops/build.sh (msopgen layout:
# cmake --preset=default; cmake --build . --target package) writes
# custom_ops/build_out/custom_opp_<os>_<arch>.run; the installer puts the package under
# DIR/vendors/npuq (default: $NPUQ_CUSTOM_OPP or <repo>/custom_ops/build_out/installed). Then
# `source atc_scripts/env.sh DIR` before atc / onnx-npuq convert.
set -euo pipefail

usage() {
    echo "usage: $0 [--install-path DIR]" >&2
    exit 2
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/.." && pwd)"
install_path="${NPUQ_CUSTOM_OPP:-${repo}/custom_ops/build_out/installed}"
while [ $# -gt 0 ]; do
    case "$1" in
        --install-path) [ $# -ge 2 ] || usage; install_path="$2"; shift 2 ;;
        --install-path=*) install_path="${1#*=}"; shift ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done

if [ ! -x "${repo}/custom_ops/build.sh" ] && [ ! -f "${repo}/custom_ops/build.sh" ]; then
    echo "no custom_ops/build.sh in ${repo}" >&2
    exit 1
fi
if [ -z "${ASCEND_HOME_PATH:-}" ]; then
    set +u
    # shellcheck source=env.sh
    source "${here}/env.sh" "${install_path}" || { echo "source env.sh failed" >&2; exit 1; }
    set -u
fi

(cd "${repo}/custom_ops" && bash ./build.sh)

shopt -s nullglob
runs=("${repo}"/custom_ops/build_out/custom_opp_*.run)
shopt -u nullglob
if [ "${#runs[@]}" -ne 1 ]; then
    echo "expected one custom_ops/build_out/custom_opp_*.run, found ${#runs[@]}" >&2
    exit 1
fi
mkdir -p "${install_path}"
install_path="$(cd "${install_path}" && pwd)"
bash "${runs[0]}" --install-path="${install_path}"
echo "installed into ${install_path}/vendors/npuq; now: source atc_scripts/env.sh ${install_path}"
