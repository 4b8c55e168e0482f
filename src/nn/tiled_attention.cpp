// Exact attention computed in tiles with an online softmax (flash-attention style): the same
// result as full attention without ever holding the n x n score matrix. Memory is O(n * d):
// the forward keeps the output and one log-sum-exp per query row; the backward recomputes each
// score tile from Q and K.
//
// Attention dropout uses the counter-based hash of the element's index in the [B, h, n, n]
// probability tensor, exactly as full attention does, so both kinds draw the same masks and
// the backward can regenerate them instead of storing them.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/fast_math.hpp"
#include "kernels/kernels.hpp"
#include "nn/attention.hpp"

namespace linformer {

using namespace kernels;

namespace {

// Tile sizes: a 128 x 256 score tile (128 KB) stays in the L2 cache; 64 x 128 tiles ran the
// inference at n = 2048 about 25% slower (more, smaller sgemm calls).
constexpr int kQueryBlock = 128;
constexpr int kKeyBlock = 256;

template <class T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

class TiledAttention : public Attention {
 public:
  TiledAttention(const ModelConfig& cfg, ParamTable& pt, QkvoParams p)
      : pt_(pt), p_(p), d_(cfg.d_model), h_(cfg.n_heads), dh_(cfg.head_dim()), attn_p_(cfg.attention_dropout) {}

  void forward(float* out, const float* x, const AttnShape& s, bool training, uint64_t seed) override {
    const int T = s.B * s.n, n = s.n;
    const size_t Td = (size_t)T * d_;
    linear_forward(grow(q_, Td), x, pt_.data(p_.q_w), pt_.data(p_.q_b), T, d_, d_);
    linear_forward(grow(k_, Td), x, pt_.data(p_.k_w), pt_.data(p_.k_b), T, d_, d_);
    linear_forward(grow(v_, Td), x, pt_.data(p_.v_w), pt_.data(p_.v_b), T, d_, d_);
    float* ctx = grow(ctx_, Td);
    float* lse = grow(lse_, (size_t)s.B * h_ * n);
    dropped_ = training && attn_p_ > 0.0f;
    seed_ = seed;
    const float scale = 1.0f / std::sqrt((float)dh_);
#pragma omp parallel
    {
      std::vector<float> S((size_t)kQueryBlock * kKeyBlock), acc((size_t)kQueryBlock * dh_), m(kQueryBlock),
          l(kQueryBlock);
#pragma omp for schedule(dynamic)
      for (int bh = 0; bh < s.B * h_; ++bh) {
        const int b = bh / h_, i = bh % h_;
        const size_t base = (size_t)b * n * d_ + i * dh_;
        const uint8_t* mask = s.mask + (size_t)b * n;
        for (int q0 = 0; q0 < n; q0 += kQueryBlock) {
          const int bq = std::min(kQueryBlock, n - q0);
          std::fill(m.begin(), m.end(), -INFINITY);
          std::fill(l.begin(), l.end(), 0.0f);
          std::fill(acc.begin(), acc.end(), 0.0f);
          for (int k0 = 0; k0 < n; k0 += kKeyBlock) {
            const int bk = std::min(kKeyBlock, n - k0);
            const uint8_t* mk = mask + k0;
            matmul(false, true, bq, bk, dh_, scale, q_.data() + base + (size_t)q0 * d_, d_,
                   k_.data() + base + (size_t)k0 * d_, d_, 0.0f, S.data(), bk);
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
              float* ar = acc.data() + (size_t)r * dh_;
              for (int c = 0; c < dh_; ++c) ar[c] *= alpha;
              if (dropped_) apply_dropout(sr, bh, n, q0 + r, k0, bk);
            }
            matmul(false, false, bq, dh_, bk, 1.0f, S.data(), bk, v_.data() + base + (size_t)k0 * d_, d_, 1.0f,
                   acc.data(), dh_);
          }
          for (int r = 0; r < bq; ++r) {
            float* o = ctx + base + (size_t)(q0 + r) * d_;
            const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
            for (int c = 0; c < dh_; ++c) o[c] = acc[(size_t)r * dh_ + c] * inv;
            lse[(size_t)bh * n + q0 + r] = l[r] > 0.0f ? m[r] + std::log(l[r]) : INFINITY;
          }
        }
      }
    }
    linear_forward(out, ctx, pt_.data(p_.o_w), pt_.data(p_.o_b), T, d_, d_);
  }

  void backward(float* dx, const float* dout, const float* x, const AttnShape& s) override {
    const int T = s.B * s.n, n = s.n;
    const size_t Td = (size_t)T * d_;
    float* dctx = grow(dctx_, Td);
    linear_backward(dctx, pt_.grad(p_.o_w), pt_.grad(p_.o_b), dout, ctx_.data(), pt_.data(p_.o_w), T, d_, d_);
    float* dq = grow(dq_, Td);
    float* dk = grow(dk_, Td);
    float* dv = grow(dv_, Td);
    const float scale = 1.0f / std::sqrt((float)dh_);
#pragma omp parallel
    {
      std::vector<float> P((size_t)kQueryBlock * kKeyBlock), Pz((size_t)kQueryBlock * kKeyBlock),
          dP((size_t)kQueryBlock * kKeyBlock), D(n);
      std::vector<uint8_t> keep((size_t)kQueryBlock * kKeyBlock);
#pragma omp for schedule(dynamic)
      for (int bh = 0; bh < s.B * h_; ++bh) {
        const int b = bh / h_, i = bh % h_;
        const size_t base = (size_t)b * n * d_ + i * dh_;
        const uint8_t* mask = s.mask + (size_t)b * n;
        const float* L = lse_.data() + (size_t)bh * n;
        for (int t = 0; t < n; ++t) {  // D_t = dO_t . O_t  (= rowsum(P * dP))
          const float* g = dctx + base + (size_t)t * d_;
          const float* o = ctx_.data() + base + (size_t)t * d_;
          float acc = 0.0f;
          for (int c = 0; c < dh_; ++c) acc += g[c] * o[c];
          D[t] = acc;
          std::memset(dq + base + (size_t)t * d_, 0, dh_ * sizeof(float));
          std::memset(dk + base + (size_t)t * d_, 0, dh_ * sizeof(float));
          std::memset(dv + base + (size_t)t * d_, 0, dh_ * sizeof(float));
        }
        for (int q0 = 0; q0 < n; q0 += kQueryBlock) {
          const int bq = std::min(kQueryBlock, n - q0);
          const size_t qoff = base + (size_t)q0 * d_;
          for (int k0 = 0; k0 < n; k0 += kKeyBlock) {
            const int bk = std::min(kKeyBlock, n - k0);
            const size_t koff = base + (size_t)k0 * d_;
            const uint8_t* mk = mask + k0;
            // Recompute the probabilities of this tile.
            matmul(false, true, bq, bk, dh_, scale, q_.data() + qoff, d_, k_.data() + koff, d_, 0.0f, P.data(), bk);
            for (int r = 0; r < bq; ++r) {
              float* pr = P.data() + (size_t)r * bk;
              const float lr = L[q0 + r];
#pragma omp simd
              for (int j = 0; j < bk; ++j) pr[j] = mk[j] ? exp_vec(pr[j] - lr) : 0.0f;
            }
            const float* Pv = P.data();  // the probabilities that multiplied V (dropped out, if any)
            if (dropped_) {
              std::copy(P.begin(), P.begin() + (size_t)bq * bk, Pz.begin());
              for (int r = 0; r < bq; ++r) apply_dropout(Pz.data() + (size_t)r * bk, bh, n, q0 + r, k0, bk);
              Pv = Pz.data();
            }
            // dV += Pv^T dO ;  dP = (dO V^T) * Z
            matmul(true, false, bk, dh_, bq, 1.0f, Pv, bk, dctx + qoff, d_, 1.0f, dv + koff, d_);
            matmul(false, true, bq, bk, dh_, 1.0f, dctx + qoff, d_, v_.data() + koff, d_, 0.0f, dP.data(), bk);
            for (int r = 0; r < bq; ++r) {
              float* g = dP.data() + (size_t)r * bk;
              const float* pr = P.data() + (size_t)r * bk;
              const float* pz = Pv + (size_t)r * bk;
              const float Dr = D[q0 + r];
              if (dropped_) {
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
            matmul(false, false, bq, dh_, bk, scale, dP.data(), bk, k_.data() + koff, d_, 1.0f, dq + qoff, d_);
            matmul(true, false, bk, dh_, bq, scale, dP.data(), bk, q_.data() + qoff, d_, 1.0f, dk + koff, d_);
          }
        }
      }
    }
    linear_backward(dx, pt_.grad(p_.q_w), pt_.grad(p_.q_b), dq, x, pt_.data(p_.q_w), T, d_, d_);
    linear_backward(dx, pt_.grad(p_.k_w), pt_.grad(p_.k_b), dk, x, pt_.data(p_.k_w), T, d_, d_, true);
    linear_backward(dx, pt_.grad(p_.v_w), pt_.grad(p_.v_b), dv, x, pt_.data(p_.v_w), T, d_, d_, true);
  }

  std::vector<std::vector<float>*> forward_buffers() override { return {&q_, &k_, &v_, &ctx_, &lse_}; }

 private:
  // Multiplies a row of probabilities (query t, keys k0..k0+bk) by keep / (1 - p), using the same
  // element index as full attention's [B, h, n, n] probability tensor.
  void apply_dropout(float* row, int bh, int n, int t, int k0, int bk) const {
    const float sc = 1.0f / (1.0f - attn_p_);
    const uint64_t first = ((uint64_t)bh * n + t) * n + k0;
    for (int j = 0; j < bk; ++j) row[j] = dropout_uniform(seed_, first + j) >= attn_p_ ? row[j] * sc : 0.0f;
  }

  ParamTable& pt_;
  QkvoParams p_;
  int d_, h_, dh_;
  float attn_p_;
  bool dropped_ = false;
  uint64_t seed_ = 0;
  std::vector<float> q_, k_, v_, ctx_, lse_;
  std::vector<float> dctx_, dq_, dk_, dv_;
};

}  // namespace

std::unique_ptr<Attention> make_tiled_attention(const ModelConfig& cfg, ParamTable& pt, QkvoParams p) {
  return std::make_unique<TiledAttention>(cfg, pt, p);
}

}  // namespace linformer
