# npuq: kernel compile options for the msopgen project build.sh generates. build.sh copies this
# file into the generated op_kernel/ and includes it from the first line of the generated
# op_kernel/CMakeLists.txt, next to a copy of kernels/include/npuq (op_kernel/npuq/).
#
# Modelled on: the msOpGen user guide, "add_ops_compile_options(OpType COMPUTE_UNIT ... OPTIONS ...)"
# in op_kernel/CMakeLists.txt ("ALL" for every operator), and its newer form
# "npu_op_kernel_options(ascendc_kernels ALL OPTIONS ...)" (CATLASS docs: old usage / new usage);
# the source-package install destination is that of the generated op_kernel/CMakeLists.txt
# (packages/vendors/${vendor_name}/op_impl/ai_core/tbe/${vendor_name}_impl/dynamic).

set(NPUQ_KERNEL_INCLUDE ${CMAKE_CURRENT_LIST_DIR})

# Binary package: the kernels' headers by absolute path (the kernel sources are copied elsewhere
# before they are compiled).
if(COMMAND add_ops_compile_options)
    add_ops_compile_options(ALL OPTIONS -I${NPUQ_KERNEL_INCLUDE})
elseif(COMMAND npu_op_kernel_options)
    npu_op_kernel_options(ascendc_kernels ALL OPTIONS -I${NPUQ_KERNEL_INCLUDE})
else()
    message(FATAL_ERROR "npuq: neither add_ops_compile_options nor npu_op_kernel_options is defined; "
                        "this msopgen template is not one custom_ops/build.sh knows")
endif()

# Source package (compiled by ATC on the target): the headers next to the kernel sources, so that
# #include "npuq/quant_dequant.h" resolves relative to the installed .cpp.
if(ENABLE_SOURCE_PACKAGE)
    install(DIRECTORY ${NPUQ_KERNEL_INCLUDE}/npuq
            DESTINATION packages/vendors/${vendor_name}/op_impl/ai_core/tbe/${vendor_name}_impl/dynamic)
endif()
