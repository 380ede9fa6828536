#include "model/weight_arena.h"

#include <cmath>

#include "core/error.h"

namespace sppo {

namespace {
uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

void check_precision_on(const Backend& be, Precision p) {
  // The CPU computes in fp32, fp64, bf16 and fp16 (the last two emulated: backend/half_emulation.h).
  SPPO_CHECK(be.device() == Device::CPU || p != Precision::FP64,
             "the CUDA backend computes in fp32, bf16 or fp16; fp64 models need the CPU backend");
}

Buffer zeroed_weights(const std::shared_ptr<Backend>& be, DType dtype, int64_t elements, const char* what) {
  ArenaPlan plan;
  plan.add("weights", dtype, elements);
  const std::size_t need = plan.bytes(), have = be->available_memory();
  SPPO_CHECK(need <= have, what, " need ", format_bytes(static_cast<double>(need)), " but the ", be->name(),
             " backend has ", format_bytes(static_cast<double>(have)), " available");
  Buffer weights(be, need);
  be->zero(weights.data(), weights.bytes());
  return weights;
}

void fill_normal(std::vector<double>& v, uint64_t& s, double std) {
  for (auto& x : v) {
    const double u1 = (static_cast<double>(splitmix64(s) >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = static_cast<double>(splitmix64(s) >> 11) * 0x1.0p-53;
    x = std * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.14159265358979323846 * u2);
  }
}

void upload_values(Backend& be, const Tensor& dst, const std::vector<double>& v) {
  SPPO_CHECK(static_cast<int64_t>(v.size()) == dst.numel, "upload_values: ", v.size(), " values for ", dst.numel,
             " elements");
  std::vector<char> bytes(dst.bytes());
  for (int64_t j = 0; j < dst.numel; ++j) {
    const double x = v[static_cast<size_t>(j)];
    if (dst.dtype == DType::F64) reinterpret_cast<double*>(bytes.data())[j] = x;
    else if (dst.dtype == DType::F32) reinterpret_cast<float*>(bytes.data())[j] = static_cast<float>(x);
    else if (dst.dtype == DType::BF16 || dst.dtype == DType::F16)
      reinterpret_cast<uint16_t*>(bytes.data())[j] = f32_to_16bit(dst.dtype, static_cast<float>(x));
    else fail("upload_values: F64, F32, BF16 or F16 destinations only (got ", dtype_name(dst.dtype), ")");
  }
  be.upload(dst.data, bytes.data(), bytes.size());
}

void download_as(Backend& be, const Tensor& src, const Tensor& out, int64_t n) {
  SPPO_CHECK(out.dtype == DType::F32 || out.dtype == DType::F64, "outputs are F32 or F64 (got ", dtype_name(out.dtype),
             ")");
  require(out, out.dtype, n, "download", "output");
  require(src, src.dtype, n, "download", "source");
  if (src.dtype == out.dtype) {
    be.download(out.data, src.data, static_cast<std::size_t>(n) * dtype_size(src.dtype));
    return;
  }
  std::vector<char> tmp(static_cast<std::size_t>(n) * dtype_size(src.dtype));
  be.download(tmp.data(), src.data, tmp.size());
  for (int64_t i = 0; i < n; ++i) {
    double x;
    if (src.dtype == DType::F32) x = reinterpret_cast<const float*>(tmp.data())[i];
    else if (src.dtype == DType::F64) x = reinterpret_cast<const double*>(tmp.data())[i];
    else if (src.dtype == DType::BF16 || src.dtype == DType::F16)
      x = f32_from_16bit(src.dtype, reinterpret_cast<const uint16_t*>(tmp.data())[i]);
    else fail("download: F64, F32, BF16 or F16 sources only (got ", dtype_name(src.dtype), ")");
    if (out.dtype == DType::F32) out.as<float>()[i] = static_cast<float>(x);
    else out.as<double>()[i] = x;
  }
}

}  // namespace sppo
