// Full softmax attention (kind "full"): the context keys are all n keys; padded keys are masked
// in the softmax. Keeps the n x n probabilities for backward (and Model::attention_probs).
#include <memory>

#include "kernels/kernels.hpp"
#include "nn/attention/core.hpp"

namespace linformer {

namespace attention_detail {

namespace {

using namespace kernels;

class FullAttention : public AttentionCore {
 public:
  using AttentionCore::AttentionCore;

 protected:
  const uint8_t* context_mask(const AttnShape& s) const override { return s.mask; }  // kk = n
  void make_context(const float* x, const AttnShape& s) override {
    const int T = s.B * s.n;
    kk_ = s.n;
    linear_forward(grow(kc_, (size_t)T * d_), x, pt_.data(p_.k_w), pt_.data(p_.k_b), T, d_, d_);
    linear_forward(grow(vc_, (size_t)T * d_), x, pt_.data(p_.v_w), pt_.data(p_.v_b), T, d_, d_);
  }
  void context_backward(float* dx, const float* dkc, const float* dvc, const float* x,
                        const AttnShape& s) override {
    const int T = s.B * s.n;
    linear_backward(dx, pt_.grad(p_.k_w), pt_.grad(p_.k_b), dkc, x, pt_.data(p_.k_w), T, d_, d_, true);
    linear_backward(dx, pt_.grad(p_.v_w), pt_.grad(p_.v_b), dvc, x, pt_.data(p_.v_w), T, d_, d_, true);
  }
};

}  // namespace

// The table's entry (registry.cpp): no tensors of its own.
std::unique_ptr<Attention> make_full_attention(const ModelConfig& cfg, ParamTable& pt, int /*layer*/,
                                               const AttentionParams& p) {
  return std::make_unique<FullAttention>(cfg, pt, p.qkvo);
}

}  // namespace attention_detail

}  // namespace linformer
