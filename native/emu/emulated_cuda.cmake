# The emulated CUDA build (SPPO_CUDA=emulate; docs/cuda-emulator.md), included by CMakeLists.txt:
# - every kernels/cuda/*.cu rewritten by scripts/cuda-emu-rewrite.mjs into C++ (launches and
#   dynamic shared memory are its only non-C++ constructs) and compiled by the host compiler;
# - sppo_cuda_emu, a shared library: the runtime API and the block scheduler (native/emu/);
# - libcublasLt.so.13 from native/emu/cublaslt_emu.cpp, in ${CMAKE_BINARY_DIR}/emu-lib.
find_program(SPPO_NODE node REQUIRED)
set(_emu_dir ${PROJECT_SOURCE_DIR}/native/emu)
set(_emu_flags -Wno-unknown-pragmas -Wno-unused-parameter -Wno-unused-function -Wno-unused-variable
               -fno-strict-aliasing -ffp-contract=off)

add_library(sppo_cuda_emu SHARED ${_emu_dir}/runtime.cpp ${_emu_dir}/block_scheduler.cpp)
target_include_directories(sppo_cuda_emu PUBLIC ${PROJECT_SOURCE_DIR}/native ${_emu_dir}/include)
target_compile_definitions(sppo_cuda_emu PUBLIC SPPO_CUDA_EMULATED=1)
target_compile_options(sppo_cuda_emu PRIVATE -O2 -Wall -Wextra)
find_package(Threads REQUIRED)
target_link_libraries(sppo_cuda_emu PUBLIC Threads::Threads)

add_library(sppo_cublaslt_emu SHARED ${_emu_dir}/cublaslt_emu.cpp)
target_link_libraries(sppo_cublaslt_emu PRIVATE sppo_cuda_emu)
target_compile_options(sppo_cublaslt_emu PRIVATE -O2 -Wall -Wextra)
set_target_properties(sppo_cublaslt_emu PROPERTIES OUTPUT_NAME cublasLt PREFIX lib SUFFIX .so.13
                      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/emu-lib)
# The shim finds the stand-in through SPPO_CUBLASLT_LIBRARY, set for every test (below) and by
# scripts/cuda-emulated.mjs for the TypeScript suites: not through a run path, which dlopen
# ignores when a sanitizer's interceptor is the caller.
set(SPPO_EMU_CUBLASLT ${CMAKE_BINARY_DIR}/emu-lib/libcublasLt.so.13)

set(SPPO_EMU_CU_SOURCES "")
foreach(cu ${SPPO_CU})
  file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR}/native ${cu})
  set(out ${CMAKE_BINARY_DIR}/emu-src/${rel}.cpp)
  add_custom_command(OUTPUT ${out}
                     COMMAND ${SPPO_NODE} ${PROJECT_SOURCE_DIR}/scripts/cuda-emu-rewrite.mjs ${cu} ${out}
                     DEPENDS ${cu} ${PROJECT_SOURCE_DIR}/scripts/cuda-emu-rewrite.mjs
                     COMMENT "Rewriting ${rel} for the CUDA emulator" VERBATIM)
  set_source_files_properties(${out} PROPERTIES COMPILE_OPTIONS "${_emu_flags}")
  list(APPEND SPPO_EMU_CU_SOURCES ${out})
endforeach()

function(sppo_emulated_cuda_link target)
  target_link_libraries(${target} PUBLIC sppo_cuda_emu)
  add_dependencies(${target} sppo_cublaslt_emu)
endfunction()
