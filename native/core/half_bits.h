// IEEE binary16 (fp16) <-> binary32 on raw bits, for the host (core/dtype.h's f16_to_f32 and
// f32_to_f16) and the CUDA kernels (kernels/cuda/cuda_common.cuh F16E) alike: one definition, so
// a CUDA F16 store is bit-identical to the CPU's. Round to nearest even, subnormals kept,
// overflow to infinity, NaN stays a quiet NaN. Integer operations only (no __half intrinsics),
// so the CUDA emulator runs the same code the GPU does.
#pragma once
#include <cstdint>

#include "core/host_device.h"

namespace sppo::half_bits {

SPPO_HD inline uint32_t f16_to_f32(uint16_t h) {
  const uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    if (mant == 0) return sign;
    exp = 127 - 15 + 1;  // subnormal: normalise
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --exp;
    }
    return sign | (exp << 23) | ((mant & 0x3ffu) << 13);
  }
  if (exp == 0x1f) return sign | 0x7f800000u | (mant << 13);
  return sign | ((exp - 15 + 127) << 23) | (mant << 13);
}

SPPO_HD inline uint16_t f32_to_f16(uint32_t u) {
  const uint32_t sign = (u >> 16) & 0x8000u;
  const int32_t exp = static_cast<int32_t>((u >> 23) & 0xffu) - 127 + 15;
  uint32_t mant = u & 0x7fffffu;
  if (((u >> 23) & 0xffu) == 0xffu) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
  if (exp >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow to inf
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u);
    const uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;  // a carry into the exponent is right
  return static_cast<uint16_t>(half);
}

}  // namespace sppo::half_bits
