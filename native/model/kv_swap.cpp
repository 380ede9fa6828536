// KVCache::swap_out / swap_in (model/kv_cache.h): a preempted group's blocks to host memory and
// back. One copy per run of consecutive block ids per layer's K or V pool, not one per block: the
// allocator hands a growing sequence ascending ids, so a group's blocks come in a few long runs.
#include <algorithm>
#include <new>
#include <unordered_map>

#include "core/error.h"
#include "model/kv_cache.h"

namespace sppo {

namespace {

// Calls copy(first saved index, first pool block, count) for each run where both the saved
// indices (0, 1, ...) and the pool blocks `ids` go up by one.
template <typename Copy>
void for_each_run(const std::vector<int32_t>& ids, Copy&& copy) {
  for (size_t j = 0; j < ids.size();) {
    size_t e = j + 1;
    while (e < ids.size() && ids[e] == ids[e - 1] + 1) ++e;
    copy(j, ids[j], e - j);
    j = e;
  }
}

}  // namespace

int64_t KVCache::Swapped::blocks_to_append_one(size_t q, int64_t block_size) const {
  if (lengths[q] % block_size == 0) return 1;
  const int32_t last = tables[q].back();
  int holders = 0;
  for (const auto& t : tables) holders += static_cast<int>(std::count(t.begin(), t.end(), last));
  return holders > 1 ? 1 : 0;
}

std::size_t KVCache::block_bytes() const {
  return 2 * static_cast<std::size_t>(layers_) * static_cast<std::size_t>(bs_ * kw_) * dtype_size(dtype_);
}

KVCache::Swapped KVCache::swap_out(const std::vector<int>& seqs) {
  for (size_t a = 0; a < seqs.size(); ++a)
    for (size_t b = a + 1; b < seqs.size(); ++b)
      SPPO_CHECK(seqs[a] != seqs[b], "KV cache: sequence ", seqs[a], " is swapped out twice in one call");
  Swapped out;
  std::unordered_map<int32_t, int32_t> index;  // pool block -> saved index
  std::vector<int32_t> ids;                    // saved index -> pool block
  for (int seq : seqs) {
    SPPO_CHECK(is_open(seq), "KV cache: swap-out of sequence ", seq, " which is not open");
    std::vector<int32_t> table;
    for (int32_t b : blocks_of(seq)) {
      auto it = index.find(b);
      if (it == index.end()) {
        it = index.emplace(b, static_cast<int32_t>(ids.size())).first;
        ids.push_back(b);
      }
      table.push_back(it->second);
    }
    out.lengths.push_back(len_[static_cast<size_t>(seq)]);
    out.tables.push_back(std::move(table));
  }
  out.blocks = static_cast<int64_t>(ids.size());
  const std::size_t one = static_cast<std::size_t>(bs_ * kw_) * dtype_size(dtype_);  // a block of one pool
  out.size = static_cast<std::size_t>(out.blocks) * block_bytes();
  out.bytes.reset(new (std::nothrow) unsigned char[out.size]);
  SPPO_CHECK(out.bytes || out.size == 0, "generate: could not allocate ", format_bytes(static_cast<double>(out.size)),
             " of host memory to swap out a preempted prompt's ", out.blocks,
             " KV blocks; lower the swap space (max_swap_tokens; rollout.maxSwapTokens, --rollout-swap-tokens) or set it to 0");
  for (int64_t l = 0; l < layers_; ++l)
    for (int kv = 0; kv < 2; ++kv) {
      const char* pool = static_cast<const char*>((kv ? v_pool(l) : k_pool(l)).data);
      unsigned char* dst = out.bytes.get() + static_cast<std::size_t>(2 * l + kv) * out.blocks * one;
      for_each_run(ids, [&](size_t j, int32_t b, size_t n) {
        be_->download(dst + j * one, pool + static_cast<std::size_t>(b) * one, n * one);
      });
    }
  for (int seq : seqs) close(seq);
  return out;
}

std::vector<int> KVCache::swap_in(const Swapped& s) {
  SPPO_CHECK(s.tables.size() == s.lengths.size() && s.size == static_cast<std::size_t>(s.blocks) * block_bytes() &&
                 (s.bytes || s.size == 0),
             "KV cache: a swapped set with ", s.tables.size(), " tables, ", s.lengths.size(), " lengths and ", s.size,
             " bytes for ", s.blocks, " blocks");
  SPPO_CHECK(s.blocks <= free_blocks(), "KV cache: swap-in of ", s.blocks, " blocks with ", free_blocks(), " free");
  int64_t closed = 0;
  for (int64_t q = 0; q < max_seqs_; ++q) closed += !open_[static_cast<size_t>(q)];
  SPPO_CHECK(static_cast<int64_t>(s.tables.size()) <= closed, "KV cache: swap-in of ", s.tables.size(),
             " sequences with ", closed, " free");
  // Every check before the first block is taken, so a refused set leaves the cache as it was.
  std::vector<int> refs(static_cast<size_t>(s.blocks), 0);
  for (size_t q = 0; q < s.tables.size(); ++q) {
    const int64_t nb = static_cast<int64_t>(s.tables[q].size());
    SPPO_CHECK(s.lengths[q] >= 0 && s.lengths[q] <= nb * bs_ && (s.lengths[q] + bs_ - 1) / bs_ == nb && nb <= stride_,
               "KV cache: a swapped sequence of ", s.lengths[q], " positions in ", nb, " blocks");
    for (int32_t j : s.tables[q]) {
      SPPO_CHECK(j >= 0 && j < s.blocks, "KV cache: a swapped table names block ", j, " of ", s.blocks);
      ++refs[static_cast<size_t>(j)];
    }
  }
  for (size_t j = 0; j < refs.size(); ++j)
    SPPO_CHECK(refs[j] > 0, "KV cache: saved block ", j, " is named by no swapped table");
  std::vector<int32_t> ids;
  for (int64_t j = 0; j < s.blocks; ++j) {
    ids.push_back(take_block());
    ref_[static_cast<size_t>(ids.back())] = refs[static_cast<size_t>(j)];
  }
  std::vector<int> seqs;
  for (size_t q = 0; q < s.tables.size(); ++q) {
    const int seq = open();
    for (size_t i = 0; i < s.tables[q].size(); ++i)
      tables_[static_cast<size_t>(seq * stride_ + static_cast<int64_t>(i))] = ids[static_cast<size_t>(s.tables[q][i])];
    len_[static_cast<size_t>(seq)] = s.lengths[q];
    seqs.push_back(seq);
  }
  const std::size_t one = static_cast<std::size_t>(bs_ * kw_) * dtype_size(dtype_);
  for (int64_t l = 0; l < layers_; ++l)
    for (int kv = 0; kv < 2; ++kv) {
      char* pool = static_cast<char*>((kv ? v_pool(l) : k_pool(l)).data);
      const unsigned char* src = s.bytes.get() + static_cast<std::size_t>(2 * l + kv) * s.blocks * one;
      for_each_run(ids, [&](size_t j, int32_t b, size_t n) {
        be_->upload(pool + static_cast<std::size_t>(b) * one, src + j * one, n * one);
      });
    }
  return seqs;
}

}  // namespace sppo
