// Non-cryptographic hashing: FNV-1a over bytes, for checksums (replica checks across MPI ranks)
// and seeded hashes of strings (deterministic splits and subsampling).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace linformer::core {

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;

// FNV-1a of `bytes` bytes, continuing from h (kFnvOffset to start).
inline uint64_t fnv1a(const void* data, size_t bytes, uint64_t h = kFnvOffset) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= kFnvPrime;
  }
  return h;
}

// FNV-1a with a 32-bit word as the unit instead of a byte: a quarter of the steps, for
// checksums of large float arrays (parameters), where speed matters more than mixing.
inline uint64_t fnv1a_words(const uint32_t* w, size_t n, uint64_t h = kFnvOffset) {
  for (size_t i = 0; i < n; ++i) h = (h ^ w[i]) * kFnvPrime;
  return h;
}

// A seeded 64-bit hash of a string: FNV-1a from a seed-dependent start, then murmur3's fmix64 so
// that every output bit depends on every input bit (the splits threshold the hash).
inline uint64_t hash_string(std::string_view s, uint64_t seed) {
  uint64_t h = fnv1a(s.data(), s.size(), kFnvOffset ^ (seed * 0x9E3779B97F4A7C15ULL));
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

}  // namespace linformer::core
