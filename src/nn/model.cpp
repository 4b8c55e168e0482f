// The encoder (docs/model.md): embeddings, post-LN layers, MLM and classification heads,
// forward and backward. Activations are saved per layer in buffers that are allocated once and
// reused (first touch of fresh pages is expensive on these machines, DESIGN.md).
#include "linformer/model.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include <fmt/format.h>

#include "core/buffers.hpp"
#include "kernels/kernels.hpp"
#include "linformer/error.hpp"
#include "nn/attention/attention.hpp"

namespace linformer {

using namespace kernels;
using core::grow;

namespace {

// Seeds for the dropout sites of one forward pass, from (model seed, forward counter, site).
uint64_t site_seed(uint64_t seed, uint64_t counter, uint64_t site) {
  uint64_t z = seed ^ (counter * 0x9e3779b97f4a7c15ULL) ^ (site * 0xc2b2ae3d27d4eb4fULL);
  z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdULL;
  return z ^ (z >> 33);
}

struct LayerParams {  // the attention's: AttentionParams
  int ln1_w, ln1_b, up_w, up_b, down_w, down_b, ln2_w, ln2_b;
};

// What one layer saves for backward. The layer's input is the previous layer's `out`.
struct LayerActs {
  std::vector<float> attn, res1, x1, up, act, down, res2, out;  // [T,d] or [T,f]
  std::vector<float> mean1, rstd1, mean2, rstd2;                 // [T]
  std::vector<uint8_t> keep1, keep2;                             // dropout masks [T,d]
};

enum class LossKind { None, Mlm, Cls };

}  // namespace

struct Model::Impl {
  // Parameter indices.
  int tok, pos, embln_w, embln_b;
  std::vector<LayerParams> layers;
  std::vector<std::unique_ptr<Attention>> attn;
  int mlm_dense_w, mlm_dense_b, mlm_ln_w, mlm_ln_b, mlm_bias;
  int cls_dense_w = -1, cls_dense_b = -1, cls_out_w = -1, cls_out_b = -1;

  // The last forward.
  Batch batch;
  AttnShape shape;
  bool training = false;
  uint64_t seed = 0, counter = 0;
  std::vector<float> emb, emb_ln, x0, emb_mean, emb_rstd;
  std::vector<uint8_t> emb_keep;
  std::vector<LayerActs> acts;
  // MLM head
  std::vector<float> mlm_h, mlm_act, mlm_z, mlm_mean, mlm_rstd, logits;
  // CLS head
  std::vector<float> pooled, pooled_d, cls_h, cls_t, cls_td, cls_logits;
  std::vector<uint8_t> cls_keep1, cls_keep2;
  // Loss
  LossKind loss_kind = LossKind::None;
  std::vector<int32_t> labels;
  std::vector<int> rows;                   // MLM: the labelled positions, in order
  std::vector<float> gathered, dgathered;  // MLM: hidden states of those rows [R, d] and their gradient
  std::vector<float> losses;
  std::vector<float> cls_weights;  // CLS: per-sequence loss weights (empty: all 1)
  int count = 0;
  // Gradient workspace
  std::vector<float> dlogits, dz, dh, dx, dtmp, dres, dup, dattn;

  // Inference-only mode: the attention buffers lent to each layer in turn, the FFN's block of rows.
  std::vector<std::vector<float>> attn_scratch;
  std::vector<float> ffn_block;
  bool last_inference_only = false;
  const float* last_hidden = nullptr;

  const float* hidden() const { return last_hidden; }
};

Model::Model(const ModelConfig& cfg) : Model(cfg, nullptr) {}

std::unique_ptr<Model> Model::sharing_weights_of(const Model& weights) {
  std::unique_ptr<Model> m(new Model(weights.cfg_, &weights.params_));
  m->set_inference_only(true);
  return m;
}

// weights_of: the table whose data the model reads in place (sharing_weights_of), else null.
Model::Model(const ModelConfig& cfg, const ParamTable* weights_of) : cfg_(cfg), impl_(std::make_unique<Impl>()) {
  cfg_.validate();
  const int d = cfg_.d_model, f = cfg_.d_ff, V = cfg_.vocab_size, N = cfg_.max_len;
  Impl& m = *impl_;
  ParamTable& pt = params_;
  m.tok = pt.add("tok_emb.weight", {V, d}, false);
  m.pos = pt.add("pos_emb.weight", {N, d}, false);
  m.embln_w = pt.add("emb_norm.weight", {d}, false);
  m.embln_b = pt.add("emb_norm.bias", {d}, false);
  // The attention's tensors (src/nn/attention/, docs/format.md): its kind's model-wide ones
  // here, then in each layer its maps and the kind's own tensors.
  const AttentionShared attn_shared = declare_attention_shared(pt, cfg_);
  std::vector<AttentionParams> attn_params;
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const std::string b = fmt::format("blk.{}.", l);
    LayerParams lp{};
    attn_params.push_back(declare_attention_params(pt, cfg_, l, b, attn_shared));
    lp.ln1_w = pt.add(b + "attn_norm.weight", {d}, false);
    lp.ln1_b = pt.add(b + "attn_norm.bias", {d}, false);
    lp.up_w = pt.add(b + "ffn_up.weight", {f, d}, true);
    lp.up_b = pt.add(b + "ffn_up.bias", {f}, false);
    lp.down_w = pt.add(b + "ffn_down.weight", {d, f}, true);
    lp.down_b = pt.add(b + "ffn_down.bias", {d}, false);
    lp.ln2_w = pt.add(b + "ffn_norm.weight", {d}, false);
    lp.ln2_b = pt.add(b + "ffn_norm.bias", {d}, false);
    m.layers.push_back(lp);
  }
  m.mlm_dense_w = pt.add("mlm.dense.weight", {d, d}, true);
  m.mlm_dense_b = pt.add("mlm.dense.bias", {d}, false);
  m.mlm_ln_w = pt.add("mlm.norm.weight", {d}, false);
  m.mlm_ln_b = pt.add("mlm.norm.bias", {d}, false);
  m.mlm_bias = pt.add("mlm.bias", {V}, false);
  if (cfg_.num_labels > 0) {
    m.cls_dense_w = pt.add("cls.dense.weight", {d, d}, true);
    m.cls_dense_b = pt.add("cls.dense.bias", {d}, false);
    m.cls_out_w = pt.add("cls.out.weight", {cfg_.num_labels, d}, true);
    m.cls_out_b = pt.add("cls.out.bias", {cfg_.num_labels}, false);
  }
  if (weights_of)
    pt.view_data_of(*weights_of);
  else
    pt.finalize();
  for (int l = 0; l < cfg_.n_layers; ++l) m.attn.push_back(make_attention(cfg_, pt, l, attn_params[l]));
  m.acts.resize(cfg_.n_layers);
  // LayerNorm weights start at 1 even before init(), so a loaded-later model is never degenerate.
  if (!weights_of) init(0);
}

Model::~Model() = default;

void Model::init(uint64_t seed) {
  if (params_.is_view()) throw Error("init(): the model reads another model's weights (sharing_weights_of)");
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, cfg_.init_std);
  for (int i = 0; i < params_.size(); ++i) {
    const ParamInfo& p = params_.info(i);
    float* w = params_.data(i);
    const bool is_norm_weight = p.name.ends_with("norm.weight");
    const bool is_proj = p.name.find("attn_proj") != std::string::npos;  // E/F, conv kernels included
    const bool is_matrix = p.shape.size() >= 2 || is_proj;                // weights, embeddings, E/F
    if (is_proj && cfg_.projection == ProjKind::Random) {
      // Frozen random projection: N(0, 1/k), so that E x keeps the norm of x in expectation
      // (Johnson-Lindenstrauss, the paper's Theorem 1). k = the tensor's second-to-last dimension.
      const float k = (float)p.shape[p.shape.size() - 2];
      std::normal_distribution<float> rnd(0.0f, 1.0f / std::sqrt(k));
      for (size_t j = 0; j < p.numel; ++j) w[j] = rnd(rng);
      continue;
    }
    for (size_t j = 0; j < p.numel; ++j) w[j] = is_matrix ? normal(rng) : (is_norm_weight ? 1.0f : 0.0f);
  }
  params_.zero_grad();
}

const float* Model::encode(const Batch& batch) {
  Impl& m = *impl_;
  const int d = cfg_.d_model, f = cfg_.d_ff;
  if (batch.B <= 0 || batch.n <= 0) throw InputError("batch: empty");
  if (batch.ids.size() != (size_t)batch.B * batch.n || batch.mask.size() != batch.ids.size())
    throw InputError("batch: ids/mask size does not match B*n");
  if (batch.n > cfg_.max_len)
    throw InputError(fmt::format("batch: sequence length {} exceeds the model's max_len {}", batch.n, cfg_.max_len));
  for (int b = 0; b < batch.B; ++b) {
    if (batch.length(b) == 0) throw InputError(fmt::format("batch: sequence {} has no real token", b));
    for (int t = 0; t < batch.n; ++t) {
      int32_t id = batch.ids[(size_t)b * batch.n + t];
      if (id < 0 || id >= cfg_.vocab_size)
        throw InputError(fmt::format("batch: token id {} at sequence {}, position {} is outside the vocabulary [0, {})",
                                     id, b, t, cfg_.vocab_size));
    }
  }
  m.batch = batch;
  m.shape = AttnShape{batch.B, batch.n, m.batch.mask.data()};
  m.loss_kind = LossKind::None;
  m.training = training_;
  m.seed = dropout_seed_;
  m.counter = dropout_counter_;
  m.last_inference_only = inference_only_;
  if (inference_only_) return encode_inference_only();
  if (training_) ++dropout_counter_;
  const float p = training_ ? cfg_.dropout : 0.0f;
  const float pa = training_ ? cfg_.attention_dropout : 0.0f;
  const int T = batch.B * batch.n;
  const size_t Td = (size_t)T * d;
  ParamTable& pt = params_;
  uint64_t site = 0;
  auto seed_next = [&] { return site_seed(m.seed, m.counter, site++); };

  // Embeddings.
  embedding_forward(grow(m.emb, Td), m.batch.ids.data(), pt.data(m.tok), pt.data(m.pos), batch.B, batch.n, d);
  layernorm_forward(grow(m.emb_ln, Td), grow(m.emb_mean, T), grow(m.emb_rstd, T), m.emb.data(), pt.data(m.embln_w),
                    pt.data(m.embln_b), T, d, cfg_.layer_norm_eps);
  dropout_forward(grow(m.x0, Td), grow(m.emb_keep, Td), m.emb_ln.data(), Td, p, seed_next());

  const float* x = m.x0.data();
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const LayerParams& lp = m.layers[l];
    LayerActs& a = m.acts[l];
    // Attention block: x1 = LN(x + Dropout(Attn(x)))
    float* attn = grow(a.attn, Td);
    m.attn[l]->forward(attn, x, m.shape, training_ && pa > 0.0f, seed_next());
    float* res1 = grow(a.res1, Td);
    dropout_forward(res1, grow(a.keep1, Td), attn, Td, p, seed_next());
    add_inplace(res1, x, Td);
    float* x1 = grow(a.x1, Td);
    layernorm_forward(x1, grow(a.mean1, T), grow(a.rstd1, T), res1, pt.data(lp.ln1_w), pt.data(lp.ln1_b), T, d,
                      cfg_.layer_norm_eps);
    // FFN block: out = LN(x1 + Dropout(W_down GELU(W_up x1)))
    float* up = grow(a.up, (size_t)T * f);
    linear_forward(up, x1, pt.data(lp.up_w), nullptr, T, d, f);
    float* act = grow(a.act, (size_t)T * f);
    bias_gelu_forward(act, up, pt.data(lp.up_b), T, f);  // up keeps x1 W_up^T + b for backward
    float* down = grow(a.down, Td);
    linear_forward(down, act, pt.data(lp.down_w), pt.data(lp.down_b), T, f, d);
    float* res2 = grow(a.res2, Td);
    dropout_forward(res2, grow(a.keep2, Td), down, Td, p, seed_next());
    add_inplace(res2, x1, Td);
    layernorm_forward(grow(a.out, Td), grow(a.mean2, T), grow(a.rstd2, T), res2, pt.data(lp.ln2_w),
                      pt.data(lp.ln2_b), T, d, cfg_.layer_norm_eps);
    x = a.out.data();
  }
  m.last_hidden = x;
  return x;
}

void Model::set_inference_only(bool on) {
  inference_only_ = on;
  for (auto& a : impl_->attn) a->set_inference_only(on);
  if (!on) impl_->attn_scratch.clear();  // give the shared buffers back
}

// The encoder with nothing kept for backward (set_inference_only): two [T, d] buffers for all
// layers (x: the layer's input, then its output; y: the attention block's output), one set of
// attention buffers swapped into each layer's module in turn, the FFN in blocks of rows, and
// the residual sums fused into their LayerNorm. No dropout (inference).
const float* Model::encode_inference_only() {
  Impl& m = *impl_;
  const int d = cfg_.d_model, f = cfg_.d_ff, T = m.batch.B * m.batch.n;
  const size_t Td = (size_t)T * d;
  const float eps = cfg_.layer_norm_eps;
  ParamTable& pt = params_;
  float* x = grow(m.x0, Td);
  float* y = grow(m.emb, Td);
  float* mean = grow(m.emb_mean, T);
  float* rstd = grow(m.emb_rstd, T);
  embedding_forward(y, m.batch.ids.data(), pt.data(m.tok), pt.data(m.pos), m.batch.B, m.batch.n, d);
  layernorm_forward(x, mean, rstd, y, pt.data(m.embln_w), pt.data(m.embln_b), T, d, eps);
  // Rows per FFN block: its [rows, d_ff] activations stay small (12 MB at d_ff 3072) while the
  // matmuls keep enough rows to run at full speed.
  const int block_rows = std::min(T, 1024);
  float* up = grow(m.ffn_block, (size_t)block_rows * f);
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const LayerParams& lp = m.layers[l];
    Attention& attn = *m.attn[l];
    std::vector<std::vector<float>*> bufs = attn.forward_buffers();
    if (m.attn_scratch.size() < bufs.size()) m.attn_scratch.resize(bufs.size());
    for (size_t i = 0; i < bufs.size(); ++i) std::swap(*bufs[i], m.attn_scratch[i]);
    attn.forward(y, x, m.shape, false, 0);
    for (size_t i = 0; i < bufs.size(); ++i) std::swap(*bufs[i], m.attn_scratch[i]);
    residual_layernorm_forward(y, mean, rstd, y, x, pt.data(lp.ln1_w), pt.data(lp.ln1_b), T, d, eps);
    // x = LN(y + W_down GELU(W_up y + b_up) + b_down), x free to hold the FFN's output.
    for (int r0 = 0; r0 < T; r0 += block_rows) {
      const int rows = std::min(block_rows, T - r0);
      linear_forward(up, y + (size_t)r0 * d, pt.data(lp.up_w), nullptr, rows, d, f);
      bias_gelu_forward(up, up, pt.data(lp.up_b), rows, f);
      linear_forward(x + (size_t)r0 * d, up, pt.data(lp.down_w), pt.data(lp.down_b), rows, f, d);
    }
    residual_layernorm_forward(x, mean, rstd, x, y, pt.data(lp.ln2_w), pt.data(lp.ln2_b), T, d, eps);
  }
  m.last_hidden = x;
  return x;
}

const float* Model::hidden() const { return impl_->hidden(); }
const float* Model::mlm_logits() const { return impl_->logits.data(); }
const float* Model::cls_logits() const { return impl_->cls_logits.data(); }
void Model::swap_mlm_logits(std::vector<float>& v) { impl_->logits.swap(v); }

AttentionProbs Model::attention_probs(int layer) const {
  const Impl& m = *impl_;
  if (layer < 0 || layer >= cfg_.n_layers)
    throw Error(fmt::format("attention_probs: layer {} is out of range [0, {})", layer, cfg_.n_layers));
  if (m.batch.B == 0) throw Error("attention_probs: no forward pass has run yet");
  if (m.last_inference_only)
    throw Error("attention_probs: the last forward ran in inference-only mode, which keeps no probabilities");
  AttentionProbs p;
  p.data = m.attn[layer]->probs(&p.cols);
  if (!p.data)
    throw Error(fmt::format("attention_probs: attention \"{}\" keeps no probabilities; load the weights with "
                            "attention \"full\" (the same tensors) to see them",
                            to_string(cfg_.attention)));
  p.B = m.batch.B;
  p.heads = cfg_.n_heads;
  p.n = m.batch.n;
  return p;
}

// The MLM head on R rows of x (the gathered rows when training, all rows for logits):
// z = LN(GELU(x Wd^T + bd)); logits = z tok^T + bias.
void Model::mlm_head_forward(const float* x, int R) {
  Impl& m = *impl_;
  const int d = cfg_.d_model, V = cfg_.vocab_size;
  const size_t Rd = (size_t)R * d;
  ParamTable& pt = params_;
  linear_forward(grow(m.mlm_h, Rd), x, pt.data(m.mlm_dense_w), pt.data(m.mlm_dense_b), R, d, d);
  gelu_forward(grow(m.mlm_act, Rd), m.mlm_h.data(), Rd);
  layernorm_forward(grow(m.mlm_z, Rd), grow(m.mlm_mean, R), grow(m.mlm_rstd, R), m.mlm_act.data(),
                    pt.data(m.mlm_ln_w), pt.data(m.mlm_ln_b), R, d, cfg_.layer_norm_eps);
  // Decoder tied to the token embedding.
  linear_forward(grow(m.logits, (size_t)R * V), m.mlm_z.data(), pt.data(m.tok), pt.data(m.mlm_bias), R, d, V);
}

const float* Model::forward_mlm_logits(const Batch& batch) {
  const float* x = encode(batch);
  mlm_head_forward(x, batch.B * batch.n);
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
  mlm_head_forward(xg, R);
  m.count = cross_entropy_forward(grow(m.losses, std::max(R, 1)), m.logits.data(), m.labels.data(), R, V,
                                  kIgnoreIndex);
  if (normaliser > 0) m.count = normaliser;  // loss and gradient: the sum over R divided by m.count
  m.loss_kind = LossKind::Mlm;
  double sum = 0.0;
  for (int r = 0; r < R; ++r) sum += m.losses[r];
  return m.count > 0 ? (float)(sum / m.count) : 0.0f;
}

const float* Model::forward_cls_logits(const Batch& batch) {
  Impl& m = *impl_;
  if (cfg_.num_labels <= 0) throw ConfigError("config: num_labels is 0, so the model has no classification head");
  const float* x = encode(batch);
  const int d = cfg_.d_model, B = batch.B, n = batch.n, C = cfg_.num_labels;
  ParamTable& pt = params_;
  float* pooled = grow(m.pooled, (size_t)B * d);
  for (int b = 0; b < B; ++b) {
    float* o = pooled + (size_t)b * d;
    if (cfg_.pooling == Pooling::First) {
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
  const float p = training_ && !inference_only_ ? cfg_.dropout : 0.0f;
  // Sites after the encoder's: counter already advanced by encode, so reuse m.counter with high sites.
  const uint64_t base = 1u << 20;
  dropout_forward(grow(m.pooled_d, (size_t)B * d), grow(m.cls_keep1, (size_t)B * d), pooled, (size_t)B * d, p,
                  site_seed(m.seed, m.counter, base));
  linear_forward(grow(m.cls_h, (size_t)B * d), m.pooled_d.data(), pt.data(m.cls_dense_w), pt.data(m.cls_dense_b), B,
                 d, d);
  float* t = grow(m.cls_t, (size_t)B * d);
  for (size_t i = 0; i < (size_t)B * d; ++i) t[i] = std::tanh(m.cls_h[i]);
  dropout_forward(grow(m.cls_td, (size_t)B * d), grow(m.cls_keep2, (size_t)B * d), t, (size_t)B * d, p,
                  site_seed(m.seed, m.counter, base + 1));
  linear_forward(grow(m.cls_logits, (size_t)B * C), m.cls_td.data(), pt.data(m.cls_out_w), pt.data(m.cls_out_b), B, d,
                 C);
  return m.cls_logits.data();
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

void Model::backward() {
  Impl& m = *impl_;
  if (m.loss_kind == LossKind::None) throw Error("backward() called without a preceding forward_mlm/forward_cls");
  if (m.last_inference_only)
    throw Error("backward(): the last forward ran in inference-only mode (set_inference_only(false) before it)");
  if (!params_.has_grad()) throw Error("backward(): the model has no gradient block (an inference-only model)");
  const int d = cfg_.d_model, f = cfg_.d_ff, V = cfg_.vocab_size;
  const int B = m.batch.B, n = m.batch.n, T = B * n;
  const size_t Td = (size_t)T * d;
  const float p = m.training ? cfg_.dropout : 0.0f;
  ParamTable& pt = params_;
  float* dx = grow(m.dx, Td);  // gradient w.r.t. the current layer's output

  if (m.loss_kind == LossKind::Mlm) {
    const int R = (int)m.rows.size();
    const size_t Rd = (size_t)R * d;
    float* dlogits = grow(m.dlogits, (size_t)std::max(R, 1) * V);
    cross_entropy_backward(dlogits, m.logits.data(), m.labels.data(), R, V, kIgnoreIndex,
                           m.count > 0 ? 1.0f / m.count : 0.0f);
    float* dz = grow(m.dz, std::max(Rd, (size_t)1));
    linear_backward(dz, pt.grad(m.tok), pt.grad(m.mlm_bias), dlogits, m.mlm_z.data(), pt.data(m.tok), R, d, V);
    float* dh = grow(m.dh, std::max(Rd, (size_t)1));
    layernorm_backward(dh, pt.grad(m.mlm_ln_w), pt.grad(m.mlm_ln_b), dz, m.mlm_act.data(), m.mlm_mean.data(),
                       m.mlm_rstd.data(), pt.data(m.mlm_ln_w), R, d);
    gelu_backward(dh, m.mlm_h.data(), dh, Rd);
    float* dxg = grow(m.dgathered, std::max(Rd, (size_t)1));
    linear_backward(dxg, pt.grad(m.mlm_dense_w), pt.grad(m.mlm_dense_b), dh, m.gathered.data(),
                    pt.data(m.mlm_dense_w), R, d, d);
    // Scatter back: unlabelled positions get no gradient from the head.
    std::fill(dx, dx + Td, 0.0f);
    for (int r = 0; r < R; ++r) std::memcpy(dx + (size_t)m.rows[r] * d, dxg + (size_t)r * d, d * sizeof(float));
  } else {
    const int C = cfg_.num_labels;
    float* dlogits = grow(m.dlogits, (size_t)B * C);
    cross_entropy_backward(dlogits, m.cls_logits.data(), m.labels.data(), B, C, kIgnoreIndex,
                           1.0f / std::max(1, m.count));
    if (!m.cls_weights.empty())
      for (int b = 0; b < B; ++b)
        for (int c = 0; c < C; ++c) dlogits[(size_t)b * C + c] *= m.cls_weights[b];
    float* dt = grow(m.dz, (size_t)B * d);
    linear_backward(dt, pt.grad(m.cls_out_w), pt.grad(m.cls_out_b), dlogits, m.cls_td.data(), pt.data(m.cls_out_w), B,
                    d, C);
    dropout_backward(dt, dt, m.cls_keep2.data(), (size_t)B * d, p);
    for (size_t i = 0; i < (size_t)B * d; ++i) dt[i] *= 1.0f - m.cls_t[i] * m.cls_t[i];
    float* dpool = grow(m.dh, (size_t)B * d);
    linear_backward(dpool, pt.grad(m.cls_dense_w), pt.grad(m.cls_dense_b), dt, m.pooled_d.data(),
                    pt.data(m.cls_dense_w), B, d, d);
    dropout_backward(dpool, dpool, m.cls_keep1.data(), (size_t)B * d, p);
    std::fill(dx, dx + Td, 0.0f);
    for (int b = 0; b < B; ++b) {
      const float* g = dpool + (size_t)b * d;
      if (cfg_.pooling == Pooling::First) {
        std::memcpy(dx + (size_t)b * n * d, g, d * sizeof(float));
      } else {
        const float inv = 1.0f / m.batch.length(b);
        for (int t = 0; t < n; ++t)
          if (m.batch.mask[(size_t)b * n + t])
            for (int c = 0; c < d; ++c) dx[((size_t)b * n + t) * d + c] = g[c] * inv;
      }
    }
  }

  float* dres = grow(m.dres, Td);
  float* dtmp = grow(m.dtmp, Td);
  float* dup = grow(m.dup, (size_t)T * f);
  float* dattn = grow(m.dattn, Td);
  for (int l = cfg_.n_layers - 1; l >= 0; --l) {
    const LayerParams& lp = m.layers[l];
    LayerActs& a = m.acts[l];
    const float* x = l == 0 ? m.x0.data() : m.acts[l - 1].out.data();
    // out = LN2(res2), res2 = x1 + Dropout(down)
    layernorm_backward(dres, pt.grad(lp.ln2_w), pt.grad(lp.ln2_b), dx, a.res2.data(), a.mean2.data(), a.rstd2.data(),
                       pt.data(lp.ln2_w), T, d);
    dropout_backward(dtmp, dres, a.keep2.data(), Td, p);
    linear_backward(dup, pt.grad(lp.down_w), pt.grad(lp.down_b), dtmp, a.act.data(), pt.data(lp.down_w), T, f, d);
    gelu_backward(dup, a.up.data(), dup, (size_t)T * f);
    // dx1 = dres (residual) + W_up^T path
    linear_backward(dres, pt.grad(lp.up_w), pt.grad(lp.up_b), dup, a.x1.data(), pt.data(lp.up_w), T, d, f, true);
    // x1 = LN1(res1), res1 = x + Dropout(attn)
    layernorm_backward(dtmp, pt.grad(lp.ln1_w), pt.grad(lp.ln1_b), dres, a.res1.data(), a.mean1.data(),
                       a.rstd1.data(), pt.data(lp.ln1_w), T, d);
    dropout_backward(dattn, dtmp, a.keep1.data(), Td, p);
    m.attn[l]->backward(dx, dattn, x, m.shape);
    add_inplace(dx, dtmp, Td);
  }
  // x0 = Dropout(LN(emb))
  dropout_backward(dtmp, dx, m.emb_keep.data(), Td, p);
  layernorm_backward(dres, pt.grad(m.embln_w), pt.grad(m.embln_b), dtmp, m.emb.data(), m.emb_mean.data(),
                     m.emb_rstd.data(), pt.data(m.embln_w), T, d);
  embedding_backward(pt.grad(m.tok), pt.grad(m.pos), dres, m.batch.ids.data(), B, n, d);
}

}  // namespace linformer
