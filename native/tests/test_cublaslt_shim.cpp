// The cuBLASLt loader (runtime/cublaslt_shim.h) on this machine, GPU or not: either the library
// loads (a CUDA 12 or 13 version, every required symbol) or the error names every file it tried;
// status checks name the status. Runs in every build (the shim needs no CUDA headers).
#include <cstdlib>
#include <string>

#include "runtime/cublaslt_shim.h"
#include "testing.h"

namespace lt = sppo::cublaslt;

namespace {
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
const char* kMissingFile = "/nonexistent/sppo-test/libcublasLt.so";
}  // namespace

TEST(loads_or_says_what_it_tried) {
  const lt::LoadResult& r = lt::load();
  if (r.api) {
    std::printf("  loaded %s\n", lt::describe().c_str());
    CHECK(r.error.empty());
    CHECK(r.library == "libcublasLt.so.13" || r.library == "libcublasLt.so.12");
    CHECK(r.version >= 120000 && r.version < 140000);
    CHECK(r.api->create && r.api->destroy && r.api->matmul && r.api->algo_get_heuristic);
    CHECK(r.api->matrix_layout_create && r.api->matmul_desc_set_attribute && r.api->preference_set_attribute);
    CHECK(has(lt::describe(), std::to_string(r.version / 10000) + "."));
    CHECK(&lt::api() == r.api);
  } else {
    std::printf("  not loaded: %s\n", r.error.c_str());
    CHECK(has(r.error, kMissingFile));  // the override is tried first
    CHECK(has(r.error, "libcublasLt.so.13"));
    CHECK(has(r.error, "libcublasLt.so.12"));
    CHECK(has(r.error, "SPPO_CUBLASLT_LIBRARY"));
    CHECK(lt::describe() == "not loaded: " + r.error);
    CHECK_THROWS_WITH(lt::api(), "cuBLASLt could not be loaded (tried");
  }
}

TEST(status_checks_name_the_status) {
  lt::check(lt::Status::kSuccess, "nothing");
  CHECK_THROWS_WITH(lt::check(lt::Status::kNotSupported, "matmul"),
                    "cuBLASLt matmul failed: CUBLAS_STATUS_NOT_SUPPORTED (15)");
  CHECK_THROWS_WITH(lt::check(lt::Status::kInvalidValue, "layout"), "CUBLAS_STATUS_INVALID_VALUE (7)");
  CHECK(std::string(lt::status_name(static_cast<lt::Status>(99))) == "an unknown cuBLAS status");
}

int main() {
  // Before the first load: an override that does not exist is tried, reported, and passed over.
  setenv("SPPO_CUBLASLT_LIBRARY", kMissingFile, 1);
  return ::sppo_test::run_all();
}
