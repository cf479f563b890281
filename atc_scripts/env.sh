#!/usr/bin/env bash
# Environment for ATC, the custom-op package and the ACL runtime. Source it, do not run it:
#
#   source atc_scripts/env.sh [CUSTOM_OPP_INSTALL_PATH]
#
#   ASCEND_HOME_PATH   CANN toolkit (default /usr/local/Ascend/ascend-toolkit/latest); its
#                      set_env.sh sets PATH (atc), PYTHONPATH (pyACL), LD_LIBRARY_PATH,
#                      ASCEND_OPP_PATH, ...
#   NPUQ_CUSTOM_OPP    where build_custom_ops.sh installed the custom-op package (--install-path;
#                      default <repo>/custom_ops/build_out/installed); the package is vendors/npuq under it,
#                      and its bin/set_env.bash adds it to ASCEND_CUSTOM_OPP_PATH.
#
# No `set -euo pipefail` here: the file runs inside the caller's shell, where those options
# would stay switched on (and CANN's set_env.sh reads unset variables). Errors are reported
# with a message and `return 1`.

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "usage: source ${0} [CUSTOM_OPP_INSTALL_PATH]   (it sets variables in your shell)" >&2
    exit 2
fi

_npuq_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ASCEND_HOME_PATH="${ASCEND_HOME_PATH:-/usr/local/Ascend/ascend-toolkit/latest}"
NPUQ_CUSTOM_OPP="${1:-${NPUQ_CUSTOM_OPP:-${_npuq_repo}/custom_ops/build_out/installed}}"

_npuq_set_env=""
for _f in "${ASCEND_HOME_PATH}/set_env.sh" "${ASCEND_HOME_PATH}/../set_env.sh" "${ASCEND_HOME_PATH}/bin/setenv.bash"; do
    if [ -f "${_f}" ]; then
        _npuq_set_env="${_f}"
        break
    fi
done
if [ -z "${_npuq_set_env}" ]; then
    echo "env.sh: no CANN set_env.sh under ASCEND_HOME_PATH=${ASCEND_HOME_PATH} (install the CANN toolkit or set ASCEND_HOME_PATH)" >&2
    unset _npuq_repo _npuq_set_env _f
    return 1
fi
# shellcheck source=/dev/null
source "${_npuq_set_env}"
export ASCEND_HOME_PATH

# set_env.sh sets ASCEND_OPP_PATH; fall back to the toolkit's opp directory
export ASCEND_OPP_PATH="${ASCEND_OPP_PATH:-${ASCEND_HOME_PATH}/opp}"
# the vendor set_env.bash appends to this one and reads it under `set -u` in some versions
export ASCEND_CUSTOM_OPP_PATH="${ASCEND_CUSTOM_OPP_PATH:-}"

_npuq_vendor="${NPUQ_CUSTOM_OPP}/vendors/npuq"
if [ -f "${_npuq_vendor}/bin/set_env.bash" ]; then
    # shellcheck source=/dev/null
    source "${_npuq_vendor}/bin/set_env.bash"
elif [ -d "${_npuq_vendor}" ]; then
    export ASCEND_CUSTOM_OPP_PATH="${_npuq_vendor}${ASCEND_CUSTOM_OPP_PATH:+:${ASCEND_CUSTOM_OPP_PATH}}"
else
    echo "env.sh: no custom-op package at ${_npuq_vendor} (run atc_scripts/build_custom_ops.sh): ATC will not parse npuq ops" >&2
fi
# the package's op_api libraries, when it ships them
if [ -d "${_npuq_vendor}/op_api/lib" ]; then
    export LD_LIBRARY_PATH="${_npuq_vendor}/op_api/lib${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"
fi
export NPUQ_CUSTOM_OPP
unset _npuq_repo _npuq_set_env _npuq_vendor _f
