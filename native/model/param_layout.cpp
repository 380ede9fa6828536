// ParamLayout (model/param_layout.h).
#include "model/param_layout.h"

#include "core/error.h"

namespace sppo {

int append_param(std::vector<ParamSpec>& params, int64_t& total, std::string name, std::vector<int64_t> shape,
                 int layer) {
  ParamSpec p;
  p.name = std::move(name);
  p.shape = std::move(shape);
  p.numel = 1;
  for (auto d : p.shape) p.numel *= d;
  p.offset = total;
  p.layer = layer;
  total += (p.numel + kParamAlign - 1) / kParamAlign * kParamAlign;
  params.push_back(std::move(p));
  return static_cast<int>(params.size() - 1);
}

ParamLayout::ParamLayout(const LlamaConfig& c) {
  validate_config(c);
  const int64_t V = c.vocab_size, H = c.hidden_size, I = c.intermediate_size;
  const int64_t qw = c.num_heads * c.head_dim, kw = c.num_kv_heads * c.head_dim;
  auto add = [&](std::string name, std::vector<int64_t> shape, int layer) {
    return append_param(params_, total_, std::move(name), std::move(shape), layer);
  };
  if (c.sequence_classification) head_ = add("score.weight", {c.num_labels, H}, -1);
  else if (!c.tie_word_embeddings) head_ = add("lm_head.weight", {V, H}, -1);
  norm_ = add("model.norm.weight", {H}, -1);
  head_end_ = total_;
  layers_.resize(static_cast<size_t>(c.num_layers));
  layer_end_.resize(static_cast<size_t>(c.num_layers));
  for (int64_t l = c.num_layers - 1; l >= 0; --l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const int li = static_cast<int>(l);
    Layer& L = layers_[static_cast<size_t>(l)];
    // Within a layer, in the order backward finishes them.
    L.down = add(p + "mlp.down_proj.weight", {H, I}, li);
    L.up = add(p + "mlp.up_proj.weight", {I, H}, li);
    L.gate = add(p + "mlp.gate_proj.weight", {I, H}, li);
    L.ln2 = add(p + "post_attention_layernorm.weight", {H}, li);
    L.o = add(p + "self_attn.o_proj.weight", {H, qw}, li);
    L.v = add(p + "self_attn.v_proj.weight", {kw, H}, li);
    L.k = add(p + "self_attn.k_proj.weight", {kw, H}, li);
    L.q = add(p + "self_attn.q_proj.weight", {qw, H}, li);
    L.ln1 = add(p + "input_layernorm.weight", {H}, li);
    layer_end_[static_cast<size_t>(l)] = total_;
  }
  emb_ = add("model.embed_tokens.weight", {V, H}, -1);
  if (head_ < 0) head_ = emb_;
}

int64_t ParamLayout::count() const {
  int64_t n = 0;
  for (const auto& p : params_) n += p.numel;
  return n;
}

int ParamLayout::find(const std::string& name) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].name == name) return static_cast<int>(i);
  return -1;
}

int64_t ParamLayout::ready_after_layer(int64_t l) const {
  const int64_t L = static_cast<int64_t>(layers_.size());
  if (l >= L) return head_end_;  // tied: the head's gradient is in the embedding, still open at the end
  if (l < 0) return total_;
  return layer_end_[static_cast<size_t>(l)];
}

}  // namespace sppo
