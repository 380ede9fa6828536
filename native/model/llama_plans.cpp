// LlamaModel's workspace layouts (model/llama_plans.h), moved here from the model's .cpp files so
// that the model and the static planner share them.
#include "model/llama_plans.h"

#include <algorithm>

namespace sppo {

int64_t head_chunk_rows(const LlamaConfig& c, int64_t rows) {
  return std::max<int64_t>(1, std::min<int64_t>(rows, kHeadChunkLogits / c.vocab_size));
}

ArenaPlan llama_batch_plan(const LlamaConfig& c, const Dtypes& dt, int64_t N) {
  const int64_t half = c.head_dim / 2;
  ArenaPlan plan;
  plan.add("ids", DType::I32, N);
  plan.add("mask", DType::U8, N);
  plan.add("positions", DType::I32, N);
  plan.add("cos", dt.act, N * half);
  plan.add("sin", dt.act, N * half);
  return plan;
}

namespace {
// One layer's activation views (all, or only x); read back by llama_model.cpp's read_layer.
void add_layer(ArenaPlan& plan, const LlamaConfig& c, const Dtypes& dt, int64_t N, bool full, bool with_x) {
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  const int64_t qw = c.num_heads * c.head_dim, kw = c.num_kv_heads * c.head_dim;
  if (with_x) plan.add("x", dt.act, N * H);
  if (!full) return;
  plan.add("xn1", dt.act, N * H);
  plan.add("rstd1", dt.stat, N);
  plan.add("q", dt.act, N * qw);
  plan.add("k", dt.act, N * kw);
  plan.add("v", dt.act, N * kw);
  plan.add("att", dt.act, N * qw);
  plan.add("lse", dt.stat, N * c.num_heads);
  plan.add("x1", dt.act, N * H);
  plan.add("xn2", dt.act, N * H);
  plan.add("rstd2", dt.stat, N);
  plan.add("gate", dt.act, N * I);
  plan.add("up", dt.act, N * I);
  plan.add("act", dt.act, N * I);
}
}  // namespace

ArenaPlan llama_activation_plan(const LlamaConfig& c, const Dtypes& dt, int64_t N, bool keep, bool checkpointing) {
  ArenaPlan plan;
  const bool full = keep && !checkpointing;
  const int64_t H = c.hidden_size;
  if (keep)
    for (int64_t l = 0; l < c.num_layers; ++l) add_layer(plan, c, dt, N, full, true);
  if (!full) add_layer(plan, c, dt, N, true, false);  // the scratch set
  if (!keep) {
    plan.add("xa", dt.act, N * H);
    plan.add("xb", dt.act, N * H);
  }
  // xL (the last layer's output) and hidden (the final norm's) have their own buffers only when
  // every layer is kept. Otherwise they live in the scratch set's xn2 and xn1: the last layer's
  // forward has read xn2 (its gate and up products) before it writes its output, xn1 is dead after
  // q, k and v, and nothing uses the scratch again until a checkpointed backward recomputes the
  // last layer, after the head and the final norm's backward have read both for the last time.
  if (full) {
    plan.add("xL", dt.act, N * H);
    plan.add("hidden", dt.act, N * H);
  }
  plan.add("rstdF", dt.stat, N);
  return plan;
}

ArenaPlan llama_backward_plan(const LlamaConfig& c, const Dtypes& dt, int64_t N) {
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  const int64_t qw = c.num_heads * c.head_dim, kw = c.num_kv_heads * c.head_dim;
  ArenaPlan plan;
  plan.add("dx", dt.act, N * H);
  plan.add("dxn", dt.act, N * H);
  plan.add("dact", dt.act, N * I);
  plan.add("dgate", dt.act, N * I);
  plan.add("dup", dt.act, N * I);
  plan.add("datt", dt.act, N * qw);
  plan.add("dq", dt.act, N * qw);
  plan.add("dk", dt.act, N * kw);
  plan.add("dv", dt.act, N * kw);
  // No d_hidden: the head's gradient of the hidden states is dxn's buffer (used up by the final
  // norm's backward before a layer's backward first writes dxn). No output for a checkpointed
  // layer's recomputation either: backward needs its activations, not its output.
  return plan;
}

ArenaPlan llama_logprob_head_plan(const LlamaConfig& c, const Dtypes& dt, int64_t n, int64_t B) {
  const int64_t H = c.hidden_size, V = c.vocab_size, chunk = head_chunk_rows(c, n);
  ArenaPlan plan;
  plan.add("row", DType::I32, n);
  plan.add("seq", DType::I32, n);
  plan.add("label", DType::I32, n);
  plan.add("tok_lp", dt.stat, n);
  plan.add("lse", dt.stat, n);
  plan.add("g", dt.stat, n);
  plan.add("seq_out", dt.stat, B);
  plan.add("h", dt.act, chunk * H);
  plan.add("logits", dt.act, chunk * V);
  plan.add("dh", dt.act, chunk * H);
  return plan;
}

ArenaPlan llama_logits_plan(const LlamaConfig& c, const Dtypes& dt, int64_t N) {
  ArenaPlan plan;
  plan.add("logits", dt.act, head_chunk_rows(c, N) * c.vocab_size);
  return plan;
}

ArenaPlan llama_score_head_plan(const LlamaConfig& c, const Dtypes& dt, int64_t B) {
  const int64_t H = c.hidden_size, nl = c.num_labels;
  ArenaPlan plan;
  plan.add("rows", DType::I32, B);
  plan.add("h", dt.act, B * H);
  plan.add("scores", dt.act, B * nl);
  plan.add("dh", dt.act, B * H);
  return plan;
}

ArenaPlan llama_decode_plan(const LlamaConfig& c, const Dtypes& dt, int64_t R, int64_t items) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, half = c.head_dim / 2;
  const int64_t qw = c.num_heads * c.head_dim, kw = c.num_kv_heads * c.head_dim;
  ArenaPlan plan;
  for (const char* name : {"ids", "pos", "seq", "len", "slots"}) plan.add(name, DType::I32, R);
  plan.add("last", DType::I32, items);
  plan.add("cos", dt.act, R * half);
  plan.add("sin", dt.act, R * half);
  plan.add("x", dt.act, R * H);
  plan.add("xn", dt.act, R * H);
  plan.add("rstd", dt.stat, R);
  plan.add("q", dt.act, R * qw);
  plan.add("k", dt.act, R * kw);
  plan.add("v", dt.act, R * kw);
  plan.add("att", dt.act, R * qw);
  plan.add("gate", dt.act, R * I);
  plan.add("up", dt.act, R * I);
  plan.add("xl", dt.act, items * H);
  plan.add("hl", dt.act, items * H);
  plan.add("rl", dt.stat, items);
  return plan;
}

ArenaPlan llama_decode_bucket_plan(const LlamaConfig& c, const Dtypes& dt, int64_t rows) {
  ArenaPlan plan = llama_decode_plan(c, dt, rows, rows);
  plan.add("logits", dt.act, rows * c.vocab_size);
  return plan;
}

}  // namespace sppo
