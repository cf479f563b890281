#!/bin/bash
# Builds the npuq custom-operator package, build_out/custom_opp_<os>_<arch>.run, on a machine
# with the CANN toolkit (ASCEND_HOME_PATH set by <CANN>/set_env.sh). See README.md.
#
# The way Ascend's own FrameworkLaunch samples are built (their install.sh: "msopgen gen -i
# $OP_NAME.json ... -lan cpp -out CustomOp; cp -rf $OP_NAME/* CustomOp; bash CustomOp/build.sh"),
# and MindIE's custom-op release script ("msopgen gen -i ir_demo.json -f onnx ...; rm
# framework/onnx_plugin/*.cc; cp ours"): msopgen generates the project from the Op JSON with the
# installed toolkit's own, version-matched templates (CMakeLists.txt, cmake/, scripts/, build.sh),
# then our sources replace the template ones:
#   op_json/*.json               -> msopgen gen -f onnx -lan cpp (one op per file; -m 1 appends)
#   op_host/, op_kernel/, framework/onnx_plugin/ -> replace the generated sources
#   kernels/include/npuq         -> op_host/npuq/ and op_kernel/npuq/ ("npuq/..." includes; npuq/npuq -> .):
#                                   op_host's tiling uses the kernels' plan (npuq/workspace.h)
#   CMakePresets.json            -> ASCEND_COMPUTE_UNIT "ascend910b", vendor_name "npuq",
#                                   ASCEND_CANN_PACKAGE_PATH = $ASCEND_HOME_PATH
#   op_kernel/npuq_kernel_options.cmake -> included first by op_kernel/CMakeLists.txt
# and the generated build.sh runs "cmake --preset=default" and builds the target "package".
#
# Environment: NPUQ_GEN_SOC (msopgen -c ai_core-<soc>, default Ascend910B1; it only selects the
# templates, the package is built for ASCEND_COMPUTE_UNIT), MSOPGEN (path of msopgen),
# NPUQ_KERNEL_INCLUDE (default ../kernels/include).
set -euo pipefail

die() {
    echo "custom_ops/build.sh: $*" >&2
    exit 1
}

[ -n "${ASCEND_HOME_PATH:-}" ] || die "ASCEND_HOME_PATH is not set: source the CANN toolkit's set_env.sh first \
(e.g. source /usr/local/Ascend/ascend-toolkit/set_env.sh)"
[ -d "$ASCEND_HOME_PATH" ] || die "ASCEND_HOME_PATH=$ASCEND_HOME_PATH is not a directory"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
KERNEL_INCLUDE=${NPUQ_KERNEL_INCLUDE:-$REPO/kernels/include}
GEN=$HERE/build_gen
GEN_SOC=${NPUQ_GEN_SOC:-Ascend910B1}
MSOPGEN=${MSOPGEN:-$(command -v msopgen || true)}
[ -n "$MSOPGEN" ] || MSOPGEN=$ASCEND_HOME_PATH/python/site-packages/bin/msopgen
[ -x "$MSOPGEN" ] || die "msopgen not found (PATH, \$MSOPGEN, $ASCEND_HOME_PATH/python/site-packages/bin)"
for h in params.h workspace.h plan.h quant_dequant.h dequantize.h; do
    [ -f "$KERNEL_INCLUDE/npuq/$h" ] || die "missing $KERNEL_INCLUDE/npuq/$h (the kernels' headers)"
done

OPS="npuq_quant_dequant npuq_dequantize npuq_quantize"

# 1. the project skeleton, from the toolkit's templates
rm -rf "$GEN"
mode=0
for op in $OPS; do
    "$MSOPGEN" gen -i "$HERE/op_json/$op.json" -f onnx -c "ai_core-$GEN_SOC" -lan cpp -out "$GEN" -m "$mode"
    mode=1
done
[ -f "$GEN/build.sh" ] && [ -f "$GEN/op_kernel/CMakeLists.txt" ] || die "msopgen did not generate a project in $GEN"

# 2. our sources instead of the template ones
rm -f "$GEN"/op_host/*.cpp "$GEN"/op_host/*.h "$GEN"/op_kernel/*.cpp "$GEN"/op_kernel/*.h \
      "$GEN"/framework/onnx_plugin/*.cc "$GEN"/framework/onnx_plugin/*.cpp "$GEN"/framework/onnx_plugin/*.h
mkdir -p "$GEN/framework/onnx_plugin"
cp "$HERE"/op_host/*.cpp "$HERE"/op_host/*.h "$GEN/op_host/"
cp "$HERE"/op_kernel/*.cpp "$HERE"/op_kernel/npuq_kernel_options.cmake "$GEN/op_kernel/"
cp "$HERE"/framework/onnx_plugin/*.cc "$HERE"/framework/onnx_plugin/*.h "$GEN/framework/onnx_plugin/"
cp -r "$KERNEL_INCLUDE/npuq" "$GEN/op_host/npuq"
cp -r "$KERNEL_INCLUDE/npuq" "$GEN/op_kernel/npuq"
# The headers include each other as "npuq/<name>.h", which a quoted include looks up next to the
# including header (npuq/npuq/<name>.h): npuq/npuq -> . makes that resolve at any depth, in the
# project and in the source package (installed with the link), without any -I.
ln -s . "$GEN/op_host/npuq/npuq"
ln -s . "$GEN/op_kernel/npuq/npuq"

# 3. our presets, with this machine's CANN
cp "$HERE/CMakePresets.json" "$GEN/CMakePresets.json"
python3 - "$GEN/CMakePresets.json" "$ASCEND_HOME_PATH" <<'PY'
import json, sys
path, cann = sys.argv[1], sys.argv[2]
with open(path, encoding="utf-8") as f:
    presets = json.load(f)
for preset in presets["configurePresets"]:
    preset["cacheVariables"]["ASCEND_CANN_PACKAGE_PATH"]["value"] = cann
with open(path, "w", encoding="utf-8") as f:
    json.dump(presets, f, indent=4)
    f.write("\n")
PY

# 4. our kernel compile options first in op_kernel/CMakeLists.txt
{ echo 'include(${CMAKE_CURRENT_SOURCE_DIR}/npuq_kernel_options.cmake)'; cat "$GEN/op_kernel/CMakeLists.txt"; } \
    > "$GEN/op_kernel/CMakeLists.txt.npuq"
mv "$GEN/op_kernel/CMakeLists.txt.npuq" "$GEN/op_kernel/CMakeLists.txt"

# 5. cmake --preset=default; cmake --build . --target package (the generated build.sh)
(cd "$GEN" && bash build.sh)

mkdir -p "$HERE/build_out"
ls "$GEN"/build_out/custom_opp_*.run > /dev/null 2>&1 || die "no build_out/custom_opp_*.run was built"
cp "$GEN"/build_out/custom_opp_*.run "$HERE/build_out/"
echo "custom_ops/build.sh: built $(ls "$HERE"/build_out/custom_opp_*.run)"
