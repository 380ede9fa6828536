// Private state of PairRmModel shared by its .cpp files (pairrm_model.cpp: weights, batch checks
// and upload, plans; deberta_encoder.cpp: the encoder forward; pairrm_head.cpp: the head and
// compare()).
#pragma once
#include <memory>
#include <vector>

#include "backend/buffer.h"
#include "backend/workspace.h"
#include "model/pairrm_model.h"

namespace sppo {

struct PairRmModel::Impl {
  Impl(std::shared_ptr<Backend> be, const PairRmConfig& c, Precision p);

  std::shared_ptr<Backend> be;
  PairRmConfig cfg;
  Precision prec;
  Dtypes dt;
  PairRmLayout layout;
  Buffer weights;
  CancelPoint cancel;

  // The last batch: sizes, host copies, device tensors.
  int64_t S = 0, N = 0, max_len = 0;
  int64_t rel_lo = 0, rel_rows = 0;  // relative-embedding rows [rel_lo, rel_lo + rel_rows) are used
  std::vector<int32_t> ids_h, start_h, rel_h, head_rows_h;
  Workspace batch_ws, act_ws, head_ws;
  Tensor ids, start, rel_index, head_rows;
  // Activations: x (the layer input, then its output), the projections, the attention output,
  // the block outputs, the MLP's inner rows, the used relative embeddings and their projections.
  Tensor xa, xb, q, k, v, att, x1, ffn, rel, pos_q, pos_k;

  Tensor W(int i) const;
  void prepare_batch(const PairBatch& b);
  void plan_activations();
  // Leaves the last hidden states in xa.
  void encode();
  void layer_forward(int64_t l);
  // [2S * tasks] head outputs (h(e_s; e_1), h(e_s; e_2) per sequence), in backend memory.
  Tensor head();
  void download_as(const Tensor& src, const Tensor& host_out, int64_t n) const;
};

}  // namespace sppo
