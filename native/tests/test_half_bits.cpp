// core/half_bits.h (the fp16 conversions the CPU's emulation and the CUDA F16 kernels share)
// against the compiler's own _Float16 conversions, an independent implementation: every one of
// the 65536 halves widened, and float32 values narrowed where rounding is hardest (halfway
// cases, the subnormal range, overflow, NaN), plus fresh random bit patterns.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "core/dtype.h"
#include "core/half_bits.h"
#include "testing.h"

namespace {

// The object representation of `from` as a `To` of the same size (C++20's std::bit_cast).
template <typename To, typename From>
To bit_cast(From from) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast: sizes differ");
  To to;
  std::memcpy(&to, &from, sizeof to);
  return to;
}
uint32_t bits_of(float f) { return bit_cast<uint32_t>(f); }
float float_of(uint32_t u) { return bit_cast<float>(u); }
uint16_t bits_of(_Float16 h) { return bit_cast<uint16_t>(h); }
_Float16 half_of(uint16_t u) { return bit_cast<_Float16>(u); }

// Same result: equal bits, or both NaN (the NaN payload is not specified, only that it stays NaN).
bool same_narrow(uint32_t f32, int* shown) {
  const uint16_t got = sppo::half_bits::f32_to_f16(f32), want = bits_of(static_cast<_Float16>(float_of(f32)));
  const bool got_nan = (got & 0x7c00u) == 0x7c00u && (got & 0x3ffu), want_nan = (want & 0x7c00u) == 0x7c00u && (want & 0x3ffu);
  const bool ok = got == want || (got_nan && want_nan);
  if (!ok && (*shown)++ < 5) std::printf("  f32 0x%08x: got 0x%04x, want 0x%04x\n", f32, got, want);
  return ok;
}

}  // namespace

TEST(every_half_widens_as_the_compiler_widens_it) {
  int bad = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float want = static_cast<float>(half_of(static_cast<uint16_t>(h)));
    const uint32_t got = sppo::half_bits::f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(want) ? !std::isnan(float_of(got)) : got != bits_of(want)) {
      if (bad++ < 5) std::printf("  f16 0x%04x: got 0x%08x, want 0x%08x\n", h, got, bits_of(want));
    }
  }
  CHECK(bad == 0);
  CHECK(sppo::f16_to_f32(0x3c00u) == 1.0f);  // dtype.h's wrapper over the same bits
}

TEST(floats_narrow_as_the_compiler_narrows_them_at_every_rounding_edge) {
  int shown = 0, bad = 0;
  // Around every half: the value, its halfway points to both neighbours, and one ulp of f32 either
  // side of each (ties to even, and just off the tie), in both signs.
  for (uint32_t h = 0; h < 0x7c00u; ++h) {
    const uint32_t v = sppo::half_bits::f16_to_f32(static_cast<uint16_t>(h));
    const uint32_t next = sppo::half_bits::f16_to_f32(static_cast<uint16_t>(h + 1));
    const float mid = (float_of(v) + float_of(next)) / 2;  // exact: halves have 11 bits, floats 24
    for (uint32_t x : {v, bits_of(mid), bits_of(mid) - 1, bits_of(mid) + 1, v + 1, v ? v - 1 : 0u})
      for (uint32_t sign : {0u, 0x80000000u}) bad += !same_narrow(x | sign, &shown);
  }
  // The deep subnormal range (rounding to 0 or the smallest subnormal), overflow, inf, NaN.
  for (uint32_t x : {0x33000000u, 0x33000001u, 0x32ffffffu, 0x33800000u, 0x337fffffu, 0x2f800000u, 0x477ff000u,
                     0x477fefffu, 0x477fe000u, 0x47800000u, 0x7f7fffffu, 0x7f800000u, 0x7fc00000u, 0x7f800001u,
                     0x7fbfffffu, 0x00000001u})
    for (uint32_t sign : {0u, 0x80000000u}) bad += !same_narrow(x | sign, &shown);
  sppo_test::Rng rng(1);
  for (int i = 0; i < 2000000; ++i) bad += !same_narrow(static_cast<uint32_t>(rng.gen()), &shown);
  CHECK(bad == 0);
  CHECK(sppo::f32_to_f16(1.0f) == 0x3c00u);
}

TEST_MAIN()
