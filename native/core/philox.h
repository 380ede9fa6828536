// Philox-4x32-10 (Salmon et al., SC'11), the counter-based generator of cuRAND and PyTorch: the
// numbers depend only on (key, counter), so CPU and CUDA code draw identical values with no state
// to carry between calls. Host and device (SPPO_HD; cuda/sample.cu draws with it).
//
// sppo-native's convention for sampling: key = the 64-bit seed, counter = (step low, step high,
// sequence low, sequence high); uniform53() of the first two output words is the draw of that
// step. A sample's draws therefore depend only on (seed, sequence, step).
#pragma once
#include <cstdint>

#include "core/host_device.h"

namespace sppo::philox {

struct U32x4 {
  uint32_t x[4];
};

SPPO_HD inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// Ten rounds of Philox4x32 with the standard multipliers and Weyl constants.
SPPO_HD inline U32x4 philox4x32_10(U32x4 c, uint32_t k0, uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(M0, c.x[0], hi0, lo0);
    mulhilo(M1, c.x[2], hi1, lo1);
    c = U32x4{{hi1 ^ c.x[1] ^ k0, lo1, hi0 ^ c.x[3] ^ k1, lo0}};
    k0 += W0;
    k1 += W1;
  }
  return c;
}

SPPO_HD inline U32x4 draw(uint64_t seed, uint64_t sequence, uint64_t step) {
  const U32x4 ctr{{static_cast<uint32_t>(step), static_cast<uint32_t>(step >> 32), static_cast<uint32_t>(sequence),
                   static_cast<uint32_t>(sequence >> 32)}};
  return philox4x32_10(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// The top 53 bits of (x[0] << 32 | x[1]) as an integer in [0, 2^53): exact, so callers can scale
// it with integer arithmetic; divided by 2^53 it is a uniform double in [0, 1).
SPPO_HD inline uint64_t bits53(const U32x4& r) {
  return ((static_cast<uint64_t>(r.x[0]) << 32) | r.x[1]) >> 11;
}

SPPO_HD inline double uniform53(const U32x4& r) { return static_cast<double>(bits53(r)) * 0x1.0p-53; }

}  // namespace sppo::philox
