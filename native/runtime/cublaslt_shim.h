// cuBLASLt loaded at run time (CONTRACT: implemented in cublaslt_shim.cpp). The build needs no
// cuBLAS headers or libraries: the project declares the few functions, enums and structs it uses,
// with the values of the cuBLAS library reference (cuBLASLt API, CUDA 12 and 13), and loads
// libcublasLt.so.13, else libcublasLt.so.12, with dlopen on first use.
// tests/test_cublaslt_shim_abi.cpp static_asserts every value and struct layout declared here
// against the real <cublasLt.h> wherever CMake finds that header.
// Only the matmul path uses it (kernels/cuda/matmul.cu); nothing here needs CUDA headers, so the
// shim compiles in every build and `sppo-native info` can say whether the library is there.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sppo::cublaslt {

// ---- enums (C enums: int-sized) -----------------------------------------------------------------
// cublasStatus_t
enum class Status : int {
  kSuccess = 0,
  kNotInitialized = 1,
  kAllocFailed = 3,
  kInvalidValue = 7,
  kArchMismatch = 8,
  kMappingError = 11,
  kExecutionFailed = 13,
  kInternalError = 14,
  kNotSupported = 15,
  kLicenseError = 16,
};
// cudaDataType_t (library_types.h): only the element types the engine multiplies.
enum class DataType : int { kR32F = 0, kR16F = 2, kR16BF = 14 };
// cublasComputeType_t: fp32 accumulation without TF32 (the parity mode needs true fp32 products).
enum class ComputeType : int { kCompute32F = 68 };
// cublasOperation_t
enum class Operation : int { kN = 0, kT = 1 };
// cublasLtMatmulDescAttributes_t
enum class MatmulDescAttribute : int { kComputeType = 0, kScaleType = 1, kPointerMode = 2, kTransA = 3, kTransB = 4 };
// cublasLtPointerMode_t: alpha and beta are host scalars.
enum class PointerMode : int { kHost = 0 };
// cublasLtMatmulPreferenceAttributes_t
enum class PreferenceAttribute : int {
  kSearchMode = 0,
  kMaxWorkspaceBytes = 1,
  kMinAlignmentABytes = 5,
  kMinAlignmentBBytes = 6,
  kMinAlignmentCBytes = 7,
  kMinAlignmentDBytes = 8,
};

// ---- opaque objects (created and destroyed by the library) ------------------------------------------
struct Context;                // cublasLtContext
using Handle = Context*;       // cublasLtHandle_t
struct MatmulDescObject;       // cublasLtMatmulDescOpaque_t
using MatmulDesc = MatmulDescObject*;
struct MatrixLayoutObject;     // cublasLtMatrixLayoutOpaque_t
using MatrixLayout = MatrixLayoutObject*;
struct PreferenceObject;       // cublasLtMatmulPreferenceOpaque_t
using Preference = PreferenceObject*;

// ---- structs the caller owns --------------------------------------------------------------------------
// cublasLtMatmulAlgo_t: an algorithm as the heuristic returns it (opaque bytes).
struct MatmulAlgo {
  uint64_t data[8];
};
// cublasLtMatmulHeuristicResult_t
struct HeuristicResult {
  MatmulAlgo algo;
  std::size_t workspace_size;
  Status state;
  float waves_count;
  int reserved[4];
};

// ---- the functions, as pointers filled by dlsym ---------------------------------------------------------
struct Api {
  Status (*create)(Handle*);                                                             // cublasLtCreate
  Status (*destroy)(Handle);                                                             // cublasLtDestroy
  std::size_t (*get_version)();                                                          // cublasLtGetVersion
  const char* (*get_status_string)(Status);  // cublasLtGetStatusString (may be null: optional)
  Status (*matmul_desc_create)(MatmulDesc*, ComputeType, DataType);                      // cublasLtMatmulDescCreate
  Status (*matmul_desc_destroy)(MatmulDesc);                                             // cublasLtMatmulDescDestroy
  Status (*matmul_desc_set_attribute)(MatmulDesc, MatmulDescAttribute, const void*, std::size_t);
  Status (*matrix_layout_create)(MatrixLayout*, DataType, uint64_t rows, uint64_t cols, int64_t ld);
  Status (*matrix_layout_destroy)(MatrixLayout);
  Status (*preference_create)(Preference*);                                              // cublasLtMatmulPreferenceCreate
  Status (*preference_destroy)(Preference);
  Status (*preference_set_attribute)(Preference, PreferenceAttribute, const void*, std::size_t);
  Status (*algo_get_heuristic)(Handle, MatmulDesc, MatrixLayout a, MatrixLayout b, MatrixLayout c, MatrixLayout d,
                               Preference, int requested, HeuristicResult* results, int* returned);
  // cublasLtMatmul: D = alpha op(A) op(B) + beta C; the stream is a cudaStream_t.
  Status (*matmul)(Handle, MatmulDesc, const void* alpha, const void* A, MatrixLayout, const void* B, MatrixLayout,
                   const void* beta, const void* C, MatrixLayout, void* D, MatrixLayout, const MatmulAlgo* algo,
                   void* workspace, std::size_t workspace_bytes, void* stream);
};

// What loading found, once per process (never throws).
struct LoadResult {
  const Api* api = nullptr;  // null when not loaded
  std::string library;       // the file that was loaded
  std::size_t version = 0;   // cublasLtGetVersion(): major * 10000 + minor * 100 + patch
  std::string error;         // when not loaded: every file tried and why it failed
};
const LoadResult& load();

// The loaded API; throws sppo::Error with load().error when the library is not there.
const Api& api();

// "13.0.2 (libcublasLt.so.13)" when loaded, else "not loaded: <why>". For `sppo-native info`.
std::string describe();

// The library's name for a status, e.g. "CUBLAS_STATUS_NOT_SUPPORTED" (ours when it has none).
const char* status_name(Status s);

// Throws sppo::Error "cuBLASLt <what> failed: <status name>" unless s is kSuccess.
void check(Status s, const char* what);

}  // namespace sppo::cublaslt
