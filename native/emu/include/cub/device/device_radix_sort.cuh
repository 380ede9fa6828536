// Stands in for CUB in the emulated build only (SPPO_CUDA=emulate): the one algorithm the CUDA
// backend uses, DeviceRadixSort::SortPairs, as a stable sort on the stream's queue. It asks for
// temporary storage like CUB and checks that it was given.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

#include "emu/cuda_emu_runtime.h"

namespace cub {

struct DeviceRadixSort {
  template <typename K, typename V>
  static cudaError_t SortPairs(void* temp, std::size_t& temp_bytes, const K* keys_in, K* keys_out, const V* values_in,
                               V* values_out, int n, int begin_bit = 0, int end_bit = sizeof(K) * 8,
                               cudaStream_t stream = nullptr) {
    const std::size_t need = 256 + static_cast<std::size_t>(n) * 8;
    if (temp == nullptr) {
      temp_bytes = need;
      return cudaSuccess;
    }
    if (temp_bytes < need) return cudaErrorInvalidValue;
    return sppo_emu::enqueue(stream, "cub::DeviceRadixSort::SortPairs", [=]() {
      using U = typename std::make_unsigned<K>::type;
      const int width = end_bit - begin_bit;
      const U mask = width >= static_cast<int>(sizeof(U) * 8) ? static_cast<U>(~U{0})
                                                              : static_cast<U>((U{1} << width) - 1);
      auto key = [&](int i) { return static_cast<U>(static_cast<U>(keys_in[i]) >> begin_bit) & mask; };
      std::vector<int> order(static_cast<std::size_t>(n));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return key(a) < key(b); });
      std::vector<K> k(static_cast<std::size_t>(n));
      std::vector<V> v(static_cast<std::size_t>(n));
      for (int i = 0; i < n; ++i) {
        k[static_cast<std::size_t>(i)] = keys_in[order[static_cast<std::size_t>(i)]];
        v[static_cast<std::size_t>(i)] = values_in[order[static_cast<std::size_t>(i)]];
      }
      std::copy(k.begin(), k.end(), keys_out);
      std::copy(v.begin(), v.end(), values_out);
    });
  }
};

}  // namespace cub
