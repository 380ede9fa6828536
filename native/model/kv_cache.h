// A paged key/value cache for generation (CONTRACT). Per layer a pool of blocks of block_size
// positions (backend memory, the model's activation dtype); each sequence has a block table on
// the host, uploaded before each decode step. Sequences can share blocks: fork() gives a new
// sequence the same blocks (a prompt's K samples share its prefill); a shared block is copied
// before it is written (copy-on-write), and a closed sequence's blocks return to the pool when
// no other sequence holds them. Layout of the pools and the decode arithmetic: kernels/attention_decode.h.
//
// A cache made with `padding_slots` > 0 (bucketed decode steps, model/decode_buckets.h) holds
// that many scratch slots in blocks past num_blocks() (outside the allocator's range, so no
// sequence ever gets them) and one more table row, scratch_row(), that names those blocks. The
// padding rows of a bucketed step write their K/V to scratch slots, each its own (no two rows
// write one slot), and attend through the scratch row to a length of 1 (scratch_slot(0), written
// by the first padding row in the same step), so they never touch a real sequence's blocks and no
// real row's table names a scratch block.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "backend/buffer.h"
#include "core/tensor.h"
#include "model/llama_config.h"

namespace sppo {

class LlamaModel;
struct LlamaConfig;

class KVCache {
 public:
  // Room for `num_blocks` blocks shared by at most `max_sequences` sequences of at most
  // `max_length` positions each.
  KVCache(const LlamaModel& model, int64_t max_sequences, int64_t max_length, int64_t num_blocks,
          int64_t block_size = 16, int64_t padding_slots = 0);

  // Backend bytes a cache of this shape allocates: the K and V pools of every layer (`dtype`, the
  // model's activations) and the block tables (the static planner counts the same).
  static std::size_t pool_bytes(const LlamaConfig& c, DType dtype, int64_t num_blocks, int64_t block_size);
  static std::size_t table_bytes(int64_t max_sequences, int64_t max_length, int64_t block_size);
  // What the constructor allocates in all (pools + tables, the padding's blocks and row included).
  static std::size_t allocation_bytes(const LlamaConfig& c, DType dtype, int64_t max_sequences, int64_t max_length,
                                      int64_t num_blocks, int64_t block_size, int64_t padding_slots);
  static int64_t scratch_blocks(int64_t padding_slots, int64_t block_size) {
    return (padding_slots + block_size - 1) / block_size;
  }

  // Blocks a set of prompts with `samples` forks each and up to `max_new` generated tokens needs
  // (the prompt's blocks, kept while its samples run, + each sample's tail from its copy of the
  // prompt's partial last block to max_new).
  static int64_t blocks_needed(const std::vector<int64_t>& prompt_lengths, int64_t samples, int64_t max_new,
                               int64_t block_size);

  int open();              // a new, empty sequence
  int fork(int seq);       // a new sequence with seq's positions (shared blocks)
  void close(int seq);     // frees seq; its blocks return to the pool when unshared
  int64_t length(int seq) const;
  bool is_open(int seq) const;

  // Reserves `count` positions at the end of `seq` and returns their pool rows (slots): allocates
  // blocks as needed and copies a shared partial last block first. Lengths advance at once.
  std::vector<int32_t> append(int seq, int64_t count);
  // The blocks append(seq, count) would take from the pool (new blocks and copies of a shared one).
  int64_t blocks_to_append(int seq, int64_t count) const;

  // Sequences' positions moved to host memory (the scheduler's preemption, model/kv_swap.cpp):
  // each distinct block once, each sequence's table as indices into them, so blocks shared before
  // are shared again after swap_in, and the bytes come back exactly (a swapped sample's next
  // tokens are the same bits as if it had stayed).
  struct Swapped {
    std::vector<int64_t> lengths;              // per sequence
    std::vector<std::vector<int32_t>> tables;  // per sequence: indices into the saved blocks
    int64_t blocks = 0;                        // distinct blocks saved
    // [layer][k, v][saved block][block_size * kv width]; not zero-filled (every byte is copied in)
    std::unique_ptr<unsigned char[]> bytes;
    std::size_t size = 0;                      // of bytes
    // The blocks sequence q takes to append one position once swapped in (as blocks_to_append):
    // one when its length fills its blocks or its last block is shared with another saved one.
    int64_t blocks_to_append_one(size_t q, int64_t block_size) const;
  };
  // Saves `seqs` (open, distinct) and closes them: their blocks go back to the pool as close()'s.
  // Throws sppo::Error, the cache unchanged, when the host memory cannot be had.
  Swapped swap_out(const std::vector<int>& seqs);
  // Opens one new sequence per saved one (in order, ids returned) on free blocks holding the saved
  // bytes. Throws when fewer than `s.blocks` blocks or sequences are free.
  std::vector<int> swap_in(const Swapped& s);
  // Host bytes one saved block takes (all layers' K and V).
  std::size_t block_bytes() const;

  // Device views for a decode step: the pools of layer l, and the block tables (uploaded by
  // sync_tables, rows = sequence ids, table_stride() entries each).
  Tensor k_pool(int64_t layer) const;
  Tensor v_pool(int64_t layer) const;
  const Tensor& tables() const { return d_tables_; }
  void sync_tables();

  int64_t block_size() const { return bs_; }
  int64_t num_blocks() const { return num_blocks_; }   // blocks sequences can get
  int64_t pool_blocks() const { return pool_blocks_; } // blocks in the pools (+ the scratch blocks)
  int64_t table_rows() const { return table_rows_; }   // rows of tables() (+ the scratch row)
  int64_t padding_slots() const { return padding_slots_; }
  // The padding rows' table row and K/V slots (i < padding_slots()).
  int32_t scratch_row() const;
  int32_t scratch_slot(int64_t i) const;
  int64_t table_stride() const { return stride_; }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  // Host view of a sequence's blocks and a block's holders (tests).
  std::vector<int32_t> blocks_of(int seq) const;
  int refcount(int32_t block) const { return ref_[static_cast<size_t>(block)]; }

 private:
  int32_t take_block();
  void drop_block(int32_t b);

  std::shared_ptr<Backend> be_;
  int64_t layers_, kw_, bs_, num_blocks_, stride_, max_seqs_, padding_slots_, pool_blocks_, table_rows_;
  DType dtype_;
  Buffer pools_;      // [layers][k, v][num_blocks * bs][kw]
  Buffer tables_buf_;
  Tensor d_tables_;
  std::vector<int32_t> tables_;  // [max_seqs][stride], -1 unused
  std::vector<int64_t> len_;
  std::vector<uint8_t> open_;
  std::vector<int> ref_;
  std::vector<int32_t> free_;
};

}  // namespace sppo
