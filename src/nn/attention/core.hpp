// AttentionCore: what full and Linformer attention share. Per batch element b and head i,
// scores S = Q_i C_i^T / sqrt(dh) against "context keys" C (the n keys for full attention, the
// k projected keys for Linformer), softmax, dropout, and the weighted sum of the context values
// (kernels::attention_forward/backward). The kinds differ only in how they make C and its
// values from x, and how they send the gradient back.
//
// Layouts: activations are row-major [T, d] with T = B*n (token t of sequence b is row b*n+t);
// head i is the column slice [i*dh, (i+1)*dh). Context keys/values are [B, kk, d] with the same
// head slices, so per-head matmuls need no transposes or copies (leading dimension d).
#pragma once
#include <cstdint>
#include <vector>

#include "core/buffers.hpp"
#include "nn/attention/attention.hpp"

namespace linformer::attention_detail {

using core::grow;  // buffers are reused across calls

class AttentionCore : public Attention {
 public:
  AttentionCore(const ModelConfig& cfg, ParamTable& pt, QkvoParams p)
      : pt_(pt), p_(p), d_(cfg.d_model), h_(cfg.n_heads), dh_(cfg.head_dim()), attn_p_(cfg.attention_dropout) {}

  void forward(float* out, const float* x, const AttnShape& s, bool training, uint64_t seed) override;
  void backward(float* dx, const float* dout, const float* x, const AttnShape& s) override;
  const float* probs(int* cols) const override {
    *cols = kk_;
    return p_buf_.data();
  }
  std::vector<std::vector<float>*> forward_buffers() override;

 protected:
  // Builds kc_, vc_ ([B, kk_, d]) from x and sets kk_.
  virtual void make_context(const float* x, const AttnShape& s) = 0;
  // Given dkc, dvc ([B, kk, d]), accumulates parameter gradients and ADDS the input gradient to dx.
  virtual void context_backward(float* dx, const float* dkc, const float* dvc, const float* x,
                                const AttnShape& s) = 0;
  // Which context keys are real, [B, kk] (padded keys get probability 0), or null: all are.
  virtual const uint8_t* context_mask(const AttnShape& s) const = 0;
  // Large forward buffers of the kind itself (see forward_buffers).
  virtual void add_forward_buffers(std::vector<std::vector<float>*>&) {}

  ParamTable& pt_;
  QkvoParams p_;
  int d_, h_, dh_;
  float attn_p_;
  int kk_ = 0;
  bool dropped_ = false;
  std::vector<float> q_, kc_, vc_, p_buf_, pd_buf_, ctx_;
  std::vector<uint8_t> keep_;
  std::vector<float> dctx_, dq_, dkc_, dvc_, dp_buf_;
};

}  // namespace linformer::attention_detail
