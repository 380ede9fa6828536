// Element types the core reads and writes, and exact conversions between them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/half_bits.h"

namespace sppo {

// Floating types hold tensors; I32 (token ids, labels, positions, indices) and U8 (masks) hold
// the integer inputs ops read.
enum class DType : int { F32 = 0, BF16 = 1, F16 = 2, F64 = 3, I32 = 4, U8 = 5 };

inline std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::U8: return 1;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::F64: return "F64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
  }
  return "?";
}

// bfloat16 is the top half of an IEEE float32; rounding is to nearest even, NaN stays NaN.
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding) >> 16);
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t u = half_bits::f16_to_f32(h);
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return half_bits::f32_to_f16(u);
}

// The 16-bit float types by tag (t: BF16 or F16), for code that handles both alike: f's bits
// rounded to nearest even, and back.
inline uint16_t f32_to_16bit(DType t, float f) { return t == DType::BF16 ? f32_to_bf16(f) : f32_to_f16(f); }
inline float f32_from_16bit(DType t, uint16_t h) { return t == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h); }

}  // namespace sppo
