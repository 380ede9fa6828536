// Attention of new rows against a paged key/value cache (CONTRACT: cpu/attention_decode.cpp;
// the CUDA rollout engine adds cuda/attention_decode.cu).
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
template <typename T>
void kv_write(const T* k, const T* v, const int32_t* slots, int64_t R, int64_t kw, int64_t pool_rows, T* k_pool,
              T* v_pool);
template <typename T>
void attention_decode(const PagedShape& s, const T* q, const T* k_pool, const T* v_pool, const int32_t* tables,
                      const int32_t* table_rows, const int32_t* lengths, T* out);
}  // namespace cpu

}  // namespace sppo
