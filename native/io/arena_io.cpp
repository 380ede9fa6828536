// load_into and host_floats (io/arena_io.h).
#include "io/arena_io.h"

#include "core/error.h"

namespace sppo::io {

void load_into(const std::string& path, uint64_t offset, uint64_t nbytes, DType file_dtype, Backend& be,
               const Tensor& dst, const std::string& what) {
  SPPO_CHECK(dst.dtype == DType::F32 || dst.dtype == DType::F64 || dst.dtype == DType::BF16 || dst.dtype == DType::F16,
             what, ": parameters are F32, F64, BF16 or F16 (got ", dtype_name(dst.dtype), ")");
  if (dst.dtype == DType::F32 && be.host_accessible()) {
    read_tensor(path, offset, nbytes, file_dtype, dst.as<float>(), dst.numel, what);
    return;
  }
  std::vector<float> f(static_cast<size_t>(dst.numel));
  read_tensor(path, offset, nbytes, file_dtype, f.data(), dst.numel, what);
  if (dst.dtype == DType::F32) {
    be.upload(dst.data, f.data(), f.size() * sizeof(float));
  } else if (dst.dtype == DType::F64) {
    std::vector<double> d(f.begin(), f.end());
    be.upload(dst.data, d.data(), d.size() * sizeof(double));
  } else {
    std::vector<uint16_t> h(f.size());
    for (size_t i = 0; i < f.size(); ++i) h[i] = f32_to_16bit(dst.dtype, f[i]);
    be.upload(dst.data, h.data(), h.size() * sizeof(uint16_t));
  }
}

HostFloats host_floats(Backend& be, const std::vector<Tensor>& tensors) {
  HostFloats out;
  out.copies.reserve(tensors.size());
  for (const Tensor& t : tensors) {
    if (t.dtype == DType::F32 && be.host_accessible()) {
      out.sources.push_back({t.as<float>(), t.numel});
      continue;
    }
    std::vector<float> f(static_cast<size_t>(t.numel));
    if (t.dtype == DType::F32) {
      be.download(f.data(), t.data, t.bytes());
    } else if (t.dtype == DType::F64) {
      std::vector<double> d(f.size());
      be.download(d.data(), t.data, t.bytes());
      for (size_t i = 0; i < d.size(); ++i) f[i] = static_cast<float>(d[i]);
    } else {
      SPPO_CHECK(t.dtype == DType::BF16 || t.dtype == DType::F16, "host_floats: F32, F64, BF16 or F16 tensors only (got ",
                 dtype_name(t.dtype), ")");
      std::vector<uint16_t> h(f.size());
      be.download(h.data(), t.data, t.bytes());
      for (size_t i = 0; i < h.size(); ++i) f[i] = f32_from_16bit(t.dtype, h[i]);
    }
    out.copies.push_back(std::move(f));
    out.sources.push_back({out.copies.back().data(), t.numel});
  }
  return out;
}

}  // namespace sppo::io
