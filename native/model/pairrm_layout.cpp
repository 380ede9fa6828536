// PairRmLayout (model/pairrm_layout.h).
#include "model/pairrm_layout.h"

#include "core/error.h"

namespace sppo {

PairRmLayout::PairRmLayout(const PairRmConfig& c) {
  validate_config(c);
  const int64_t V = c.vocab_size, H = c.hidden_size, I = c.intermediate_size;
  auto add = [&](std::string name, std::vector<int64_t> shape, int layer) {
    return append_param(params_, total_, std::move(name), std::move(shape), layer);
  };
  auto linear = [&](const std::string& name, int64_t out, int64_t in, int layer) {
    Linear l;
    l.w = add(name + ".weight", {out, in}, layer);
    l.b = add(name + ".bias", {out}, layer);
    return l;
  };
  auto norm = [&](const std::string& name, int layer) {
    Norm n;
    n.w = add(name + ".weight", {H}, layer);
    n.b = add(name + ".bias", {H}, layer);
    return n;
  };
  const std::string m = "pretrained_model.";
  word_embeddings = add(m + "embeddings.word_embeddings.weight", {V, H}, -1);
  embedding_norm = norm(m + "embeddings.LayerNorm", -1);
  layers_.resize(static_cast<size_t>(c.num_layers));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = m + "encoder.layer." + std::to_string(l) + ".";
    const int li = static_cast<int>(l);
    Layer& L = layers_[static_cast<size_t>(l)];
    L.q = linear(p + "attention.self.query_proj", H, H, li);
    L.k = linear(p + "attention.self.key_proj", H, H, li);
    L.v = linear(p + "attention.self.value_proj", H, H, li);
    L.attn_out = linear(p + "attention.output.dense", H, H, li);
    L.attn_norm = norm(p + "attention.output.LayerNorm", li);
    L.inter = linear(p + "intermediate.dense", I, H, li);
    L.out = linear(p + "output.dense", H, I, li);
    L.out_norm = norm(p + "output.LayerNorm", li);
  }
  rel_embeddings = add(m + "encoder.rel_embeddings.weight", {2 * relative_span(c), H}, -1);
  if (c.norm_rel_embeddings) rel_norm = norm(m + "encoder.LayerNorm", -1);
  head1 = linear("head_layer.1", H, 2 * H, -1);
  head2 = linear("head_layer.4", c.num_tasks, H, -1);
}

int PairRmLayout::find(const std::string& name) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].name == name) return static_cast<int>(i);
  return -1;
}

}  // namespace sppo
