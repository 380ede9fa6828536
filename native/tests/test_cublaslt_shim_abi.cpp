// The cuBLASLt shim's declarations (runtime/cublaslt_shim.h) against NVIDIA's real <cublasLt.h>:
// every enum value, enum size, struct size, alignment and field offset, and the parameter count
// and parameter sizes of every function the shim loads. All checks are static_asserts, so a
// mismatch fails the build. CMakeLists.txt compiles this file only where it finds <cublasLt.h>
// (the build itself never needs it) and says so when it skips it.
#include <cublasLt.h>

#include <array>
#include <cstddef>
#include <cstdio>

#include "runtime/cublaslt_shim.h"

namespace lt = sppo::cublaslt;

#define SAME_VALUE(ours, theirs) static_assert(static_cast<int>(ours) == static_cast<int>(theirs), #ours " != " #theirs)

// cublasStatus_t
static_assert(sizeof(lt::Status) == sizeof(cublasStatus_t), "cublasStatus_t size");
SAME_VALUE(lt::Status::kSuccess, CUBLAS_STATUS_SUCCESS);
SAME_VALUE(lt::Status::kNotInitialized, CUBLAS_STATUS_NOT_INITIALIZED);
SAME_VALUE(lt::Status::kAllocFailed, CUBLAS_STATUS_ALLOC_FAILED);
SAME_VALUE(lt::Status::kInvalidValue, CUBLAS_STATUS_INVALID_VALUE);
SAME_VALUE(lt::Status::kArchMismatch, CUBLAS_STATUS_ARCH_MISMATCH);
SAME_VALUE(lt::Status::kMappingError, CUBLAS_STATUS_MAPPING_ERROR);
SAME_VALUE(lt::Status::kExecutionFailed, CUBLAS_STATUS_EXECUTION_FAILED);
SAME_VALUE(lt::Status::kInternalError, CUBLAS_STATUS_INTERNAL_ERROR);
SAME_VALUE(lt::Status::kNotSupported, CUBLAS_STATUS_NOT_SUPPORTED);
SAME_VALUE(lt::Status::kLicenseError, CUBLAS_STATUS_LICENSE_ERROR);
// cudaDataType_t
static_assert(sizeof(lt::DataType) == sizeof(cudaDataType_t), "cudaDataType_t size");
SAME_VALUE(lt::DataType::kR32F, CUDA_R_32F);
SAME_VALUE(lt::DataType::kR16BF, CUDA_R_16BF);
SAME_VALUE(lt::DataType::kR16F, CUDA_R_16F);
// cublasComputeType_t
static_assert(sizeof(lt::ComputeType) == sizeof(cublasComputeType_t), "cublasComputeType_t size");
SAME_VALUE(lt::ComputeType::kCompute32F, CUBLAS_COMPUTE_32F);
// cublasOperation_t
static_assert(sizeof(lt::Operation) == sizeof(cublasOperation_t), "cublasOperation_t size");
SAME_VALUE(lt::Operation::kN, CUBLAS_OP_N);
SAME_VALUE(lt::Operation::kT, CUBLAS_OP_T);
// cublasLtMatmulDescAttributes_t
static_assert(sizeof(lt::MatmulDescAttribute) == sizeof(cublasLtMatmulDescAttributes_t), "desc attribute size");
SAME_VALUE(lt::MatmulDescAttribute::kComputeType, CUBLASLT_MATMUL_DESC_COMPUTE_TYPE);
SAME_VALUE(lt::MatmulDescAttribute::kScaleType, CUBLASLT_MATMUL_DESC_SCALE_TYPE);
SAME_VALUE(lt::MatmulDescAttribute::kPointerMode, CUBLASLT_MATMUL_DESC_POINTER_MODE);
SAME_VALUE(lt::MatmulDescAttribute::kTransA, CUBLASLT_MATMUL_DESC_TRANSA);
SAME_VALUE(lt::MatmulDescAttribute::kTransB, CUBLASLT_MATMUL_DESC_TRANSB);
// cublasLtPointerMode_t
static_assert(sizeof(lt::PointerMode) == sizeof(cublasLtPointerMode_t), "cublasLtPointerMode_t size");
SAME_VALUE(lt::PointerMode::kHost, CUBLASLT_POINTER_MODE_HOST);
// cublasLtMatmulPreferenceAttributes_t
static_assert(sizeof(lt::PreferenceAttribute) == sizeof(cublasLtMatmulPreferenceAttributes_t), "pref size");
SAME_VALUE(lt::PreferenceAttribute::kSearchMode, CUBLASLT_MATMUL_PREF_SEARCH_MODE);
SAME_VALUE(lt::PreferenceAttribute::kMaxWorkspaceBytes, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES);
SAME_VALUE(lt::PreferenceAttribute::kMinAlignmentABytes, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES);
SAME_VALUE(lt::PreferenceAttribute::kMinAlignmentBBytes, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES);
SAME_VALUE(lt::PreferenceAttribute::kMinAlignmentCBytes, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES);
SAME_VALUE(lt::PreferenceAttribute::kMinAlignmentDBytes, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES);

// cublasLtMatmulAlgo_t and cublasLtMatmulHeuristicResult_t: the caller allocates them.
static_assert(sizeof(lt::MatmulAlgo) == sizeof(cublasLtMatmulAlgo_t), "cublasLtMatmulAlgo_t size");
static_assert(alignof(lt::MatmulAlgo) == alignof(cublasLtMatmulAlgo_t), "cublasLtMatmulAlgo_t alignment");
using Heur = cublasLtMatmulHeuristicResult_t;
static_assert(sizeof(lt::HeuristicResult) == sizeof(Heur), "heuristic result size");
static_assert(alignof(lt::HeuristicResult) == alignof(Heur), "heuristic result alignment");
static_assert(offsetof(lt::HeuristicResult, algo) == offsetof(Heur, algo), "algo offset");
static_assert(offsetof(lt::HeuristicResult, workspace_size) == offsetof(Heur, workspaceSize), "workspaceSize offset");
static_assert(offsetof(lt::HeuristicResult, state) == offsetof(Heur, state), "state offset");
static_assert(offsetof(lt::HeuristicResult, waves_count) == offsetof(Heur, wavesCount), "wavesCount offset");
static_assert(offsetof(lt::HeuristicResult, reserved) == offsetof(Heur, reserved), "reserved offset");
static_assert(sizeof(lt::HeuristicResult::reserved) == sizeof(Heur::reserved), "reserved size");

// Functions: same parameter count, and the same size for the result and every parameter.
template <typename F>
struct Sig;
template <typename R, typename... A>
struct Sig<R (*)(A...)> {
  static constexpr std::array<std::size_t, sizeof...(A) + 1> sizes{sizeof(R), sizeof(A)...};
};
template <typename Ours, typename Theirs>
constexpr bool same_shape() {
  constexpr auto a = Sig<Ours>::sizes;
  constexpr auto b = Sig<Theirs>::sizes;
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return false;
  return true;
}
#define SAME_SHAPE(field, fn) \
  static_assert(same_shape<decltype(lt::Api::field), decltype(&fn)>(), "lt::Api::" #field " vs " #fn)
SAME_SHAPE(create, cublasLtCreate);
SAME_SHAPE(destroy, cublasLtDestroy);
SAME_SHAPE(get_version, cublasLtGetVersion);
SAME_SHAPE(get_status_string, cublasLtGetStatusString);
SAME_SHAPE(matmul_desc_create, cublasLtMatmulDescCreate);
SAME_SHAPE(matmul_desc_destroy, cublasLtMatmulDescDestroy);
SAME_SHAPE(matmul_desc_set_attribute, cublasLtMatmulDescSetAttribute);
SAME_SHAPE(matrix_layout_create, cublasLtMatrixLayoutCreate);
SAME_SHAPE(matrix_layout_destroy, cublasLtMatrixLayoutDestroy);
SAME_SHAPE(preference_create, cublasLtMatmulPreferenceCreate);
SAME_SHAPE(preference_destroy, cublasLtMatmulPreferenceDestroy);
SAME_SHAPE(preference_set_attribute, cublasLtMatmulPreferenceSetAttribute);
SAME_SHAPE(algo_get_heuristic, cublasLtMatmulAlgoGetHeuristic);
SAME_SHAPE(matmul, cublasLtMatmul);

int main() {
  std::printf("cublaslt_shim.h matches <cublasLt.h> (CUBLAS_VERSION %d)\n", static_cast<int>(CUBLAS_VERSION));
  return 0;
}
