// Full and Linformer attention. Both share one core (see AttentionCore): per batch element b and
// head i, scores S = Q_i C_i^T / sqrt(dh) against "context keys" C (the n keys for full
// attention, the k projected keys for Linformer), softmax, dropout, and the weighted sum of the
// context values. The kinds differ only in how they make C and its values from x, and how they
// send the gradient back.
//
// Layouts: activations are row-major [T, d] with T = B*n (token t of sequence b is row b*n+t);
// head i is the column slice [i*dh, (i+1)*dh). Context keys/values are [B, kk, d] with the same
// head slices, so per-head matmuls need no transposes or copies (leading dimension d).
#include "nn/attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <omp.h>

#include "kernels/kernels.hpp"

namespace linformer {

using namespace kernels;

namespace {

template <class T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

class AttentionCore : public Attention {
 public:
  AttentionCore(const ModelConfig& cfg, ParamTable& pt, QkvoParams p)
      : pt_(pt), p_(p), d_(cfg.d_model), h_(cfg.n_heads), dh_(cfg.head_dim()), attn_p_(cfg.attention_dropout) {}

  void forward(float* out, const float* x, const AttnShape& s, bool training, uint64_t seed) override {
    const int T = s.B * s.n;
    float* q = grow(q_, (size_t)T * d_);
    linear_forward(q, x, pt_.data(p_.q_w), pt_.data(p_.q_b), T, d_, d_);
    make_context(x, s);  // fills kc_, vc_ ([B, kk, d]) and sets kk_
    const int kk = kk_;
    const size_t block = (size_t)s.n * kk;  // one (b, head) score block
    // Inference only: one score block per thread, not one per (sequence, head).
    const size_t blocks = inference_only_ ? (size_t)std::min(omp_get_max_threads(), s.B * h_) : (size_t)s.B * h_;
    float* P = grow(p_buf_, blocks * block);
    float* ctx = grow(ctx_, (size_t)T * d_);
    const float scale = 1.0f / std::sqrt((float)dh_);
    const uint8_t* key_mask = context_mask(s);  // [B, kk] or null
    dropped_ = training && attn_p_ > 0.0f;
    float* Pd = dropped_ ? grow(pd_buf_, (size_t)s.B * h_ * block) : P;
    uint8_t* keep = dropped_ ? grow(keep_, (size_t)s.B * h_ * block) : nullptr;
    // Each (b, head) block is independent: one parallel loop, single-threaded matmuls inside.
#pragma omp parallel for schedule(dynamic)
    for (int bh = 0; bh < s.B * h_; ++bh) {
      const int b = bh / h_, i = bh % h_;
      const float* qb = q + (size_t)b * s.n * d_ + i * dh_;
      const float* kb = kc_.data() + (size_t)b * kk * d_ + i * dh_;
      const float* vb = vc_.data() + (size_t)b * kk * d_ + i * dh_;
      float* Pb = P + (inference_only_ ? (size_t)omp_get_thread_num() : (size_t)bh) * block;
      matmul(false, true, s.n, kk, dh_, scale, qb, d_, kb, d_, 0.0f, Pb, kk);
      softmax_forward(Pb, Pb, s.n, kk, key_mask ? key_mask + (size_t)b * kk : nullptr);
      float* Pdb = Pb;
      if (dropped_) {
        Pdb = Pd + bh * block;
        // Serial here (we are inside the parallel loop): element-wise with the same hash.
        const float sc = 1.0f / (1.0f - attn_p_);
        uint8_t* kp = keep + bh * block;
        for (size_t e = 0; e < block; ++e) {
          kp[e] = dropout_uniform(seed, bh * block + e) >= attn_p_;
          Pdb[e] = kp[e] ? Pb[e] * sc : 0.0f;
        }
      }
      matmul(false, false, s.n, dh_, kk, 1.0f, Pdb, kk, vb, d_, 0.0f, ctx + (size_t)b * s.n * d_ + i * dh_, d_);
    }
    linear_forward(out, ctx, pt_.data(p_.o_w), pt_.data(p_.o_b), T, d_, d_);
  }

  void backward(float* dx, const float* dout, const float* x, const AttnShape& s) override {
    const int T = s.B * s.n, kk = kk_;
    const size_t block = (size_t)s.n * kk;
    float* dctx = grow(dctx_, (size_t)T * d_);
    linear_backward(dctx, pt_.grad(p_.o_w), pt_.grad(p_.o_b), dout, ctx_.data(), pt_.data(p_.o_w), T, d_, d_);
    float* dq = grow(dq_, (size_t)T * d_);
    float* dkc = grow(dkc_, (size_t)s.B * kk * d_);
    float* dvc = grow(dvc_, (size_t)s.B * kk * d_);
    float* dP = grow(dp_buf_, (size_t)s.B * h_ * block);
    const float scale = 1.0f / std::sqrt((float)dh_);
    const float* P = p_buf_.data();
    const float* Pd = dropped_ ? pd_buf_.data() : P;
#pragma omp parallel for schedule(dynamic)
    for (int bh = 0; bh < s.B * h_; ++bh) {
      const int b = bh / h_, i = bh % h_;
      const size_t tok = (size_t)b * s.n * d_ + i * dh_, ctxo = (size_t)b * kk * d_ + i * dh_;
      const float* Pb = P + bh * block;
      const float* Pdb = Pd + bh * block;
      float* dPb = dP + bh * block;
      // ctx = Pd V  ->  dPd = dctx V^T,  dV = Pd^T dctx
      matmul(false, true, s.n, kk, dh_, 1.0f, dctx + tok, d_, vc_.data() + ctxo, d_, 0.0f, dPb, kk);
      matmul(true, false, kk, dh_, s.n, 1.0f, Pdb, kk, dctx + tok, d_, 0.0f, dvc + ctxo, d_);
      if (dropped_) {
        const float sc = 1.0f / (1.0f - attn_p_);
        const uint8_t* kp = keep_.data() + bh * block;
        for (size_t e = 0; e < block; ++e) dPb[e] = kp[e] ? dPb[e] * sc : 0.0f;
      }
      softmax_backward(dPb, Pb, dPb, s.n, kk);
      // S = scale Q K^T  ->  dQ = scale dS K,  dK = scale dS^T Q
      matmul(false, false, s.n, dh_, kk, scale, dPb, kk, kc_.data() + ctxo, d_, 0.0f, dq + tok, d_);
      matmul(true, false, kk, dh_, s.n, scale, dPb, kk, q_.data() + tok, d_, 0.0f, dkc + ctxo, d_);
    }
    linear_backward(dx, pt_.grad(p_.q_w), pt_.grad(p_.q_b), dq, x, pt_.data(p_.q_w), T, d_, d_);
    context_backward(dx, dkc, dvc, x, s);  // adds to dx
  }

  const float* probs(int* cols) const override {
    *cols = kk_;
    return p_buf_.data();
  }

  std::vector<std::vector<float>*> forward_buffers() override {
    std::vector<std::vector<float>*> v = {&q_, &kc_, &vc_, &p_buf_, &ctx_};
    add_forward_buffers(v);
    return v;
  }

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

// Exact attention: the context keys are all n keys; padded keys are masked in the softmax.
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

// Linformer: context keys/values are k rows projected along the sequence by E and F.
// The projection kinds (docs/model.md): learned, random and conv are linear maps E [k, max_len]
// (conv's E is built from its kernel every forward and its gradient folded back), applied by
// the same code; mean and max pool windows of real tokens (seq_pool_*) and have no tensors.
// Window kinds (mean, max, conv) mask the projected keys whose window holds no real token.
class LinformerAttention : public AttentionCore {
 public:
  LinformerAttention(const ModelConfig& cfg, ParamTable& pt, QkvoParams p, LinformerProj proj)
      : AttentionCore(cfg, pt, p),
        proj_(proj),
        nmax_(cfg.max_len),
        input_first_(cfg.proj_order == ProjOrder::InputFirst),
        window_(is_window_kind(proj.kind) ? cfg.max_len / proj.k : 0) {}

 protected:
  // Padding is zeroed (or skipped) before projecting; only window kinds have empty projected rows.
  const uint8_t* context_mask(const AttnShape&) const override {
    return window_ > 0 ? win_mask_.data() : nullptr;
  }

  void add_forward_buffers(std::vector<std::vector<float>*>& v) override {
    v.insert(v.end(), {&xm_, &kfull_, &vfull_});
  }

  bool pooled() const { return proj_.kind == ProjKind::Mean || proj_.kind == ProjKind::Max; }
  bool is_max() const { return proj_.kind == ProjKind::Max; }

  // E (or F) of head i, [k, max_len] with row stride max_len; only the first n columns are used.
  const float* proj_of(int param, int head) const {
    const size_t off = (size_t)(proj_.heads == 1 ? 0 : head) * proj_.k * nmax_;
    if (proj_.kind == ProjKind::Conv) return (param == proj_.e ? conv_e_ : conv_f_).data() + off;
    return pt_.data(param) + off;
  }
  // Where the gradient of that matrix goes; null for the frozen random projection (not computed).
  float* proj_grad_of(int param, int head) {
    const size_t off = (size_t)(proj_.heads == 1 ? 0 : head) * proj_.k * nmax_;
    if (proj_.kind == ProjKind::Random) return nullptr;
    if (proj_.kind == ProjKind::Conv) return (param == proj_.e ? dconv_e_ : dconv_f_).data() + off;
    return pt_.grad(param) + off;
  }

  void make_context(const float* x, const AttnShape& s) override {
    const int T = s.B * s.n, k = proj_.k;
    kk_ = k;
    float* kc = grow(kc_, (size_t)s.B * k * d_);
    float* vc = grow(vc_, (size_t)s.B * k * d_);
    if (window_ > 0) {  // win_mask_[b, j]: window j of sequence b holds a real token
      uint8_t* wm = grow(win_mask_, (size_t)s.B * k);
      for (int b = 0; b < s.B; ++b)
        for (int j = 0; j < k; ++j) {
          uint8_t any = 0;
          for (int t = j * window_; t < std::min((j + 1) * window_, s.n); ++t) any |= s.mask[(size_t)b * s.n + t];
          wm[(size_t)b * k + j] = any;
        }
    }
    if (pooled()) {
      pool_context(kc, vc, x, s);
      return;
    }
    if (proj_.kind == ProjKind::Conv) {  // E and F as [heads, k, max_len] matrices
      conv_matrices(grow(conv_e_, (size_t)proj_.heads * k * nmax_), proj_.e);
      if (proj_.f != proj_.e) conv_matrices(grow(conv_f_, (size_t)proj_.heads * k * nmax_), proj_.f);
    }
    // Padded rows never reach the projection: xm = x * mask (input_first) or K, V * mask.
    if (input_first_) {
      // Without padding the masked copy is x itself (saves a [T, d] buffer and a pass over it).
      const bool padded = std::find(s.mask, s.mask + T, 0) != s.mask + T;
      if (padded) mask_rows(grow(xm_, (size_t)T * d_), x, s);
      const float* xm = xm_ptr_ = padded ? xm_.data() : x;
      // XE[b, e] = E_e[:, :n] xm_b : [k, d] per batch element and distinct projection.
      const bool kv_shared = proj_.f == proj_.e;
      project_inputs(grow(xe_, (size_t)s.B * proj_.heads * k * d_), proj_.e, xm, s);
      const float* xf = xe_.data();
      if (!kv_shared) {
        project_inputs(grow(xf_, (size_t)s.B * proj_.heads * k * d_), proj_.f, xm, s);
        xf = xf_.data();
      }
      // Kp = XE Wk^T + bk (per head: only that head's rows of Wk).
      map_projected(kc, xe_.data(), p_.k_w, p_.k_b, s.B);
      map_projected(vc, xf, p_.v_w, p_.v_b, s.B);
    } else {
      float* kf = grow(kfull_, (size_t)T * d_);
      float* vf = grow(vfull_, (size_t)T * d_);
      linear_forward(kf, x, pt_.data(p_.k_w), pt_.data(p_.k_b), T, d_, d_);
      linear_forward(vf, x, pt_.data(p_.v_w), pt_.data(p_.v_b), T, d_, d_);
      mask_rows(kf, kf, s);
      mask_rows(vf, vf, s);
      project_sequence(kc, proj_.e, kf, s);
      project_sequence(vc, proj_.f, vf, s);
    }
  }

  void context_backward(float* dx, const float* dkc, const float* dvc, const float* x,
                        const AttnShape& s) override {
    const int T = s.B * s.n, k = proj_.k;
    if (pooled()) {
      pool_context_backward(dx, dkc, dvc, x, s);
      return;
    }
    if (proj_.kind == ProjKind::Conv) {  // gradients w.r.t. the matrices first, folded at the end
      std::fill_n(grow(dconv_e_, (size_t)proj_.heads * k * nmax_), (size_t)proj_.heads * k * nmax_, 0.0f);
      if (proj_.f != proj_.e)
        std::fill_n(grow(dconv_f_, (size_t)proj_.heads * k * nmax_), (size_t)proj_.heads * k * nmax_, 0.0f);
    }
    if (input_first_) {
      const bool kv_shared = proj_.f == proj_.e;
      const float* xf = kv_shared ? xe_.data() : xf_.data();
      float* dxe = grow(dxe_, (size_t)s.B * proj_.heads * k * d_);
      float* dxf = grow(dxf_, (size_t)s.B * proj_.heads * k * d_);
      map_projected_backward(dxe, dkc, xe_.data(), p_.k_w, p_.k_b, s.B);
      map_projected_backward(dxf, dvc, xf, p_.v_w, p_.v_b, s.B);
      // dE += dXE xm^T, dxm = E^T dXE (+ the same for F; when F is E both land in one gradient).
      float* dxm = grow(dxm_, (size_t)T * d_);
      project_inputs_backward(dxm, dxe, proj_.e, xm_ptr_, s, false);
      project_inputs_backward(dxm, dxf, proj_.f, xm_ptr_, s, true);
      // dx += dxm * mask
#pragma omp parallel for schedule(static)
      for (int r = 0; r < T; ++r) {
        if (!s.mask[r]) continue;
        float* o = dx + (size_t)r * d_;
        const float* g = dxm + (size_t)r * d_;
        for (int c = 0; c < d_; ++c) o[c] += g[c];
      }
    } else {
      float* dkf = grow(dkfull_, (size_t)T * d_);
      float* dvf = grow(dvfull_, (size_t)T * d_);
      project_sequence_backward(dkf, dkc, proj_.e, kfull_.data(), s);
      project_sequence_backward(dvf, dvc, proj_.f, vfull_.data(), s);
      mask_rows(dkf, dkf, s);
      mask_rows(dvf, dvf, s);
      linear_backward(dx, pt_.grad(p_.k_w), pt_.grad(p_.k_b), dkf, x, pt_.data(p_.k_w), T, d_, d_, true);
      linear_backward(dx, pt_.grad(p_.v_w), pt_.grad(p_.v_b), dvf, x, pt_.data(p_.v_w), T, d_, d_, true);
    }
    if (proj_.kind == ProjKind::Conv) {
      conv_kernel_grads(dconv_e_.data(), proj_.e);
      if (proj_.f != proj_.e) conv_kernel_grads(dconv_f_.data(), proj_.f);
    }
  }

 private:
  // Conv: the kernels of `param` ([heads, w]) as matrices [heads, k, max_len], and back.
  void conv_matrices(float* out, int param) const {
    for (int e = 0; e < proj_.heads; ++e)
      conv_matrix_forward(out + (size_t)e * proj_.k * nmax_, pt_.data(param) + (size_t)e * window_, proj_.k, window_,
                          nmax_);
  }
  void conv_kernel_grads(const float* dmat, int param) {
    for (int e = 0; e < proj_.heads; ++e)
      conv_matrix_backward(pt_.grad(param) + (size_t)e * window_, dmat + (size_t)e * proj_.k * nmax_, proj_.k,
                           window_, nmax_);
  }

  // Mean/max pooling: one pooling for every head, keys and values (there is nothing to share).
  // input_first: Kp = pool(x) Wk^T + bk; linear_first: Kp = pool(x Wk^T + bk). Pooling reads
  // real rows only, so no masking is needed.
  void pool_context(float* kc, float* vc, const float* x, const AttnShape& s) {
    const int T = s.B * s.n, k = proj_.k;
    const size_t pk = (size_t)s.B * k * d_;
    int32_t* arg_e = is_max() ? grow(arg_e_, pk) : nullptr;
    if (input_first_) {
      float* xe = grow(xe_, pk);
      seq_pool_forward(xe, arg_e, nullptr, x, s.mask, s.B, s.n, d_, k, window_, is_max());
      map_projected(kc, xe, p_.k_w, p_.k_b, s.B);
      map_projected(vc, xe, p_.v_w, p_.v_b, s.B);
    } else {
      float* kf = grow(kfull_, (size_t)T * d_);
      float* vf = grow(vfull_, (size_t)T * d_);
      linear_forward(kf, x, pt_.data(p_.k_w), pt_.data(p_.k_b), T, d_, d_);
      linear_forward(vf, x, pt_.data(p_.v_w), pt_.data(p_.v_b), T, d_, d_);
      seq_pool_forward(kc, arg_e, nullptr, kf, s.mask, s.B, s.n, d_, k, window_, is_max());
      seq_pool_forward(vc, is_max() ? grow(arg_f_, pk) : nullptr, nullptr, vf, s.mask, s.B, s.n, d_, k, window_,
                       is_max());
    }
  }
  void pool_context_backward(float* dx, const float* dkc, const float* dvc, const float* x, const AttnShape& s) {
    const int T = s.B * s.n, k = proj_.k;
    const size_t pk = (size_t)s.B * k * d_;
    if (input_first_) {
      float* dxe = grow(dxe_, pk);
      float* dxf = grow(dxf_, pk);
      map_projected_backward(dxe, dkc, xe_.data(), p_.k_w, p_.k_b, s.B);
      map_projected_backward(dxf, dvc, xe_.data(), p_.v_w, p_.v_b, s.B);
      for (size_t i = 0; i < pk; ++i) dxe[i] += dxf[i];
      float* dxm = grow(dxm_, (size_t)T * d_);
      seq_pool_backward(dxm, dxe, arg_e_.data(), s.mask, s.B, s.n, d_, k, window_, is_max());
      add_inplace(dx, dxm, (size_t)T * d_);  // dxm is 0 at padding
    } else {
      float* dkf = grow(dkfull_, (size_t)T * d_);
      float* dvf = grow(dvfull_, (size_t)T * d_);
      seq_pool_backward(dkf, dkc, arg_e_.data(), s.mask, s.B, s.n, d_, k, window_, is_max());
      seq_pool_backward(dvf, dvc, arg_f_.data(), s.mask, s.B, s.n, d_, k, window_, is_max());
      linear_backward(dx, pt_.grad(p_.k_w), pt_.grad(p_.k_b), dkf, x, pt_.data(p_.k_w), T, d_, d_, true);
      linear_backward(dx, pt_.grad(p_.v_w), pt_.grad(p_.v_b), dvf, x, pt_.data(p_.v_w), T, d_, d_, true);
    }
  }

  void mask_rows(float* out, const float* in, const AttnShape& s) const {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < s.B * s.n; ++r) {
      float* o = out + (size_t)r * d_;
      if (s.mask[r]) {
        if (o != in + (size_t)r * d_) std::memcpy(o, in + (size_t)r * d_, d_ * sizeof(float));
      } else {
        std::memset(o, 0, d_ * sizeof(float));
      }
    }
  }

  // out[b, e] = P_e[:, :n] xm_b  ([k, d]) for every batch element and projection e.
  void project_inputs(float* out, int param, const float* xm, const AttnShape& s) const {
    const int k = proj_.k;
    for (int b = 0; b < s.B; ++b)
      for (int e = 0; e < proj_.heads; ++e)
        matmul(false, false, k, d_, s.n, 1.0f, proj_of(param, e), nmax_, xm + (size_t)b * s.n * d_, d_, 0.0f,
               out + ((size_t)b * proj_.heads + e) * k * d_, d_);
  }
  // dP_e[:, :n] += dout[b,e] xm_b^T ;  dxm_b (=|+=) P_e[:, :n]^T dout[b,e]
  void project_inputs_backward(float* dxm, const float* dout, int param, const float* xm, const AttnShape& s,
                               bool accumulate) {
    const int k = proj_.k;
    for (int b = 0; b < s.B; ++b)
      for (int e = 0; e < proj_.heads; ++e) {
        const float* g = dout + ((size_t)b * proj_.heads + e) * k * d_;
        if (float* dp = proj_grad_of(param, e))
          matmul(false, true, k, s.n, d_, 1.0f, g, d_, xm + (size_t)b * s.n * d_, d_, 1.0f, dp, nmax_);
        const bool acc = accumulate || e > 0;
        matmul(true, false, s.n, d_, k, 1.0f, proj_of(param, e), nmax_, g, d_, acc ? 1.0f : 0.0f,
               dxm + (size_t)b * s.n * d_, d_);
      }
  }

  // out[b] = xp[b, head's e] W_head^T + b_head, for every head: [k, d] per batch element.
  void map_projected(float* out, const float* xp, int w, int bias, int B) const {
    const int k = proj_.k;
    const float* W = pt_.data(w);
    for (int b = 0; b < B; ++b) {
      float* ob = out + (size_t)b * k * d_;
      if (proj_.heads == 1) {
        linear_forward(ob, xp + (size_t)b * k * d_, W, nullptr, k, d_, d_);
      } else {
        for (int i = 0; i < h_; ++i)  // head i's output columns use only rows i*dh.. of W
          matmul(false, true, k, dh_, d_, 1.0f, xp + ((size_t)b * h_ + i) * k * d_, d_, W + (size_t)i * dh_ * d_,
                 d_, 0.0f, ob + i * dh_, d_);
      }
    }
    bias_add_forward(out, pt_.data(bias), B * k, d_);
  }
  void map_projected_backward(float* dxp, const float* dout, const float* xp, int w, int bias, int B) {
    const int k = proj_.k;
    const float* W = pt_.data(w);
    float* dW = pt_.grad(w);
    for (int b = 0; b < B; ++b) {
      const float* gb = dout + (size_t)b * k * d_;
      if (proj_.heads == 1) {
        linear_backward(dxp + (size_t)b * k * d_, dW, nullptr, gb, xp + (size_t)b * k * d_, W, k, d_, d_);
      } else {
        for (int i = 0; i < h_; ++i) {
          const float* xpi = xp + ((size_t)b * h_ + i) * k * d_;
          // y_i = xp_i W_i^T: dxp_i = dy_i W_i, dW_i += dy_i^T xp_i
          matmul(false, false, k, d_, dh_, 1.0f, gb + i * dh_, d_, W + (size_t)i * dh_ * d_, d_, 0.0f,
                 dxp + ((size_t)b * h_ + i) * k * d_, d_);
          matmul(true, false, dh_, d_, k, 1.0f, gb + i * dh_, d_, xpi, d_, 1.0f, dW + (size_t)i * dh_ * d_, d_);
        }
      }
    }
    bias_add_backward(pt_.grad(bias), dout, B * k, d_);
  }

  // out[b][:, head i] = P_i[:, :n] in_b[:, head i]  ([k, d]); one matmul when the heads share P.
  void project_sequence(float* out, int param, const float* in, const AttnShape& s) const {
    const int k = proj_.k;
    for (int b = 0; b < s.B; ++b) {
      const float* ib = in + (size_t)b * s.n * d_;
      float* ob = out + (size_t)b * k * d_;
      if (proj_.heads == 1) {
        matmul(false, false, k, d_, s.n, 1.0f, proj_of(param, 0), nmax_, ib, d_, 0.0f, ob, d_);
      } else {
        for (int i = 0; i < h_; ++i)
          matmul(false, false, k, dh_, s.n, 1.0f, proj_of(param, i), nmax_, ib + i * dh_, d_, 0.0f, ob + i * dh_, d_);
      }
    }
  }
  // din_b[:, head i] = P_i[:, :n]^T dout_b[:, head i];  dP_i[:, :n] += dout_b[:, head i] in_b[:, head i]^T
  void project_sequence_backward(float* din, const float* dout, int param, const float* in, const AttnShape& s) {
    const int k = proj_.k;
    for (int b = 0; b < s.B; ++b) {
      const float* gb = dout + (size_t)b * k * d_;
      const float* ib = in + (size_t)b * s.n * d_;
      float* db = din + (size_t)b * s.n * d_;
      if (proj_.heads == 1) {
        matmul(true, false, s.n, d_, k, 1.0f, proj_of(param, 0), nmax_, gb, d_, 0.0f, db, d_);
        if (float* dp = proj_grad_of(param, 0)) matmul(false, true, k, s.n, d_, 1.0f, gb, d_, ib, d_, 1.0f, dp, nmax_);
      } else {
        for (int i = 0; i < h_; ++i) {
          matmul(true, false, s.n, dh_, k, 1.0f, proj_of(param, i), nmax_, gb + i * dh_, d_, 0.0f, db + i * dh_, d_);
          if (float* dp = proj_grad_of(param, i))
            matmul(false, true, k, s.n, dh_, 1.0f, gb + i * dh_, d_, ib + i * dh_, d_, 1.0f, dp, nmax_);
        }
      }
    }
  }

  LinformerProj proj_;
  int nmax_;
  bool input_first_;
  int window_;  // positions per window (window kinds), else 0
  std::vector<float> xm_, xe_, xf_, kfull_, vfull_;
  const float* xm_ptr_ = nullptr;  // the projected input of the last forward: xm_, or x when unpadded
  std::vector<float> dxe_, dxf_, dxm_, dkfull_, dvfull_;
  std::vector<float> conv_e_, conv_f_, dconv_e_, dconv_f_;  // conv: E, F as matrices and their gradients
  std::vector<int32_t> arg_e_, arg_f_;                      // max pooling: where each maximum came from
  std::vector<uint8_t> win_mask_;                           // [B, k]
};

}  // namespace

std::unique_ptr<Attention> make_full_attention(const ModelConfig& cfg, ParamTable& pt, QkvoParams p) {
  return std::make_unique<FullAttention>(cfg, pt, p);
}

std::unique_ptr<Attention> make_linformer_attention(const ModelConfig& cfg, ParamTable& pt, QkvoParams p,
                                                    LinformerProj proj) {
  return std::make_unique<LinformerAttention>(cfg, pt, p, proj);
}

}  // namespace linformer
