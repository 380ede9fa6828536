// KVCache (model/kv_cache.h).
#include "model/kv_cache.h"

#include <algorithm>

#include "core/error.h"
#include "model/llama_model.h"

namespace sppo {

KVCache::KVCache(const LlamaModel& model, int64_t max_sequences, int64_t max_length, int64_t num_blocks,
                 int64_t block_size, int64_t padding_slots)
    : be_(model.backend_ptr()),
      layers_(model.config().num_layers),
      kw_(model.config().num_kv_heads * model.config().head_dim),
      bs_(block_size),
      num_blocks_(num_blocks),
      max_seqs_(max_sequences),
      padding_slots_(padding_slots),
      pool_blocks_(num_blocks + scratch_blocks(std::max<int64_t>(padding_slots, 0), block_size > 0 ? block_size : 1)),
      table_rows_(max_sequences + (padding_slots > 0 ? 1 : 0)),
      dtype_(model.dtypes().act) {
  SPPO_CHECK(bs_ > 0 && bs_ % 8 == 0, "KV cache: block_size must be a positive multiple of 8 (got ", bs_, ")");
  SPPO_CHECK(padding_slots_ >= 0, "KV cache: padding_slots must be >= 0 (got ", padding_slots_, ")");
  SPPO_CHECK(num_blocks_ > 0 && pool_blocks_ * bs_ < (int64_t{1} << 31), "KV cache: ", num_blocks_,
             " blocks is outside what 32-bit slots address");
  SPPO_CHECK(max_seqs_ > 0 && max_length > 0, "KV cache: needs at least one sequence and one position");
  stride_ = (max_length + bs_ - 1) / bs_;
  const std::size_t need = pool_bytes(model.config(), dtype_, pool_blocks_, bs_);
  SPPO_CHECK(need <= be_->available_memory(), "the KV cache needs ", format_bytes(static_cast<double>(need)),
             " (", num_blocks_, " blocks of ", bs_, " positions) but the ", be_->name(), " backend has ",
             format_bytes(static_cast<double>(be_->available_memory())),
             " available; generate fewer prompts or samples at once (--rollout-batch), lower the KV-cache budget (max_cache_tokens) or ask for fewer new tokens");
  pools_ = Buffer(be_, need);
  tables_buf_ = Buffer(be_, table_bytes(table_rows_, max_length, bs_));
  d_tables_ = tables_buf_.view(DType::I32, table_rows_ * stride_);
  tables_.assign(static_cast<size_t>(table_rows_ * stride_), -1);
  for (int64_t b = num_blocks_; b < pool_blocks_ && b - num_blocks_ < stride_; ++b)
    tables_[static_cast<size_t>(max_seqs_ * stride_ + b - num_blocks_)] = static_cast<int32_t>(b);
  len_.assign(static_cast<size_t>(max_seqs_), 0);
  open_.assign(static_cast<size_t>(max_seqs_), 0);
  ref_.assign(static_cast<size_t>(num_blocks_), 0);
  free_.resize(static_cast<size_t>(num_blocks_));
  for (int64_t b = 0; b < num_blocks_; ++b) free_[static_cast<size_t>(b)] = static_cast<int32_t>(num_blocks_ - 1 - b);
}

std::size_t KVCache::pool_bytes(const LlamaConfig& c, DType dtype, int64_t num_blocks, int64_t block_size) {
  return 2 * static_cast<std::size_t>(c.num_layers) * static_cast<std::size_t>(num_blocks) *
         static_cast<std::size_t>(block_size) * static_cast<std::size_t>(c.num_kv_heads * c.head_dim) * dtype_size(dtype);
}

std::size_t KVCache::table_bytes(int64_t max_sequences, int64_t max_length, int64_t block_size) {
  return static_cast<std::size_t>(max_sequences * ((max_length + block_size - 1) / block_size)) * sizeof(int32_t);
}

std::size_t KVCache::allocation_bytes(const LlamaConfig& c, DType dtype, int64_t max_sequences, int64_t max_length,
                                     int64_t num_blocks, int64_t block_size, int64_t padding_slots) {
  return pool_bytes(c, dtype, num_blocks + scratch_blocks(padding_slots, block_size), block_size) +
         table_bytes(max_sequences + (padding_slots > 0 ? 1 : 0), max_length, block_size);
}

int32_t KVCache::scratch_row() const {
  SPPO_CHECK(padding_slots_ > 0, "KV cache: made without padding slots, it has no scratch row");
  return static_cast<int32_t>(max_seqs_);
}

int32_t KVCache::scratch_slot(int64_t i) const {
  SPPO_CHECK(i >= 0 && i < padding_slots_, "KV cache: scratch slot ", i, " is outside its ", padding_slots_,
             " padding slots");
  return static_cast<int32_t>(num_blocks_ * bs_ + i);
}

int64_t KVCache::blocks_needed(const std::vector<int64_t>& prompt_lengths, int64_t samples, int64_t max_new,
                               int64_t block_size) {
  int64_t n = 0;
  for (int64_t P : prompt_lengths) {
    n += (P + block_size - 1) / block_size;                                        // the prompt's own
    n += samples * ((P + max_new + block_size - 1) / block_size - P / block_size);  // each sample's tail
  }
  return std::max<int64_t>(n, 1);
}

int KVCache::open() {
  for (int64_t s = 0; s < max_seqs_; ++s)
    if (!open_[static_cast<size_t>(s)]) {
      open_[static_cast<size_t>(s)] = 1;
      len_[static_cast<size_t>(s)] = 0;
      std::fill(tables_.begin() + s * stride_, tables_.begin() + (s + 1) * stride_, -1);
      return static_cast<int>(s);
    }
  fail("KV cache: all ", max_seqs_, " sequences are in use");
}

int KVCache::fork(int seq) {
  SPPO_CHECK(is_open(seq), "KV cache: fork of sequence ", seq, " which is not open");
  const int s = open();
  const int64_t blocks = (len_[static_cast<size_t>(seq)] + bs_ - 1) / bs_;
  for (int64_t i = 0; i < blocks; ++i) {
    const int32_t b = tables_[static_cast<size_t>(seq * stride_ + i)];
    tables_[static_cast<size_t>(s * stride_ + i)] = b;
    ++ref_[static_cast<size_t>(b)];
  }
  len_[static_cast<size_t>(s)] = len_[static_cast<size_t>(seq)];
  return s;
}

void KVCache::close(int seq) {
  SPPO_CHECK(is_open(seq), "KV cache: close of sequence ", seq, " which is not open");
  for (int64_t i = 0; i < stride_; ++i) {
    int32_t& b = tables_[static_cast<size_t>(seq * stride_ + i)];
    if (b >= 0) drop_block(b);
    b = -1;
  }
  open_[static_cast<size_t>(seq)] = 0;
  len_[static_cast<size_t>(seq)] = 0;
}

int64_t KVCache::length(int seq) const {
  SPPO_CHECK(is_open(seq), "KV cache: sequence ", seq, " is not open");
  return len_[static_cast<size_t>(seq)];
}

bool KVCache::is_open(int seq) const { return seq >= 0 && seq < max_seqs_ && open_[static_cast<size_t>(seq)]; }

int32_t KVCache::take_block() {
  SPPO_CHECK(!free_.empty(), "KV cache: all ", num_blocks_, " blocks are in use");
  const int32_t b = free_.back();
  free_.pop_back();
  ref_[static_cast<size_t>(b)] = 1;
  return b;
}

void KVCache::drop_block(int32_t b) {
  if (--ref_[static_cast<size_t>(b)] == 0) free_.push_back(b);
}

std::vector<int32_t> KVCache::append(int seq, int64_t count) {
  SPPO_CHECK(is_open(seq), "KV cache: append to sequence ", seq, " which is not open");
  int64_t& L = len_[static_cast<size_t>(seq)];
  SPPO_CHECK(count >= 0 && L + count <= stride_ * bs_, "KV cache: sequence ", seq, " would hold ", L + count,
             " positions, more than its ", stride_ * bs_);
  std::vector<int32_t> slots(static_cast<size_t>(count));
  for (int64_t j = 0; j < count; ++j) {
    const int64_t p = L + j, bi = p / bs_;
    int32_t& b = tables_[static_cast<size_t>(seq * stride_ + bi)];
    if (b < 0) {
      b = take_block();
    } else if (ref_[static_cast<size_t>(b)] > 1) {
      // Copy-on-write: the positions [0, p % bs) written so far, in every layer's K and V pool.
      const int32_t nb = take_block();
      const std::size_t row = static_cast<std::size_t>(kw_) * dtype_size(dtype_);
      const std::size_t bytes = static_cast<std::size_t>(p % bs_) * row;
      for (int64_t l = 0; l < layers_; ++l)
        for (const Tensor& pool : {k_pool(l), v_pool(l)}) {
          char* base = static_cast<char*>(pool.data);
          be_->copy(base + static_cast<std::size_t>(nb) * bs_ * row, base + static_cast<std::size_t>(b) * bs_ * row, bytes);
        }
      drop_block(b);
      b = nb;
    }
    slots[static_cast<size_t>(j)] = static_cast<int32_t>(b * bs_ + p % bs_);
  }
  L += count;
  return slots;
}

int64_t KVCache::blocks_to_append(int seq, int64_t count) const {
  SPPO_CHECK(is_open(seq), "KV cache: sequence ", seq, " is not open");
  if (count <= 0) return 0;
  const int64_t L = len_[static_cast<size_t>(seq)], first = L / bs_, last = (L + count - 1) / bs_;
  SPPO_CHECK(last < stride_, "KV cache: sequence ", seq, " would hold ", L + count, " positions, more than its ",
             stride_ * bs_);
  // Only the first block can exist already (the partial last one); it costs a block when shared.
  const int32_t b = tables_[static_cast<size_t>(seq * stride_ + first)];
  const bool owned = b >= 0 && ref_[static_cast<size_t>(b)] == 1;
  return last - first + 1 - (owned ? 1 : 0);
}

Tensor KVCache::k_pool(int64_t layer) const {
  const int64_t rows = pool_blocks_ * bs_;
  return pools_.view(dtype_, rows * kw_, static_cast<std::size_t>(2 * layer * rows * kw_) * dtype_size(dtype_));
}

Tensor KVCache::v_pool(int64_t layer) const {
  const int64_t rows = pool_blocks_ * bs_;
  return pools_.view(dtype_, rows * kw_, static_cast<std::size_t>((2 * layer + 1) * rows * kw_) * dtype_size(dtype_));
}

void KVCache::sync_tables() { be_->upload(d_tables_.data, tables_.data(), tables_.size() * sizeof(int32_t)); }

std::vector<int32_t> KVCache::blocks_of(int seq) const {
  std::vector<int32_t> out;
  for (int64_t i = 0; i < stride_; ++i) {
    const int32_t b = tables_[static_cast<size_t>(seq * stride_ + i)];
    if (b >= 0) out.push_back(b);
  }
  return out;
}

}  // namespace sppo
