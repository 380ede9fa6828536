// The backend op checks (backend/op_checks.h) under both backends' rules, on the host: the CUDA
// rules need no device to be checked, so the messages the *_cuda suites compare with the CPU's are
// pinned here too, in every build. Covers: an argument one element short (or of the wrong index
// type) gives the same message under both rules and names the argument, for every op, at random
// sizes; and each difference between the rules, by its message; the bf16 gradient arena's types
// (BF16 dtable / dw beside BF16 inputs, BF16 g for the norm and the steps beside F32 state).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backend/op_checks.h"
#include "cuda_compare.h"
#include "testing.h"

using namespace sppo;
using sppo_test::message_of;

namespace {

struct Arg {
  const char* name;
  DType dtype;
  int64_t n;
};

// Host memory for the tensors of one call (the checks read nothing but table_rows on the CPU).
struct Host {
  std::vector<std::vector<int32_t>> keep;
  Tensor make(DType dt, int64_t n) {
    keep.emplace_back(static_cast<std::size_t>(n * 2 + 1), 0);  // 8 bytes an element at most
    return Tensor(keep.back().data(), dt, n);
  }
};

using Call = std::function<void(const OpRules&, const std::vector<Tensor>&)>;
struct OpCase {
  const char* op;
  std::vector<Arg> args;
  Call call;
};

LossTensors loss_in(const std::vector<Tensor>& t) { return {t[0], t[1], t[2], t[3], t[4], t[5], t[6]}; }
LossResultTensors loss_out(const std::vector<Tensor>& t) { return {t[7], t[8], t[9], t[10], t[11], t[12], 1.0}; }

// Every op of the table with its arguments at the sizes it needs, from random shapes: activations
// and weights of type A (F32 or BF16), statistics, weight gradients and loss columns wide(A), the
// state ops and the sampling weights F32.
std::vector<OpCase> op_cases(sppo_test::Rng& rng, DType A) {
  const int64_t n = rng.integer(1, 9), H = rng.integer(1, 6), V = rng.integer(2, 7), K = rng.integer(1, 5);
  const int64_t half = rng.integer(1, 4), heads = rng.integer(1, 3), hd = 2 * half;
  const AttnShape as{rng.integer(1, 3), rng.integer(1, 4), 2 * heads, heads, hd, 1.0};
  const int64_t N = as.B * as.T, qw = as.nh * as.hd, kw = as.nkv * as.hd;
  const RelAttnShape rs{rng.integer(1, 3), n, heads, hd, rng.integer(1, 4), rng.integer(1, 5), true, true, 1.0};
  const int64_t rw = rs.nh * rs.hd, pool_rows = rng.integer(1, 6);
  const PagedShape ps{n, 2 * heads, heads, hd, 2, rng.integer(1, 3), 3, 1.0};
  const int64_t pkw = ps.nkv * ps.hd, pqw = ps.nh * ps.hd, prows = ps.num_blocks * ps.block_size;
  const DType F = DType::F32, I = DType::I32, U = DType::U8, D = DType::F64, W = wide(A), B = DType::BF16;
  static const SampleStream streams[16] = {};
  return {
      {"embedding_forward", {{"table", A, V * H}, {"ids", I, n}, {"out", A, n * H}},
       [=](const OpRules& r, const std::vector<Tensor>& t) { check_embedding_forward(t[0], V, H, t[1], n, t[2], r); }},
      {"embedding_backward", {{"dout", A, n * H}, {"ids", I, n}, {"dtable", W, V * H}},
       [=](const OpRules& r, const std::vector<Tensor>& t) { check_embedding_backward(t[0], t[1], n, V, H, t[2], r); }},
      {"matmul", {{"A", A, n * K}, {"B", A, K * H}, {"C", A, n * H}},
       [=](const OpRules& r, const std::vector<Tensor>& t) { check_matmul(t[0], t[1], t[2], n, H, K, r); }},
      {"rmsnorm_forward", {{"x", A, n * H}, {"w", A, H}, {"y", A, n * H}, {"rstd", W, n}},
       [=](const OpRules& r, const std::vector<Tensor>& t) { check_rmsnorm_forward(t[0], t[1], n, H, t[2], t[3], r); }},
      {"rmsnorm_backward",
       {{"x", A, n * H}, {"w", A, H}, {"rstd", W, n}, {"dy", A, n * H}, {"dx", A, n * H}, {"dw", W, H}},
       [=](const OpRules& r, const std::vector<Tensor>& t) {
         check_rmsnorm_backward(t[0], t[1], t[2], t[3], n, H, t[4], t[5], r);
       }},
      {"layernorm_forward", {{"x", A, n * H}, {"w", A, H}, {"b", A, H}, {"y", A, n * H}},
       [=](const OpRules& r, const std::vector<Tensor>& t) {
         check_layernorm_forward(t[0], t[1], t[2], n, H, 1e-5, t[3], r);
       }},
      {"bias_act", {{"x", A, n * H}, {"b", A, H}, {"y", A, n * H}},
       [=](const OpRules& r, const std::vector<Tensor>& t) {
         check_bias_act(t[0], t[1], n, H, Activation::Gelu, t[2], r);
       }},
      {"rope_tables", {{"inv_freq", F, half}, {"positions", I, n}, {"cos", A, n * half}, {"sin", A, n * half}},
       [=](const OpRules& r, const std::vector<Tensor>& t) { check_rope_tables(t[0], half, t[1], n, t[2], t[3], r); }},
      {"rope_apply", {{"x", A, n * heads * hd}, {"cos", A, n * half}, {"sin", A, n * half}},
       [=](const OpRules& r, const std::vector<Tensor>& t) { check_rope_apply(t[0], n, heads, hd, t[1], t[2], r); }},
      {"swiglu_forward", {{"gate", A, n}, {"up", A, n}, {"act", A, n}},
       [=](const OpRules& r, const std::vector<Tensor>& t) { check_swiglu_forward(t[0], t[1], n, t[2], r); }},
      {"swiglu_backward", {{"gate", A, n}, {"up", A, n}, {"dact", A, n}, {"dgate", A, n}, {"dup", A, n}},
       [=](const OpRules& r, const std::vector<Tensor>& t) {
         check_swiglu_backward(t[0], t[1], t[2], n, t[3], t[4], r);
       }},
      {"attention_forward",
       {{"q", A, N * qw}, {"k", A, N * kw}, {"v", A, N * kw}, {"mask", U, N}, {"out", A, N * qw}, {"lse", W, N * as.nh}},
       [=](const OpRules& r, const std::vector<Tensor>& t) {
         check_attention_forward(as, t[0], t[1], t[2], t[3], t[4], t[5], r);
       }},
      {"attention_backward",
       {{"q", A, N * qw}, {"k", A, N * kw}, {"v", A, N * kw}, {"mask", U, N}, {"out", A, N * qw}, {"lse", W, N * as.nh},
        {"dout", A, N * qw}, {"dq", A, N * qw}, {"dk", A, N * kw}, {"dv", A, N * kw}},
       [=](const OpRules& r, const std::vector<Tensor>& t) {
         check_attention_backward(as, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], r);
       }},
      {"disentangled_attention",
       {{"q", A, rs.N * rw}, {"k", A, rs.N * rw}, {"v", A, rs.N * rw}, {"pos_q", A, rs.P * rw},
        {"pos_k", A, rs.P * rw}, {"rel_index", I, 2 * rs.max_len - 1}, {"start", I, rs.S + 1}, {"out", A, rs.N * rw}},
       [=](const OpRules& r, const std::vector<Tensor>& t) {
         check_disentangled_attention(rs, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], r);
       }},
      {"kv_write", {{"k", A, n * kw}, {"v", A, n * kw}, {"slots", I, n}, {"k_pool", A, pool_rows * kw},
                    {"v_pool", A, pool_rows * kw}},
       [=](const OpRules& r, const std::vector<Tensor>& t) {
         check_kv_write(t[0], t[1], t[2], n, kw, pool_rows, t[3], t[4], r);
       }},
      // tables last and never shortened: only the CPU sizes it (see the rules' differences below).
      {"attention_decode",
       {{"q", A, ps.R * pqw}, {"k_pool", A, prows * pkw}, {"v_pool", A, prows * pkw}, {"table_rows", I, ps.R},
        {"lengths", I, ps.R}, {"out", A, ps.R * pqw}, {"tables", I, ps.table_stride}},
       [=](const OpRules& r, const std::vector<Tensor>& t) {
         check_attention_decode(ps, t[0], t[1], t[2], t[6], t[3], t[4], t[5], r);
       }},
      {"gather_rows", {{"src", A, V * H}, {"idx", I, n}, {"dst", A, n * H}},
       [=](const OpRules& r, const std::vector<Tensor>& t) { check_gather_rows(t[0], V, t[1], n, H, t[2], r); }},
      {"scatter_add_rows", {{"src", A, n * H}, {"idx", I, n}, {"dst", A, V * H}},
       [=](const OpRules& r, const std::vector<Tensor>& t) { check_scatter_add_rows(t[0], t[1], n, H, V, t[2], r); }},
      {"segment_sum", {{"x", F, n}, {"seg", I, n}, {"out", F, K}},
       [=](const OpRules& r, const std::vector<Tensor>& t) { check_segment_sum(t[0], t[1], n, K, t[2], r); }},
      {"expand_segments", {{"x", F, K}, {"seg", I, n}, {"out", F, n}},
       [=](const OpRules& r, const std::vector<Tensor>& t) { check_expand_segments(t[0], t[1], n, K, t[2], r); }},
      {"logprob_forward", {{"labels", I, n}, {"logits", A, n * V}, {"token_logp", W, n}, {"lse", W, n}},
       [=](const OpRules& r, const std::vector<Tensor>& t) { check_logprob_forward(t[1], n, V, t[0], t[2], t[3], r); }},
      {"logprob_backward",
       {{"labels", I, n}, {"logits", A, n * V}, {"grad_token", W, n}, {"lse", W, n}, {"grad_logits", A, n * V}},
       [=](const OpRules& r, const std::vector<Tensor>& t) {
         check_logprob_backward(t[1], n, V, t[0], t[2], t[3], t[4], r);
       }},
      {"sppo_loss",
       {{"policy_chosen", W, n}, {"policy_rejected", W, n}, {"ref_chosen", W, n}, {"ref_rejected", W, n},
        {"chosen_probs", W, n}, {"chosen_probs_win", W, n}, {"chosen_probs_lose", W, n}, {"losses", W, n},
        {"grad_chosen", W, n}, {"grad_rejected", W, n}, {"rewards_chosen", W, n}, {"rewards_rejected", W, n},
        {"summary", D, 5}},
       [=](const OpRules& r, const std::vector<Tensor>& t) { check_sppo_loss(n, loss_in(t), loss_out(t), r); }},
      {"masked_sequence_sum", {{"token_logp", F, n * K}, {"mask", U, n * K}, {"seq_logp", F, n}},
       [=](const OpRules&, const std::vector<Tensor>& t) { check_masked_sequence_sum(t[0], t[1], n, K, t[2]); }},
      {"sample_weights", {{"logits", A, n * V}, {"w", F, n * V}},
       [=](const OpRules& r, const std::vector<Tensor>& t) { check_sample_weights(t[0], n, V, t[1], r); }},
      {"argmax_rows", {{"logits", A, n * V}, {"tokens", I, n}},
       [=](const OpRules& r, const std::vector<Tensor>& t) { check_argmax_rows(t[0], n, V, t[1], r); }},
      {"sample_pick", {{"w", F, n * V}, {"tokens", I, n}, {"logp", F, n}},
       [=](const OpRules&, const std::vector<Tensor>& t) { check_sample_pick(t[0], n, V, streams, t[1], t[2]); }},
      {"sum_squares", {{"g", F, n}, {"acc", D, 1}},
       [=](const OpRules& r, const std::vector<Tensor>& t) { check_sum_squares(t[0], n, t[1], r); }},
      {"rmsprop_step", {{"p", F, n}, {"g", F, n}, {"v", F, n}, {"sum_squares", D, 1}, {"weights16", B, n}},
       [=](const OpRules& r, const std::vector<Tensor>& t) { check_rmsprop_step(t[0], t[1], t[2], n, t[3], t[4], r); }},
      {"adamw_step", {{"p", F, n}, {"g", F, n}, {"m", F, n}, {"v", F, n}, {"sum_squares", D, 1}, {"weights16", B, n}},
       [=](const OpRules& r, const std::vector<Tensor>& t) {
         check_adamw_step(t[0], t[1], t[2], t[3], n, t[4], t[5], r);
       }},
  };
}

// The message of `c` with its arguments as given, but argument `bad` one element short (short) or,
// for an index or mask argument, F32 (wrong_type); "" when the call passes.
std::string run(const OpCase& c, const OpRules& r, std::size_t bad, bool wrong_type) {
  Host host;
  std::vector<Tensor> t;
  for (std::size_t i = 0; i < c.args.size(); ++i) {
    const Arg& a = c.args[i];
    if (i != bad) t.push_back(host.make(a.dtype, a.n));
    else if (wrong_type) t.push_back(host.make(DType::F32, a.n));
    else t.push_back(host.make(a.dtype, a.n - 1));
  }
  return message_of([&] { c.call(r, t); });
}

std::string shorten_message(const OpCase& c, std::size_t i) {
  return std::string(c.op) + ": " + c.args[i].name + " has " + std::to_string(c.args[i].n - 1) + " elements, needs " +
         std::to_string(c.args[i].n);
}

}  // namespace

TEST(good_arguments_pass_under_both_rules_in_f32_bf16_and_f16) {
  sppo_test::Rng rng(901);
  for (DType A : {DType::F32, DType::BF16, DType::F16})
  for (int round = 0; round < 20; ++round)
    for (const OpCase& c : op_cases(rng, A)) {
      const std::string cpu = run(c, cpu_op_rules(), c.args.size(), false);
      const std::string gpu = run(c, cuda_op_rules(), c.args.size(), false);
      if (!cpu.empty() || !gpu.empty()) std::printf("  %s: CPU '%s', CUDA '%s'\n", c.op, cpu.c_str(), gpu.c_str());
      CHECK(cpu.empty() && gpu.empty());
    }
}

TEST(a_short_or_mistyped_argument_gets_one_message_under_both_rules_in_f32_bf16_and_f16) {
  sppo_test::Rng rng(902);
  for (DType A : {DType::F32, DType::BF16, DType::F16})
  for (int round = 0; round < 20; ++round)
    for (const OpCase& c : op_cases(rng, A))
      for (std::size_t i = 0; i < c.args.size(); ++i) {
        if (std::string(c.op) == "attention_decode" && std::string(c.args[i].name) == "tables") continue;
        const std::string cpu = run(c, cpu_op_rules(), i, false);
        sppo_test::expect_same_error(c.op, cpu, run(c, cuda_op_rules(), i, false));
        if (cpu != shorten_message(c, i)) std::printf("  got '%s', want '%s'\n", cpu.c_str(), shorten_message(c, i).c_str());
        CHECK(cpu == shorten_message(c, i));
        const DType dt = c.args[i].dtype;
        if (dt != DType::I32 && dt != DType::U8) continue;
        const std::string want = std::string(c.op) + ": " + c.args[i].name + " must be " + dtype_name(dt) + " (got F32)";
        const std::string typed = run(c, cpu_op_rules(), i, true);
        sppo_test::expect_same_error(c.op, typed, run(c, cuda_op_rules(), i, true));
        CHECK(typed == want);
      }
}

TEST(the_compute_types_differ_by_backend_with_the_messages_the_cuda_suites_pin) {
  Host h;
  const OpRules &cpu = cpu_op_rules(), &gpu = cuda_op_rules();
  const Tensor x64 = h.make(DType::F64, 12), y64 = h.make(DType::F64, 12);
  const Tensor x16 = h.make(DType::BF16, 12), y16 = h.make(DType::BF16, 12);
  CHECK(check_bias_act(x64, Tensor(), 3, 4, Activation::Gelu, y64, cpu) == DType::F64);  // the fp64 twin
  CHECK_THROWS_WITH(check_bias_act(x64, Tensor(), 3, 4, Activation::Gelu, y64, gpu),
                    "bias_act: the CUDA backend computes in F32, BF16 or F16 (got F64)");
  CHECK(check_bias_act(x16, Tensor(), 3, 4, Activation::Gelu, y16, gpu) == DType::BF16);
  CHECK(check_bias_act(x16, Tensor(), 3, 4, Activation::Gelu, y16, cpu) == DType::BF16);  // emulated
  const Tensor x_half = h.make(DType::F16, 12), y_half = h.make(DType::F16, 12);
  // F16: PairRM's fp16 mode, emulated on the CPU; on CUDA the kernels without an F16 path refuse it.
  CHECK(check_bias_act(x_half, Tensor(), 3, 4, Activation::Gelu, y_half, cpu) == DType::F16);
  CHECK(check_bias_act(x_half, Tensor(), 3, 4, Activation::Gelu, y_half, gpu) == DType::F16);
  const Tensor i8 = h.make(DType::U8, 12), o8 = h.make(DType::U8, 12);
  CHECK_THROWS_WITH(check_bias_act(i8, Tensor(), 3, 4, Activation::Gelu, o8, cpu),
                    "bias_act: the CPU backend computes in F32, F64, BF16 or F16 (got U8)");
  // State ops: F32 or F64 on the CPU, F32 only on CUDA; BF16 on neither.
  const Tensor p16 = h.make(DType::BF16, 4), ss = h.make(DType::F64, 1), p64 = h.make(DType::F64, 4);
  const Tensor none;
  CHECK_THROWS_WITH(check_rmsprop_step(p16, p16, p16, 4, ss, none, gpu),
                    "rmsprop_step: the CUDA backend computes in F32 (got BF16)");
  CHECK_THROWS_WITH(check_rmsprop_step(p64, p64, p64, 4, ss, none, gpu),
                    "rmsprop_step: the CUDA backend computes in F32 (got F64)");
  CHECK(check_rmsprop_step(p64, p64, p64, 4, ss, none, cpu) == DType::F64);
  CHECK_THROWS_WITH(check_rmsprop_step(p16, p16, p16, 4, ss, none, cpu),
                    "rmsprop_step: the CPU backend computes in F32 or F64 (got BF16)");
  const Tensor p32 = h.make(DType::F32, 4), ss32 = h.make(DType::F32, 1);
  CHECK_THROWS_WITH(check_rmsprop_step(p32, p32, p32, 4, ss32, none, gpu), "rmsprop_step: sum_squares must be F64 (got F32)");
  // The bf16 weights an optimizer step may write: BF16, from an F32 master only, on both backends.
  for (const OpRules* r : {&cpu, &gpu}) {
    CHECK(check_rmsprop_step(p32, p32, p32, 4, ss, p16, *r) == DType::F32);
    CHECK(check_adamw_step(p32, p32, p32, p32, 4, ss, p16, *r) == DType::F32);
    CHECK_THROWS_WITH(check_rmsprop_step(p32, p32, p32, 4, ss, p32, *r), "rmsprop_step: weights16 must be BF16 (got F32)");
    CHECK_THROWS_WITH(check_adamw_step(p32, p32, p32, p32, 4, ss, p32, *r), "adamw_step: weights16 must be BF16 (got F32)");
  }
  CHECK_THROWS_WITH(check_rmsprop_step(p64, p64, p64, 4, ss, p16, cpu),
                    "rmsprop_step: weights16 needs an F32 master p (got F64)");
  CHECK_THROWS_WITH(check_adamw_step(p64, p64, p64, p64, 4, ss, p16, cpu),
                    "adamw_step: weights16 needs an F32 master p (got F64)");
  CHECK_THROWS_WITH(check_sum_squares(p32, 4, ss32, cpu), "sum_squares: acc must be F64");
}

TEST(statistics_and_weight_gradients_are_f32_under_bf16_and_the_compute_type_otherwise) {
  Host h;
  const OpRules &cpu = cpu_op_rules(), &gpu = cuda_op_rules();
  const AttnShape s{2, 3, 4, 2, 8, 1.0};
  const int64_t N = 6, qw = 32, kw = 16;
  auto attn = [&](DType dt, DType lse_dt, const OpRules& r) {
    return check_attention_forward(s, h.make(dt, N * qw), h.make(dt, N * kw), h.make(dt, N * kw),
                                   h.make(DType::U8, N), h.make(dt, N * qw), h.make(lse_dt, N * 4), r);
  };
  for (const OpRules* r : {&cpu, &gpu}) {
    CHECK(attn(DType::BF16, DType::F32, *r) == DType::BF16);
    CHECK_THROWS_WITH(attn(DType::BF16, DType::BF16, *r), "attention_forward: lse must be F32 (got BF16)");
    CHECK(attn(DType::F32, DType::F32, *r) == DType::F32);
  }
  CHECK(attn(DType::F64, DType::F64, cpu) == DType::F64);
  CHECK_THROWS_WITH(attn(DType::F64, DType::F32, cpu), "attention_forward: lse must be F64 (got F32)");
  CHECK_THROWS_WITH(attn(DType::F64, DType::F32, gpu), "attention_forward: the CUDA backend computes in F32, BF16 or F16 (got F64)");
  // rmsnorm: rstd and dw
  auto norm = [&](DType dt, DType stat, const OpRules& r) {
    return check_rmsnorm_forward(h.make(dt, 12), h.make(dt, 4), 3, 4, h.make(dt, 12), h.make(stat, 3), r);
  };
  CHECK(norm(DType::F64, DType::F64, cpu) == DType::F64);
  for (const OpRules* r : {&cpu, &gpu}) {
    CHECK(norm(DType::BF16, DType::F32, *r) == DType::BF16);
    CHECK_THROWS_WITH(norm(DType::BF16, DType::BF16, *r), "rmsnorm_forward: rstd must be F32 (got BF16)");
    // dw: F32, or BF16 (the bf16 gradient arena); no other type.
    CHECK_THROWS_WITH(check_rmsnorm_backward(h.make(DType::BF16, 12), h.make(DType::BF16, 4), h.make(DType::F32, 3),
                                             h.make(DType::BF16, 12), 3, 4, h.make(DType::BF16, 12),
                                             h.make(DType::F16, 4), *r),
                      "rmsnorm_backward: dw must be F32 (got F16)");
    // embedding_backward: dout carries the compute type, dtable is its wide() (the gradient arena),
    // or BF16 beside BF16 dout (the bf16 gradient arena: test bf16_gradients_pass_...).
    CHECK(check_embedding_backward(h.make(DType::BF16, 6), h.make(DType::I32, 3), 3, 5, 2, h.make(DType::F32, 10),
                                   *r) == DType::BF16);
    CHECK_THROWS_WITH(check_embedding_backward(h.make(DType::BF16, 6), h.make(DType::I32, 3), 3, 5, 2,
                                               h.make(DType::F16, 10), *r),
                      "embedding_backward: dtable must be F32 (got F16)");
  }
  CHECK_THROWS_WITH(check_embedding_backward(h.make(DType::F64, 6), h.make(DType::I32, 3), 3, 5, 2,
                                             h.make(DType::F32, 10), cpu),
                    "embedding_backward: dtable must be F64 (got F32)");
  CHECK_THROWS_WITH(check_embedding_backward(h.make(DType::F64, 6), h.make(DType::I32, 3), 3, 5, 2,
                                             h.make(DType::F32, 10), gpu),
                    "embedding_backward: the CUDA backend computes in F32, BF16 or F16 (got F64)");
}

TEST(matmul_outputs_may_be_wider_than_bf16_inputs_only) {
  Host h;
  const OpRules &cpu = cpu_op_rules(), &gpu = cuda_op_rules();
  auto mm = [&](DType a, DType b, DType c, const OpRules& r) {
    return check_matmul(h.make(a, 6), h.make(b, 6), h.make(c, 4), 2, 2, 3, r);
  };
  CHECK(mm(DType::BF16, DType::BF16, DType::F32, gpu) == DType::BF16);
  CHECK(mm(DType::BF16, DType::BF16, DType::BF16, gpu) == DType::BF16);
  CHECK_THROWS_WITH(mm(DType::BF16, DType::BF16, DType::F64, gpu), "matmul: C must be F32 or BF16 (got F64)");
  CHECK(mm(DType::F16, DType::F16, DType::F32, gpu) == DType::F16);
  CHECK(mm(DType::F16, DType::F16, DType::F16, gpu) == DType::F16);
  CHECK_THROWS_WITH(mm(DType::F16, DType::F16, DType::BF16, gpu), "matmul: C must be F32 or F16 (got BF16)");
  CHECK_THROWS_WITH(mm(DType::F16, DType::BF16, DType::F16, gpu), "matmul: B must be F16 (got BF16)");
  CHECK_THROWS_WITH(mm(DType::F32, DType::BF16, DType::BF16, gpu), "matmul: B must be F32 (got BF16)");
  CHECK_THROWS_WITH(mm(DType::F32, DType::F32, DType::BF16, gpu), "matmul: C must be F32 (got BF16)");
  CHECK_THROWS_WITH(mm(DType::F64, DType::F64, DType::F64, gpu), "matmul: the CUDA backend computes in F32, BF16 or F16 (got F64)");
  // The CPU: the same rules (A carries the compute type), and the fp64 twin.
  CHECK(mm(DType::BF16, DType::BF16, DType::F32, cpu) == DType::BF16);
  CHECK(mm(DType::BF16, DType::BF16, DType::BF16, cpu) == DType::BF16);
  CHECK_THROWS_WITH(mm(DType::BF16, DType::BF16, DType::F64, cpu), "matmul: C must be F32 or BF16 (got F64)");
  CHECK_THROWS_WITH(mm(DType::F32, DType::BF16, DType::BF16, cpu), "matmul: B must be F32 (got BF16)");
  CHECK_THROWS_WITH(mm(DType::F32, DType::F32, DType::BF16, cpu), "matmul: C must be F32 (got BF16)");
  CHECK(mm(DType::F64, DType::F64, DType::F64, cpu) == DType::F64);
  CHECK_THROWS_WITH(mm(DType::F32, DType::F32, DType::F64, cpu), "matmul: C must be F32 (got F64)");
  CHECK_THROWS_WITH(mm(DType::F64, DType::F64, DType::F32, cpu), "matmul: C must be F64 (got F32)");
}

TEST(only_the_cpu_sizes_the_block_tables_from_table_rows) {
  Host h;
  const PagedShape s{2, 2, 1, 4, 2, 3, 2, 1.0};
  std::vector<int32_t> rows = {0, 1};
  const Tensor table_rows(rows.data(), DType::I32, 2), short_tables = h.make(DType::I32, 3);
  auto decode = [&](const Tensor& tables, const OpRules& r) {
    check_attention_decode(s, h.make(DType::F32, 16), h.make(DType::F32, 24), h.make(DType::F32, 24), tables, table_rows,
                           h.make(DType::I32, 2), h.make(DType::F32, 16), r);
  };
  CHECK_THROWS_WITH(decode(short_tables, cpu_op_rules()), "attention_decode: tables has 3 elements, needs 4");
  CHECK(message_of([&] { decode(short_tables, cuda_op_rules()); }).empty());  // the kernel checks it, deferred
  CHECK(message_of([&] { decode(h.make(DType::I32, 4), cpu_op_rules()); }).empty());
  CHECK_THROWS_WITH(decode(h.make(DType::F32, 4), cuda_op_rules()), "attention_decode: tables must be I32 (got F32)");
}

TEST(the_fp64_twin_of_the_log_probs_and_the_loss_is_the_cpus_only) {
  Host h;
  const OpRules &cpu = cpu_op_rules(), &gpu = cuda_op_rules();
  const Tensor labels = h.make(DType::I32, 3), l64 = h.make(DType::F64, 12), r64 = h.make(DType::F64, 3);
  CHECK(check_logprob_forward(l64, 3, 4, labels, r64, r64, cpu) == DType::F64);
  CHECK_THROWS_WITH(check_logprob_forward(l64, 3, 4, labels, h.make(DType::F32, 3), Tensor(), cpu),
                    "logprob_forward: token_logp must be F64 (got F32)");
  // CUDA takes any logits type here (its kernel names the ones it reads) and writes F32.
  CHECK_THROWS_WITH(check_logprob_forward(l64, 3, 4, labels, r64, Tensor(), gpu),
                    "logprob_forward: token_logp must be F32 (got F64)");
  CHECK_THROWS_WITH(check_logprob_backward(l64, 3, 4, labels, r64, Tensor(), h.make(DType::F32, 12), cpu),
                    "logprob_backward: grad_logits must be F64 (got F32)");
  for (const OpRules* r : {&cpu, &gpu}) {  // BF16 logits: F32 rows, grad_logits of either type
    CHECK(check_logprob_forward(h.make(DType::BF16, 12), 3, 4, labels, h.make(DType::F32, 3), h.make(DType::F32, 3),
                                *r) == DType::F32);
    CHECK(check_logprob_backward(h.make(DType::BF16, 12), 3, 4, labels, h.make(DType::F32, 3), Tensor(),
                                 h.make(DType::F32, 12), *r) == DType::F32);
    CHECK(check_logprob_backward(h.make(DType::BF16, 12), 3, 4, labels, h.make(DType::F32, 3), Tensor(),
                                 h.make(DType::BF16, 12), *r) == DType::F32);
  }
  // The loss: its columns are wide() of policy_chosen's type (F64 for the CPU's twin, F32 for
  // F32 and BF16) and summary is optional on the CPU; CUDA's kernel returns through summary.
  auto cols = [&](DType dt) {
    LossTensors in;
    in.policy_chosen = h.make(dt, 3);
    in.policy_rejected = h.make(dt, 3);
    in.ref_chosen = h.make(dt, 3);
    in.ref_rejected = h.make(dt, 3);
    return in;
  };
  LossResultTensors none, with_summary;
  with_summary.summary = h.make(DType::F64, 5);
  CHECK(check_sppo_loss(3, cols(DType::F64), none, cpu) == DType::F64);
  CHECK_THROWS_WITH(check_sppo_loss(3, cols(DType::BF16), none, cpu), "sppo_loss: policy_chosen must be F32 (got BF16)");
  CHECK_THROWS_WITH(check_sppo_loss(3, cols(DType::BF16), with_summary, gpu),
                    "sppo_loss: policy_chosen must be F32 (got BF16)");
  CHECK_THROWS_WITH(check_sppo_loss(3, cols(DType::F64), with_summary, gpu), "sppo_loss: policy_chosen must be F32 (got F64)");
  CHECK_THROWS_WITH(check_sppo_loss(3, cols(DType::F32), none, gpu), "sppo_loss: summary must be F64 (got F32)");
  CHECK(check_sppo_loss(3, cols(DType::F32), with_summary, gpu) == DType::F32);
}

TEST(bf16_gradients_pass_beside_bf16_inputs_and_f32_state_under_both_rules) {
  Host h;
  const int64_t n = 3, H = 4, V = 5;
  const Tensor x16 = h.make(DType::BF16, n * H), w16 = h.make(DType::BF16, H), r32 = h.make(DType::F32, n);
  const Tensor dw16 = h.make(DType::BF16, H), x32 = h.make(DType::F32, n * H), w32 = h.make(DType::F32, H);
  const Tensor ids = h.make(DType::I32, n), tab16 = h.make(DType::BF16, V * H);
  const Tensor g16 = h.make(DType::BF16, 8), p32 = h.make(DType::F32, 8), p64 = h.make(DType::F64, 8);
  const Tensor ss = h.make(DType::F64, 1), none;
  for (const OpRules* r : {&cpu_op_rules(), &cuda_op_rules()}) {
    CHECK(check_rmsnorm_backward(x16, w16, r32, x16, n, H, x16, dw16, *r) == DType::BF16);
    CHECK(check_embedding_backward(x16, ids, n, V, H, tab16, *r) == DType::BF16);
    CHECK(check_sum_squares(g16, 8, ss, *r) == DType::BF16);
    CHECK(check_rmsprop_step(p32, g16, p32, 8, ss, none, *r) == DType::F32);
    CHECK(check_adamw_step(p32, g16, p32, p32, 8, ss, none, *r) == DType::F32);
    // An fp32 op's weight gradient stays F32; a BF16 g needs F32 state.
    sppo_test::expect_same_error("rmsnorm_backward", message_of([&] {
      check_rmsnorm_backward(x32, w32, r32, x32, n, H, x32, dw16, *r);
    }), "rmsnorm_backward: dw must be F32 (got BF16)");
    sppo_test::expect_same_error("rmsprop_step", message_of([&] { check_rmsprop_step(p32, g16, p32, 8, ss, g16.slice(0, 7), *r); }),
                                 "rmsprop_step: weights16 has 7 elements, needs 8");
  }
  CHECK_THROWS_WITH(check_rmsprop_step(p64, g16, p64, 8, ss, none, cpu_op_rules()), "rmsprop_step: g must be F64 (got BF16)");
}

TEST_MAIN()
