// Where every parameter lives (CONTRACT): one arena for all weights, and the same element offsets
// in the gradient and optimizer-state arenas, so an optimizer steps over one flat range and ZeRO-1
// is a sub-range.
//
// Order: the order in which backward finishes each parameter's gradient: the head (lm_head, or
// score for a reward model), the final norm, layers L-1 down to 0, the token embedding last (it
// is finished only at the end, also when tied to the head). So "gradients final so far" is always
// a prefix of the arena: buckets of that prefix can be all-reduced while backward continues.
//
// Names are Hugging Face's:
//   model.embed_tokens.weight [V, H]
//   model.layers.{i}.input_layernorm.weight [H]
//   model.layers.{i}.self_attn.{q,k,v,o}_proj.weight   q [nh*hd, H], k/v [nkv*hd, H], o [H, nh*hd]
//   model.layers.{i}.post_attention_layernorm.weight [H]
//   model.layers.{i}.mlp.{gate,up}_proj.weight [I, H], mlp.down_proj.weight [H, I]
//   model.norm.weight [H]
//   lm_head.weight [V, H]           (absent when tie_word_embeddings)
//   score.weight [num_labels, H]    (sequence classification instead of lm_head)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/llama_config.h"

namespace sppo {

// Offsets are multiples of this many elements (256 bytes of fp32).
constexpr int64_t kParamAlign = 64;

struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t numel = 0;
  int64_t offset = 0;  // elements from the arena start
  int layer = -1;      // decoder layer, or -1
};

// Appends a parameter of `shape` at the end of an arena layout (offsets aligned to kParamAlign);
// returns its index. Shared by every model's layout (ParamLayout, PairRmLayout).
int append_param(std::vector<ParamSpec>& params, int64_t& total, std::string name, std::vector<int64_t> shape,
                 int layer);

class ParamLayout {
 public:
  struct Layer {
    int ln1, q, k, v, o, ln2, gate, up, down;
  };

  explicit ParamLayout(const LlamaConfig& c);

  const std::vector<ParamSpec>& params() const { return params_; }
  const ParamSpec& operator[](int i) const { return params_[static_cast<size_t>(i)]; }
  int64_t total() const { return total_; }  // elements, alignment gaps included
  int64_t count() const;                    // parameters, gaps excluded
  int find(const std::string& name) const;  // -1 if absent

  int embedding() const { return emb_; }
  int final_norm() const { return norm_; }
  int head() const { return head_; }  // lm_head, score, or the embedding when tied
  const Layer& layer(int64_t l) const { return layers_[static_cast<size_t>(l)]; }
  // End (elements) of the prefix that is final once backward has finished layer l (l = L: the
  // head and final norm; l = -1: everything).
  int64_t ready_after_layer(int64_t l) const;

 private:
  std::vector<ParamSpec> params_;
  std::vector<Layer> layers_;
  int emb_ = -1, norm_ = -1, head_ = -1;
  int64_t total_ = 0;
  std::vector<int64_t> layer_end_;  // end offset of layer l's block
  int64_t head_end_ = 0;
};

}  // namespace sppo
