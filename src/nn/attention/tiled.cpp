// Exact attention computed in tiles with an online softmax (kind "tiled", flash-attention
// style; kernels::flash_attention_forward/backward): the same result as full attention without
// ever holding the n x n score matrix. Memory is O(n * d): the forward keeps the output and one
// log-sum-exp per query row; the backward recomputes each score tile from Q and K. Attention
// dropout draws full attention's masks (kernels::attention_dropout_row) and the backward
// regenerates them instead of storing them. Keeps no probabilities.
#include <memory>
#include <vector>

#include "kernels/attention.hpp"
#include "kernels/kernels.hpp"
#include "nn/attention/core.hpp"

namespace linformer {

namespace attention_detail {

namespace {

using namespace kernels;

class TiledAttention : public Attention {
 public:
  TiledAttention(const ModelConfig& cfg, ParamTable& pt, QkvoParams p)
      : pt_(pt), p_(p), d_(cfg.d_model), h_(cfg.n_heads), dh_(cfg.head_dim()), attn_p_(cfg.attention_dropout) {}

  void forward(float* out, const float* x, const AttnShape& s, bool training, uint64_t seed) override {
    const int T = s.B * s.n;
    const size_t Td = (size_t)T * d_;
    linear_forward(grow(q_, Td), x, pt_.data(p_.q_w), pt_.data(p_.q_b), T, d_, d_);
    linear_forward(grow(k_, Td), x, pt_.data(p_.k_w), pt_.data(p_.k_b), T, d_, d_);
    linear_forward(grow(v_, Td), x, pt_.data(p_.v_w), pt_.data(p_.v_b), T, d_, d_);
    float* ctx = grow(ctx_, Td);
    float* lse = grow(lse_, (size_t)s.B * h_ * s.n);
    dropped_ = training && attn_p_ > 0.0f;
    seed_ = seed;
    flash_attention_forward(ctx, lse, q_.data(), k_.data(), v_.data(), s.mask, s.B, s.n, h_, dh_,
                            dropped_ ? attn_p_ : 0.0f, seed_);
    linear_forward(out, ctx, pt_.data(p_.o_w), pt_.data(p_.o_b), T, d_, d_);
  }

  void backward(float* dx, const float* dout, const float* x, const AttnShape& s) override {
    const int T = s.B * s.n;
    const size_t Td = (size_t)T * d_;
    float* dctx = grow(dctx_, Td);
    linear_backward(dctx, pt_.grad(p_.o_w), pt_.grad(p_.o_b), dout, ctx_.data(), pt_.data(p_.o_w), T, d_, d_);
    float* dq = grow(dq_, Td);
    float* dk = grow(dk_, Td);
    float* dv = grow(dv_, Td);
    flash_attention_backward(dq, dk, dv, dctx, ctx_.data(), lse_.data(), q_.data(), k_.data(), v_.data(), s.mask, s.B,
                             s.n, h_, dh_, dropped_ ? attn_p_ : 0.0f, seed_);
    linear_backward(dx, pt_.grad(p_.q_w), pt_.grad(p_.q_b), dq, x, pt_.data(p_.q_w), T, d_, d_);
    linear_backward(dx, pt_.grad(p_.k_w), pt_.grad(p_.k_b), dk, x, pt_.data(p_.k_w), T, d_, d_, true);
    linear_backward(dx, pt_.grad(p_.v_w), pt_.grad(p_.v_b), dv, x, pt_.data(p_.v_w), T, d_, d_, true);
  }

  std::vector<std::vector<float>*> forward_buffers() override { return {&q_, &k_, &v_, &ctx_, &lse_}; }

 private:
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

// The table's entry (registry.cpp): no tensors of its own.
std::unique_ptr<Attention> make_tiled_attention(const ModelConfig& cfg, ParamTable& pt, int /*layer*/,
                                                const AttentionParams& p) {
  return std::make_unique<TiledAttention>(cfg, pt, p.qkvo);
}

}  // namespace attention_detail

}  // namespace linformer
