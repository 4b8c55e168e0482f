// Plain reference twins of every kernel in kernels.hpp and attention.hpp: naive loops, no OpenMP, no oneDNN,
// written to be obviously correct rather than fast. Same argument order and semantics as the
// fast kernels, templated on the scalar type so the tests can run them in double.
// Ids, targets and masks keep their integer types. Scalars (alpha, eps, scale...) are
// std::type_identity_t<T> so that T is deduced from the pointers alone.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/kernels.hpp"

namespace linformer::ref {

template <class T>
using Scalar = std::type_identity_t<T>;

// C[M,N] = alpha * op(A) * op(B) + beta * C. With beta == 0, C is not read (BLAS convention).
template <class T>
void matmul(bool transA, bool transB, int M, int N, int K, Scalar<T> alpha, const T* A, int lda, const T* B,
            int ldb, Scalar<T> beta, T* C, int ldc) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      T acc = 0;
      for (int k = 0; k < K; ++k) {
        T a = transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];  // op(A)[i,k]
        T b = transB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];  // op(B)[k,j]
        acc += a * b;
      }
      T& c = C[(size_t)i * ldc + j];
      c = beta == T(0) ? alpha * acc : alpha * acc + beta * c;
    }
}

// y[T,out] = x[T,in] * W[out,in]^T + b[out]   (b may be null)
template <class T>
void linear_forward(T* y, const T* x, const T* W, const T* b, int rows, int in, int out) {
  for (int t = 0; t < rows; ++t)
    for (int o = 0; o < out; ++o) {
      T acc = b ? b[o] : T(0);
      for (int i = 0; i < in; ++i) acc += x[(size_t)t * in + i] * W[(size_t)o * in + i];
      y[(size_t)t * out + o] = acc;
    }
}

// dx[T,in] = dy * W (overwritten, or added when accumulate_dx; skipped if null);
// dW[out,in] += dy^T * x;  db[out] += column sums of dy (db may be null).
template <class T>
void linear_backward(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W, int rows, int in, int out,
                     bool accumulate_dx = false) {
  if (dx)
    for (int t = 0; t < rows; ++t)
      for (int i = 0; i < in; ++i) {
        T acc = 0;
        for (int o = 0; o < out; ++o) acc += dy[(size_t)t * out + o] * W[(size_t)o * in + i];
        T& d = dx[(size_t)t * in + i];
        d = accumulate_dx ? d + acc : acc;
      }
  if (dW)
    for (int o = 0; o < out; ++o)
      for (int i = 0; i < in; ++i) {
        T acc = 0;
        for (int t = 0; t < rows; ++t) acc += dy[(size_t)t * out + o] * x[(size_t)t * in + i];
        dW[(size_t)o * in + i] += acc;
      }
  if (db)
    for (int o = 0; o < out; ++o)
      for (int t = 0; t < rows; ++t) db[o] += dy[(size_t)t * out + o];
}

// y[T,C] += b[C] for every row.
template <class T>
void bias_add_forward(T* y, const T* b, int rows, int C) {
  for (int t = 0; t < rows; ++t)
    for (int c = 0; c < C; ++c) y[(size_t)t * C + c] += b[c];
}

// db[C] += column sums of dy[T,C].
template <class T>
void bias_add_backward(T* db, const T* dy, int rows, int C) {
  for (int t = 0; t < rows; ++t)
    for (int c = 0; c < C; ++c) db[c] += dy[(size_t)t * C + c];
}

// out[B,n,d] = tok[ids[b,t], :] + pos[t, :]
template <class T>
void embedding_forward(T* out, const int32_t* ids, const T* tok, const T* pos, int B, int n, int d) {
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < n; ++t) {
      size_t r = (size_t)b * n + t;
      for (int c = 0; c < d; ++c) out[r * d + c] = tok[(size_t)ids[r] * d + c] + pos[(size_t)t * d + c];
    }
}

// dtok[V,d] += dout rows scattered by id (repeated ids accumulate); dpos[t,:] += dout summed over b.
template <class T>
void embedding_backward(T* dtok, T* dpos, const T* dout, const int32_t* ids, int B, int n, int d) {
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < n; ++t) {
      size_t r = (size_t)b * n + t;
      for (int c = 0; c < d; ++c) {
        dtok[(size_t)ids[r] * d + c] += dout[r * d + c];
        dpos[(size_t)t * d + c] += dout[r * d + c];
      }
    }
}

// out[T,d] = (x - mean) * rstd * w + b per row, rstd = 1 / sqrt(biased variance + eps).
template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b, int rows, int d,
                       Scalar<T> eps) {
  for (int t = 0; t < rows; ++t) {
    const T* xr = x + (size_t)t * d;
    T m = 0;
    for (int c = 0; c < d; ++c) m += xr[c];
    m /= d;
    T v = 0;
    for (int c = 0; c < d; ++c) v += (xr[c] - m) * (xr[c] - m);
    v /= d;
    T rs = T(1) / std::sqrt(v + eps);
    for (int c = 0; c < d; ++c) out[(size_t)t * d + c] = (xr[c] - m) * rs * w[c] + b[c];
    mean[t] = m;
    rstd[t] = rs;
  }
}

// With xhat = (x - mean) * rstd and g = dout * w:
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat))   (overwritten)
//   dw += dout * xhat,  db += dout   (summed over rows)
template <class T>
void layernorm_backward(T* dx, T* dw, T* db, const T* dout, const T* x, const T* mean, const T* rstd,
                        const T* w, int rows, int d) {
  for (int t = 0; t < rows; ++t) {
    const T* xr = x + (size_t)t * d;
    const T* go = dout + (size_t)t * d;
    T mean_g = 0, mean_gx = 0;
    for (int c = 0; c < d; ++c) {
      T xhat = (xr[c] - mean[t]) * rstd[t];
      mean_g += go[c] * w[c];
      mean_gx += go[c] * w[c] * xhat;
    }
    mean_g /= d;
    mean_gx /= d;
    for (int c = 0; c < d; ++c) {
      T xhat = (xr[c] - mean[t]) * rstd[t];
      dx[(size_t)t * d + c] = rstd[t] * (go[c] * w[c] - mean_g - xhat * mean_gx);
      dw[c] += go[c] * xhat;
      db[c] += go[c];
    }
  }
}

// GELU, exact erf form: 0.5 x (1 + erf(x / sqrt 2)). out may alias x.
template <class T>
void gelu_forward(T* out, const T* x, size_t N) {
  for (size_t i = 0; i < N; ++i) out[i] = T(0.5) * x[i] * (T(1) + std::erf(x[i] / std::sqrt(T(2))));
}

// gelu'(x) = Phi(x) + x * phi(x), Phi the normal CDF and phi its density. dx may alias dout.
template <class T>
void gelu_backward(T* dx, const T* x, const T* dout, size_t N) {
  const T pi = T(3.14159265358979323846264338327950288L);
  for (size_t i = 0; i < N; ++i) {
    T v = x[i];
    T cdf = T(0.5) * (T(1) + std::erf(v / std::sqrt(T(2))));
    T pdf = std::exp(-v * v / 2) / std::sqrt(2 * pi);
    dx[i] = dout[i] * (cdf + v * pdf);
  }
}

// P = softmax over each row of S, restricted to keys with key_mask[c] != 0 (mask nullable);
// masked keys get exactly 0, and a row with every key masked is all zeros. P may alias S.
template <class T>
void softmax_forward(T* P, const T* S, int rows, int cols, const uint8_t* key_mask) {
  for (int r = 0; r < rows; ++r) {
    const T* s = S + (size_t)r * cols;
    T* p = P + (size_t)r * cols;
    bool any = false;
    T mx = 0;
    for (int c = 0; c < cols; ++c)
      if (!key_mask || key_mask[c]) {
        mx = any ? std::max(mx, s[c]) : s[c];
        any = true;
      }
    T sum = 0;
    for (int c = 0; c < cols; ++c) {
      p[c] = (any && (!key_mask || key_mask[c])) ? std::exp(s[c] - mx) : T(0);  // max-shifted: no overflow
      sum += p[c];
    }
    if (any)
      for (int c = 0; c < cols; ++c) p[c] /= sum;
  }
}

// dS = P * (dP - rowsum(dP * P)). dS may alias dP.
template <class T>
void softmax_backward(T* dS, const T* P, const T* dP, int rows, int cols) {
  for (int r = 0; r < rows; ++r) {
    const T* p = P + (size_t)r * cols;
    const T* g = dP + (size_t)r * cols;
    T dot = 0;
    for (int c = 0; c < cols; ++c) dot += p[c] * g[c];
    for (int c = 0; c < cols; ++c) dS[(size_t)r * cols + c] = p[c] * (g[c] - dot);
  }
}

// Inverted dropout with the fast kernel's keep rule, which defines the mask:
// keep[i] = kernels::dropout_uniform(seed, i) >= p. p stays float because the rule compares in
// float. out = in * keep / (1 - p); p == 0 keeps everything. out may alias in.
template <class T>
void dropout_forward(T* out, uint8_t* keep, const T* in, size_t N, float p, uint64_t seed) {
  for (size_t i = 0; i < N; ++i) {
    keep[i] = kernels::dropout_uniform(seed, i) >= p;
    out[i] = keep[i] ? in[i] / (T(1) - T(p)) : T(0);
  }
}

// din = dout * keep / (1 - p); p == 0 copies. din may alias dout.
template <class T>
void dropout_backward(T* din, const T* dout, const uint8_t* keep, size_t N, float p) {
  for (size_t i = 0; i < N; ++i) din[i] = (p == 0.0f || keep[i]) ? dout[i] / (T(1) - T(p)) : T(0);
}

// losses[t] = logsumexp(logits[t]) - logits[t, target[t]]; 0 on rows whose target is
// ignore_index. Returns the number of counted rows.
template <class T>
int cross_entropy_forward(T* losses, const T* logits, const int32_t* targets, int rows, int V,
                          int ignore_index) {
  int count = 0;
  for (int t = 0; t < rows; ++t) {
    losses[t] = 0;
    if (targets[t] == ignore_index) continue;
    const T* l = logits + (size_t)t * V;
    T mx = l[0];
    for (int v = 1; v < V; ++v) mx = std::max(mx, l[v]);
    T sum = 0;
    for (int v = 0; v < V; ++v) sum += std::exp(l[v] - mx);
    losses[t] = std::log(sum) + mx - l[targets[t]];
    ++count;
  }
  return count;
}

// dlogits[T,V] = scale * (softmax(logits) - onehot(target)); 0 on ignored rows (overwritten).
template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const int32_t* targets, int rows, int V,
                            int ignore_index, Scalar<T> scale) {
  for (int t = 0; t < rows; ++t) {
    T* g = dlogits + (size_t)t * V;
    if (targets[t] == ignore_index) {
      for (int v = 0; v < V; ++v) g[v] = 0;
      continue;
    }
    softmax_forward(g, logits + (size_t)t * V, 1, V, nullptr);
    for (int v = 0; v < V; ++v) g[v] = scale * (g[v] - (v == targets[t] ? T(1) : T(0)));
  }
}

// Window pooling along the sequence (kernels.hpp): out[B,k,d], arg[B,k,d] (max only),
// win_mask[B,k] (nullable).
template <class T>
void seq_pool_forward(T* out, int32_t* arg, uint8_t* win_mask, const T* in, const uint8_t* mask, int B, int n, int d,
                      int k, int w, bool max) {
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < k; ++j) {
      const size_t bj = (size_t)b * k + j;
      int count = 0;
      for (int t = j * w; t < (j + 1) * w && t < n; ++t) count += mask[(size_t)b * n + t] != 0;
      if (win_mask) win_mask[bj] = count > 0;
      for (int c = 0; c < d; ++c) {
        T acc = 0;
        int at = -1;
        for (int t = j * w; t < (j + 1) * w && t < n; ++t) {
          if (!mask[(size_t)b * n + t]) continue;
          const T x = in[((size_t)b * n + t) * d + c];
          if (!max) acc += x;
          else if (at < 0 || x > acc) acc = x, at = t;
        }
        out[bj * d + c] = count == 0 ? T(0) : max ? acc : acc / T(count);
        if (max) arg[bj * d + c] = at;
      }
    }
}

// din[B,n,d] = d sum(out * dout) / d in (overwritten).
template <class T>
void seq_pool_backward(T* din, const T* dout, const int32_t* arg, const uint8_t* mask, int B, int n, int d, int k,
                       int w, bool max) {
  for (size_t i = 0; i < (size_t)B * n * d; ++i) din[i] = 0;
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < k; ++j) {
      const size_t bj = (size_t)b * k + j;
      int count = 0;
      for (int t = j * w; t < (j + 1) * w && t < n; ++t) count += mask[(size_t)b * n + t] != 0;
      for (int c = 0; c < d; ++c) {
        if (max) {
          if (arg[bj * d + c] >= 0) din[((size_t)b * n + arg[bj * d + c]) * d + c] += dout[bj * d + c];
          continue;
        }
        for (int t = j * w; t < (j + 1) * w && t < n; ++t)
          if (mask[(size_t)b * n + t]) din[((size_t)b * n + t) * d + c] += dout[bj * d + c] / T(count);
      }
    }
}

// ---------------------------------------------------------------------------------------------
// Attention (attention.hpp). Head i of a [B, rows, h*dh] tensor is its column slice i*dh..;
// probability tensors are [B*h, n, cols].

// Attention dropout of row t of block bh, columns col0 .. col0+cols-1, of a [B*h, n, n_cols]
// probability tensor: the keep rule of the fast kernel at the element's index in that tensor.
template <class T>
void attention_dropout_row(T* out, uint8_t* keep, const T* in, int cols, uint64_t seed, float p, int bh, int n,
                           int n_cols, int t, int col0) {
  for (int j = 0; j < cols; ++j) {
    const uint64_t index = ((uint64_t)bh * n + t) * (uint64_t)n_cols + (uint64_t)(col0 + j);
    const bool kept = kernels::dropout_uniform(seed, index) >= p;
    if (keep) keep[j] = kept;
    out[j] = kept ? in[j] / (T(1) - T(p)) : T(0);
  }
}

// Multi-head attention against kk context keys: S = Q_i C_i^T / sqrt(dh), P = softmax over the
// real keys (key_mask[B,kk], nullable), Pd = dropout(P) (p > 0), ctx_i = Pd V_i. Writes
// ctx[B,n,h*dh]; P[B*h,n,kk] when P_blocks >= B*h (else P is not written); Pd, keep [B*h,n,kk]
// when p > 0.
template <class T>
void attention_forward(T* ctx, T* P, T* Pd, uint8_t* keep, const T* q, const T* kc, const T* vc,
                       const uint8_t* key_mask, int B, int n, int kk, int h, int dh, float p, uint64_t seed,
                       int P_blocks) {
  const int d = h * dh;
  const T scale = T(1) / std::sqrt(T(dh));
  std::vector<T> S((size_t)n * kk), Sd((size_t)n * kk);
  std::vector<uint8_t> kp((size_t)n * kk);
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < h; ++i) {
      const int bh = b * h + i;
      const size_t block = (size_t)bh * n * kk;
      for (int t = 0; t < n; ++t)
        for (int c = 0; c < kk; ++c) {
          T acc = 0;
          for (int e = 0; e < dh; ++e)
            acc += q[((size_t)b * n + t) * d + i * dh + e] * kc[((size_t)b * kk + c) * d + i * dh + e];
          S[(size_t)t * kk + c] = scale * acc;
        }
      softmax_forward(S.data(), S.data(), n, kk, key_mask ? key_mask + (size_t)b * kk : nullptr);
      if (P_blocks >= B * h)
        for (size_t e = 0; e < S.size(); ++e) P[block + e] = S[e];
      Sd = S;
      if (p > 0.0f) {
        for (int t = 0; t < n; ++t)
          attention_dropout_row(Sd.data() + (size_t)t * kk, kp.data() + (size_t)t * kk, S.data() + (size_t)t * kk, kk,
                                seed, p, bh, n, kk, t, 0);
        for (size_t e = 0; e < S.size(); ++e) Pd[block + e] = Sd[e], keep[block + e] = kp[e];
      }
      for (int t = 0; t < n; ++t)
        for (int e = 0; e < dh; ++e) {
          T acc = 0;
          for (int c = 0; c < kk; ++c) acc += Sd[(size_t)t * kk + c] * vc[((size_t)b * kk + c) * d + i * dh + e];
          ctx[((size_t)b * n + t) * d + i * dh + e] = acc;
        }
    }
}

// The gradients of attention_forward: dq[B,n,h*dh], dkc, dvc [B,kk,h*dh] (overwritten) from
// dctx[B,n,h*dh] and the forward's P (all blocks), Pd and keep (p > 0). dP[B*h,n,kk]: scratch.
template <class T>
void attention_backward(T* dq, T* dkc, T* dvc, T* dP, const T* dctx, const T* q, const T* kc, const T* vc, const T* P,
                        const T* Pd, const uint8_t* keep, int B, int n, int kk, int h, int dh, float p) {
  const int d = h * dh;
  const T scale = T(1) / std::sqrt(T(dh));
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < h; ++i) {
      const size_t block = (size_t)(b * h + i) * n * kk;
      const T* Pb = P + block;
      const T* Pdb = p > 0.0f ? Pd + block : Pb;
      T* dS = dP + block;
      auto Q = [&](int t, int e) { return q[((size_t)b * n + t) * d + i * dh + e]; };
      auto K = [&](int c, int e) { return kc[((size_t)b * kk + c) * d + i * dh + e]; };
      auto V = [&](int c, int e) { return vc[((size_t)b * kk + c) * d + i * dh + e]; };
      auto G = [&](int t, int e) { return dctx[((size_t)b * n + t) * d + i * dh + e]; };
      for (int c = 0; c < kk; ++c)  // dV = Pd^T dctx
        for (int e = 0; e < dh; ++e) {
          T acc = 0;
          for (int t = 0; t < n; ++t) acc += Pdb[(size_t)t * kk + c] * G(t, e);
          dvc[((size_t)b * kk + c) * d + i * dh + e] = acc;
        }
      for (int t = 0; t < n; ++t)  // dP = (dctx V^T) * keep / (1 - p)
        for (int c = 0; c < kk; ++c) {
          T acc = 0;
          for (int e = 0; e < dh; ++e) acc += G(t, e) * V(c, e);
          if (p > 0.0f) acc = keep[block + (size_t)t * kk + c] ? acc / (T(1) - T(p)) : T(0);
          dS[(size_t)t * kk + c] = acc;
        }
      softmax_backward(dS, Pb, dS, n, kk);
      for (int t = 0; t < n; ++t)  // dQ = scale dS K
        for (int e = 0; e < dh; ++e) {
          T acc = 0;
          for (int c = 0; c < kk; ++c) acc += dS[(size_t)t * kk + c] * K(c, e);
          dq[((size_t)b * n + t) * d + i * dh + e] = scale * acc;
        }
      for (int c = 0; c < kk; ++c)  // dK = scale dS^T Q
        for (int e = 0; e < dh; ++e) {
          T acc = 0;
          for (int t = 0; t < n; ++t) acc += dS[(size_t)t * kk + c] * Q(t, e);
          dkc[((size_t)b * kk + c) * d + i * dh + e] = scale * acc;
        }
    }
}

// Tiled exact attention's twin: attention_forward with kk = n and key_mask = mask[B,n], all in
// memory, plus lse[B*h,n] = log sum over the real keys of exp(scaled score) (INFINITY for a row
// without a real key).
template <class T>
void flash_attention_forward(T* ctx, T* lse, const T* q, const T* k, const T* v, const uint8_t* mask, int B, int n,
                             int h, int dh, float p, uint64_t seed) {
  const size_t probs = (size_t)B * h * n * n;
  std::vector<T> P(probs), Pd(p > 0.0f ? probs : 0);
  std::vector<uint8_t> keep(p > 0.0f ? probs : 0);
  attention_forward(ctx, P.data(), Pd.data(), keep.data(), q, k, v, mask, B, n, n, h, dh, p, seed, B * h);
  const int d = h * dh;
  const T scale = T(1) / std::sqrt(T(dh));
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < h; ++i)
      for (int t = 0; t < n; ++t) {
        std::vector<T> s;
        for (int c = 0; c < n; ++c) {
          if (!mask[(size_t)b * n + c]) continue;
          T acc = 0;
          for (int e = 0; e < dh; ++e) acc += q[((size_t)b * n + t) * d + i * dh + e] * k[((size_t)b * n + c) * d + i * dh + e];
          s.push_back(scale * acc);
        }
        T& out = lse[((size_t)b * h + i) * n + t];
        if (s.empty()) {
          out = std::numeric_limits<T>::infinity();
          continue;
        }
        const T mx = *std::max_element(s.begin(), s.end());
        T sum = 0;
        for (T x : s) sum += std::exp(x - mx);
        out = mx + std::log(sum);
      }
}

// The gradients of flash_attention_forward: dq, dk, dv [B,n,h*dh] (overwritten). Recomputes the
// probabilities in full from q, k and mask (ctx and lse are not needed; kept for the signature).
template <class T>
void flash_attention_backward(T* dq, T* dk, T* dv, const T* dctx, const T* /*ctx*/, const T* /*lse*/, const T* q,
                              const T* k, const T* v, const uint8_t* mask, int B, int n, int h, int dh, float p,
                              uint64_t seed) {
  const size_t probs = (size_t)B * h * n * n;
  std::vector<T> ctx((size_t)B * n * h * dh), P(probs), Pd(p > 0.0f ? probs : 0), dP(probs);
  std::vector<uint8_t> keep(p > 0.0f ? probs : 0);
  attention_forward(ctx.data(), P.data(), Pd.data(), keep.data(), q, k, v, mask, B, n, n, h, dh, p, seed, B * h);
  attention_backward(dq, dk, dv, dP.data(), dctx, q, k, v, P.data(), Pd.data(), keep.data(), B, n, n, h, dh, p);
}

}  // namespace linformer::ref
