// Attention of new rows against a paged key/value cache (CONTRACT: cpu/attention_decode.cpp, and
// cuda/attention_decode.cu on the GPU).
//
// The cache of one layer is a pool of blocks: k_pool, v_pool [num_blocks * block_size, nkv*hd];
// row `slot` of the pool is position slot % block_size of block slot / block_size. A sequence's
// positions live in the blocks its block-table row names: position p is in block
// table[p / block_size] at offset p % block_size. Blocks may be shared by several sequences (a
// prompt's blocks by its K samples); a block is only ever written through kv_write.
//   kv_write:          k_pool[slots[r]] = k[r], v_pool[slots[r]] = v[r] for the R new rows
//   attention_decode:  row r (query q[r], head h) attends to positions [0, lengths[r]) of the
//                      sequence whose block table is tables[table_rows[r] * table_stride ...],
//                      with exactly attention_forward's arithmetic (so cached decoding reproduces
//                      the full forward bit for bit); out [R, nh*hd].
// block_size must be a multiple of 8 (the AVX2 score kernel reads keys in groups of 8 that must
// not cross a block).
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "runtime/cuda_launch.h"

namespace sppo {

struct PagedShape {
  int64_t R;           // query rows
  int64_t nh, nkv, hd;
  int64_t block_size;
  int64_t num_blocks;  // blocks in the pool
  int64_t table_stride;  // entries per block-table row
  double scale;
};

namespace cpu {
// kv_write moves rows unchanged: T is float, double, or uint16_t (BF16 bits, which the CPU backend
// copies as they are instead of widening the whole pool).
template <typename T>
void kv_write(const T* k, const T* v, const int32_t* slots, int64_t R, int64_t kw, int64_t pool_rows, T* k_pool,
              T* v_pool);
template <typename T>
void attention_decode(const PagedShape& s, const T* q, const T* k_pool, const T* v_pool, const int32_t* tables,
                      const int32_t* table_rows, const int32_t* lengths, T* out);
}  // namespace cpu

#ifdef SPPO_WITH_CUDA
namespace cuda {
// cuda/attention_decode.cu: the same contract on device memory, queued without synchronising.
// k, v, q, the pools and out are `dtype` (F32 or BF16; fp32 arithmetic). Bad slots, lengths,
// table rows and block-table entries are reported to the deferred error word and thrown by the
// next check with the CPU's messages (a bad row is skipped, never read through). attention_decode
// splits each row's keys into fixed chunks of 256 and folds the chunks in order, whether one block
// walks them or one block per chunk and a second pass folds them: a row's result depends on its
// own keys only, never on what else is in the batch. head_dim <= 256. `tables_numel` is the
// number of entries in `tables` (checked on the device against the largest table row, so a short
// tables is reported at the next check, after the host-side shape checks the CPU makes later).
// The launch rule, named here so that tests can build batches that take each shape: keys fold in
// chunks of kDecodeChunk; a block serves up to kDecodeHeadsPerBlock query heads of one kv head, so
// a row takes nkv * ceil((nh / nkv) / kDecodeHeadsPerBlock) blocks; the keys are split over blocks
// when the table holds more than one chunk and R times that is below kDecodeSplitBelowPerSM times
// the SM count.
constexpr int kDecodeChunk = 256;
constexpr int kDecodeHeadsPerBlock = 8;
constexpr int kDecodeSplitBelowPerSM = 4;
void kv_write(const void* k, const void* v, DType dtype, const int32_t* slots, int64_t R, int64_t kw,
              int64_t pool_rows, void* k_pool, void* v_pool, const Launch& launch);
void attention_decode(const PagedShape& s, const void* q, const void* k_pool, const void* v_pool, DType dtype,
                      const int32_t* tables, int64_t tables_numel, const int32_t* table_rows,
                      const int32_t* lengths, void* out, const Launch& launch);
}  // namespace cuda
#endif

}  // namespace sppo
