// The cuBLASLt loader (runtime/cublaslt_shim.h).
#include "runtime/cublaslt_shim.h"

#include <dlfcn.h>

#include <cstdlib>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace sppo::cublaslt {
namespace {

// Where to look, in order: an explicit file (for wheels or toolkits off the loader path), then the
// CUDA 13 and CUDA 12 sonames. Both majors keep the declarations of the header above.
std::vector<std::string> candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("SPPO_CUBLASLT_LIBRARY"); env && *env) out.emplace_back(env);
  out.emplace_back("libcublasLt.so.13");
  out.emplace_back("libcublasLt.so.12");
  return out;
}

// Fills every pointer of `api` from `lib`; returns the first required symbol that is missing.
std::string bind(void* lib, Api& api) {
  std::string missing;
  auto sym = [&](auto& fn, const char* name, bool required = true) {
    void* p = dlsym(lib, name);
    if (!p && required && missing.empty()) missing = name;
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
  };
  sym(api.create, "cublasLtCreate");
  sym(api.destroy, "cublasLtDestroy");
  sym(api.get_version, "cublasLtGetVersion");
  sym(api.get_status_string, "cublasLtGetStatusString", false);
  sym(api.matmul_desc_create, "cublasLtMatmulDescCreate");
  sym(api.matmul_desc_destroy, "cublasLtMatmulDescDestroy");
  sym(api.matmul_desc_set_attribute, "cublasLtMatmulDescSetAttribute");
  sym(api.matrix_layout_create, "cublasLtMatrixLayoutCreate");
  sym(api.matrix_layout_destroy, "cublasLtMatrixLayoutDestroy");
  sym(api.preference_create, "cublasLtMatmulPreferenceCreate");
  sym(api.preference_destroy, "cublasLtMatmulPreferenceDestroy");
  sym(api.preference_set_attribute, "cublasLtMatmulPreferenceSetAttribute");
  sym(api.algo_get_heuristic, "cublasLtMatmulAlgoGetHeuristic");
  sym(api.matmul, "cublasLtMatmul");
  return missing;
}

LoadResult load_once() {
  static Api api;  // lives as long as the process (the library is never closed)
  LoadResult r;
  std::string tried;
  for (const std::string& file : candidates()) {
    void* lib = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* e = dlerror();
      tried += (tried.empty() ? "" : "; ") + std::string(e ? e : file + ": not found");
      continue;
    }
    const std::string missing = bind(lib, api);
    if (!missing.empty()) {
      tried += (tried.empty() ? "" : "; ") + file + " lacks " + missing;
      dlclose(lib);
      continue;
    }
    r.api = &api;
    r.library = file;
    r.version = api.get_version();
    return r;
  }
  r.error = "cuBLASLt could not be loaded (tried " + tried +
            "); the CUDA backend's matrix products need libcublasLt from CUDA 12 or 13: install the toolkit's cuBLAS "
            "or set SPPO_CUBLASLT_LIBRARY to the library file";
  return r;
}

}  // namespace

const LoadResult& load() {
  static const LoadResult r = load_once();  // thread-safe once
  return r;
}

const Api& api() {
  const LoadResult& r = load();
  if (!r.api) fail(r.error);
  return *r.api;
}

std::string describe() {
  const LoadResult& r = load();
  if (!r.api) return "not loaded: " + r.error;
  const std::size_t v = r.version;
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100) + " (" +
         r.library + ")";
}

const char* status_name(Status s) {
  switch (s) {
    case Status::kSuccess: return "CUBLAS_STATUS_SUCCESS";
    case Status::kNotInitialized: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case Status::kAllocFailed: return "CUBLAS_STATUS_ALLOC_FAILED";
    case Status::kInvalidValue: return "CUBLAS_STATUS_INVALID_VALUE";
    case Status::kArchMismatch: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case Status::kMappingError: return "CUBLAS_STATUS_MAPPING_ERROR";
    case Status::kExecutionFailed: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case Status::kInternalError: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case Status::kNotSupported: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case Status::kLicenseError: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "an unknown cuBLAS status";
}

void check(Status s, const char* what) {
  if (s == Status::kSuccess) return;
  const LoadResult& r = load();
  const char* text = r.api && r.api->get_status_string ? r.api->get_status_string(s) : nullptr;
  fail("cuBLASLt ", what, " failed: ", status_name(s), " (", static_cast<int>(s), ")",
       text && *text ? std::string(": ") + text : std::string());
}

}  // namespace sppo::cublaslt
