// The heads on the encoder (docs/model.md "Heads", "Losses"): the MLM head (decoder tied to the
// token embedding) on every position or on the labelled ones, the classification head with its
// pooling, both cross-entropy losses, and their backward down to the hidden states.
#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "core/buffers.hpp"
#include "kernels/kernels.hpp"
#include "linformer/error.hpp"
#include "nn/model_impl.hpp"

namespace linformer {

using namespace kernels;
using namespace model_detail;
using core::grow;

void Model::Impl::mlm_head_forward(const float* x, int R) {
  const int d = cfg->d_model, V = cfg->vocab_size;
  const size_t Rd = (size_t)R * d;
  linear_forward(grow(mlm_h, Rd), x, pt->data(mlm_dense_w), pt->data(mlm_dense_b), R, d, d);
  ctx.emit(-1, "mlm.dense", mlm_h.data(), R, d);
  gelu_forward(grow(mlm_act, Rd), mlm_h.data(), Rd);
  ctx.emit(-1, "mlm.act", mlm_act.data(), R, d);
  layernorm_forward(grow(mlm_z, Rd), grow(mlm_mean, R), grow(mlm_rstd, R), mlm_act.data(), pt->data(mlm_ln_w),
                    pt->data(mlm_ln_b), R, d, cfg->layer_norm_eps);
  ctx.emit(-1, "mlm.norm", mlm_z.data(), R, d);
  // Decoder tied to the token embedding.
  linear_forward(grow(logits, (size_t)R * V), mlm_z.data(), pt->data(tok), pt->data(mlm_bias), R, d, V);
  ctx.emit(-1, "mlm.logits", logits.data(), R, V);
}

// p = pooled x; logits = Dropout(tanh(Dropout(p) Wc^T + bc)) Wo^T + bo.
void Model::Impl::cls_head_forward(const float* x, bool dropout) {
  const int d = cfg->d_model, B = batch.B, n = batch.n, C = cfg->num_labels;
  const size_t Bd = (size_t)B * d;
  float* pool = grow(pooled, Bd);
  for (int b = 0; b < B; ++b) {
    float* o = pool + (size_t)b * d;
    if (cfg->pooling == Pooling::First) {
      std::memcpy(o, x + (size_t)b * n * d, d * sizeof(float));
    } else {
      std::fill(o, o + d, 0.0f);
      const int len = batch.length(b);
      for (int t = 0; t < n; ++t)
        if (batch.mask[(size_t)b * n + t])
          for (int c = 0; c < d; ++c) o[c] += x[((size_t)b * n + t) * d + c];
      for (int c = 0; c < d; ++c) o[c] /= len;
    }
  }
  ctx.emit(-1, "cls.pooled", pool, B, d);
  const float p = dropout ? cfg->dropout : 0.0f;
  // Sites after the encoder's: counter already advanced by encode, so reuse its counter with high sites.
  const uint64_t base = 1u << 20;
  dropout_forward(grow(pooled_d, Bd), grow(cls_keep1, Bd), pool, Bd, p, site_seed(ctx.seed, ctx.counter, base));
  ctx.emit(-1, "cls.pooled_drop", pooled_d.data(), B, d);
  linear_forward(grow(cls_h, Bd), pooled_d.data(), pt->data(cls_dense_w), pt->data(cls_dense_b), B, d, d);
  ctx.emit(-1, "cls.dense", cls_h.data(), B, d);
  float* t = grow(cls_t, Bd);
  for (size_t i = 0; i < Bd; ++i) t[i] = std::tanh(cls_h[i]);
  ctx.emit(-1, "cls.tanh", t, B, d);
  dropout_forward(grow(cls_td, Bd), grow(cls_keep2, Bd), t, Bd, p, site_seed(ctx.seed, ctx.counter, base + 1));
  ctx.emit(-1, "cls.tanh_drop", cls_td.data(), B, d);
  linear_forward(grow(cls_logits, (size_t)B * C), cls_td.data(), pt->data(cls_out_w), pt->data(cls_out_b), B, d, C);
  ctx.emit(-1, "cls.logits", cls_logits.data(), B, C);
}

const float* Model::forward_mlm_logits(const Batch& batch) {
  const float* x = encode(batch);
  impl_->mlm_head_forward(x, batch.B * batch.n);
  return impl_->logits.data();
}

float Model::forward_mlm(const Batch& batch, const std::vector<int32_t>& labels, int normaliser) {
  Impl& m = *impl_;
  const int T = batch.B * batch.n, V = cfg_.vocab_size, d = cfg_.d_model;
  if (labels.size() != (size_t)T)
    throw InputError(fmt::format("mlm labels: expected {} values (B*n), got {}", T, labels.size()));
  for (int t = 0; t < T; ++t)
    if (labels[t] != kIgnoreIndex && (labels[t] < 0 || labels[t] >= V))
      throw InputError(fmt::format("mlm labels: value {} at {} is outside [0, {})", labels[t], t, V));
  const float* x = encode(batch);
  // Only labelled positions enter the loss, so the head (dominated by the d x vocab decoder)
  // runs on those rows alone: about 15% of the tokens in pretraining.
  m.rows.clear();
  m.labels.clear();
  for (int t = 0; t < T; ++t)
    if (labels[t] != kIgnoreIndex) {
      m.rows.push_back(t);
      m.labels.push_back(labels[t]);
    }
  const int R = (int)m.rows.size();
  float* xg = grow(m.gathered, (size_t)std::max(R, 1) * d);
  for (int r = 0; r < R; ++r) std::memcpy(xg + (size_t)r * d, x + (size_t)m.rows[r] * d, d * sizeof(float));
  m.mlm_head_forward(xg, R);
  m.count = cross_entropy_forward(grow(m.losses, std::max(R, 1)), m.logits.data(), m.labels.data(), R, V,
                                  kIgnoreIndex);
  if (normaliser > 0) m.count = normaliser;  // loss and gradient: the sum over R divided by m.count
  m.loss_kind = LossKind::Mlm;
  double sum = 0.0;
  for (int r = 0; r < R; ++r) sum += m.losses[r];
  return m.count > 0 ? (float)(sum / m.count) : 0.0f;
}

const float* Model::forward_cls_logits(const Batch& batch) {
  if (cfg_.num_labels <= 0) throw ConfigError("config: num_labels is 0, so the model has no classification head");
  const float* x = encode(batch);
  impl_->cls_head_forward(x, training_ && !inference_only_);
  return impl_->cls_logits.data();
}

float Model::forward_cls(const Batch& batch, const std::vector<int32_t>& labels, int normaliser,
                         const std::vector<float>& weights) {
  Impl& m = *impl_;
  const int C = cfg_.num_labels;
  if (C <= 0) throw ConfigError("config: num_labels is 0, so the model has no classification head");
  if (labels.size() != (size_t)batch.B)
    throw InputError(fmt::format("cls labels: expected {} values (one per sequence), got {}", batch.B, labels.size()));
  for (size_t b = 0; b < labels.size(); ++b)
    if (labels[b] < 0 || labels[b] >= C)
      throw InputError(fmt::format("cls labels: label {} of sequence {} is outside [0, {})", labels[b], b, C));
  if (!weights.empty() && weights.size() != (size_t)batch.B)
    throw InputError(fmt::format("cls weights: expected {} values (one per sequence), got {}", batch.B, weights.size()));
  for (size_t b = 0; b < weights.size(); ++b)
    if (!(weights[b] >= 0.0f) || !std::isfinite(weights[b]))
      throw InputError(fmt::format("cls weights: weight {} of sequence {} is not a finite number >= 0", weights[b], b));
  forward_cls_logits(batch);
  m.labels = labels;
  m.cls_weights = weights;
  m.count = cross_entropy_forward(grow(m.losses, batch.B), m.cls_logits.data(), m.labels.data(), batch.B, C,
                                  kIgnoreIndex);
  if (normaliser > 0) m.count = normaliser;
  m.loss_kind = LossKind::Cls;
  double sum = 0.0;
  for (int b = 0; b < batch.B; ++b) sum += (double)m.losses[b] * (weights.empty() ? 1.0f : weights[b]);
  return (float)(sum / std::max(1, m.count));
}

void Model::Impl::head_backward(float* dx) {
  const int d = cfg->d_model, V = cfg->vocab_size, B = batch.B, n = batch.n;
  const size_t Td = (size_t)B * n * d;
  const float p = ctx.p;
  if (loss_kind == LossKind::Mlm) {
    const int R = (int)rows.size();
    const size_t Rd = (size_t)R * d;
    float* dl = grow(dlogits, (size_t)std::max(R, 1) * V);
    cross_entropy_backward(dl, logits.data(), labels.data(), R, V, kIgnoreIndex, count > 0 ? 1.0f / count : 0.0f);
    float* dzp = grow(dz, std::max(Rd, (size_t)1));
    linear_backward(dzp, pt->grad(tok), pt->grad(mlm_bias), dl, mlm_z.data(), pt->data(tok), R, d, V);
    float* dhp = grow(dh, std::max(Rd, (size_t)1));
    layernorm_backward(dhp, pt->grad(mlm_ln_w), pt->grad(mlm_ln_b), dzp, mlm_act.data(), mlm_mean.data(),
                       mlm_rstd.data(), pt->data(mlm_ln_w), R, d);
    gelu_backward(dhp, mlm_h.data(), dhp, Rd);
    float* dxg = grow(dgathered, std::max(Rd, (size_t)1));
    linear_backward(dxg, pt->grad(mlm_dense_w), pt->grad(mlm_dense_b), dhp, gathered.data(), pt->data(mlm_dense_w), R,
                    d, d);
    // Scatter back: unlabelled positions get no gradient from the head.
    std::fill(dx, dx + Td, 0.0f);
    for (int r = 0; r < R; ++r) std::memcpy(dx + (size_t)rows[r] * d, dxg + (size_t)r * d, d * sizeof(float));
    return;
  }
  const int C = cfg->num_labels;
  float* dl = grow(dlogits, (size_t)B * C);
  cross_entropy_backward(dl, cls_logits.data(), labels.data(), B, C, kIgnoreIndex, 1.0f / std::max(1, count));
  if (!cls_weights.empty())
    for (int b = 0; b < B; ++b)
      for (int c = 0; c < C; ++c) dl[(size_t)b * C + c] *= cls_weights[b];
  float* dt = grow(dz, (size_t)B * d);
  linear_backward(dt, pt->grad(cls_out_w), pt->grad(cls_out_b), dl, cls_td.data(), pt->data(cls_out_w), B, d, C);
  dropout_backward(dt, dt, cls_keep2.data(), (size_t)B * d, p);
  for (size_t i = 0; i < (size_t)B * d; ++i) dt[i] *= 1.0f - cls_t[i] * cls_t[i];
  float* dpool = grow(dh, (size_t)B * d);
  linear_backward(dpool, pt->grad(cls_dense_w), pt->grad(cls_dense_b), dt, pooled_d.data(), pt->data(cls_dense_w), B,
                  d, d);
  dropout_backward(dpool, dpool, cls_keep1.data(), (size_t)B * d, p);
  std::fill(dx, dx + Td, 0.0f);
  for (int b = 0; b < B; ++b) {
    const float* g = dpool + (size_t)b * d;
    if (cfg->pooling == Pooling::First) {
      std::memcpy(dx + (size_t)b * n * d, g, d * sizeof(float));
    } else {
      const float inv = 1.0f / batch.length(b);
      for (int t = 0; t < n; ++t)
        if (batch.mask[(size_t)b * n + t])
          for (int c = 0; c < d; ++c) dx[((size_t)b * n + t) * d + c] = g[c] * inv;
    }
  }
}

}  // namespace linformer
