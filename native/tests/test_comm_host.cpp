// The host communicator (comm/host_communicator.h) between real processes: this executable starts
// copies of itself as ranks (SPPO_COMM_ROLE names what a copy does). Collectives give the sums in
// rank order, bitwise, in every chunking and in place (bf16: the fp32 sum rounded once), and
// gathers move 2-byte (bf16) elements bit for bit; data parallel training over 2 and 3 ranks matches one process up to fp32 rounding, and
// ZeRO-1 matches plain data parallel bitwise (weights and gathered optimizer state), for bf16
// models too (fp32 master weights included, with fp32 and with bf16 gradients); a rank that exits, stops, hangs or calls another
// collective ends the others with a message naming it.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "comm/host_communicator.h"
#include "core/dtype.h"
#include "test_model_common.h"
#include "train/trainer.h"

extern char** environ;

using namespace model_test;

namespace {

std::string env(const char* k, const char* def = "") {
  const char* v = std::getenv(k);
  return v ? v : def;
}
int env_int(const char* k, int def = 0) { return env(k).empty() ? def : std::atoi(env(k).c_str()); }

std::string temp_dir() {
  static std::string dir = [] {
    if (!env("SPPO_COMM_DIR").empty()) return env("SPPO_COMM_DIR");  // a rank: its parent's folder
    char tmpl[] = "/tmp/sppo-comm-test-XXXXXX";
    const char* d = mkdtemp(tmpl);
    return std::string(d ? d : "/tmp");
  }();
  return dir;
}

struct Child {
  pid_t pid = -1;
  int status = 0;
};

// Starts `world` ranks of this executable in `role`; `extra` adds environment variables.
std::vector<Child> spawn_ranks(const std::string& role, int world, const std::string& name,
                               const std::map<std::string, std::string>& extra = {}) {
  std::vector<Child> out;
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> vars;
    for (char** e = environ; *e; ++e) vars.emplace_back(*e);
    vars.push_back("SPPO_COMM_ROLE=" + role);
    vars.push_back("SPPO_COMM_RANK=" + std::to_string(r));
    vars.push_back("SPPO_COMM_WORLD=" + std::to_string(world));
    vars.push_back("SPPO_COMM_NAME=" + name);
    vars.push_back("SPPO_COMM_DIR=" + temp_dir());
    vars.push_back("SPPO_TEST_SEED=" + std::to_string(sppo_test::run_seed()));
    vars.push_back("OMP_NUM_THREADS=1");
    for (const auto& [k, v] : extra) vars.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& v : vars) envp.push_back(v.data());
    envp.push_back(nullptr);
    char self[] = "/proc/self/exe";
    char* argv[] = {self, nullptr};
    Child c;
    if (posix_spawn(&c.pid, "/proc/self/exe", nullptr, nullptr, argv, envp.data()) != 0) sppo::fail("posix_spawn failed");
    out.push_back(c);
  }
  return out;
}

// Waits for every child (at most `seconds`; stragglers are killed and marked as failed).
double wait_all(std::vector<Child>& cs, double seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  double took = 0;
  for (auto& c : cs) {
    for (;;) {
      const pid_t r = waitpid(c.pid, &c.status, WNOHANG);
      if (r == c.pid) break;
      took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (took > seconds) {
        kill(c.pid, SIGKILL);
        waitpid(c.pid, &c.status, 0);
        c.status = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
bool exited_ok(const Child& c) { return c.status != -1 && WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0; }

std::string read_text(const std::string& file) {
  std::ifstream f(file);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}
void write_text(const std::string& file, const std::string& s) { std::ofstream(file) << s; }

template <typename T>
void write_vec(const std::string& file, const std::vector<T>& v) {
  std::ofstream f(file, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
}
template <typename T>
std::vector<T> read_vec(const std::string& file) {
  const std::string s = read_text(file);
  std::vector<T> v(s.size() / sizeof(T));
  std::memcpy(v.data(), s.data(), v.size() * sizeof(T));
  return v;
}

std::shared_ptr<sppo::Communicator> connect_from_env(double timeout = 20, double heartbeat = 10, std::size_t slot = 4096) {
  sppo::HostCommOptions o;
  o.name = env("SPPO_COMM_NAME");
  o.rank = env_int("SPPO_COMM_RANK");
  o.world = env_int("SPPO_COMM_WORLD", 1);
  o.timeout_s = timeout;
  o.heartbeat_s = heartbeat;
  o.slot_bytes = slot;
  return sppo::make_host_communicator(sppo::backend_for(sppo::Device::CPU), o);
}

// Rank r's input of collective test k: distinct, non-trivial values in every rank.
template <typename T>
std::vector<T> inputs(int r, size_t n, int k) {
  std::vector<T> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<T>(std::sin(0.37 * double(i) + 1.3 * r + 0.11 * k) * (1 + 0.5 * r) / 3.0);
  return v;
}
template <typename T>
T sum_in_rank_order(int world, size_t i, size_t n, int k) {
  T acc = inputs<T>(0, n, k)[i];
  for (int r = 1; r < world; ++r) acc += inputs<T>(r, n, k)[i];
  return acc;
}

// ---- the ranks' roles ---------------------------------------------------------------------------

template <typename T>
int collectives_role(sppo::Communicator& c, sppo::DType dt) {
  const int rank = c.rank(), world = c.world_size();
  int bad = 0;
  const size_t n = 2500;  // several chunks of a 4096-byte slot
  // all_reduce in place
  std::vector<T> a = inputs<T>(rank, n, 1);
  c.all_reduce(sppo::Tensor(a.data(), dt, static_cast<int64_t>(n)), static_cast<int64_t>(n));
  c.wait();
  std::vector<T> expect(n);
  for (size_t i = 0; i < n; ++i) expect[i] = sum_in_rank_order<T>(world, i, n, 1);
  bad += a != expect;
  // reduce_scatter in place: rank r's part is the all_reduce's part r, bit for bit
  std::vector<T> b = inputs<T>(rank, n * static_cast<size_t>(world), 1);
  std::vector<T> full(n * static_cast<size_t>(world));
  for (size_t i = 0; i < full.size(); ++i) full[i] = sum_in_rank_order<T>(world, i, full.size(), 1);
  sppo::Tensor bt(b.data(), dt, static_cast<int64_t>(b.size()));
  c.reduce_scatter(bt, bt.slice(static_cast<int64_t>(n) * rank, static_cast<int64_t>(n)), static_cast<int64_t>(n));
  c.wait();
  for (size_t i = 0; i < n; ++i) bad += b[static_cast<size_t>(rank) * n + i] != full[static_cast<size_t>(rank) * n + i];
  // ... and out of place
  std::vector<T> b2 = inputs<T>(rank, n * static_cast<size_t>(world), 1), out(n);
  c.reduce_scatter(sppo::Tensor(b2.data(), dt, static_cast<int64_t>(b2.size())), sppo::Tensor(out.data(), dt, static_cast<int64_t>(n)),
                   static_cast<int64_t>(n));
  c.wait();
  for (size_t i = 0; i < n; ++i) bad += out[i] != full[static_cast<size_t>(rank) * n + i];
  // all_gather in place
  std::vector<T> g(n * static_cast<size_t>(world), T(-7));
  const std::vector<T> mine = inputs<T>(rank, n, 3);
  std::copy(mine.begin(), mine.end(), g.begin() + static_cast<long>(rank * n));
  sppo::Tensor gt(g.data(), dt, static_cast<int64_t>(g.size()));
  c.all_gather(gt.slice(static_cast<int64_t>(n) * rank, static_cast<int64_t>(n)), gt, static_cast<int64_t>(n));
  c.wait();
  for (int r = 0; r < world; ++r) bad += !std::equal(g.begin() + static_cast<long>(r * n), g.begin() + static_cast<long>((r + 1) * n), inputs<T>(r, n, 3).begin());
  // broadcast from the last rank
  std::vector<T> d = inputs<T>(rank, n, 4);
  c.broadcast(sppo::Tensor(d.data(), dt, static_cast<int64_t>(n)), static_cast<int64_t>(n), world - 1);
  c.wait();
  bad += d != inputs<T>(world - 1, n, 4);
  c.barrier();
  if (bad) std::printf("rank %d: %d mismatches\n", rank, bad);
  return bad ? 1 : 0;
}

// 2-byte elements (the bf16 weights ZeRO-1 gathers): all_gather in place and out of place and
// broadcast move them bit for bit over chunk boundaries; BF16 sums (all_reduce, reduce_scatter) are
// the rank-order fp32 sum of the widened values, rounded once.
int bf16_moves_role(sppo::Communicator& c) {
  const int rank = c.rank(), world = c.world_size();
  const size_t n = 2500;  // 5000 bytes: two chunks of a 4096-byte slot
  auto mine = [](int r, size_t n, int k) {
    std::vector<uint16_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint16_t>(i * 2654435761u + 40503u * r + 977u * k);
    return v;
  };
  int bad = 0;
  std::vector<uint16_t> g(n * static_cast<size_t>(world), 0xffff), out(n * static_cast<size_t>(world), 0xffff);
  const std::vector<uint16_t> m = mine(rank, n, 1);
  std::copy(m.begin(), m.end(), g.begin() + static_cast<long>(rank * n));
  sppo::Tensor gt(g.data(), sppo::DType::BF16, static_cast<int64_t>(g.size()));
  c.all_gather(gt.slice(static_cast<int64_t>(n) * rank, static_cast<int64_t>(n)), gt, static_cast<int64_t>(n));
  std::vector<uint16_t> m2 = mine(rank, n, 2);
  c.all_gather(sppo::Tensor(m2.data(), sppo::DType::BF16, static_cast<int64_t>(n)),
               sppo::Tensor(out.data(), sppo::DType::BF16, static_cast<int64_t>(out.size())), static_cast<int64_t>(n));
  std::vector<uint16_t> d = mine(rank, n, 3);
  c.broadcast(sppo::Tensor(d.data(), sppo::DType::BF16, static_cast<int64_t>(n)), static_cast<int64_t>(n), world - 1);
  c.wait();
  for (int r = 0; r < world; ++r) {
    const std::vector<uint16_t> w1 = mine(r, n, 1), w2 = mine(r, n, 2);
    bad += !std::equal(w1.begin(), w1.end(), g.begin() + static_cast<long>(r * n));
    bad += !std::equal(w2.begin(), w2.end(), out.begin() + static_cast<long>(r * n));
  }
  bad += d != mine(world - 1, n, 3);
  // Sums of bf16 values (the bf16 gradient arena): each element the fp32 sum in rank order of the
  // widened values, rounded once, in place (all_reduce) and scattered (reduce_scatter), over two
  // chunks of the slot. Values of mixed magnitudes so that the rounding matters.
  auto values = [](int r, size_t n, int k) {
    std::vector<uint16_t> v(n);
    sppo_test::Rng rng(static_cast<uint64_t>(1000 * k + r));
    for (auto& x : v) x = sppo::f32_to_bf16(static_cast<float>(rng.normal(0, 1) * std::ldexp(1.0, rng.integer(-6, 6))));
    return v;
  };
  // Every rank's values drawn once; element i of their rank-order fp32 sum rounded once.
  auto summed_all = [&](int k, size_t n) {
    std::vector<float> acc(n, 0.0f);
    for (int r = 0; r < world; ++r) {
      const std::vector<uint16_t> v = values(r, n, k);
      for (size_t i = 0; i < n; ++i) acc[i] = r == 0 ? sppo::bf16_to_f32(v[i]) : acc[i] + sppo::bf16_to_f32(v[i]);
    }
    std::vector<uint16_t> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = sppo::f32_to_bf16(acc[i]);
    return out;
  };
  std::vector<uint16_t> s = values(rank, n, 4);
  c.all_reduce(sppo::Tensor(s.data(), sppo::DType::BF16, static_cast<int64_t>(n)), static_cast<int64_t>(n));
  const size_t per = n / 2;  // reduce_scatter: `per` elements to each rank
  std::vector<uint16_t> rs = values(rank, per * static_cast<size_t>(world), 5), rs_out(per, 0x7fc0);
  c.reduce_scatter(sppo::Tensor(rs.data(), sppo::DType::BF16, static_cast<int64_t>(rs.size())),
                   sppo::Tensor(rs_out.data(), sppo::DType::BF16, static_cast<int64_t>(per)), static_cast<int64_t>(per));
  c.wait();
  int sum_bad = 0;
  const std::vector<uint16_t> want_s = summed_all(4, n), want_rs = summed_all(5, per * static_cast<size_t>(world));
  for (size_t i = 0; i < n; ++i) sum_bad += s[i] != want_s[i];
  for (size_t i = 0; i < per; ++i) sum_bad += rs_out[i] != want_rs[static_cast<size_t>(rank) * per + i];
  if (sum_bad) std::printf("rank %d: %d bf16 sums differ from the fp32 rank-order sum rounded once\n", rank, sum_bad);
  bad += sum_bad;
  c.barrier();
  if (bad) std::printf("rank %d: %d bf16 mismatches\n", rank, bad);
  return bad ? 1 : 0;
}

struct Pairs {
  Batch c, r;
  std::vector<float> refc, refr, pw, pl, pwl;
  sppo::PairBatch view() const {
    return sppo::PairBatch{c.view(), r.view(), refc.data(), refr.data(), pwl.data(), pw.data(), pl.data()};
  }
};

// The global batch: kPairs pairs of random lengths, the same in every rank (seeded by the run seed).
constexpr int kPairs = 7, kMicro = 2, kSteps = 3;
struct OnePair {
  std::vector<int32_t> c, r;
  int64_t cl, rl;
  float refc, refr, pw, pl, pwl;
};
std::vector<OnePair> global_batch(int64_t V) {
  sppo_test::Rng rng(71);
  std::vector<OnePair> out;
  for (int i = 0; i < kPairs; ++i) {
    OnePair p;
    p.c = random_tokens(rng, rng.integer(3, 8), V);
    p.r = random_tokens(rng, rng.integer(3, 8), V);
    p.cl = rng.integer(1, 2);
    p.rl = rng.integer(1, 2);
    p.refc = static_cast<float>(rng.uniform(-20, -5));
    p.refr = static_cast<float>(rng.uniform(-20, -5));
    p.pw = static_cast<float>(rng.uniform(0.5, 1));
    p.pl = static_cast<float>(rng.uniform(0, 0.5));
    p.pwl = static_cast<float>(rng.uniform(0, 1));
    out.push_back(p);
  }
  return out;
}
Pairs micro_batch(const std::vector<OnePair>& all, int from, int to) {
  Pairs p;
  std::vector<std::vector<int32_t>> cs, rs;
  std::vector<int64_t> cl, rl;
  for (int i = from; i < to; ++i) {
    cs.push_back(all[static_cast<size_t>(i)].c);
    rs.push_back(all[static_cast<size_t>(i)].r);
    cl.push_back(all[static_cast<size_t>(i)].cl);
    rl.push_back(all[static_cast<size_t>(i)].rl);
    p.refc.push_back(all[static_cast<size_t>(i)].refc);
    p.refr.push_back(all[static_cast<size_t>(i)].refr);
    p.pw.push_back(all[static_cast<size_t>(i)].pw);
    p.pl.push_back(all[static_cast<size_t>(i)].pl);
    p.pwl.push_back(all[static_cast<size_t>(i)].pwl);
  }
  p.c = pad(cs, cl, false);
  p.r = pad(rs, rl, false);
  return p;
}

sppo::LlamaConfig train_config() {
  sppo::LlamaConfig c = llama3_tiny();
  c.num_layers = 3;
  return c;
}

// The model's weights as floats (bf16 widened).
std::vector<float> host_weights(const sppo::LlamaModel& m) {
  const sppo::Tensor w = m.weights();
  if (w.dtype == sppo::DType::F32) return std::vector<float>(w.as<float>(), w.as<float>() + w.numel);
  std::vector<float> out(static_cast<size_t>(w.numel));
  for (int64_t i = 0; i < w.numel; ++i) out[static_cast<size_t>(i)] = sppo::bf16_to_f32(w.as<uint16_t>()[i]);
  return out;
}

// Trains kSteps steps of the global batch split over the ranks (rank r: pairs [r*P/W, (r+1)*P/W)
// in micro-batches of kMicro, each scaled by its share of the global batch); returns the weights
// (as floats) and the optimizer state slots (gathered under ZeRO-1; a bf16 model's last slot is
// its fp32 master).
std::vector<float> train_ranks(const std::shared_ptr<sppo::Communicator>& comm, bool zero1, sppo::OptimizerKind kind,
                               std::vector<std::vector<float>>* state, sppo::Precision precision = sppo::Precision::FP32,
                               bool bf16_grads = false) {
  const sppo::LlamaConfig cfg = train_config();
  sppo::LlamaModel model(sppo::backend_for(sppo::Device::CPU), cfg, precision);
  model.init_random(1234, 0.3);
  sppo::TrainerOptions o;
  o.optimizer.kind = kind;
  // eps well above the gradients' rounding: with torch's 1e-8 a first RMSprop/AdamW step is
  // +-lr/sqrt(1 - alpha) wherever |g| >> eps, so a coordinate whose gradient is a rounding-level
  // cancellation moves by a sign that the order of the ranks' sums decides (seed
  // 1796136763153050383 failed that way). With 1e-3 the step is Lipschitz in g (lr / eps), and the
  // tolerance below bounds real differences, not coin flips.
  o.optimizer.eps = 1e-3;
  o.bucket_bytes = 3000;  // many buckets, some not a multiple of the granule
  o.zero1 = zero1;
  if (bf16_grads) o.grad_dtype = sppo::DType::BF16;
  sppo::Trainer t(model, comm, o);
  const auto all = global_batch(cfg.vocab_size);
  const int W = comm->world_size(), r = comm->rank();
  const int lo = kPairs * r / W, hi = kPairs * (r + 1) / W;
  for (int s = 0; s < kSteps; ++s) {
    t.zero_grad();
    for (int m = lo; m < hi; m += kMicro) {
      const int end = std::min(hi, m + kMicro);
      const Pairs p = micro_batch(all, m, end);
      t.accumulate(p.view(), sppo::LossType::SPPO, 0.1, double(end - m) / kPairs, end == hi);
    }
    const sppo::StepResult res = t.step(0.01, 0.5);
    if (!res.stepped) sppo::fail("a step did not step");
  }
  if (state) {
    state->clear();
    for (size_t i = 0; i < t.slot_names().size(); ++i) {
      std::vector<float> host(static_cast<size_t>(model.layout().total()));
      t.gather_slot(static_cast<int>(i), host.data());
      state->push_back(host);
    }
  }
  return host_weights(model);
}

std::vector<float> initial_weights() {
  Engine<float> e(train_config());
  e.init_random(1234, 0.3);
  const float* w = e.model().weights().as<float>();
  return std::vector<float>(w, w + e.model().layout().total());
}

int train_role() {
  auto comm = connect_from_env();
  const bool zero1 = env("SPPO_COMM_ZERO1") == "1";
  const auto kind = env("SPPO_COMM_OPT") == "adamw" ? sppo::OptimizerKind::AdamW : sppo::OptimizerKind::RMSprop;
  const sppo::Precision precision = env("SPPO_COMM_PREC") == "bf16" ? sppo::Precision::BF16 : sppo::Precision::FP32;
  std::vector<std::vector<float>> state;
  const std::vector<float> w = train_ranks(comm, zero1, kind, &state, precision, env("SPPO_COMM_GRAD") == "bf16");
  const std::string tag = env("SPPO_COMM_TAG") + "-rank" + std::to_string(comm->rank());
  write_vec(temp_dir() + "/" + tag + ".weights", w);
  for (size_t i = 0; i < state.size(); ++i) write_vec(temp_dir() + "/" + tag + ".slot" + std::to_string(i), state[i]);
  return 0;
}

// Every rank but `victim` runs all_reduces until one fails; the message goes to <dir>/fault-rank<r>.
int fault_role() {
  const std::string how = env("SPPO_COMM_FAULT");
  const int victim = env_int("SPPO_COMM_VICTIM");
  auto comm = connect_from_env(how == "hang" ? 1.5 : 20, how == "stop" ? 1.0 : 10);
  std::vector<float> v(100, 1.f);
  const sppo::Tensor t(v.data(), sppo::DType::F32, 100);
  try {
    for (int i = 0; i < 50; ++i) {
      if (comm->rank() == victim && i == 3) {
        if (how == "exit") _exit(3);
        if (how == "stop") raise(SIGSTOP);
        if (how == "hang") std::this_thread::sleep_for(std::chrono::seconds(4));
        if (how == "mismatch") {
          std::vector<float> mine(10, 2.f);
          comm->all_gather(sppo::Tensor(mine.data(), sppo::DType::F32, 10), t, 10);
          comm->wait();
        }
      }
      comm->all_reduce(t, 100);
      comm->wait();
    }
    write_text(temp_dir() + "/fault-rank" + std::to_string(comm->rank()), "no failure");
  } catch (const std::exception& e) {
    write_text(temp_dir() + "/fault-rank" + std::to_string(comm->rank()), e.what());
  }
  return 0;
}

int child_main() {
  const std::string role = env("SPPO_COMM_ROLE");
  try {
    if (role == "collectives-f32") {
      auto c = connect_from_env();
      return collectives_role<float>(*c, sppo::DType::F32);
    }
    if (role == "collectives-bf16") {
      auto c = connect_from_env();
      return bf16_moves_role(*c);
    }
    if (role == "collectives-f64") {
      auto c = connect_from_env(20, 10, 1 << 16);
      return collectives_role<double>(*c, sppo::DType::F64);
    }
    if (role == "train") return train_role();
    if (role == "fault") return fault_role();
  } catch (const std::exception& e) {
    std::printf("rank %s: %s\n", env("SPPO_COMM_RANK").c_str(), e.what());
    return 1;
  }
  std::printf("unknown role %s\n", role.c_str());
  return 2;
}

std::string fresh_name() { return sppo::new_host_communicator_name(); }

}  // namespace

TEST(collectives_sum_in_rank_order_bitwise_in_every_chunking) {
  for (int world : {2, 3}) {
    for (const char* role : {"collectives-f32", "collectives-f64", "collectives-bf16"}) {
      auto cs = spawn_ranks(role, world, fresh_name());
      wait_all(cs, 60);
      for (const auto& c : cs) CHECK(exited_ok(c));
    }
  }
}

TEST(data_parallel_matches_one_process_and_zero1_matches_data_parallel_bitwise) {
  for (auto kind : {sppo::OptimizerKind::RMSprop, sppo::OptimizerKind::AdamW}) {
    const std::string opt = kind == sppo::OptimizerKind::AdamW ? "adamw" : "rmsprop";
    std::vector<std::vector<float>> state1;
    const std::vector<float> w1 = train_ranks(sppo::make_local_communicator(sppo::backend_for(sppo::Device::CPU)), false, kind, &state1);
    for (int world : {2, 3}) {
      std::map<std::string, std::vector<float>> got;
      for (const char* zero1 : {"0", "1"}) {
        const std::string tag = opt + "-w" + std::to_string(world) + "-z" + zero1;
        auto cs = spawn_ranks("train", world, fresh_name(), {{"SPPO_COMM_ZERO1", zero1}, {"SPPO_COMM_OPT", opt}, {"SPPO_COMM_TAG", tag}});
        wait_all(cs, 120);
        for (const auto& c : cs) CHECK(exited_ok(c));
        for (int r = 0; r < world; ++r) {
          const std::vector<float> w = read_vec<float>(temp_dir() + "/" + tag + "-rank" + std::to_string(r) + ".weights");
          CHECK(w.size() == w1.size());
          if (r > 0) CHECK(w == got[std::string("w") + zero1]);  // every rank holds the same weights
          got[std::string("w") + zero1] = w;
        }
        for (size_t i = 0; i < state1.size(); ++i)
          got[std::string("s") + zero1 + std::to_string(i)] = read_vec<float>(temp_dir() + "/" + tag + "-rank0.slot" + std::to_string(i));
      }
      CHECK(got["w0"] == got["w1"]);  // ZeRO-1 == plain data parallel, bit for bit
      for (size_t i = 0; i < state1.size(); ++i) CHECK(got["s0" + std::to_string(i)] == got["s1" + std::to_string(i)]);
      // Against one process: the same global batch and steps, but the gradient sums associate
      // differently over ranks (and the norm's partial sums over pieces), so the weights agree to
      // fp32 rounding (the optimizers' eps keeps the step Lipschitz in the gradient, see
      // train_ranks). Stated tolerance: max |w_W - w_1| <= 0.01% of the largest change training
      // made (about 1e-6 of it is seen).
      double worst = 0, moved = 0;
      if (got["w0"].size() != w1.size()) continue;
      const std::vector<float> w0 = initial_weights();
      for (size_t i = 0; i < w1.size(); ++i) {
        worst = std::max(worst, std::fabs(double(got["w0"][i]) - double(w1[i])));
        moved = std::max(moved, std::fabs(double(w1[i]) - double(w0[i])));
      }
      std::printf("  %s world %d: max |w_W - w_1| = %.3g, largest change %.3g\n", opt.c_str(), world, worst, moved);
      CHECK(moved > 1e-3);
      CHECK(worst <= 1e-4 * moved);
    }
  }
}

// bf16 models (the CPU's bf16 emulation) over 2 ranks: ZeRO-1 (each rank steps the fp32 master of
// its pieces, writes their bf16 weights in the same kernel, and all-gathers the bf16 weights) gives
// bitwise the weights, optimizer state and master of plain data parallel; every rank holds the same
// weights, and they are the master's rounding. With fp32 gradients and with bf16 gradients (the
// buckets reduced in bf16: all_reduce and reduce_scatter give the same rounded sums).
TEST(bf16_zero1_matches_data_parallel_bitwise_master_included) {
  std::map<std::string, std::vector<float>> by_grads;  // the weights of each gradient type, per optimizer
  for (const char* grads : {"fp32", "bf16"})
  for (auto kind : {sppo::OptimizerKind::RMSprop, sppo::OptimizerKind::AdamW}) {
    const std::string opt = kind == sppo::OptimizerKind::AdamW ? "adamw" : "rmsprop";
    const size_t slots = sppo::optimizer_slots(kind).size() + 1;  // + the master
    const int world = 2;
    std::map<std::string, std::vector<float>> got;
    for (const char* zero1 : {"0", "1"}) {
      const std::string tag = "bf16-" + opt + "-g" + grads + "-z" + zero1;
      auto cs = spawn_ranks("train", world, fresh_name(),
                            {{"SPPO_COMM_ZERO1", zero1}, {"SPPO_COMM_OPT", opt}, {"SPPO_COMM_TAG", tag}, {"SPPO_COMM_PREC", "bf16"},
                             {"SPPO_COMM_GRAD", grads}});
      wait_all(cs, 120);
      for (const auto& c : cs) CHECK(exited_ok(c));
      for (int r = 0; r < world; ++r) {
        const std::vector<float> w = read_vec<float>(temp_dir() + "/" + tag + "-rank" + std::to_string(r) + ".weights");
        if (r > 0) CHECK(w == got[std::string("w") + zero1]);
        got[std::string("w") + zero1] = w;
      }
      for (size_t i = 0; i < slots; ++i)
        got[std::string("s") + zero1 + std::to_string(i)] = read_vec<float>(temp_dir() + "/" + tag + "-rank0.slot" + std::to_string(i));
      CHECK(!std::ifstream(temp_dir() + "/" + tag + "-rank0.slot" + std::to_string(slots)).good());  // no more slots
    }
    CHECK(!got["w0"].empty() && got["w0"] == got["w1"]);
    for (size_t i = 0; i < slots; ++i) CHECK(got["s0" + std::to_string(i)] == got["s1" + std::to_string(i)]);
    const std::vector<float>& master = got["s1" + std::to_string(slots - 1)];
    CHECK(master.size() == got["w1"].size());
    int64_t unrounded = 0, moved = 0;
    const std::vector<float> w0 = initial_weights();  // fp32 init; the bf16 model starts at its rounding
    for (size_t i = 0; i < master.size() && i < w0.size(); ++i) {
      unrounded += sppo::bf16_to_f32(sppo::f32_to_bf16(master[i])) != got["w1"][i];
      moved += master[i] != sppo::bf16_to_f32(sppo::f32_to_bf16(w0[i]));
    }
    std::printf("  bf16 %s (%s gradients) world %d: %lld of %zu master weights moved\n", opt.c_str(), grads, world,
                (long long)moved, master.size());
    CHECK(unrounded == 0);
    CHECK(moved > static_cast<int64_t>(master.size()) / 2);
    by_grads[std::string(grads) + "-" + opt] = got["w1"];
  }
  // The bf16 gradient runs really ran with bf16 gradients: their weights are not the fp32 ones.
  for (const char* opt : {"rmsprop", "adamw"})
    CHECK(by_grads[std::string("fp32-") + opt] != by_grads[std::string("bf16-") + opt]);
}

TEST(a_rank_that_exits_stops_or_hangs_ends_every_rank_with_its_name) {
  struct Case {
    const char* how;
    const char* says;
    double within;
  };
  for (const Case& k : {Case{"exit", "exited", 5}, Case{"stop", "stopped responding", 6}, Case{"hang", "did not reach", 6},
                        Case{"mismatch", "ranks disagree", 5}}) {
    const int world = 3, victim = 1;
    for (int r = 0; r < world; ++r) std::remove((temp_dir() + "/fault-rank" + std::to_string(r)).c_str());
    auto cs = spawn_ranks("fault", world, fresh_name(), {{"SPPO_COMM_FAULT", k.how}, {"SPPO_COMM_VICTIM", std::to_string(victim)}});
    // The survivors must finish by themselves; a stopped victim is killed once they have.
    std::vector<Child> survivors, victims;
    for (int r = 0; r < world; ++r) (r == victim ? victims : survivors).push_back(cs[static_cast<size_t>(r)]);
    const double took = wait_all(survivors, 30);
    if (std::string(k.how) == "stop") kill(victims[0].pid, SIGKILL);
    wait_all(victims, 30);
    std::printf("  %s: the other ranks ended after %.2f s\n", k.how, took);
    CHECK(took < k.within);
    for (int r = 0; r < world; ++r) {
      if (r == victim && std::string(k.how) != "mismatch") continue;
      const std::string msg = read_text(temp_dir() + "/fault-rank" + std::to_string(r));
      std::printf("  rank %d: %s\n", r, msg.c_str());
      CHECK(msg.find(k.says) != std::string::npos);
      CHECK(msg.find("rank 1") != std::string::npos);
    }
  }
}

TEST(bad_options_are_refused_by_name) {
  auto be = sppo::backend_for(sppo::Device::CPU);
  sppo::HostCommOptions o;
  o.name = "no-slash";
  CHECK_THROWS_WITH(sppo::make_host_communicator(be, o), "name must look like");
  o.name = fresh_name();
  o.rank = 2;
  o.world = 2;
  CHECK_THROWS_WITH(sppo::make_host_communicator(be, o), "rank 2 is not in [0, 2)");
  o.rank = 1;
  o.timeout_s = 0.2;  // rank 0 never comes
  CHECK_THROWS_WITH(sppo::make_host_communicator(be, o), "rank 0 did not create");
  o.rank = 0;  // rank 1 never comes
  CHECK_THROWS_WITH(sppo::make_host_communicator(be, o), "rank 1 did not join");
  // The group is gone: the name can be used again.
  o.world = 1;
  auto c = sppo::make_host_communicator(be, o);
  std::vector<float> v(3, 2.f);
  c->all_reduce(sppo::Tensor(v.data(), sppo::DType::F32, 3), 3);
  c->wait();
  CHECK(v[0] == 2.f);
  std::vector<int32_t> ints(2, 1);
  CHECK_THROWS_WITH(c->all_reduce(sppo::Tensor(ints.data(), sppo::DType::I32, 2), 2), "sums F32, F64 or BF16 (got I32)");
  c->abort("stopped on purpose");
  CHECK_THROWS_WITH(c->all_reduce(sppo::Tensor(v.data(), sppo::DType::F32, 3), 3), "stopped on purpose");
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // ranks and the parent share the output
  if (!env("SPPO_COMM_ROLE").empty()) return child_main();
  return sppo_test::run_all();
}
