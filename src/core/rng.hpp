// The project's one family of random numbers: splitmix64 (Steele, Lea and Flood 2014), used as a
// counter-based generator (a number is a pure function of its key, so it does not depend on the
// thread that draws it or on what was drawn before) and as a small sequential generator for
// shuffles. Identical on every platform, which is what makes runs reproducible bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace linformer::core {

constexpr uint64_t kGoldenGamma = 0x9E3779B97F4A7C15ULL;  // splitmix64's increment

// splitmix64's output function alone (the "finaliser"): a bijective 64-bit mix.
constexpr uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// One splitmix64 output for state x: the finaliser of x + gamma.
constexpr uint64_t splitmix64(uint64_t x) { return mix64(x + kGoldenGamma); }

// A uniform number in [0, n) from 64 random bits (Lemire's multiply-shift, no division).
inline uint64_t below(uint64_t r, uint64_t n) { return (uint64_t)(((unsigned __int128)r * n) >> 64); }

// A sequential splitmix64 generator. The state is taken as given: callers key it with nested
// splitmix64 of their (seed, stream, epoch, ...) so every stream is reproducible on its own.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t state) : s(state) {}
  uint64_t next() { return splitmix64(s += kGoldenGamma); }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1p-53; }  // [0, 1)
  uint64_t below(uint64_t n) { return core::below(next(), n); }
};

// Fisher-Yates shuffle of v driven by rng (the order of draws is part of the contract: runs and
// their resumes depend on it).
template <class T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

}  // namespace linformer::core
