// Helpers for the CUDA-against-CPU suites (test_<op>_cuda.cpp): random vectors, bf16 rounding,
// and an element-wise comparison that reports the first few mismatches with their index.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend_testing.h"
#include "core/dtype.h"
#include "testing.h"

namespace sppo_test {

inline std::vector<float> randn_f32(Rng& rng, int64_t n, double scale = 1.0) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal(0, scale));
  return v;
}

// Float values as BF16 or F16 bits (rounded to nearest even), and back.
inline std::vector<uint16_t> to_half(const std::vector<float>& v, sppo::DType dt) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = sppo::f32_to_16bit(dt, v[i]);
  return out;
}
inline std::vector<float> from_half(const std::vector<uint16_t>& v, sppo::DType dt) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = sppo::f32_from_16bit(dt, v[i]);
  return out;
}
inline std::vector<uint16_t> to_bf16(const std::vector<float>& v) { return to_half(v, sppo::DType::BF16); }
inline std::vector<float> from_bf16(const std::vector<uint16_t>& v) { return from_half(v, sppo::DType::BF16); }

// The values a bf16 tensor really holds (what the CPU reference must be given).
inline std::vector<float> round_bf16(const std::vector<float>& v) { return from_bf16(to_bf16(v)); }
// The same for any element type: F32 as it is, BF16 or F16 rounded.
inline std::vector<float> round_to(const std::vector<float>& v, sppo::DType dt) {
  return dt == sppo::DType::F32 ? v : from_half(to_half(v, dt), dt);
}
// One rounding of the type, relative (half an ulp above 1, doubled: RNE's worst plus a margin for
// the operands' own rounding): F32 2^-23, BF16 2^-8, F16 2^-11.
inline double rounding_of(sppo::DType dt) {
  return dt == sppo::DType::BF16 ? std::ldexp(1.0, -8) : dt == sppo::DType::F16 ? std::ldexp(1.0, -11) : 1.2e-7;
}
// The absolute floor of that rounding: F16's subnormal spacing (2^-24; BF16 and F32 keep fp32's
// exponent range, so none is needed there).
inline double rounding_floor(sppo::DType dt) { return dt == sppo::DType::F16 ? std::ldexp(1.0, -24) : 0.0; }

// |got - want| <= atol[i] + rtol |want| for every i (NaN fails); prints up to 3 mismatches.
// Returns the number of mismatches and counts one CHECK failure when there are any.
inline int64_t expect_close(const char* what, const std::vector<float>& got, const std::vector<float>& want,
                            const std::vector<double>& atol, double rtol) {
  int64_t bad = 0;
  const size_t n = want.size();
  if (got.size() != n) {
    std::printf("  %s: %zu values, expected %zu\n", what, got.size(), n);
    ++failures();
    return 1;
  }
  for (size_t i = 0; i < n; ++i) {
    const double g = got[i], w = want[i];
    if (!(std::fabs(g - w) <= atol[i] + rtol * std::fabs(w))) {
      if (bad < 3) std::printf("  %s[%zu] = %.9g, expected %.9g (atol %.3g, rtol %.3g)\n", what, i, g, w, atol[i], rtol);
      ++bad;
    }
  }
  if (bad) {
    std::printf("  %s: %lld of %zu values off\n", what, static_cast<long long>(bad), n);
    ++failures();
  }
  return bad;
}

inline int64_t expect_close(const char* what, const std::vector<float>& got, const std::vector<float>& want,
                            double atol, double rtol) {
  return expect_close(what, got, want, std::vector<double>(want.size(), atol), rtol);
}

// Bitwise equality (for ops whose CUDA twin must reproduce the CPU's arithmetic exactly).
inline int64_t expect_same_bits(const char* what, const std::vector<float>& got, const std::vector<float>& want) {
  int64_t bad = 0;
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0) {
      if (bad < 3) std::printf("  %s[%zu] = %.9g, expected exactly %.9g\n", what, i, got[i], want[i]);
      ++bad;
    }
  }
  if (bad || got.size() != want.size()) {
    std::printf("  %s: %lld of %zu values differ\n", what, static_cast<long long>(bad), want.size());
    ++failures();
  }
  return bad;
}

// The bf16 weights an optimizer step wrote from its fp32 master (bf16 training): on the device they
// must be the master's RNE rounding bit for bit (the shared optim_math::bf16_bits), and within one
// bf16 rounding of the CPU twin's (the masters themselves may differ by fp32 contractions). Counts
// one CHECK failure per property that fails; returns the number of bad elements.
inline int64_t expect_rounded_master(const char* what, const std::vector<uint16_t>& w16, const std::vector<float>& master,
                                     const std::vector<uint16_t>& cpu_w16, const std::vector<float>& cpu_master) {
  int64_t unrounded = 0, far = 0, same_master_differs = 0;
  for (size_t i = 0; i < master.size() && i < w16.size() && i < cpu_w16.size(); ++i) {
    if (w16[i] != sppo::f32_to_bf16(master[i]) && ++unrounded <= 3)
      std::printf("  %s[%zu] = 0x%04x, the master %.9g rounds to 0x%04x\n", what, i, w16[i], master[i],
                  sppo::f32_to_bf16(master[i]));
    if (std::memcmp(&master[i], &cpu_master[i], sizeof(float)) == 0 && w16[i] != cpu_w16[i]) ++same_master_differs;
    const double a = sppo::bf16_to_f32(w16[i]), b = sppo::bf16_to_f32(cpu_w16[i]);
    if (!(std::fabs(a - b) <= std::ldexp(std::fabs(b), -7)) && ++far <= 3)
      std::printf("  %s[%zu] = %.6g, the CPU's %.6g\n", what, i, a, b);
  }
  const bool sizes = w16.size() == master.size() && cpu_w16.size() == master.size() && cpu_master.size() == master.size();
  if (unrounded || far || same_master_differs || !sizes) {
    std::printf("  %s: %lld not the master's rounding, %lld off the CPU's by more than a bf16 step, %lld differ from"
                " the CPU's under the same master (sizes %s)\n", what, static_cast<long long>(unrounded),
                static_cast<long long>(far), static_cast<long long>(same_master_differs), sizes ? "agree" : "differ");
    ++failures();
  }
  return unrounded + far + same_master_differs;
}

// A device copy of float values stored as `dt` (F32, or BF16 / F16 rounded to nearest even).
inline Dev dev_as(const std::shared_ptr<sppo::Backend>& be, const std::vector<float>& v, sppo::DType dt,
                  int64_t offset = 0) {
  return dt == sppo::DType::F32 ? Dev(be, v, dt, offset) : Dev(be, to_half(v, dt), dt, offset);
}

// A device tensor's values as floats (F32, BF16 or F16).
inline std::vector<float> floats_of(const Dev& d, sppo::DType dt) {
  return dt == sppo::DType::F32 ? d.get<float>() : from_half(d.get<uint16_t>(), dt);
}

// The message `fn` throws, or "" when it does not throw. For GPU ops, fn includes synchronize():
// deferred device errors surface there.
inline std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// Both backends must refuse with the same message (and must refuse).
inline void expect_same_error(const char* what, const std::string& cpu, const std::string& gpu) {
  if (cpu.empty() || cpu != gpu) {
    std::printf("  %s: CPU says '%s', CUDA says '%s'\n", what, cpu.c_str(), gpu.c_str());
    ++failures();
  }
}

}  // namespace sppo_test
