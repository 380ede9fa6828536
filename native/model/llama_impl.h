// Private state of LlamaModel shared by its .cpp files (llama_model.cpp: weights, batch upload,
// decoder forward and backward; llama_heads.cpp: the heads and the training entry points;
// llama_decode.cpp: KV-cache decoding).
#pragma once
#include <memory>
#include <vector>

#include "backend/buffer.h"
#include "backend/workspace.h"
#include "model/llama_model.h"

namespace sppo {

// One layer's activations over N rows. With checkpointing only x is stored per layer and the rest
// lives in one scratch set that each layer's recomputation refills.
struct LayerActs {
  Tensor x;  // the layer's input (a view of the previous layer's output)
  Tensor xn1, rstd1, q, k, v, att, lse, x1, xn2, rstd2, gate, up, act;
};

// Temporaries of one layer's backward; d_hidden (the head's gradient of the hidden states) is dxn's
// buffer, used up by the final norm's backward before any layer writes dxn.
struct BackwardTemps {
  Tensor dx, dxn, dact, dgate, dup, datt, dq, dk, dv, d_hidden;
};

// Response rows of a log-prob head: hidden row, sequence, label, position (host and device).
struct HeadRows {
  std::vector<int32_t> row, seq, label, pos;
  Tensor d_row, d_seq, d_label;  // device copies
  int64_t n() const { return static_cast<int64_t>(row.size()); }
};

struct LlamaModel::Impl {
  Impl(std::shared_ptr<Backend> be, const LlamaConfig& c, Precision p);

  std::shared_ptr<Backend> be;
  LlamaConfig cfg;
  Precision prec;
  Dtypes dt;
  ParamLayout layout;
  Buffer weights;
  Buffer inv_freq;  // F32 [head_dim / 2]
  bool checkpointing = false;
  CancelPoint cancel;

  // The last batch: host copies and device tensors (ids with -1 on padding, mask, positions, rope).
  int64_t B = 0, T = 0, N = 0;
  std::vector<int32_t> ids_h, pos_h;
  std::vector<uint8_t> mask_h;
  Workspace batch_ws, act_ws, head_ws, bwd_ws, decode_ws;
  Tensor ids, mask, pos, cos, sin;
  // Activations of the last forward.
  std::vector<LayerActs> layers;
  LayerActs scratch;
  Tensor xa, xb, xL, hidden, rstdF;
  bool kept = false, kept_full = false;

  // The head of the last training forward.
  TrainHead head_kind = TrainHead::LogProbs;
  HeadRows rows;
  int64_t chunk = 0;
  // Chunk buffers: h [chunk, H], logits [chunk, V] (held for backward when one chunk covers all
  // rows), dh [chunk, H]; per row: tok_lp, lse, g; per sequence: seq_out.
  Tensor tok_lp, lse, g_rows, seq_out, head_h, head_logits, head_dh;
  bool head_cached = false;
  std::vector<int32_t> score_rows_h;
  Tensor score_rows, scores_out;

  Tensor W(int i) const;            // parameter i of the weights
  static Tensor G(const Tensor& grads, const ParamSpec& p);  // its gradient view

  void prepare_batch(const TokenBatch& b);
  void plan_activations(bool keep, bool training);
  // out empty: the activations only (a checkpointed recomputation), not the layer's output.
  void layer_forward(int64_t l, const Tensor& x, LayerActs& a, const Tensor& out);
  void layer_backward(int64_t l, const LayerActs& a, const BackwardTemps& t, const Tensor& grads, const Tensor& dx);
  void forward(bool keep);
  void backward(const Tensor& d_hidden, const Tensor& grads, const BackwardTemps& t, const BackwardHooks* hooks);
  BackwardTemps plan_backward();
  // Log-prob head over rows (forward): fills tok_lp; keep: hold a single chunk's logits.
  void logprob_head_forward(bool keep);
  void logprob_head_backward(const Tensor& grad_rows, const Tensor& d_hidden, const Tensor& grads);
  HeadRows response_rows(const TokenBatch& b) const;
  std::vector<int32_t> last_rows(const TokenBatch& b) const;

  void download_as(const Tensor& src, const Tensor& host_out, int64_t n) const;
};

}  // namespace sppo
