// Attention kernels (attention.hpp): the score / masked softmax / dropout / context block of full
// and Linformer attention, and the flash-style tiled exact attention with its recomputing
// backward. Both draw their dropout masks from attention_dropout_row.
#include "kernels/attention.hpp"

#include <omp.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/fast_math.hpp"
#include "kernels/kernels.hpp"

namespace linformer::kernels {

void attention_dropout_row(float* out, uint8_t* keep, const float* in, int cols, uint64_t seed, float p, int bh,
                           int n, int n_cols, int t, int col0) {
  const float sc = 1.0f / (1.0f - p);
  const uint64_t first = ((uint64_t)bh * n + t) * n_cols + col0;
  if (keep) {
    for (int j = 0; j < cols; ++j) {
      keep[j] = dropout_uniform(seed, first + j) >= p;
      out[j] = keep[j] ? in[j] * sc : 0.0f;
    }
  } else {
    for (int j = 0; j < cols; ++j) out[j] = dropout_uniform(seed, first + j) >= p ? in[j] * sc : 0.0f;
  }
}

// ---------------------------------------------------------------------------------------------
// Attention against context keys: one [n, kk] block per (b, head), all of it in memory.

void attention_forward(float* ctx, float* P, float* Pd, uint8_t* keep, const float* q, const float* kc,
                       const float* vc, const uint8_t* key_mask, int B, int n, int kk, int h, int dh, float p,
                       uint64_t seed, int P_blocks) {
  const int d = h * dh;
  const size_t block = (size_t)n * kk;
  const float scale = 1.0f / std::sqrt((float)dh);
  const bool dropped = p > 0.0f;
  // Scratch P: one block per thread. (With P_blocks == B*h every block has its own place even
  // when there are more threads than blocks.)
  const bool per_thread = P_blocks < B * h;
  assert(!per_thread || P_blocks >= omp_get_max_threads());
  // Each (b, head) block is independent: one parallel loop, single-threaded matmuls inside.
#pragma omp parallel for schedule(dynamic)
  for (int bh = 0; bh < B * h; ++bh) {
    const int b = bh / h, i = bh % h;
    const float* qb = q + (size_t)b * n * d + i * dh;
    const float* kb = kc + (size_t)b * kk * d + i * dh;
    const float* vb = vc + (size_t)b * kk * d + i * dh;
    float* Pb = P + (per_thread ? (size_t)omp_get_thread_num() : (size_t)bh) * block;
    matmul(false, true, n, kk, dh, scale, qb, d, kb, d, 0.0f, Pb, kk);
    softmax_forward(Pb, Pb, n, kk, key_mask ? key_mask + (size_t)b * kk : nullptr);
    const float* Pdb = Pb;
    if (dropped) {
      float* out = Pd + bh * block;
      uint8_t* kp = keep + bh * block;
      for (int t = 0; t < n; ++t)
        attention_dropout_row(out + (size_t)t * kk, kp + (size_t)t * kk, Pb + (size_t)t * kk, kk, seed, p, bh, n, kk,
                              t, 0);
      Pdb = out;
    }
    matmul(false, false, n, dh, kk, 1.0f, Pdb, kk, vb, d, 0.0f, ctx + (size_t)b * n * d + i * dh, d);
  }
}

void attention_backward(float* dq, float* dkc, float* dvc, float* dP, const float* dctx, const float* q,
                        const float* kc, const float* vc, const float* P, const float* Pd, const uint8_t* keep,
                        int B, int n, int kk, int h, int dh, float p) {
  const int d = h * dh;
  const size_t block = (size_t)n * kk;
  const float scale = 1.0f / std::sqrt((float)dh);
  const bool dropped = p > 0.0f;
  if (!dropped) Pd = P;
#pragma omp parallel for schedule(dynamic)
  for (int bh = 0; bh < B * h; ++bh) {
    const int b = bh / h, i = bh % h;
    const size_t tok = (size_t)b * n * d + i * dh, ctxo = (size_t)b * kk * d + i * dh;
    const float* Pb = P + bh * block;
    const float* Pdb = Pd + bh * block;
    float* dPb = dP + bh * block;
    // ctx = Pd V  ->  dPd = dctx V^T,  dV = Pd^T dctx
    matmul(false, true, n, kk, dh, 1.0f, dctx + tok, d, vc + ctxo, d, 0.0f, dPb, kk);
    matmul(true, false, kk, dh, n, 1.0f, Pdb, kk, dctx + tok, d, 0.0f, dvc + ctxo, d);
    if (dropped) {  // dP = dPd * keep / (1 - p)
      const float sc = 1.0f / (1.0f - p);
      const uint8_t* kp = keep + bh * block;
      for (size_t e = 0; e < block; ++e) dPb[e] = kp[e] ? dPb[e] * sc : 0.0f;
    }
    softmax_backward(dPb, Pb, dPb, n, kk);
    // S = scale Q K^T  ->  dQ = scale dS K,  dK = scale dS^T Q
    matmul(false, false, n, dh, kk, scale, dPb, kk, kc + ctxo, d, 0.0f, dq + tok, d);
    matmul(true, false, kk, dh, n, scale, dPb, kk, q + tok, d, 0.0f, dkc + ctxo, d);
  }
}

// ---------------------------------------------------------------------------------------------
// Flash-style tiled attention.

void flash_attention_forward(float* ctx, float* lse, const float* q, const float* k, const float* v,
                             const uint8_t* mask_all, int B, int n, int h, int dh, float p, uint64_t seed) {
  constexpr int kQ = kFlashQueryTile, kK = kFlashKeyTile;
  const int d = h * dh;
  const bool dropped = p > 0.0f;
  const float scale = 1.0f / std::sqrt((float)dh);
#pragma omp parallel
  {
    std::vector<float> S((size_t)kQ * kK), acc((size_t)kQ * dh), m(kQ), l(kQ);
#pragma omp for schedule(dynamic)
    for (int bh = 0; bh < B * h; ++bh) {
      const int b = bh / h, i = bh % h;
      const size_t base = (size_t)b * n * d + i * dh;
      const uint8_t* mask = mask_all + (size_t)b * n;
      for (int q0 = 0; q0 < n; q0 += kQ) {
        const int bq = std::min(kQ, n - q0);
        std::fill(m.begin(), m.end(), -INFINITY);
        std::fill(l.begin(), l.end(), 0.0f);
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int k0 = 0; k0 < n; k0 += kK) {
          const int bk = std::min(kK, n - k0);
          const uint8_t* mk = mask + k0;
          matmul(false, true, bq, bk, dh, scale, q + base + (size_t)q0 * d, d, k + base + (size_t)k0 * d, d, 0.0f,
                 S.data(), bk);
          for (int r = 0; r < bq; ++r) {
            float* sr = S.data() + (size_t)r * bk;
            float mx = m[r];
#pragma omp simd reduction(max : mx)
            for (int j = 0; j < bk; ++j) mx = std::max(mx, mk[j] ? sr[j] : -INFINITY);
            if (mx == -INFINITY) {  // every key so far is padding
              std::fill(sr, sr + bk, 0.0f);
              continue;
            }
            const float alpha = exp_vec(m[r] - mx);  // rescales what was accumulated so far
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (int j = 0; j < bk; ++j) {
              sr[j] = mk[j] ? exp_vec(sr[j] - mx) : 0.0f;
              sum += sr[j];
            }
            l[r] = l[r] * alpha + sum;
            m[r] = mx;
            float* ar = acc.data() + (size_t)r * dh;
            for (int c = 0; c < dh; ++c) ar[c] *= alpha;
            // The sum above is of the probabilities before dropout (the softmax's denominator).
            if (dropped) attention_dropout_row(sr, nullptr, sr, bk, seed, p, bh, n, n, q0 + r, k0);
          }
          matmul(false, false, bq, dh, bk, 1.0f, S.data(), bk, v + base + (size_t)k0 * d, d, 1.0f, acc.data(), dh);
        }
        for (int r = 0; r < bq; ++r) {
          float* o = ctx + base + (size_t)(q0 + r) * d;
          const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
          for (int c = 0; c < dh; ++c) o[c] = acc[(size_t)r * dh + c] * inv;
          lse[(size_t)bh * n + q0 + r] = l[r] > 0.0f ? m[r] + std::log(l[r]) : INFINITY;
        }
      }
    }
  }
}

void flash_attention_backward(float* dq, float* dk, float* dv, const float* dctx, const float* ctx, const float* lse,
                              const float* q, const float* k, const float* v, const uint8_t* mask_all, int B, int n,
                              int h, int dh, float p, uint64_t seed) {
  constexpr int kQ = kFlashQueryTile, kK = kFlashKeyTile;
  const int d = h * dh;
  const bool dropped = p > 0.0f;
  const float scale = 1.0f / std::sqrt((float)dh);
#pragma omp parallel
  {
    std::vector<float> P((size_t)kQ * kK), Pz((size_t)kQ * kK), dP((size_t)kQ * kK), D(n);
#pragma omp for schedule(dynamic)
    for (int bh = 0; bh < B * h; ++bh) {
      const int b = bh / h, i = bh % h;
      const size_t base = (size_t)b * n * d + i * dh;
      const uint8_t* mask = mask_all + (size_t)b * n;
      const float* L = lse + (size_t)bh * n;
      for (int t = 0; t < n; ++t) {  // D_t = dO_t . O_t  (= rowsum(P * dP))
        const float* g = dctx + base + (size_t)t * d;
        const float* o = ctx + base + (size_t)t * d;
        float acc = 0.0f;
        for (int c = 0; c < dh; ++c) acc += g[c] * o[c];
        D[t] = acc;
        std::memset(dq + base + (size_t)t * d, 0, dh * sizeof(float));
        std::memset(dk + base + (size_t)t * d, 0, dh * sizeof(float));
        std::memset(dv + base + (size_t)t * d, 0, dh * sizeof(float));
      }
      for (int q0 = 0; q0 < n; q0 += kQ) {
        const int bq = std::min(kQ, n - q0);
        const size_t qoff = base + (size_t)q0 * d;
        for (int k0 = 0; k0 < n; k0 += kK) {
          const int bk = std::min(kK, n - k0);
          const size_t koff = base + (size_t)k0 * d;
          const uint8_t* mk = mask + k0;
          // Recompute the probabilities of this tile.
          matmul(false, true, bq, bk, dh, scale, q + qoff, d, k + koff, d, 0.0f, P.data(), bk);
          for (int r = 0; r < bq; ++r) {
            float* pr = P.data() + (size_t)r * bk;
            const float lr = L[q0 + r];
#pragma omp simd
            for (int j = 0; j < bk; ++j) pr[j] = mk[j] ? exp_vec(pr[j] - lr) : 0.0f;
          }
          const float* Pv = P.data();  // the probabilities that multiplied V (dropped out, if any)
          if (dropped) {
            for (int r = 0; r < bq; ++r)
              attention_dropout_row(Pz.data() + (size_t)r * bk, nullptr, P.data() + (size_t)r * bk, bk, seed, p, bh, n,
                                    n, q0 + r, k0);
            Pv = Pz.data();
          }
          // dV += Pv^T dO ;  dP = (dO V^T) * Z
          matmul(true, false, bk, dh, bq, 1.0f, Pv, bk, dctx + qoff, d, 1.0f, dv + koff, d);
          matmul(false, true, bq, bk, dh, 1.0f, dctx + qoff, d, v + koff, d, 0.0f, dP.data(), bk);
          for (int r = 0; r < bq; ++r) {
            float* g = dP.data() + (size_t)r * bk;
            const float* pr = P.data() + (size_t)r * bk;
            const float* pz = Pv + (size_t)r * bk;
            const float Dr = D[q0 + r];
            if (dropped) {
              // With dropout, dP_ij = dPd_ij * z_ij and P_ij * z_ij = Pz_ij, so P*dP = Pz*dPd.
              for (int j = 0; j < bk; ++j) {
                const float dpij = pr[j] > 0.0f ? g[j] * (pz[j] / pr[j]) : 0.0f;
                g[j] = pr[j] * (dpij - Dr);  // dS
              }
            } else {
#pragma omp simd
              for (int j = 0; j < bk; ++j) g[j] = pr[j] * (g[j] - Dr);  // dS
            }
          }
          // dQ += scale dS K ;  dK += scale dS^T Q
          matmul(false, false, bq, dh, bk, scale, dP.data(), bk, k + koff, d, 1.0f, dq + qoff, d);
          matmul(true, false, bk, dh, bq, scale, dP.data(), bk, q + qoff, d, 1.0f, dk + koff, d);
        }
      }
    }
  }
}

}  // namespace linformer::kernels
