# The emulated CUDA build (SPPO_CUDA=emulate; docs/cuda-emulator.md), included by CMakeLists.txt:
# - every kernels/cuda/*.cu rewritten by scripts/cuda-emu-rewrite.mjs into C++ (launches and
#   dynamic shared memory are its only non-C++ constructs) and compiled by the host compiler;
# - sppo_cuda_emu, a shared library: the runtime API and the block scheduler (native/emu/);
# - libcublasLt.so.13 from native/emu/cublaslt_emu.cpp, in ${CMAKE_BINARY_DIR}/emu-lib.
find_program(SPPO_NODE node REQUIRED)
set(_emu_dir ${PROJECT_SOURCE_DIR}/native/emu)
# As under nvcc's device pass: the runtime header comes first, implicitly, and device code sees
# __CUDA_ARCH__ (Hopper's 900), so the math headers shared with the CPU (kernels/*_math.h) take
# the branches the GPU runs, with their _rn intrinsics.
set(_emu_flags -Wno-unknown-pragmas -Wno-subobject-linkage -Wno-unused-parameter -Wno-unused-function -Wno-unused-variable
               -fno-strict-aliasing -include ${_emu_dir}/cuda_emu_runtime.h -D__CUDA_ARCH__=900)
# nvcc contracts a * b + c into FMAs by default; the kernels opt out with __fadd_rn / __fmul_rn.
# So do the same where the host runs FMA instructions. A kernel that needs an unfused product
# and lacks the intrinsic then differs from its CPU twin here, as it would on the GPU.
include(CheckCXXSourceRuns)
set(CMAKE_REQUIRED_FLAGS -mfma)
check_cxx_source_runs("#include <immintrin.h>
int main() { volatile float a = 1.f; __m128 x = _mm_set1_ps(a); x = _mm_fmadd_ps(x, x, x); return _mm_cvtss_f32(x) == 2.f ? 0 : 1; }"
                      SPPO_EMU_HOST_FMA)
unset(CMAKE_REQUIRED_FLAGS)
if(SPPO_EMU_HOST_FMA)
  list(APPEND _emu_flags -mfma -ffp-contract=fast)
else()
  list(APPEND _emu_flags -ffp-contract=off)
  message(STATUS "sppo-native: the CUDA emulator's kernels are not FMA-contracted (the host has no FMA)")
endif()

add_library(sppo_cuda_emu SHARED ${_emu_dir}/runtime.cpp ${_emu_dir}/block_scheduler.cpp)
target_include_directories(sppo_cuda_emu PUBLIC ${PROJECT_SOURCE_DIR}/native ${_emu_dir}/include)
target_compile_definitions(sppo_cuda_emu PUBLIC SPPO_CUDA_EMULATED=1)
target_compile_options(sppo_cuda_emu PRIVATE -O2 -Wall -Wextra)
find_package(Threads REQUIRED)
target_link_libraries(sppo_cuda_emu PUBLIC Threads::Threads)
# The racecheck build (scripts/cuda-emulated.mjs --racecheck, which passes -fsanitize=thread for
# everything): every CUDA thread a ThreadSanitizer fiber. The scheduler alone is not instrumented:
# its bookkeeping is shared by all fibers by design, and it declares CUDA's ordering to TSan
# instead (emu/race_annotations.h).
option(SPPO_EMU_RACECHECK "CUDA emulator: ThreadSanitizer as racecheck (needs -fsanitize=thread in CMAKE_CXX_FLAGS)" OFF)
if(SPPO_EMU_RACECHECK)
  if(NOT CMAKE_CXX_FLAGS MATCHES "-fsanitize=thread")
    message(FATAL_ERROR "SPPO_EMU_RACECHECK needs -fsanitize=thread in CMAKE_CXX_FLAGS (scripts/cuda-emulated.mjs --racecheck sets it)")
  endif()
  target_compile_definitions(sppo_cuda_emu PUBLIC SPPO_EMU_RACECHECK=1)
  set_source_files_properties(${_emu_dir}/block_scheduler.cpp PROPERTIES COMPILE_OPTIONS -fno-sanitize=thread)
endif()
# UBSan's alignment check (scripts/cuda-emulated.mjs --asan): test_cuda_emulator then shows that a
# misaligned vector load, a fault on the GPU, stops the process here too.
if(CMAKE_CXX_FLAGS MATCHES "-fsanitize=[^ ]*alignment")
  target_compile_definitions(sppo_cuda_emu PUBLIC SPPO_EMU_ALIGNMENT_CHECK=1)
endif()

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

# The GPU check's benchmark commands (scripts/gpu-check.sh) at tiny shapes on the emulator, with
# SPPO_BENCH_SMOKE=1 (toy calibrations, bench/bench_smoke.h): the CUDA timing, the graph rows and
# the JSON reports run to the end before a GPU session spends its minutes on them. Each passes
# when the benchmark exits 0.
function(sppo_emulated_bench_smoke)
  set(b ${CMAKE_BINARY_DIR}/bench)
  set(o ${CMAKE_BINARY_DIR}/bench-smoke)
  file(MAKE_DIRECTORY ${o})
  set(model_shape --layers 1 --hidden 64 --heads 2 --kv-heads 1 --ffn 128 --vocab 500 --batch 1 --seq 16 --new 4
                  --k 2 --prompts 2 --prompt-len 8 --decode-batches 1,4 --ctx 32 --repeat 1 --warmup 1)
  set(pairrm_shape --layers 1 --hidden 64 --heads 2 --ffn 128 --vocab 300 --buckets 16 --k 2 --prompts 1
                   --source 12 --candidate 10 --anchor-source 20 --anchor-candidate 12 --batch 2 --tokens 0
                   --repeat 1 --warmup 1)
  foreach(precision fp32 bf16)
    add_test(NAME bench_smoke_model_${precision}_cuda
             COMMAND ${b}/bench_model --device cuda --precision ${precision} ${model_shape} --json ${o}/model-${precision}.json)
    add_test(NAME bench_smoke_pairrm_${precision}_cuda
             COMMAND ${b}/bench_pairrm --device cuda --precision ${precision} ${pairrm_shape} --json ${o}/pairrm-${precision}.json)
  endforeach()
  # fp16: PairRM's only (the GPU check's default PairRM row, the PyTorch baseline's dtype).
  add_test(NAME bench_smoke_pairrm_fp16_cuda
           COMMAND ${b}/bench_pairrm --device cuda --precision fp16 ${pairrm_shape} --json ${o}/pairrm-fp16.json)
  add_test(NAME bench_smoke_logprob_cuda
           COMMAND ${b}/bench_logprob --device cuda --rows 4 --vocab 1000,4099 --dtype bf16,f32 --iters 1 --warmup 1
                   --json ${o}/logprob.json)
  get_property(smoke DIRECTORY PROPERTY TESTS)
  list(FILTER smoke INCLUDE REGEX "^bench_smoke_")
  set_tests_properties(${smoke} PROPERTIES ENVIRONMENT "SPPO_CUBLASLT_LIBRARY=${SPPO_EMU_CUBLASLT};SPPO_BENCH_SMOKE=1")
endfunction()
