// Where every PairRM parameter lives (CONTRACT): one arena for all weights, in the order of
// llm-blender's DebertaV2PairRM state dict, with Hugging Face's names (what TypeScript checks the
// safetensors against, tensor by tensor):
//   pretrained_model.embeddings.word_embeddings.weight [V, H]
//   pretrained_model.embeddings.LayerNorm.{weight,bias} [H]
//   pretrained_model.encoder.layer.{i}.attention.self.{query,key,value}_proj.{weight [H, H], bias [H]}
//   pretrained_model.encoder.layer.{i}.attention.output.dense.{weight [H, H], bias [H]}
//   pretrained_model.encoder.layer.{i}.attention.output.LayerNorm.{weight,bias} [H]
//   pretrained_model.encoder.layer.{i}.intermediate.dense.{weight [I, H], bias [I]}
//   pretrained_model.encoder.layer.{i}.output.dense.{weight [H, I], bias [H]}
//   pretrained_model.encoder.layer.{i}.output.LayerNorm.{weight,bias} [H]
//   pretrained_model.encoder.rel_embeddings.weight [2 span, H]
//   pretrained_model.encoder.LayerNorm.{weight,bias} [H]        (only with norm_rel_embeddings)
//   head_layer.1.{weight [H, 2H], bias [H]}                      (Linear(2H, H), then tanh)
//   head_layer.4.{weight [tasks, H], bias [tasks]}               (Linear(H, tasks))
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/pairrm_config.h"
#include "model/param_layout.h"

namespace sppo {

class PairRmLayout {
 public:
  struct Linear {
    int w = -1, b = -1;
  };
  struct Norm {
    int w = -1, b = -1;
  };
  struct Layer {
    Linear q, k, v, attn_out, inter, out;
    Norm attn_norm, out_norm;
  };

  explicit PairRmLayout(const PairRmConfig& c);

  const std::vector<ParamSpec>& params() const { return params_; }
  const ParamSpec& operator[](int i) const { return params_[static_cast<size_t>(i)]; }
  int64_t total() const { return total_; }  // elements, alignment gaps included
  int find(const std::string& name) const;  // -1 if absent

  int word_embeddings = -1, rel_embeddings = -1;
  Norm embedding_norm, rel_norm;  // rel_norm: -1 without norm_rel_embeddings
  Linear head1, head2;
  const Layer& layer(int64_t l) const { return layers_[static_cast<size_t>(l)]; }

 private:
  std::vector<ParamSpec> params_;
  std::vector<Layer> layers_;
  int64_t total_ = 0;
};

}  // namespace sppo
