// Fast CPU kernels. See kernels.hpp for the contracts and reference.hpp for the plain twins.
#include "kernels/kernels.hpp"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/rng.hpp"
#include "kernels/fast_math.hpp"
#include "linformer/error.hpp"

namespace linformer::kernels {

namespace {
// Rows of C per thread from which matmul splits a product by rows itself (see matmul).
constexpr int kRowSplitMin = 512;
}  // namespace

void matmul(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
            const float* B, int ldb, float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // oneDNN rejects K == 0; the product is empty, C = beta * C.
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
    return;
  }
  if (matmul_precision() == MatmulPrecision::bf16)
    return matmul_bf16(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  // Tall products: each thread takes whole rows of C and runs a single-threaded sgemm (oneDNN
  // runs single-threaded inside a parallel region). oneDNN's own split of one product scales
  // worse on some of our shapes: [1024 x 3072] x [3072 x 768] (the FFN's second product in
  // inference row blocks) ran 1.4-1.6x faster on 2 threads than on 1, split by rows 1.8-1.9x
  // (bench/sgemm_split.cpp, docs/BENCHMARKS.md "Thread scaling").
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads > 1 && M >= kRowSplitMin * threads) {
    dnnl_status_t st = dnnl_success;
#pragma omp parallel num_threads(threads)
    {
      const int nt = omp_get_num_threads(), id = omp_get_thread_num();
      const int m0 = (int)((long)M * id / nt), m1 = (int)((long)M * (id + 1) / nt);
      // Rows m0.. of op(A): row offset in A, or column offset when A is stored transposed.
      const float* Ai = transA ? A + m0 : A + (size_t)m0 * lda;
      const dnnl_status_t s = dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', m1 - m0, N, K, alpha, Ai, lda, B,
                                         ldb, beta, C + (size_t)m0 * ldc, ldc);
      if (s != dnnl_success) {
#pragma omp critical(linformer_matmul_status)
        st = s;
      }
    }
    if (st != dnnl_success) throw Error("dnnl_sgemm failed with status " + std::to_string((int)st));
    return;
  }
  dnnl_status_t st = dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta,
                                C, ldc);
  if (st != dnnl_success) throw Error("dnnl_sgemm failed with status " + std::to_string((int)st));
}

void add_inplace(float* y, const float* x, size_t n) {
  const ptrdiff_t N = (ptrdiff_t)n;
#pragma omp parallel for schedule(static)
  for (ptrdiff_t i = 0; i < N; ++i) y[i] += x[i];
}

void bias_add_forward(float* y, const float* b, int T, int C) {
#pragma omp parallel for schedule(static)
  for (int t = 0; t < T; ++t) {
    float* row = y + (size_t)t * C;
    for (int c = 0; c < C; ++c) row[c] += b[c];
  }
}

void bias_add_backward(float* db, const float* dy, int T, int C) {
  // Column sums; each thread owns a slice of columns so the sum order is fixed (deterministic).
#pragma omp parallel
  {
    int nt = omp_get_num_threads(), id = omp_get_thread_num();
    int c0 = (int)((long)C * id / nt), c1 = (int)((long)C * (id + 1) / nt);
    for (int t = 0; t < T; ++t) {
      const float* row = dy + (size_t)t * C;
      for (int c = c0; c < c1; ++c) db[c] += row[c];
    }
  }
}

void linear_forward(float* y, const float* x, const float* W, const float* b, int T, int in, int out) {
  matmul(false, true, T, out, in, 1.0f, x, in, W, in, 0.0f, y, out);
  if (b) bias_add_forward(y, b, T, out);
}

void linear_backward(float* dx, float* dW, float* db, const float* dy, const float* x, const float* W, int T,
                     int in, int out, bool accumulate_dx) {
  if (dx) matmul(false, false, T, in, out, 1.0f, dy, out, W, in, accumulate_dx ? 1.0f : 0.0f, dx, in);
  if (dW) matmul(true, false, out, in, T, 1.0f, dy, out, x, in, 1.0f, dW, in);
  if (db) bias_add_backward(db, dy, T, out);
}

void embedding_forward(float* out, const int32_t* ids, const float* tok, const float* pos, int B, int n,
                       int d) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < B * n; ++r) {
    const float* te = tok + (size_t)ids[r] * d;
    const float* pe = pos + (size_t)(r % n) * d;
    float* o = out + (size_t)r * d;
    for (int c = 0; c < d; ++c) o[c] = te[c] + pe[c];
  }
}

void embedding_backward(float* dtok, float* dpos, const float* dout, const int32_t* ids, int B, int n,
                        int d) {
  // Parallel over the feature dimension: no two threads write the same element, and each
  // element's sum runs in row order, so the result does not depend on the thread count.
#pragma omp parallel
  {
    int nt = omp_get_num_threads(), id = omp_get_thread_num();
    int c0 = (int)((long)d * id / nt), c1 = (int)((long)d * (id + 1) / nt);
    for (int r = 0; r < B * n; ++r) {
      const float* g = dout + (size_t)r * d;
      float* te = dtok + (size_t)ids[r] * d;
      float* pe = dpos + (size_t)(r % n) * d;
      for (int c = c0; c < c1; ++c) {
        te[c] += g[c];
        pe[c] += g[c];
      }
    }
  }
}

// LayerNorm of one row of d values. Two passes (mean, then centred variance): stable for rows
// with a large common offset. out may alias x.
static void layernorm_row(float* o, float* mean, float* rstd, const float* xr, const float* w, const float* b, int d,
                          float eps) {
  double s = 0.0;
  for (int c = 0; c < d; ++c) s += xr[c];
  const float m = (float)(s / d);
  double v = 0.0;
  for (int c = 0; c < d; ++c) {
    const float z = xr[c] - m;
    v += (double)z * z;
  }
  const float rs = 1.0f / std::sqrt((float)(v / d) + eps);
  for (int c = 0; c < d; ++c) o[c] = (xr[c] - m) * rs * w[c] + b[c];
  *mean = m;
  *rstd = rs;
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b,
                       int T, int d, float eps) {
#pragma omp parallel for schedule(static)
  for (int t = 0; t < T; ++t)
    layernorm_row(out + (size_t)t * d, mean + t, rstd + t, x + (size_t)t * d, w, b, d, eps);
}

void residual_layernorm_forward(float* out, float* mean, float* rstd, const float* a, const float* r,
                                const float* w, const float* b, int T, int d, float eps) {
#pragma omp parallel for schedule(static)
  for (int t = 0; t < T; ++t) {
    const float* ar = a + (size_t)t * d;
    const float* rr = r + (size_t)t * d;
    float* o = out + (size_t)t * d;
    for (int c = 0; c < d; ++c) o[c] = ar[c] + rr[c];
    layernorm_row(o, mean + t, rstd + t, o, w, b, d, eps);  // the sum is still in cache
  }
}

void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* mean,
                        const float* rstd, const float* w, int T, int d) {
  // dx: per row, independent.
#pragma omp parallel for schedule(static)
  for (int t = 0; t < T; ++t) {
    const float* g = dout + (size_t)t * d;
    const float* xr = x + (size_t)t * d;
    float m = mean[t], rs = rstd[t];
    float sum_gw = 0.0f, sum_gw_xhat = 0.0f;
    for (int c = 0; c < d; ++c) {
      float xhat = (xr[c] - m) * rs;
      float gw = g[c] * w[c];
      sum_gw += gw;
      sum_gw_xhat += gw * xhat;
    }
    sum_gw /= d;
    sum_gw_xhat /= d;
    float* o = dx + (size_t)t * d;
    for (int c = 0; c < d; ++c) {
      float xhat = (xr[c] - m) * rs;
      o[c] = (g[c] * w[c] - sum_gw - xhat * sum_gw_xhat) * rs;
    }
  }
  // dw, db: column sums, threads own column slices (deterministic).
#pragma omp parallel
  {
    int nt = omp_get_num_threads(), id = omp_get_thread_num();
    int c0 = (int)((long)d * id / nt), c1 = (int)((long)d * (id + 1) / nt);
    for (int t = 0; t < T; ++t) {
      const float* g = dout + (size_t)t * d;
      const float* xr = x + (size_t)t * d;
      float m = mean[t], rs = rstd[t];
      for (int c = c0; c < c1; ++c) {
        dw[c] += g[c] * (xr[c] - m) * rs;
        db[c] += g[c];
      }
    }
  }
}

static constexpr float kInvSqrt2 = 0.70710678118654752f;
static constexpr float kInvSqrt2Pi = 0.39894228040143268f;

// GELU's erfc, written so that the compiler vectorizes the loops (libm's erfcf and expf are
// scalar calls: they made GELU about a quarter of a Linformer layer's time at n = 4096); exp_vec
// is in fast_math.hpp.
namespace {

// erfc(z) for any z: Chebyshev fit erfc(a) = t exp(-a^2 - 1.26551223 + t P(t)), t = 1 / (1 + a/2),
// a = |z|, fractional error below 1.2e-7 everywhere (Numerical Recipes' erfcc); erfc(-a) = 2 - erfc(a).
// Relative accuracy holds in the tail erfc(a) -> 0 (GELU for x << 0), unlike 1 - erf.
inline float erfc_vec(float z) {
  const float a = std::fabs(z);
  const float t = 1.0f / (1.0f + 0.5f * a);
  const float poly =
      -1.26551223f +
      t * (1.00002368f +
           t * (0.37409196f +
                t * (0.09678418f +
                     t * (-0.18628806f +
                          t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
  const float e = t * exp_vec(-a * a + poly);
  return z >= 0.0f ? e : 2.0f - e;
}

// GELU(v) = v Phi(v) = 0.5 v erfc(-v / sqrt 2).
inline float gelu_of(float v) { return 0.5f * v * erfc_vec(-v * kInvSqrt2); }

}  // namespace

// Plain loops over one thread's part, vectorized by the compiler (with -fno-trapping-math, set
// for the library in CMakeLists.txt).
static void gelu_forward_part(float* out, const float* x, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) out[i] = gelu_of(x[i]);
}

static void gelu_backward_part(float* dx, const float* x, const float* dout, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float cdf = 0.5f * erfc_vec(-v * kInvSqrt2);
    const float pdf = kInvSqrt2Pi * exp_vec(-0.5f * v * v);
    dx[i] = dout[i] * (cdf + v * pdf);
  }
}

// Runs part(begin, end) on each thread's contiguous share of [0, N).
template <class Part>
static void split_over_threads(size_t N, Part part) {
#pragma omp parallel
  {
    const size_t nt = omp_get_num_threads(), id = omp_get_thread_num();
    part(N * id / nt, N * (id + 1) / nt);
  }
}

void gelu_forward(float* out, const float* x, size_t N) {
  split_over_threads(N, [&](size_t b, size_t e) { gelu_forward_part(out + b, x + b, e - b); });
}

void bias_gelu_forward(float* out, float* y, const float* b, int T, int C) {
#pragma omp parallel for schedule(static)
  for (int t = 0; t < T; ++t) {
    float* yr = y + (size_t)t * C;
    float* o = out + (size_t)t * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) {
      const float v = yr[c] + b[c];
      yr[c] = v;
      o[c] = gelu_of(v);
    }
  }
}

void gelu_backward(float* dx, const float* x, const float* dout, size_t N) {
  split_over_threads(N, [&](size_t b, size_t e) { gelu_backward_part(dx + b, x + b, dout + b, e - b); });
}

void softmax_forward(float* P, const float* S, int rows, int cols, const uint8_t* key_mask) {
  for (int r = 0; r < rows; ++r) {
    const float* s = S + (size_t)r * cols;
    float* p = P + (size_t)r * cols;
    float mx = -INFINITY;
    for (int c = 0; c < cols; ++c)
      if (!key_mask || key_mask[c]) mx = std::max(mx, s[c]);
    if (mx == -INFINITY) {  // every key masked: define the row as zeros rather than NaN
      std::fill(p, p + cols, 0.0f);
      continue;
    }
    // Exponentials, then their sum: two loops the compiler vectorizes (exp_vec: fast_math.hpp).
    if (key_mask) {
#pragma omp simd
      for (int c = 0; c < cols; ++c) p[c] = key_mask[c] ? exp_vec(s[c] - mx) : 0.0f;
    } else {
#pragma omp simd
      for (int c = 0; c < cols; ++c) p[c] = exp_vec(s[c] - mx);
    }
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int c = 0; c < cols; ++c) sum += p[c];
    float inv = 1.0f / sum;
    for (int c = 0; c < cols; ++c) p[c] *= inv;
  }
}

void softmax_backward(float* dS, const float* P, const float* dP, int rows, int cols) {
  for (int r = 0; r < rows; ++r) {
    const float* p = P + (size_t)r * cols;
    const float* g = dP + (size_t)r * cols;
    float* o = dS + (size_t)r * cols;
    float dot = 0.0f;
    for (int c = 0; c < cols; ++c) dot += p[c] * g[c];
    for (int c = 0; c < cols; ++c) o[c] = p[c] * (g[c] - dot);
  }
}

// splitmix64 over (seed, index): a counter-based generator, so element i's number does not depend
// on which thread computes it.
float dropout_uniform(uint64_t seed, uint64_t i) {
  uint64_t h = core::mix64(core::splitmix64(seed) ^ (i * 0xd6e8feb86659fd93ULL));
  return (float)(h >> 40) * (1.0f / 16777216.0f);  // 24 random bits -> [0, 1)
}

void dropout_forward(float* out, uint8_t* keep, const float* in, size_t N, float p, uint64_t seed) {
  if (p <= 0.0f) {
    if (out != in) std::memcpy(out, in, N * sizeof(float));
    if (keep) std::memset(keep, 1, N);
    return;
  }
  const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < N; ++i) {
    uint8_t k = dropout_uniform(seed, i) >= p;
    keep[i] = k;
    out[i] = k ? in[i] * scale : 0.0f;
  }
}

void dropout_backward(float* din, const float* dout, const uint8_t* keep, size_t N, float p) {
  if (p <= 0.0f) {
    if (din != dout) std::memcpy(din, dout, N * sizeof(float));
    return;
  }
  const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < N; ++i) din[i] = keep[i] ? dout[i] * scale : 0.0f;
}

int cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int T, int V,
                          int ignore_index) {
  int count = 0;
#pragma omp parallel for schedule(static) reduction(+ : count)
  for (int t = 0; t < T; ++t) {
    if (targets[t] == ignore_index) {
      losses[t] = 0.0f;
      continue;
    }
    assert(targets[t] >= 0 && targets[t] < V);
    const float* l = logits + (size_t)t * V;
    float mx = l[0];
    for (int v = 1; v < V; ++v) mx = std::max(mx, l[v]);
    double sum = 0.0;
    for (int v = 0; v < V; ++v) sum += std::exp(l[v] - mx);
    losses[t] = (float)(std::log(sum) + mx - l[targets[t]]);
    ++count;
  }
  return count;
}

void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, int T, int V,
                            int ignore_index, float scale) {
#pragma omp parallel for schedule(static)
  for (int t = 0; t < T; ++t) {
    float* g = dlogits + (size_t)t * V;
    if (targets[t] == ignore_index) {
      std::fill(g, g + V, 0.0f);
      continue;
    }
    const float* l = logits + (size_t)t * V;
    float mx = l[0];
    for (int v = 1; v < V; ++v) mx = std::max(mx, l[v]);
    float sum = 0.0f;
    for (int v = 0; v < V; ++v) {
      g[v] = std::exp(l[v] - mx);
      sum += g[v];
    }
    float inv = scale / sum;
    for (int v = 0; v < V; ++v) g[v] *= inv;
    g[targets[t]] -= scale;
  }
}

void seq_pool_forward(float* out, int32_t* arg, uint8_t* win_mask, const float* in, const uint8_t* mask, int B, int n,
                      int d, int k, int w, bool max) {
#pragma omp parallel for schedule(static)
  for (int bj = 0; bj < B * k; ++bj) {
    const int b = bj / k, j = bj % k;
    float* o = out + (size_t)bj * d;
    int32_t* a = max ? arg + (size_t)bj * d : nullptr;
    const int t0 = std::min(j * w, n), t1 = std::min(t0 + w, n);
    int count = 0;
    for (int t = t0; t < t1; ++t) {
      if (!mask[(size_t)b * n + t]) continue;
      const float* x = in + ((size_t)b * n + t) * d;
      if (count == 0) {
        std::copy(x, x + d, o);
        if (max) std::fill(a, a + d, t);
      } else if (max) {
        for (int c = 0; c < d; ++c)
          if (x[c] > o[c]) {
            o[c] = x[c];
            a[c] = t;
          }
      } else {
        for (int c = 0; c < d; ++c) o[c] += x[c];
      }
      ++count;
    }
    if (count == 0) {
      std::fill(o, o + d, 0.0f);
      if (max) std::fill(a, a + d, -1);
    } else if (!max) {
      const float inv = 1.0f / (float)count;
      for (int c = 0; c < d; ++c) o[c] *= inv;
    }
    if (win_mask) win_mask[bj] = count > 0;
  }
}

void seq_pool_backward(float* din, const float* dout, const int32_t* arg, const uint8_t* mask, int B, int n, int d,
                       int k, int w, bool max) {
  std::fill(din, din + (size_t)B * n * d, 0.0f);
  // Windows do not overlap, so each (b, j) writes its own rows: no race.
#pragma omp parallel for schedule(static)
  for (int bj = 0; bj < B * k; ++bj) {
    const int b = bj / k, j = bj % k;
    const float* g = dout + (size_t)bj * d;
    const int t0 = std::min(j * w, n), t1 = std::min(t0 + w, n);
    if (max) {
      const int32_t* a = arg + (size_t)bj * d;
      for (int c = 0; c < d; ++c)
        if (a[c] >= 0) din[((size_t)b * n + a[c]) * d + c] += g[c];
    } else {
      int count = 0;
      for (int t = t0; t < t1; ++t) count += mask[(size_t)b * n + t] != 0;
      if (count == 0) continue;
      const float inv = 1.0f / (float)count;
      for (int t = t0; t < t1; ++t) {
        if (!mask[(size_t)b * n + t]) continue;
        float* dx = din + ((size_t)b * n + t) * d;
        for (int c = 0; c < d; ++c) dx[c] = g[c] * inv;
      }
    }
  }
}

void conv_matrix_forward(float* E, const float* kernel, int k, int w, int ld) {
  for (int j = 0; j < k; ++j) {
    float* row = E + (size_t)j * ld;
    std::fill(row, row + ld, 0.0f);
    std::copy(kernel, kernel + w, row + (size_t)j * w);
  }
}

void conv_matrix_backward(float* dkernel, const float* dE, int k, int w, int ld) {
  for (int j = 0; j < k; ++j)
    for (int u = 0; u < w; ++u) dkernel[u] += dE[(size_t)j * ld + (size_t)j * w + u];
}

}  // namespace linformer::kernels
