// CUDA matrix products (kernels/matmul.h) through cuBLASLt, loaded at run time by
// runtime/cublaslt_shim.h. No kernels of our own: this file turns a row-major matmul.h call into
// one cublasLtMatmul on the backend's stream (the layout mapping is kernels/cuda/matmul_colmajor.h)
// and keeps, per shape, the descriptors and the algorithm the heuristic chose, so a training step
// queries the heuristic once per distinct product and never synchronises.
#include <cuda_runtime.h>

#include <cstring>
#include <map>
#include <tuple>

#include "core/error.h"
#include "kernels/matmul.h"
#include "kernels/cuda/host_helpers.h"
#include "kernels/cuda/matmul_colmajor.h"
#include "runtime/cublaslt_shim.h"
#include "runtime/cuda_check.h"

namespace sppo {
namespace cuda {
namespace {

namespace lt = cublaslt;

// Hopper's recommended cuBLASLt workspace (the cuBLAS guide: 32 MiB on sm_90, 4 MiB before).
constexpr std::size_t kWorkspaceBytes = std::size_t{32} << 20;

lt::DataType lt_type(DType t) {
  return t == DType::BF16 ? lt::DataType::kR16BF : t == DType::F16 ? lt::DataType::kR16F : lt::DataType::kR32F;
}

// The largest power of two dividing the address, up to 256: the heuristic must only pick kernels
// that work at this alignment (its default assumption is 256 bytes; tests use odd offsets).
uint32_t alignment(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && (a & (al - 1))) al >>= 1;
  return al;
}

// Everything the chosen algorithm depends on.
struct Key {
  int64_t M, N, K;
  bool ta, tb;
  DType in, out;
  uint32_t align_a, align_b, align_c;
  auto tie() const { return std::tie(M, N, K, ta, tb, in, out, align_a, align_b, align_c); }
  bool operator<(const Key& o) const { return tie() < o.tie(); }
};

// The descriptors of one product shape and the algorithm for it.
struct Plan {
  lt::MatmulDesc desc = nullptr;
  lt::MatrixLayout first = nullptr, second = nullptr, c = nullptr;
  lt::MatmulAlgo algo{};
};

}  // namespace

struct Matmul::State {
  cudaStream_t stream = nullptr;
  const lt::Api* api = nullptr;  // set on first use
  lt::Handle handle = nullptr;
  void* workspace = nullptr;
  std::map<Key, Plan> plans;

  void init() {
    if (api) return;
    const lt::Api& a = lt::api();  // throws the loader's message when the library is missing
    lt::Handle h = nullptr;
    lt::check(a.create(&h), "cublasLtCreate");
    const cudaError_t e = cudaMalloc(&workspace, kWorkspaceBytes);
    if (e != cudaSuccess) {
      a.destroy(h);
      check_cuda(e, "cudaMalloc(cuBLASLt workspace)");
    }
    handle = h;
    api = &a;
  }

  lt::MatrixLayout layout(DType t, const ColMajorOperand& d) {
    lt::MatrixLayout l = nullptr;
    lt::check(api->matrix_layout_create(&l, lt_type(t), static_cast<uint64_t>(d.rows), static_cast<uint64_t>(d.cols),
                                        d.ld),
              "cublasLtMatrixLayoutCreate");
    return l;
  }

  void destroy(Plan& p) {
    if (p.desc) api->matmul_desc_destroy(p.desc);
    for (lt::MatrixLayout l : {p.first, p.second, p.c})
      if (l) api->matrix_layout_destroy(l);
  }

  const Plan& plan(const Key& k) {
    auto it = plans.find(k);
    if (it != plans.end()) return it->second;
    const ColMajorGemm g = colmajor_gemm(k.M, k.N, k.K, k.ta, k.tb);
    Plan p;
    try {
      lt::check(api->matmul_desc_create(&p.desc, lt::ComputeType::kCompute32F, lt::DataType::kR32F),
                "cublasLtMatmulDescCreate");
      const lt::Operation op_first = g.first.transpose ? lt::Operation::kT : lt::Operation::kN;
      const lt::Operation op_second = g.second.transpose ? lt::Operation::kT : lt::Operation::kN;
      const lt::PointerMode host = lt::PointerMode::kHost;
      auto set = [&](lt::MatmulDescAttribute a, const auto& v, const char* what) {
        lt::check(api->matmul_desc_set_attribute(p.desc, a, &v, sizeof v), what);
      };
      set(lt::MatmulDescAttribute::kTransA, op_first, "setting TRANSA");
      set(lt::MatmulDescAttribute::kTransB, op_second, "setting TRANSB");
      set(lt::MatmulDescAttribute::kPointerMode, host, "setting POINTER_MODE");
      p.first = layout(k.in, g.first);
      p.second = layout(k.in, g.second);
      p.c = layout(k.out, g.c);

      lt::Preference pref = nullptr;
      lt::check(api->preference_create(&pref), "cublasLtMatmulPreferenceCreate");
      lt::HeuristicResult result{};
      int found = 0;
      lt::Status st = lt::Status::kSuccess;
      auto set_pref = [&](lt::PreferenceAttribute a, auto v) {
        if (st == lt::Status::kSuccess) st = api->preference_set_attribute(pref, a, &v, sizeof v);
      };
      set_pref(lt::PreferenceAttribute::kMaxWorkspaceBytes, static_cast<uint64_t>(kWorkspaceBytes));
      // first = B, second = A (matmul_colmajor.h); C is also the output D.
      set_pref(lt::PreferenceAttribute::kMinAlignmentABytes, k.align_b);
      set_pref(lt::PreferenceAttribute::kMinAlignmentBBytes, k.align_a);
      set_pref(lt::PreferenceAttribute::kMinAlignmentCBytes, k.align_c);
      set_pref(lt::PreferenceAttribute::kMinAlignmentDBytes, k.align_c);
      if (st == lt::Status::kSuccess)
        st = api->algo_get_heuristic(handle, p.desc, p.first, p.second, p.c, p.c, pref, 1, &result, &found);
      api->preference_destroy(pref);
      // No algorithm for these shapes and alignments comes back as NOT_SUPPORTED from the library
      // (or as success with none found): both get the message that names them.
      if (st == lt::Status::kNotSupported) found = 0;
      else lt::check(st, "cublasLtMatmulAlgoGetHeuristic");
      SPPO_CHECK(found > 0, "cuBLASLt has no algorithm for matmul M = ", k.M, ", N = ", k.N, ", K = ", k.K,
                 k.ta ? ", A transposed" : "", k.tb ? ", B transposed" : "", " (", dtype_name(k.in), " inputs, ",
                 dtype_name(k.out), " output, alignments ", k.align_a, "/", k.align_b, "/", k.align_c, " bytes)");
      p.algo = result.algo;
    } catch (...) {
      destroy(p);
      throw;
    }
    return plans.emplace(k, p).first->second;
  }

  ~State() {
    if (!api) return;
    for (auto& kv : plans) destroy(kv.second);
    if (workspace) {
      cudaStreamSynchronize(stream);  // queued products may still use it
      cudaFree(workspace);
    }
    api->destroy(handle);
  }
};

Matmul::Matmul(void* stream) : s_(std::make_unique<State>()) { s_->stream = static_cast<cudaStream_t>(stream); }
Matmul::~Matmul() = default;

void Matmul::run(const void* A, const void* B, void* C, DType in, DType out, int64_t M, int64_t N, int64_t K, bool ta,
                 bool tb, bool accumulate) {
  check_float_dtype("matmul", "inputs", in, true);
  SPPO_CHECK(out == DType::F32 || out == in, "matmul: C must be F32 or ", dtype_name(in), " (got ", dtype_name(out),
             ")");
  SPPO_CHECK(M >= 0 && N >= 0 && K >= 0, "matmul: negative size (M = ", M, ", N = ", N, ", K = ", K, ")");
  // cuBLASLt takes 64-bit sizes but supports only what fits int32.
  constexpr int64_t kMax = 0x7fffffff;
  SPPO_CHECK(M <= kMax && N <= kMax && K <= kMax, "matmul: sizes must be < 2^31 on CUDA (M = ", M, ", N = ", N,
             ", K = ", K, ")");
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: C = 0, or C unchanged when accumulating
    if (!accumulate)
      check_cuda(cudaMemsetAsync(C, 0, static_cast<std::size_t>(M * N) * dtype_size(out), s_->stream),
                 "matmul (K = 0)");
    return;
  }
  s_->init();
  const Key key{M, N, K, ta, tb, in, out, alignment(A), alignment(B), alignment(C)};
  const Plan& p = s_->plan(key);
  const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;  // beta 0: C is not read (may hold NaN)
  // first = B, second = A; C is both the addend and the output (in place).
  lt::check(s_->api->matmul(s_->handle, p.desc, &alpha, B, p.first, A, p.second, &beta, C, p.c, C, p.c, &p.algo,
                            s_->workspace, kWorkspaceBytes, s_->stream),
            "cublasLtMatmul");
}

}  // namespace cuda
}  // namespace sppo
