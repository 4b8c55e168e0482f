// AttentionCore (core.hpp): the q map, the kind's context, the attention kernels, the out map.
#include "nn/attention/core.hpp"

#include <omp.h>

#include <algorithm>

#include "kernels/attention.hpp"
#include "kernels/kernels.hpp"

namespace linformer::attention_detail {

using namespace kernels;

void AttentionCore::forward(float* out, const float* x, const AttnShape& s, bool training, uint64_t seed) {
  const int T = s.B * s.n, BH = s.B * h_;
  float* q = grow(q_, (size_t)T * d_);
  linear_forward(q, x, pt_.data(p_.q_w), pt_.data(p_.q_b), T, d_, d_);
  make_context(x, s);  // fills kc_, vc_ ([B, kk, d]) and sets kk_
  const size_t block = (size_t)s.n * kk_;  // one (b, head) score block
  // Inference only: one score block per thread, not one per (sequence, head).
  const int blocks = inference_only_ ? std::min(omp_get_max_threads(), BH) : BH;
  float* P = grow(p_buf_, (size_t)blocks * block);
  float* ctx = grow(ctx_, (size_t)T * d_);
  dropped_ = training && attn_p_ > 0.0f;
  float* Pd = dropped_ ? grow(pd_buf_, (size_t)BH * block) : nullptr;
  uint8_t* keep = dropped_ ? grow(keep_, (size_t)BH * block) : nullptr;
  attention_forward(ctx, P, Pd, keep, q, kc_.data(), vc_.data(), context_mask(s), s.B, s.n, kk_, h_, dh_,
                    dropped_ ? attn_p_ : 0.0f, seed, blocks);
  linear_forward(out, ctx, pt_.data(p_.o_w), pt_.data(p_.o_b), T, d_, d_);
}

void AttentionCore::backward(float* dx, const float* dout, const float* x, const AttnShape& s) {
  const int T = s.B * s.n, kk = kk_;
  const size_t block = (size_t)s.n * kk;
  float* dctx = grow(dctx_, (size_t)T * d_);
  linear_backward(dctx, pt_.grad(p_.o_w), pt_.grad(p_.o_b), dout, ctx_.data(), pt_.data(p_.o_w), T, d_, d_);
  float* dq = grow(dq_, (size_t)T * d_);
  float* dkc = grow(dkc_, (size_t)s.B * kk * d_);
  float* dvc = grow(dvc_, (size_t)s.B * kk * d_);
  float* dP = grow(dp_buf_, (size_t)s.B * h_ * block);
  attention_backward(dq, dkc, dvc, dP, dctx, q_.data(), kc_.data(), vc_.data(), p_buf_.data(),
                     dropped_ ? pd_buf_.data() : nullptr, dropped_ ? keep_.data() : nullptr, s.B, s.n, kk, h_, dh_,
                     dropped_ ? attn_p_ : 0.0f);
  linear_backward(dx, pt_.grad(p_.q_w), pt_.grad(p_.q_b), dq, x, pt_.data(p_.q_w), T, d_, d_);
  context_backward(dx, dkc, dvc, x, s);  // adds to dx
}

std::vector<std::vector<float>*> AttentionCore::forward_buffers() {
  std::vector<std::vector<float>*> v = {&q_, &kc_, &vc_, &p_buf_, &ctx_};
  add_forward_buffers(v);
  return v;
}

}  // namespace linformer::attention_detail
