// Benchmark of the log-probability op (forward + in-place backward) through the backend, no Node.
//   bench_logprob [--device cpu|cuda] [--rows N] [--vocab 32000,128256] [--dtype bf16,f32]
//                 [--iters K] [--warmup W] [--json FILE]
// CUDA: event-timed, median of K runs after W warmups. CPU: wall clock, median. The floor is
// three passes over the logits (forward reads; backward reads and writes) at the copy bandwidth
// measured in the same run (device-to-device cudaMemcpy, or a parallel memcpy on the CPU),
// counting read + write bytes.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/parallel.h"
#include "backend/backend.h"
#include "backend/buffer.h"
#include "kernels/logprob.h"
#include "bench_smoke.h"
#ifdef SPPO_WITH_CUDA
#include <cuda_runtime.h>

#include "runtime/cuda_check.h"
#endif

using namespace sppo;

namespace {

struct Options {
  std::string device = "cpu";
  int64_t rows = -1;  // default: 8192 on CUDA, 512 on CPU (two cores would take minutes)
  std::vector<int64_t> vocabs = {32000, 128256};
  std::vector<std::string> dtypes = {"bf16", "f32"};
  int iters = -1, warmup = -1;
  std::string json;
};

struct Result {
  int64_t rows, vocab;
  std::string dtype;
  double fwd_ms, bwd_ms, total_ms, gbps, floor_ms, ratio;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) if (!item.empty()) out.push_back(item);
  return out;
}

int64_t parse_int(const std::string& flag, const std::string& v, long long min = 1) {
  char* end = nullptr;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || !end || *end || x < min) fail(flag, " needs an integer >= ", min, " (got '", v, "')");
  return x;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) fail(a, " needs a value");
      return argv[++i];
    };
    if (a == "--device") o.device = next();
    else if (a == "--rows") o.rows = parse_int(a, next());
    else if (a == "--vocab") {
      o.vocabs.clear();
      for (auto& v : split(next())) o.vocabs.push_back(parse_int("--vocab", v));
    } else if (a == "--dtype") o.dtypes = split(next());
    else if (a == "--iters") o.iters = static_cast<int>(parse_int(a, next()));
    else if (a == "--warmup") o.warmup = static_cast<int>(parse_int(a, next(), 0));
    else if (a == "--json") o.json = next();
    else if (a == "--help" || a == "-h") {
      std::printf("usage: bench_logprob [--device cpu|cuda] [--rows N] [--vocab 32000,128256] [--dtype bf16,f32] "
                  "[--iters K] [--warmup W] [--json FILE]\n");
      std::exit(0);
    } else fail("unknown argument '", a, "' (see --help)");
  }
  if (o.device != "cpu" && o.device != "cuda") fail("--device must be cpu or cuda (got '", o.device, "')");
  for (auto& d : o.dtypes)
    if (d != "bf16" && d != "f32") fail("--dtype must be bf16 and/or f32 (got '", d, "')");
  const bool cuda = o.device == "cuda";
  if (o.rows < 0) o.rows = cuda ? 8192 : 512;
  if (o.iters < 0) o.iters = cuda ? 20 : 3;
  if (o.warmup < 0) o.warmup = cuda ? 3 : 1;
  return o;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Random logits of scale ~3 and labels, reproducible (the values do not matter for speed).
void fill(std::vector<unsigned char>& bytes, DType t, int64_t count, std::vector<int32_t>& labels, int64_t V) {
  uint64_t s = 0x9E3779B97F4A7C15ull;
  auto rnd = [&s]() {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return static_cast<float>((s >> 40) * (1.0 / (1ull << 24)) * 6.0 - 3.0);
  };
  bytes.resize(static_cast<size_t>(count) * dtype_size(t));
  if (t == DType::F32) {
    float* p = reinterpret_cast<float*>(bytes.data());
    for (int64_t i = 0; i < count; ++i) p[i] = rnd();
  } else {
    uint16_t* p = reinterpret_cast<uint16_t*>(bytes.data());
    for (int64_t i = 0; i < count; ++i) p[i] = f32_to_bf16(rnd());
  }
  for (auto& y : labels) {
    rnd();
    y = static_cast<int32_t>(s % static_cast<uint64_t>(V));
  }
}

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Copy bandwidth in GB/s (read + write bytes) of a parallel memcpy of `bytes`.
double cpu_copy_bandwidth(size_t bytes, int iters) {
  std::vector<unsigned char> a(bytes, 1), b(bytes, 2);
  const int64_t chunks = 64;
  const size_t per = (bytes + chunks - 1) / chunks;
  std::vector<double> t;
  for (int i = 0; i < iters + 1; ++i) {
    auto t0 = Clock::now();
    parallel_for(chunks, [&](int64_t c) {
      size_t off = c * per;
      if (off < bytes) std::memcpy(b.data() + off, a.data() + off, std::min(per, bytes - off));
    });
    if (i > 0) t.push_back(ms_since(t0));
  }
  return 2.0 * bytes / (median(t) * 1e6);
}

Result bench_cpu(const Options& o, int64_t V, DType t) {
  const int64_t N = o.rows;
  std::vector<unsigned char> x;
  std::vector<int32_t> labels(N);
  fill(x, t, N * V, labels, V);
  std::vector<float> tl(N), lse(N), g(N, 1.f / static_cast<float>(N));
  std::vector<double> fwd, bwd;
  auto be = backend_for(Device::CPU);  // host memory: the vectors are its tensors
  const Tensor tx(x.data(), t, N * V), ty(labels.data(), DType::I32, N), ttl(tl.data(), DType::F32, N),
      tlse(lse.data(), DType::F32, N), tg(g.data(), DType::F32, N);
  for (int i = 0; i < o.warmup + o.iters; ++i) {
    auto t0 = Clock::now();
    be->logprob_forward(tx, N, V, ty, ttl, tlse);
    double f = ms_since(t0);
    t0 = Clock::now();
    be->logprob_backward(tx, N, V, ty, tg, tlse, tx);
    double b = ms_since(t0);
    if (i >= o.warmup) fwd.push_back(f), bwd.push_back(b);
  }
  Result r{N, V, t == DType::F32 ? "f32" : "bf16", median(fwd), median(bwd), 0, 0, 0, 0};
  r.total_ms = r.fwd_ms + r.bwd_ms;
  return r;
}

#ifdef SPPO_WITH_CUDA
struct Events {
  cudaEvent_t a, b, c;
  Events() {
    cuda::check_cuda(cudaEventCreate(&a), "cudaEventCreate");
    cuda::check_cuda(cudaEventCreate(&b), "cudaEventCreate");
    cuda::check_cuda(cudaEventCreate(&c), "cudaEventCreate");
  }
  ~Events() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    cudaEventDestroy(c);
  }
  static float between(cudaEvent_t x, cudaEvent_t y) {
    float ms = 0;
    cuda::check_cuda(cudaEventElapsedTime(&ms, x, y), "cudaEventElapsedTime");
    return ms;
  }
};

double cuda_copy_bandwidth(size_t bytes, int iters) {
  auto be = backend_for(Device::CUDA);
  Buffer a(be, bytes), b(be, bytes);
  cuda::check_cuda(cudaMemset(a.data(), 1, bytes), "cudaMemset");
  cudaStream_t s = static_cast<cudaStream_t>(be->native_stream());
  Events ev;
  std::vector<double> t;
  for (int i = 0; i < iters + 2; ++i) {
    cudaEventRecord(ev.a, s);
    be->copy(b.data(), a.data(), bytes);
    cudaEventRecord(ev.b, s);
    cudaEventSynchronize(ev.b);
    if (i >= 2) t.push_back(Events::between(ev.a, ev.b));
  }
  return 2.0 * bytes / (median(t) * 1e6);
}

Result bench_cuda(const Options& o, int64_t V, DType t) {
  const int64_t N = o.rows;
  std::vector<unsigned char> x;
  std::vector<int32_t> labels(N);
  fill(x, t, N * V, labels, V);
  std::vector<float> g(N, 1.f / static_cast<float>(N));
  auto be = backend_for(Device::CUDA);
  Buffer dx(be, x.size()), dy(be, N * 4), dg(be, N * 4), dtl(be, N * 4), dlse(be, N * 4);
  be->upload(dx.data(), x.data(), x.size());
  be->upload(dy.data(), labels.data(), N * 4);
  be->upload(dg.data(), g.data(), N * 4);
  std::vector<unsigned char>().swap(x);
  const Tensor tx = dx.view(t, N * V), ty = dy.view(DType::I32, N), tg = dg.view(DType::F32, N),
               ttl = dtl.view(DType::F32, N), tlse = dlse.view(DType::F32, N);
  cudaStream_t s = static_cast<cudaStream_t>(be->native_stream());
  Events ev;
  std::vector<double> fwd, bwd, tot;
  for (int i = 0; i < o.warmup + o.iters; ++i) {
    cudaEventRecord(ev.a, s);
    be->logprob_forward(tx, N, V, ty, ttl, tlse);
    cudaEventRecord(ev.b, s);
    be->logprob_backward(tx, N, V, ty, tg, tlse, tx);
    cudaEventRecord(ev.c, s);
    cuda::check_cuda(cudaEventSynchronize(ev.c), "benchmark");
    if (i >= o.warmup) {
      fwd.push_back(Events::between(ev.a, ev.b));
      bwd.push_back(Events::between(ev.b, ev.c));
      tot.push_back(Events::between(ev.a, ev.c));
    }
  }
  be->synchronize();  // deferred device errors, once, after the timed runs
  Result r{N, V, t == DType::F32 ? "f32" : "bf16", median(fwd), median(bwd), median(tot), 0, 0, 0};
  return r;
}
#endif

std::string today() {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options o = parse(argc, argv);
    const bool cuda = o.device == "cuda";
    require_device(cuda ? Device::CUDA : Device::CPU);
    std::string device_name = "CPU (" + std::to_string(cpu_threads()) + " threads)";
    double bw = 0;
    sppo_bench::say_if_smoke();
    const size_t probe = sppo_bench::full_or_toy(static_cast<size_t>(cuda ? 1024 : 256) << 20, size_t{1} << 20);
    if (cuda) {
#ifdef SPPO_WITH_CUDA
      device_name = cuda_devices().at(0).name;
      bw = cuda_copy_bandwidth(probe, 10);
#endif
    } else {
      bw = cpu_copy_bandwidth(probe, 5);
    }
    std::printf("sppo-native bench kernels: logprob forward + in-place backward\n");
    std::printf("device: %s   copy bandwidth: %.1f GB/s (read + write)   median of %d after %d warmup\n",
                device_name.c_str(), bw, o.iters, o.warmup);
    std::printf("%-16s %-5s %10s %10s %12s %9s %10s %8s\n", "shape", "dtype", "fwd ms", "bwd ms", "fwd+bwd ms",
                "GB/s", "floor ms", "x floor");
    std::vector<Result> results;
    for (int64_t V : o.vocabs)
      for (auto& d : o.dtypes) {
        const DType t = d == "f32" ? DType::F32 : DType::BF16;
        Result r{};
#ifdef SPPO_WITH_CUDA
        if (cuda) r = bench_cuda(o, V, t);
#endif
        if (!cuda) r = bench_cpu(o, V, t);
        const double bytes = 3.0 * static_cast<double>(r.rows) * static_cast<double>(V) * dtype_size(t);
        r.gbps = bytes / (r.total_ms * 1e6);
        r.floor_ms = bytes / (bw * 1e6);
        r.ratio = r.total_ms / r.floor_ms;
        std::string shape = std::to_string(r.rows) + "x" + std::to_string(V);
        std::printf("%-16s %-5s %10.3f %10.3f %12.3f %9.1f %10.3f %8.2f\n", shape.c_str(), r.dtype.c_str(), r.fwd_ms,
                    r.bwd_ms, r.total_ms, r.gbps, r.floor_ms, r.ratio);
        std::fflush(stdout);
        results.push_back(r);
      }
    if (!o.json.empty()) {
      std::ofstream f(o.json);
      if (!f) fail("cannot write --json file '", o.json, "'");
      f.precision(9);
      f << "{\n  \"suite\": \"kernels\",\n  \"source\": \"native\",\n  \"date\": \"" << today() << "\",\n"
        << "  \"device\": \"" << o.device << "\",\n  \"deviceName\": \"" << device_name << "\",\n"
        << "  \"copyBandwidthGBs\": " << bw << ",\n  \"iters\": " << o.iters << ",\n  \"warmup\": " << o.warmup
        << ",\n  \"results\": [\n";
      for (size_t i = 0; i < results.size(); ++i) {
        const Result& r = results[i];
        f << "    {\"rows\": " << r.rows << ", \"vocab\": " << r.vocab << ", \"dtype\": \"" << r.dtype
          << "\", \"fwdMs\": " << r.fwd_ms << ", \"bwdMs\": " << r.bwd_ms << ", \"totalMs\": " << r.total_ms
          << ", \"gbps\": " << r.gbps << ", \"floorMs\": " << r.floor_ms << ", \"ratio\": " << r.ratio << "}"
          << (i + 1 < results.size() ? ",\n" : "\n");
      }
      f << "  ]\n}\n";
      std::printf("wrote %s\n", o.json.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_logprob: %s\n", e.what());
    return 1;
  }
}
