// Vectorizable float math shared by the kernels (kernels.cpp) and the tiled attention: plain
// inline functions with no calls into libm, so loops that use them compile to SIMD code (libm's
// expf is a scalar call). Compile users with -fno-trapping-math (set for the library in
// CMakeLists.txt), or GCC keeps the loops scalar.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace linformer::kernels {

// e^x: 2^k * e^r with k = round(x / ln 2), |r| <= ln(2)/2 (ln 2 split in two for an exact
// reduction, Cody-Waite) and e^r by its Taylor series to r^7 (truncation below 1e-8 relative).
// Below x = -87 (e^x < 1.7e-38, the smallest normal floats) it returns 0; above 88 about 1.7e38
// (instead of infinity; softmax and GELU never pass such values); NaN gives NaN.
inline float exp_vec(float x_in) {
  // NaN goes through the arithmetic as 0 (converting NaN to an integer is undefined) and comes
  // back as NaN at the end, so that a diverged loss is still seen as NaN.
  const bool is_nan = x_in != x_in;
  const float x = is_nan ? 0.0f : std::min(std::max(x_in, -87.0f), 88.0f);
  // round(x / ln 2) as a truncation of a positive number: std::floor would stop vectorization
  const int32_t ki = (int32_t)(x * 1.44269504088896341f + 128.5f) - 128;
  const float k = (float)ki;
  const float r = (x - k * 0.693359375f) - k * -2.12194440e-4f;
  const float p =
      1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
  const int32_t bits = (ki + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return is_nan ? x_in : (x_in < -87.0f ? 0.0f : p * scale);
}

}  // namespace linformer::kernels
