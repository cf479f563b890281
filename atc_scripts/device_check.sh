#!/usr/bin/env bash
# The first run on an Ascend 910B machine: everything onnx_npuq could not run without one.
#
#   atc_scripts/device_check.sh [--soc Ascend910B1] [--out DIR] [--device N] [--skip-build]
#
# Steps, in order (each line of output PASS / FAIL / INFO; logs under DIR/logs/):
#   cann     CANN is there: ASCEND_HOME_PATH's set_env.sh (atc_scripts/env.sh), atc, pyACL
#   build    atc_scripts/build_custom_ops.sh: custom_ops/build.sh, then the .run installer into
#            DIR/opp (or $NPUQ_CUSTOM_OPP); skipped with --skip-build (the package must then be
#            installed there already)
#   models   device_check.py models: digits-cnn per format, onnx-npuq export / convert / run --compare
#   vectors  device_check.py vectors: one QuantDequant node per format on the spec vectors and
#            random data through ACL, bit for bit against onnx_npuq.formats
#   probes   atc_scripts/probes built with cmake (CANN's kernel-launch layout) and run by
#            device_check.py probes: (a) SyncAll with / without the mixed kernel type, (b) NaN / Inf /
#            subnormal compares, (c) Div, (d) float -> half casts
# and a summary: every PASS / FAIL line, then "device_check: N passed, M failed".
# Exit: 0 all passed, 1 something failed, 2 bad use or no CANN.
#
# Environment: ASCEND_HOME_PATH (default /usr/local/Ascend/ascend-toolkit/latest), PYTHON (the
# interpreter with onnx_npuq and pyACL, default python3), ONNX_NPUQ (default onnx-npuq).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: atc_scripts/device_check.sh [--soc SOC] [--out DIR] [--device N] [--skip-build]
  --soc SOC      ATC --soc_version of this machine (Ascend910B1..B4; default Ascend910B1)
  --out DIR      where models, logs and the probe build go (default ./device_check_out)
  --device N     NPU device id (default 0)
  --skip-build   use the custom-op package already installed in DIR/opp or $NPUQ_CUSTOM_OPP
EOF
}

die() {
    echo "device_check: $*" >&2
    exit 2
}

soc="Ascend910B1"
out="device_check_out"
device=0
skip_build=0
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --soc) [ $# -ge 2 ] || die "--soc needs a value"; soc="$2"; shift 2 ;;
        --soc=*) soc="${1#*=}"; shift ;;
        --out) [ $# -ge 2 ] || die "--out needs a value"; out="$2"; shift 2 ;;
        --out=*) out="${1#*=}"; shift ;;
        --device) [ $# -ge 2 ] || die "--device needs a value"; device="$2"; shift 2 ;;
        --device=*) device="${1#*=}"; shift ;;
        --skip-build) skip_build=1; shift ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
case "${soc}" in
    Ascend910B[1-4]) ;;
    *) die "--soc ${soc}: the npuq kernels are built for Ascend910B1..B4 only (custom_ops/README.md)" ;;
esac
case "${device}" in
    ''|*[!0-9]*) die "--device ${device}: not a device id" ;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
case "${out}" in
    /*) ;;
    *) out="${PWD}/${out}" ;;
esac
opp="${NPUQ_CUSTOM_OPP:-${out}/opp}"

# ---- cann: refuse at once, in one line, before writing anything
ASCEND_HOME_PATH="${ASCEND_HOME_PATH:-/usr/local/Ascend/ascend-toolkit/latest}"
export ASCEND_HOME_PATH
env_log="$(mktemp)"
no_cann() {
    rm -f "${env_log}"
    die "$*"
}
set +u
# shellcheck source=env.sh
source "${here}/env.sh" "${opp}" 2>"${env_log}" \
    || { set -u; no_cann "CANN not found: no set_env.sh under ASCEND_HOME_PATH=${ASCEND_HOME_PATH} (install the CANN toolkit or set ASCEND_HOME_PATH)"; }
set -u
command -v atc >/dev/null 2>&1 || no_cann "CANN not found: no atc on PATH after sourcing ${ASCEND_HOME_PATH}'s set_env.sh"
"${python}" -c "import acl" >/dev/null 2>&1 \
    || no_cann "pyACL not found: ${python} cannot import acl (CANN's set_env.sh sets PYTHONPATH)"
mkdir -p "${out}/logs"
mv "${env_log}" "${out}/logs/env.log"
echo "PASS cann: ${ASCEND_HOME_PATH}, $(command -v atc), pyACL" | tee "${out}/logs/cann.log"

failed_steps=()
# run_step NAME COMMAND...: output to DIR/logs/NAME.log and to the terminal; a step that fails
# without a FAIL line of its own gets one here
run_step() {
    local name="$1" rc=0
    shift
    echo "== ${name}"
    "$@" >"${out}/logs/${name}.log" 2>&1 || rc=$?
    cat "${out}/logs/${name}.log"
    if [ "${rc}" -ne 0 ]; then
        failed_steps+=("${name}")
        grep -q '^FAIL ' "${out}/logs/${name}.log" || echo "FAIL ${name}: exit ${rc} (see ${out}/logs/${name}.log)" \
            | tee -a "${out}/logs/${name}.log"
    fi
    return 0
}

build() {
    bash "${here}/build_custom_ops.sh" --install-path "${opp}"
}
# (errexit does not apply inside a function run as `f || rc=$?`: each command is chained)
probes() {
    cmake -S "${here}/probes" -B "${out}/probes" -DSOC_VERSION="${soc}" -DASCEND_CANN_PACKAGE_PATH="${ASCEND_HOME_PATH}" \
        && cmake --build "${out}/probes" -j \
        && "${python}" "${here}/device_check.py" probes --bin "${out}/probes/npuq_probes" --out "${out}/probes/run" \
            --device "${device}"
}

if [ "${skip_build}" -eq 1 ]; then
    echo "== build (skipped: --skip-build; package from ${opp})"
else
    run_step build build
fi
# the package's set_env.bash exists only once it is installed
set +u
# shellcheck source=env.sh
source "${here}/env.sh" "${opp}" 2>>"${out}/logs/env.log" || true
set -u
run_step models "${python}" "${here}/device_check.py" models --soc "${soc}" --out "${out}/models" --device "${device}"
run_step vectors "${python}" "${here}/device_check.py" vectors --soc "${soc}" --out "${out}/vectors" --device "${device}"
run_step probes probes

echo "== summary (${soc}, device ${device}, ${out})"
passed=0
failed=0
for step in cann build models vectors probes; do
    log="${out}/logs/${step}.log"
    [ -f "${log}" ] || continue
    while IFS= read -r line; do
        case "${line}" in
            "PASS "*) passed=$((passed + 1)); echo "${line}" ;;
            "FAIL "*) failed=$((failed + 1)); echo "${line}" ;;
        esac
    done <"${log}"
done
echo "device_check: ${passed} passed, ${failed} failed"
[ "${failed}" -eq 0 ] && [ "${#failed_steps[@]}" -eq 0 ]
