// A stand-in libcublasLt.so.13 for the emulated CUDA build (SPPO_CUDA=emulate): the functions
// runtime/cublaslt_shim.h loads, computing D = alpha op(A) op(B) + beta C on the CPU, on the
// stream's queue (emu/cuda_emu_runtime.h), in column-major order as cuBLASLt does.
//
// It takes its types from the shim's declarations, so it checks how kernels/cuda/matmul.cu uses
// cuBLASLt (shapes, transposes, leading dimensions, alignment promises, the heuristic's
// workspace, the stream), not the shim's values against NVIDIA's header (test_cublaslt_shim_abi
// does that where the header exists). Every mismatch stops the process with what was wrong.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/half_bits.h"
#include "emu/cuda_emu_runtime.h"
#include "runtime/cublaslt_shim.h"

namespace lt = sppo::cublaslt;

struct sppo::cublaslt::Context {
  int magic = 0x4c54;
};
struct sppo::cublaslt::MatmulDescObject {
  lt::ComputeType compute;
  lt::DataType scale;
  lt::Operation ta = lt::Operation::kN, tb = lt::Operation::kN;
  lt::PointerMode pointer = lt::PointerMode::kHost;
};
struct sppo::cublaslt::MatrixLayoutObject {
  lt::DataType type;
  uint64_t rows, cols;
  int64_t ld;
};
struct sppo::cublaslt::PreferenceObject {
  uint64_t max_workspace = 0;
  uint32_t align[4] = {256, 256, 256, 256};  // A, B, C, D: cuBLASLt assumes 256 unless told
};

namespace {

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "sppo CUDA emulator (cuBLASLt): %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

float load(lt::DataType t, const void* p, int64_t i) {
  if (t == lt::DataType::kR32F) return static_cast<const float*>(p)[i];
  const uint16_t bits = static_cast<const uint16_t*>(p)[i];
  const uint32_t u = t == lt::DataType::kR16F ? sppo::half_bits::f16_to_f32(bits) : static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
void store(lt::DataType t, void* p, int64_t i, float f) {
  if (t == lt::DataType::kR32F) {
    static_cast<float*>(p)[i] = f;
    return;
  }
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint16_t h;
  if (t == lt::DataType::kR16F) h = sppo::half_bits::f32_to_f16(u);
  else if ((u & 0x7fffffffu) > 0x7f800000u) h = static_cast<uint16_t>((u >> 16) | 0x40u);
  else h = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  static_cast<uint16_t*>(p)[i] = h;
}
uint32_t alignment_of(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && (a & (al - 1))) al >>= 1;
  return al;
}

// op(X) as rows x cols, from a stored layout.
void op_shape(const lt::MatrixLayoutObject& l, lt::Operation op, uint64_t* r, uint64_t* c) {
  *r = op == lt::Operation::kN ? l.rows : l.cols;
  *c = op == lt::Operation::kN ? l.cols : l.rows;
}

void check_layout(const lt::MatrixLayoutObject& l, const char* which) {
  if (l.ld < static_cast<int64_t>(l.rows ? l.rows : 1))
    fail(std::string(which) + ": leading dimension " + std::to_string(l.ld) + " below its " + std::to_string(l.rows) +
         " rows");
}

}  // namespace

extern "C" {

lt::Status cublasLtCreate(lt::Handle* h) {
  *h = new lt::Context;
  return lt::Status::kSuccess;
}
lt::Status cublasLtDestroy(lt::Handle h) {
  delete h;
  return lt::Status::kSuccess;
}
std::size_t cublasLtGetVersion() { return 130000; }
const char* cublasLtGetStatusString(lt::Status s) { return s == lt::Status::kSuccess ? "success" : "failure"; }

lt::Status cublasLtMatmulDescCreate(lt::MatmulDesc* d, lt::ComputeType c, lt::DataType scale) {
  if (c != lt::ComputeType::kCompute32F || scale != lt::DataType::kR32F) return lt::Status::kNotSupported;
  *d = new lt::MatmulDescObject{c, scale};
  return lt::Status::kSuccess;
}
lt::Status cublasLtMatmulDescDestroy(lt::MatmulDesc d) {
  delete d;
  return lt::Status::kSuccess;
}
lt::Status cublasLtMatmulDescSetAttribute(lt::MatmulDesc d, lt::MatmulDescAttribute a, const void* buf, std::size_t n) {
  switch (a) {
    case lt::MatmulDescAttribute::kTransA:
    case lt::MatmulDescAttribute::kTransB: {
      if (n != sizeof(lt::Operation)) return lt::Status::kInvalidValue;
      lt::Operation op;
      std::memcpy(&op, buf, n);
      (a == lt::MatmulDescAttribute::kTransA ? d->ta : d->tb) = op;
      return lt::Status::kSuccess;
    }
    case lt::MatmulDescAttribute::kPointerMode:
      if (n != sizeof(lt::PointerMode)) return lt::Status::kInvalidValue;
      std::memcpy(&d->pointer, buf, n);
      return lt::Status::kSuccess;
    default:
      return lt::Status::kInvalidValue;
  }
}
lt::Status cublasLtMatrixLayoutCreate(lt::MatrixLayout* l, lt::DataType t, uint64_t rows, uint64_t cols, int64_t ld) {
  if (t != lt::DataType::kR32F && t != lt::DataType::kR16BF && t != lt::DataType::kR16F) return lt::Status::kNotSupported;
  *l = new lt::MatrixLayoutObject{t, rows, cols, ld};
  return lt::Status::kSuccess;
}
lt::Status cublasLtMatrixLayoutDestroy(lt::MatrixLayout l) {
  delete l;
  return lt::Status::kSuccess;
}
lt::Status cublasLtMatmulPreferenceCreate(lt::Preference* p) {
  *p = new lt::PreferenceObject;
  return lt::Status::kSuccess;
}
lt::Status cublasLtMatmulPreferenceDestroy(lt::Preference p) {
  delete p;
  return lt::Status::kSuccess;
}
lt::Status cublasLtMatmulPreferenceSetAttribute(lt::Preference p, lt::PreferenceAttribute a, const void* buf,
                                               std::size_t n) {
  switch (a) {
    case lt::PreferenceAttribute::kMaxWorkspaceBytes:
      if (n != 8) return lt::Status::kInvalidValue;
      std::memcpy(&p->max_workspace, buf, 8);
      return lt::Status::kSuccess;
    case lt::PreferenceAttribute::kMinAlignmentABytes:
    case lt::PreferenceAttribute::kMinAlignmentBBytes:
    case lt::PreferenceAttribute::kMinAlignmentCBytes:
    case lt::PreferenceAttribute::kMinAlignmentDBytes: {
      if (n != 4) return lt::Status::kInvalidValue;
      const int i = static_cast<int>(a) - static_cast<int>(lt::PreferenceAttribute::kMinAlignmentABytes);
      std::memcpy(&p->align[i], buf, 4);
      return lt::Status::kSuccess;
    }
    default:
      return lt::Status::kInvalidValue;
  }
}

lt::Status cublasLtMatmulAlgoGetHeuristic(lt::Handle, lt::MatmulDesc d, lt::MatrixLayout a, lt::MatrixLayout b,
                                          lt::MatrixLayout c, lt::MatrixLayout dl, lt::Preference pref, int requested,
                                          lt::HeuristicResult* results, int* returned) {
  if (requested < 1) return lt::Status::kInvalidValue;
  uint64_t am, ak, bk, bn;
  op_shape(*a, d->ta, &am, &ak);
  op_shape(*b, d->tb, &bk, &bn);
  if (ak != bk || c->rows != am || c->cols != bn || dl->rows != am || dl->cols != bn) {
    *returned = 0;
    return lt::Status::kInvalidValue;
  }
  // SPPO_EMU_CUBLASLT_NO_ALGO=1 (tests): no algorithm, as the library answers when it has none
  // for the shapes and alignments asked.
  if (const char* e = std::getenv("SPPO_EMU_CUBLASLT_NO_ALGO"); e && std::strcmp(e, "1") == 0) {
    *returned = 0;
    return lt::Status::kNotSupported;
  }
  lt::HeuristicResult r{};
  r.algo.data[0] = 0x5bb0;  // "ours": checked at the matmul
  r.algo.data[1] = pref->align[0] | (uint64_t{pref->align[1]} << 16) | (uint64_t{pref->align[2]} << 32) |
                   (uint64_t{pref->align[3]} << 48);
  r.workspace_size = 0;
  r.state = lt::Status::kSuccess;
  r.waves_count = 1.f;
  results[0] = r;
  *returned = 1;
  return lt::Status::kSuccess;
}

lt::Status cublasLtMatmul(lt::Handle h, lt::MatmulDesc d, const void* alpha, const void* A, lt::MatrixLayout al,
                          const void* B, lt::MatrixLayout bl, const void* beta, const void* C, lt::MatrixLayout cl,
                          void* D, lt::MatrixLayout dl, const lt::MatmulAlgo* algo, void* workspace,
                          std::size_t workspace_bytes, void* stream) {
  if (!h || h->magic != 0x4c54) fail("cublasLtMatmul with a handle that cublasLtCreate did not make");
  if (!algo || algo->data[0] != 0x5bb0) fail("cublasLtMatmul with an algorithm the heuristic did not return");
  if (d->pointer != lt::PointerMode::kHost) fail("cublasLtMatmul: only host scalars are emulated");
  check_layout(*al, "A");
  check_layout(*bl, "B");
  check_layout(*cl, "C");
  check_layout(*dl, "D");
  uint64_t m, k, k2, n;
  op_shape(*al, d->ta, &m, &k);
  op_shape(*bl, d->tb, &k2, &n);
  if (k != k2 || cl->rows != m || cl->cols != n || dl->rows != m || dl->cols != n)
    fail("cublasLtMatmul: op(A) is " + std::to_string(m) + "x" + std::to_string(k) + ", op(B) " + std::to_string(k2) +
         "x" + std::to_string(n) + ", C " + std::to_string(cl->rows) + "x" + std::to_string(cl->cols) + ", D " +
         std::to_string(dl->rows) + "x" + std::to_string(dl->cols));
  if (cl->type != dl->type || cl->ld != dl->ld) fail("cublasLtMatmul: C and D layouts differ (not emulated)");
  if (al->type != bl->type) fail("cublasLtMatmul: A and B of different types");
  const uint32_t promised[4] = {static_cast<uint32_t>(algo->data[1] & 0xffff),
                                static_cast<uint32_t>((algo->data[1] >> 16) & 0xffff),
                                static_cast<uint32_t>((algo->data[1] >> 32) & 0xffff),
                                static_cast<uint32_t>((algo->data[1] >> 48) & 0xffff)};
  const void* ptrs[4] = {A, B, C, D};
  const char* names[4] = {"A", "B", "C", "D"};
  for (int i = 0; i < 4; ++i)
    if (alignment_of(ptrs[i]) < promised[i])
      fail(std::string("cublasLtMatmul: ") + names[i] + " is " + std::to_string(alignment_of(ptrs[i])) +
           "-byte aligned but the heuristic was promised " + std::to_string(promised[i]));
  if (workspace_bytes && !workspace) fail("cublasLtMatmul: workspace size without a workspace");
  float a32, b32;
  std::memcpy(&a32, alpha, 4);
  std::memcpy(&b32, beta, 4);
  const lt::MatrixLayoutObject la = *al, lb = *bl, lc = *cl;
  const lt::Operation ta = d->ta, tb = d->tb;
  return sppo_emu::enqueue(static_cast<cudaStream_t>(stream), "cublasLtMatmul",
                           [=]() {
                             for (uint64_t j = 0; j < n; ++j)
                               for (uint64_t i = 0; i < m; ++i) {
                                 double s = 0;
                                 for (uint64_t p = 0; p < k; ++p) {
                                   const int64_t ai = ta == lt::Operation::kN
                                                          ? static_cast<int64_t>(i + p * la.ld)
                                                          : static_cast<int64_t>(p + i * la.ld);
                                   const int64_t bi = tb == lt::Operation::kN
                                                          ? static_cast<int64_t>(p + j * lb.ld)
                                                          : static_cast<int64_t>(j + p * lb.ld);
                                   s += static_cast<double>(load(la.type, A, ai)) * load(lb.type, B, bi);
                                 }
                                 const int64_t ci = static_cast<int64_t>(i + j * lc.ld);
                                 // beta 0: C is not read (it may hold NaN), as in cuBLASLt.
                                 float v = a32 * static_cast<float>(s);
                                 if (b32 != 0.f) v += b32 * load(lc.type, C, ci);
                                 store(lc.type, D, ci, v);
                               }
                           }) == cudaSuccess
             ? lt::Status::kSuccess
             : lt::Status::kExecutionFailed;
}

}  // extern "C"
