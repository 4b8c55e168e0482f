// Linformer attention (kind "linformer"): keys and values projected along the sequence to k rows
// by E and F, then AttentionCore's attention against those k context keys. No n x n buffer
// exists on this path. Also the kind's tensors (docs/format.md): their registration, with the
// sharing modes, and their config fields in logs.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "kernels/kernels.hpp"
#include "nn/attention/core.hpp"

namespace linformer {

namespace attention_detail {

namespace {

using namespace kernels;

// One layer's projection: E and F as indices into the ParamTable ([e_heads, k, max_len] for
// learned and random, [e_heads, w] for conv; -1 for mean/max pooling, which have no tensors;
// f may equal e), e_heads = 1 when shared by the heads, else n_heads.
struct LinformerProj {
  int e = -1, f = -1;
  int heads = 1;
  int k = 0;
  ProjKind kind = ProjKind::Learned;
};

// Mean and max pooling have no tensors.
bool has_proj_tensors(const ModelConfig& cfg) {
  return cfg.projection != ProjKind::Mean && cfg.projection != ProjKind::Max;
}

// The shape of a projection tensor of layer `layer` (docs/format.md): [k, N] matrices (learned;
// random, frozen), [w] conv kernels; with sharing "none" one per head ([h, ...]).
std::vector<int64_t> proj_shape(const ModelConfig& cfg, int layer, bool per_head) {
  std::vector<int64_t> sh;
  if (per_head) sh.push_back(cfg.n_heads);
  if (cfg.projection == ProjKind::Conv) {
    sh.push_back(cfg.window_of(layer));
  } else {
    sh.push_back(cfg.k_of(layer));
    sh.push_back(cfg.max_len);
  }
  return sh;
}

// The random projection is frozen: no weight decay, no gradient, drawn N(0, 1/k). Learned E/F
// and conv kernels start N(0, init_std) like the weight matrices.
int add_proj(ParamTable& pt, const ModelConfig& cfg, const std::string& name, int layer, bool per_head) {
  const bool frozen = cfg.projection == ProjKind::Random;
  return pt.add(name, proj_shape(cfg, layer, per_head), frozen ? ParamInit::RandomProjection : ParamInit::Normal,
                !frozen, !frozen);
}

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
      auto [kf, vf] = full_keys_values(x, T);
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
  // K = X Wk^T + bk and V = X Wv^T + bv at full length (the projection-after order), in kfull_ and vfull_.
  std::pair<float*, float*> full_keys_values(const float* x, int T) {
    float* kf = grow(kfull_, (size_t)T * d_);
    float* vf = grow(vfull_, (size_t)T * d_);
    linear_forward(kf, x, pt_.data(p_.k_w), pt_.data(p_.k_b), T, d_, d_);
    linear_forward(vf, x, pt_.data(p_.v_w), pt_.data(p_.v_b), T, d_, d_);
    return {kf, vf};
  }

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
      auto [kf, vf] = full_keys_values(x, T);
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

// The table's entries (registry.cpp).

// Sharing "layerwise": one projection for all layers, heads, keys and values, registered first.
AttentionShared linformer_declare_shared(ParamTable& pt, const ModelConfig& cfg) {
  AttentionShared s;
  if (has_proj_tensors(cfg) && cfg.sharing == Sharing::Layerwise)
    s.own.push_back(add_proj(pt, cfg, "attn_proj_shared", 0, false));
  return s;
}

// Per layer: {E, F} (the same index twice when they are one tensor), or {} for pooling.
std::vector<int> linformer_declare_layer(ParamTable& pt, const ModelConfig& cfg, int l, const std::string& b,
                                         const AttentionShared& shared) {
  if (!has_proj_tensors(cfg)) return {};
  switch (cfg.sharing) {
    case Sharing::None: {
      const int e = add_proj(pt, cfg, b + "attn_proj_e", l, true);
      return {e, add_proj(pt, cfg, b + "attn_proj_f", l, true)};
    }
    case Sharing::Headwise: {
      const int e = add_proj(pt, cfg, b + "attn_proj_e", l, false);
      return {e, add_proj(pt, cfg, b + "attn_proj_f", l, false)};
    }
    case Sharing::KeyValue: {
      const int kv = add_proj(pt, cfg, b + "attn_proj_kv", l, false);
      return {kv, kv};
    }
    case Sharing::Layerwise:
      return {shared.own.at(0), shared.own.at(0)};
  }
  return {};
}

std::unique_ptr<Attention> make_linformer_attention(const ModelConfig& cfg, ParamTable& pt, int layer,
                                                    const AttentionParams& p) {
  LinformerProj proj;
  proj.k = cfg.k_of(layer);
  proj.kind = cfg.projection;
  if (!p.own.empty()) {
    proj.e = p.own.at(0);
    proj.f = p.own.at(1);
    proj.heads = cfg.sharing == Sharing::None ? cfg.n_heads : 1;
  }
  return std::make_unique<LinformerAttention>(cfg, pt, p.qkvo, proj);
}

std::string linformer_describe(const ModelConfig& cfg) {
  std::string k;
  for (size_t i = 0; i < cfg.k.size(); ++i) {
    if (i) k += ',';
    k += std::to_string(cfg.k[i]);
  }
  return fmt::format(" k={} sharing={} proj_order={} projection={}", k, to_string(cfg.sharing),
                     to_string(cfg.proj_order), to_string(cfg.projection));
}

}  // namespace attention_detail

}  // namespace linformer
