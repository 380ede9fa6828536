// CUDA bias + activation (kernels/bias_act.h), with the formulas of kernels/bias_act_math.h (the
// CPU's; erf and tanh are CUDA's, within 2 ulp of the C library's). Block (column block, row
// group): each thread keeps its column's bias in a register and walks rows grid-stride, so no
// element needs a division by H. Computed in fp32 (BF16 elements are widened, then rounded once
// to nearest even). y may be x: each element is read, then written, by one thread.
#include <climits>

#include "kernels/bias_act.h"
#include "kernels/bias_act_math.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/host_helpers.h"

namespace sppo {
namespace cuda {
namespace {

constexpr int kBlock = 256;
constexpr unsigned kRowBlocks = 65535;  // grid.y limit; rows beyond it are walked grid-stride

// No __restrict__ on x and y: they may be one array.
template <typename E, Activation A>
__global__ void __launch_bounds__(kBlock)
    bias_act_kernel(const typename E::raw* x, const typename E::raw* __restrict__ b, int64_t n, int64_t H,
                    typename E::raw* y) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x;
  if (j >= H) return;
  const float bj = b ? E::load(b[j]) : 0.f;
  const bool has_b = b != nullptr;
  for (int64_t r = blockIdx.y; r < n; r += gridDim.y) {
    const int64_t i = r * H + j;
    const float xv = E::load(x[i]);
    const float v = has_b ? xv + bj : xv;  // as the CPU: no add without a bias
    y[i] = E::store(bias_act_math::apply<float, A>(v));
  }
}

template <typename E>
void launch(const void* x, const void* b, int64_t n, int64_t H, Activation act, void* y, cudaStream_t s) {
  using R = typename E::raw;
  const dim3 grid(static_cast<unsigned>((H + kBlock - 1) / kBlock),
                  static_cast<unsigned>(n < kRowBlocks ? n : kRowBlocks));
  const R* xr = static_cast<const R*>(x);
  const R* br = static_cast<const R*>(b);
  R* yr = static_cast<R*>(y);
  switch (act) {
    case Activation::Identity: bias_act_kernel<E, Activation::Identity><<<grid, kBlock, 0, s>>>(xr, br, n, H, yr); break;
    case Activation::Gelu: bias_act_kernel<E, Activation::Gelu><<<grid, kBlock, 0, s>>>(xr, br, n, H, yr); break;
    case Activation::Tanh: bias_act_kernel<E, Activation::Tanh><<<grid, kBlock, 0, s>>>(xr, br, n, H, yr); break;
  }
}

}  // namespace

void bias_act(const void* x, const void* b, DType dtype, int64_t n, int64_t H, Activation act, void* y,
              const Launch& l) {
  const char* op = "bias_act";
  check_float_dtype(op, "activations", dtype, true);
  SPPO_CHECK(n >= 0 && H > 0, op, ": bad shape (n ", n, ", H ", H, ")");
  SPPO_CHECK(act == Activation::Identity || act == Activation::Gelu || act == Activation::Tanh, op,
             ": unknown activation ", static_cast<int>(act));
  SPPO_CHECK((H + kBlock - 1) / kBlock <= INT_MAX, op, ": H = ", H, " is too wide for the CUDA kernel");
  if (n == 0) return;
  if (dtype == DType::F32) launch<F32E>(x, b, n, H, act, y, stream_of(l));
  else if (dtype == DType::BF16) launch<BF16E>(x, b, n, H, act, y, stream_of(l));
  else launch<F16E>(x, b, n, H, act, y, stream_of(l));
  check_cuda(cudaGetLastError(), "bias_act launch");
}

}  // namespace cuda
}  // namespace sppo
