// CUDA embedding lookup and its deterministic backward (kernels/embedding.h).
//
// Forward: one block per token row copies its table row (or zeros for a padding id < 0).
// Backward, without float atomics, in three launches:
//   1. keys: key[r] = ids[r] (V for padding and for ids >= V, which are reported), val[r] = r;
//   2. a stable radix sort of (key, val) by key (CUB): equal ids keep increasing r;
//   3. one block per (sorted position p, 256 columns): only the first position of each id's run
//      acts, adding dout[val[q], j] for q along the run, in order, into dtable[id, j].
// Every table row's sum therefore runs over r in increasing order, as on the CPU, with the same
// fp32 additions: the result is bitwise the CPU's (a BF16 dtable: widened, summed in fp32, rounded
// once in the final write, as the CPU's emulation rounds). A run is summed serially (4 rows in flight per
// step); a token repeated thousands of times in one batch costs microseconds per thousand rows.
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/host_helpers.h"
#include "kernels/embedding.h"

namespace sppo {
namespace cuda {
namespace {

constexpr int kRowThreads = 256;  // threads per token row (forward) and columns per block (backward)
constexpr unsigned kErrId = 1;    // ids[r] >= V

// ---- forward ------------------------------------------------------------------------------------
// Block r writes out row r. Raw element bits are copied: no conversion, so T is float or uint16_t.
template <typename T>
__global__ void __launch_bounds__(kRowThreads)
    forward_kernel(const T* __restrict__ table, int64_t V, int64_t H, const int32_t* __restrict__ ids,
                   T* __restrict__ out, unsigned long long* err, unsigned launch) {
  const int64_t r = blockIdx.x;
  const int32_t id = ids[r];
  T* dst = out + r * H;
  if (id >= V) {  // the CPU throws before writing; here the row is left unwritten
    if (threadIdx.x == 0) report(err, r, launch, kErrId);
    return;
  }
  if (id < 0) {
    for (int64_t j = threadIdx.x; j < H; j += kRowThreads) dst[j] = T(0);
    return;
  }
  const T* src = table + static_cast<int64_t>(id) * H;
  for (int64_t j = threadIdx.x; j < H; j += kRowThreads) dst[j] = src[j];
}

// ---- backward -----------------------------------------------------------------------------------
// Sort keys: the id for rows that add to the table, V (sorted last, skipped) for the others.
__global__ void keys_kernel(const int32_t* __restrict__ ids, int64_t n, int64_t V, uint32_t* __restrict__ keys,
                            int32_t* __restrict__ rows, unsigned long long* err, unsigned launch) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < n; r += int64_t(gridDim.x) * blockDim.x) {
    const int32_t id = ids[r];
    if (id >= V) report(err, r, launch, kErrId);
    keys[r] = (id < 0 || id >= V) ? static_cast<uint32_t>(V) : static_cast<uint32_t>(id);
    rows[r] = static_cast<int32_t>(r);
  }
}

// Grid (n sorted positions, column blocks). The first position of a run owns that table row for
// its columns; every other block returns at once.
// E: dout's element type; D: dtable's (BF16: widened, the fp32 sum rounded once in the final write).
template <typename E, typename D>
__global__ void __launch_bounds__(kRowThreads)
    segment_add_kernel(const typename E::raw* __restrict__ dout, const uint32_t* __restrict__ keys,
                       const int32_t* __restrict__ rows, int64_t n, int64_t V, int64_t H,
                       typename D::raw* __restrict__ dtable) {
  const int64_t p = blockIdx.x;
  const uint32_t id = keys[p];
  if (id == static_cast<uint32_t>(V) || (p > 0 && keys[p - 1] == id)) return;
  const int64_t j = static_cast<int64_t>(blockIdx.y) * kRowThreads + threadIdx.x;
  if (j >= H) return;
  float acc = D::load(dtable[static_cast<int64_t>(id) * H + j]);
  int64_t q = p;
  // Four rows per step: their loads are issued together, their additions stay in order.
  for (; q + 4 <= n && keys[q + 3] == id; q += 4) {
    const float d0 = E::load(dout[rows[q] * H + j]), d1 = E::load(dout[rows[q + 1] * H + j]);
    const float d2 = E::load(dout[rows[q + 2] * H + j]), d3 = E::load(dout[rows[q + 3] * H + j]);
    acc += d0;
    acc += d1;
    acc += d2;
    acc += d3;
  }
  for (; q < n && keys[q] == id; ++q) acc += E::load(dout[rows[q] * H + j]);
  dtable[static_cast<int64_t>(id) * H + j] = D::store(acc);
}

// ---- host side ----------------------------------------------------------------------------------

// copies_bits: the forward, which takes F16 rows too (host_helpers.h check_float_dtype).
void check_args(const char* op, DType dtype, int64_t V, int64_t H, int64_t n, bool copies_bits) {
  check_float_dtype(op, "rows", dtype, copies_bits);
  SPPO_CHECK(V >= 0 && H >= 0 && n >= 0, op, ": negative size (V = ", V, ", H = ", H, ", n = ", n, ")");
  SPPO_CHECK(n <= 0x7fffffff && V < 0x7fffffff, op, ": n and V must be < 2^31 on CUDA (n = ", n, ", V = ", V, ")");
  SPPO_CHECK((H + kRowThreads - 1) / kRowThreads <= 65535, op, ": H = ", H, " is too wide for the CUDA kernel");
}

// The CPU's message for an id out of range.
DeviceErrors::Explain explain_ids(const char* op, const int32_t* ids, int64_t V) {
  return [=](unsigned code, int64_t r) {
    if (code == kErrId) fail(op, ": ids[", r, "] = ", fetch(ids, r), " is outside the vocabulary [0, ", V, ")");
    fail("CUDA ", op, " kernel reported error code ", code, " at ", r);
  };
}

int key_bits(int64_t V) {  // bits of the largest key, V
  int b = 1;
  while (b < 32 && (int64_t{1} << b) <= V) ++b;
  return b;
}

}  // namespace

void embedding_forward(const void* table, DType dtype, int64_t V, int64_t H, const int32_t* ids, int64_t n, void* out,
                       const Launch& l) {
  const char* op = "embedding_forward";
  check_args(op, dtype, V, H, n, true);
  if (n == 0) return;
  const unsigned launch = l.errors->expect(explain_ids(op, ids, V));
  const unsigned grid = static_cast<unsigned>(n);
  if (dtype == DType::F32)
    forward_kernel<float><<<grid, kRowThreads, 0, stream_of(l)>>>(static_cast<const float*>(table), V, H, ids,
                                                                  static_cast<float*>(out), l.errors->word(), launch);
  else
    forward_kernel<uint16_t><<<grid, kRowThreads, 0, stream_of(l)>>>(
        static_cast<const uint16_t*>(table), V, H, ids, static_cast<uint16_t*>(out), l.errors->word(), launch);
  check_cuda(cudaGetLastError(), "embedding_forward launch");
}

void embedding_backward(const void* dout, DType dtype, const int32_t* ids, int64_t n, int64_t V, int64_t H,
                        void* dtable, DType dtable_dtype, const Launch& l) {
  const char* op = "embedding_backward";
  check_args(op, dtype, V, H, n, false);
  SPPO_CHECK(dtable_dtype == DType::F32 || (dtable_dtype == DType::BF16 && dtype == DType::BF16), op,
             ": CUDA dtable must be F32, or BF16 with BF16 dout (got ", dtype_name(dtable_dtype), ")");
  if (n == 0 || H == 0) return;
  cudaStream_t s = stream_of(l);
  const int n32 = static_cast<int>(n), bits = key_bits(V);
  // Scratch: keys and rows in and out of the sort, then CUB's own temporary storage.
  std::size_t sort_bytes = 0;
  check_cuda(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, static_cast<const uint32_t*>(nullptr),
                                             static_cast<uint32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                             static_cast<int32_t*>(nullptr), n32, 0, bits, s),
             "embedding_backward sort size");
  const std::size_t arr = round256(static_cast<std::size_t>(n) * 4);
  Scratch scratch(4 * arr + sort_bytes, s);
  uint32_t* keys_in = scratch.at<uint32_t>(0);
  uint32_t* keys = scratch.at<uint32_t>(arr);
  int32_t* rows_in = scratch.at<int32_t>(2 * arr);
  int32_t* rows = scratch.at<int32_t>(3 * arr);

  const unsigned launch = l.errors->expect(explain_ids(op, ids, V));
  keys_kernel<<<grid_for(n, 256), 256, 0, s>>>(ids, n, V, keys_in, rows_in, l.errors->word(), launch);
  check_cuda(cudaGetLastError(), "embedding_backward keys launch");
  check_cuda(cub::DeviceRadixSort::SortPairs(scratch.at<void>(4 * arr), sort_bytes, keys_in, keys, rows_in, rows, n32,
                                             0, bits, s),
             "embedding_backward sort");
  const dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>((H + kRowThreads - 1) / kRowThreads));
  if (dtype == DType::F32)
    segment_add_kernel<F32E, F32E><<<grid, kRowThreads, 0, s>>>(static_cast<const float*>(dout), keys, rows, n, V, H,
                                                                static_cast<float*>(dtable));
  else if (dtable_dtype == DType::F32)
    segment_add_kernel<BF16E, F32E><<<grid, kRowThreads, 0, s>>>(static_cast<const uint16_t*>(dout), keys, rows, n, V,
                                                                 H, static_cast<float*>(dtable));
  else
    segment_add_kernel<BF16E, BF16E><<<grid, kRowThreads, 0, s>>>(static_cast<const uint16_t*>(dout), keys, rows, n,
                                                                  V, H, static_cast<uint16_t*>(dtable));
  check_cuda(cudaGetLastError(), "embedding_backward launch");
}

}  // namespace cuda
}  // namespace sppo
