// Private pieces of LlamaEngine shared by its .cpp files (params/forward/backward, heads, decode).
#pragma once
#include <vector>

#include "model/llama_engine.h"

namespace sppo {

// Activations of one layer over N rows: everything backward needs.
template <typename T>
struct LlamaEngine<T>::Acts {
  std::vector<T> x, xn1, rstd1, q, k, v, att, lse, x1, xn2, rstd2, gate, up, act;
  void release() {
    for (auto* buf : {&x, &xn1, &rstd1, &q, &k, &v, &att, &lse, &x1, &xn2, &rstd2, &gate, &up, &act})
      std::vector<T>().swap(*buf);
  }
  void resize(int64_t N, const LlamaConfig& c, bool full) {
    x.resize(N * c.hidden_size);
    if (!full) return;
    const int64_t qw = c.num_heads * c.head_dim, kw = c.num_kv_heads * c.head_dim;
    xn1.resize(N * c.hidden_size);
    rstd1.resize(N);
    q.resize(N * qw);
    k.resize(N * kw);
    v.resize(N * kw);
    att.resize(N * qw);
    lse.resize(N * c.num_heads);
    x1.resize(N * c.hidden_size);
    xn2.resize(N * c.hidden_size);
    rstd2.resize(N);
    gate.resize(N * c.intermediate_size);
    up.resize(N * c.intermediate_size);
    act.resize(N * c.intermediate_size);
  }
};

// Rows whose next-token log-probability is needed: hidden row, label, sequence.
template <typename T>
struct LlamaEngine<T>::Rows {
  std::vector<int64_t> row, seq;
  std::vector<int32_t> label, pos;  // pos: position t of the label token in its row
};

}  // namespace sppo
