// The encoder (docs/model.md): parameter registration, initialisation, and the orchestration of
// a forward (embeddings, then layer_forward per layer: layer.cpp) and of backward (the head,
// then layer_backward per layer, then the embeddings). The heads and losses are in heads.cpp,
// the activation table in activations.cpp. Activations are saved per layer in buffers that are
// allocated once and reused (first touch of fresh pages is expensive on these machines, DESIGN.md).
#include "linformer/model.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include <fmt/format.h>

#include "core/buffers.hpp"
#include "kernels/kernels.hpp"
#include "linformer/error.hpp"
#include "nn/model_impl.hpp"

namespace linformer {

using namespace kernels;
using namespace model_detail;
using core::grow;

namespace model_detail {

uint64_t site_seed(uint64_t seed, uint64_t counter, uint64_t site) {
  uint64_t z = seed ^ (counter * 0x9e3779b97f4a7c15ULL) ^ (site * 0xc2b2ae3d27d4eb4fULL);
  z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdULL;
  return z ^ (z >> 33);
}

}  // namespace model_detail

Model::Model(const ModelConfig& cfg) : Model(cfg, nullptr) {}

std::unique_ptr<Model> Model::sharing_weights_of(const Model& weights) {
  std::unique_ptr<Model> m(new Model(weights.cfg_, &weights.params_));
  m->set_inference_only(true);
  return m;
}

// Registration in the order of model files (docs/format.md), each tensor with its init kind.
// weights_of: the table whose data the model reads in place (sharing_weights_of), else null.
Model::Model(const ModelConfig& cfg, const ParamTable* weights_of) : cfg_(cfg), impl_(std::make_unique<Impl>()) {
  cfg_.validate();
  const int d = cfg_.d_model, f = cfg_.d_ff, V = cfg_.vocab_size, N = cfg_.max_len;
  Impl& m = *impl_;
  m.cfg = &cfg_;
  m.pt = &params_;
  ParamTable& pt = params_;
  using I = ParamInit;
  // A LayerNorm's weight (ones) and bias (zeros), no weight decay.
  auto add_norm = [&](const std::string& name, int* w, int* b) {
    *w = pt.add(name + ".weight", {d}, I::Ones, false);
    *b = pt.add(name + ".bias", {d}, I::Zeros, false);
  };
  m.tok = pt.add("tok_emb.weight", {V, d}, I::Normal, false);
  m.pos = pt.add("pos_emb.weight", {N, d}, I::Normal, false);
  add_norm("emb_norm", &m.embln_w, &m.embln_b);
  // The attention's tensors (src/nn/attention/, docs/format.md): its kind's model-wide ones
  // here, then in each layer its maps and the kind's own tensors.
  const AttentionShared attn_shared = declare_attention_shared(pt, cfg_);
  std::vector<AttentionParams> attn_params;
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const std::string b = fmt::format("blk.{}.", l);
    LayerParams lp{};
    attn_params.push_back(declare_attention_params(pt, cfg_, l, b, attn_shared));
    add_norm(b + "attn_norm", &lp.ln1_w, &lp.ln1_b);
    lp.up_w = pt.add(b + "ffn_up.weight", {f, d}, I::Normal, true);
    lp.up_b = pt.add(b + "ffn_up.bias", {f}, I::Zeros, false);
    lp.down_w = pt.add(b + "ffn_down.weight", {d, f}, I::Normal, true);
    lp.down_b = pt.add(b + "ffn_down.bias", {d}, I::Zeros, false);
    add_norm(b + "ffn_norm", &lp.ln2_w, &lp.ln2_b);
    m.layers.push_back(lp);
  }
  m.mlm_dense_w = pt.add("mlm.dense.weight", {d, d}, I::Normal, true);
  m.mlm_dense_b = pt.add("mlm.dense.bias", {d}, I::Zeros, false);
  add_norm("mlm.norm", &m.mlm_ln_w, &m.mlm_ln_b);
  m.mlm_bias = pt.add("mlm.bias", {V}, I::Zeros, false);
  if (cfg_.num_labels > 0) {
    m.cls_dense_w = pt.add("cls.dense.weight", {d, d}, I::Normal, true);
    m.cls_dense_b = pt.add("cls.dense.bias", {d}, I::Zeros, false);
    m.cls_out_w = pt.add("cls.out.weight", {cfg_.num_labels, d}, I::Normal, true);
    m.cls_out_b = pt.add("cls.out.bias", {cfg_.num_labels}, I::Zeros, false);
  }
  if (weights_of)
    pt.view_data_of(*weights_of);
  else
    pt.finalize();
  for (int l = 0; l < cfg_.n_layers; ++l) m.attn.push_back(make_attention(cfg_, pt, l, attn_params[l]));
  m.acts.resize(cfg_.n_layers);
  m.table = activation_table(cfg_);
  // LayerNorm weights start at 1 even before init(), so a loaded-later model is never degenerate.
  if (!weights_of) init(0);
}

Model::~Model() = default;

// One generator for the whole table, drawn in table order: the same seed gives the same model.
void Model::init(uint64_t seed) {
  if (params_.is_view()) throw Error("init(): the model reads another model's weights (sharing_weights_of)");
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, cfg_.init_std);
  for (int i = 0; i < params_.size(); ++i) {
    const ParamInfo& p = params_.info(i);
    float* w = params_.data(i);
    switch (p.init) {
      case ParamInit::Normal:
        for (size_t j = 0; j < p.numel; ++j) w[j] = normal(rng);
        break;
      case ParamInit::Zeros:
        std::fill(w, w + p.numel, 0.0f);
        break;
      case ParamInit::Ones:
        std::fill(w, w + p.numel, 1.0f);
        break;
      case ParamInit::RandomProjection: {
        // N(0, 1/k), so that E x keeps the norm of x in expectation (Johnson-Lindenstrauss, the
        // paper's Theorem 1). k = the tensor's second-to-last dimension.
        const float k = (float)p.shape[p.shape.size() - 2];
        std::normal_distribution<float> rnd(0.0f, 1.0f / std::sqrt(k));
        for (size_t j = 0; j < p.numel; ++j) w[j] = rnd(rng);
        break;
      }
      case ParamInit::Unset:
        throw Error(fmt::format("init: parameter {} was registered without an init kind", p.name));
    }
  }
  params_.zero_grad();
}

const float* Model::encode(const Batch& batch) {
  Impl& m = *impl_;
  const int d = cfg_.d_model;
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
  m.loss_kind = LossKind::None;
  m.training = training_;
  m.last_inference_only = inference_only_;
  ForwardCtx& ctx = m.ctx;
  ctx = ForwardCtx{};
  ctx.cfg = &cfg_;
  ctx.pt = &params_;
  ctx.shape = AttnShape{batch.B, batch.n, m.batch.mask.data()};
  ctx.keep = !inference_only_;
  // Dropout only in training mode, and never in inference-only mode.
  ctx.p = training_ && ctx.keep ? cfg_.dropout : 0.0f;
  ctx.attn_dropout = training_ && ctx.keep && cfg_.attention_dropout > 0.0f;
  ctx.seed = dropout_seed_;
  ctx.counter = dropout_counter_;
  ctx.dump = m.dump ? &m.dump : nullptr;
  ctx.table = &m.table;
  if (training_ && ctx.keep) ++dropout_counter_;
  const int T = batch.B * batch.n;
  const size_t Td = (size_t)T * d;
  ParamTable& pt = params_;

  // Embeddings: x0 = Dropout(LN(tok + pos)). Inference only: x0 -> x, the two shared buffers.
  float* e = grow(m.emb, Td);
  float* x = grow(m.x0, Td);
  float* e_ln = ctx.keep ? grow(m.emb_ln, Td) : x;
  embedding_forward(e, m.batch.ids.data(), pt.data(m.tok), pt.data(m.pos), batch.B, batch.n, d);
  ctx.emit(-1, "emb", e, T, d);
  layernorm_forward(e_ln, grow(m.emb_mean, T), grow(m.emb_rstd, T), e, pt.data(m.embln_w), pt.data(m.embln_b), T, d,
                    cfg_.layer_norm_eps);
  ctx.emit(-1, "emb_norm", e_ln, T, d);
  if (ctx.keep) dropout_forward(x, grow(m.emb_keep, Td), e_ln, Td, ctx.p, ctx.next_seed());
  ctx.emit(-1, "emb_out", x, T, d);

  float* h = x;  // kept: each layer reads the previous one's output; else x is updated in place
  for (int l = 0; l < cfg_.n_layers; ++l) h = layer_forward(ctx, l, m.layers[l], *m.attn[l], m.acts[l], h, e, m.shared);
  m.last_hidden = h;
  return h;
}

void Model::set_inference_only(bool on) {
  inference_only_ = on;
  for (auto& a : impl_->attn) a->set_inference_only(on);
  if (!on) impl_->shared.attn_scratch.clear();  // give the shared buffers back
}

const float* Model::hidden() const { return impl_->last_hidden; }
const float* Model::mlm_logits() const { return impl_->logits.data(); }
const float* Model::cls_logits() const { return impl_->cls_logits.data(); }
void Model::swap_mlm_logits(std::vector<float>& v) { impl_->logits.swap(v); }
const std::vector<ActivationInfo>& Model::activations() const { return impl_->table; }
void Model::set_activation_dump(ActivationDump dump) { impl_->dump = std::move(dump); }

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

void Model::backward() {
  Impl& m = *impl_;
  if (m.loss_kind == LossKind::None) throw Error("backward() called without a preceding forward_mlm/forward_cls");
  if (m.last_inference_only)
    throw Error("backward(): the last forward ran in inference-only mode (set_inference_only(false) before it)");
  if (!params_.has_grad()) throw Error("backward(): the model has no gradient block (an inference-only model)");
  float* dx = grow(m.dx, (size_t)m.batch.B * m.batch.n * cfg_.d_model);  // gradient w.r.t. the current layer's output
  m.head_backward(dx);
  encoder_backward();
}

void Model::backward_from_hidden(const float* dhidden) {
  Impl& m = *impl_;
  if (m.batch.B == 0) throw Error("backward_from_hidden() called without a preceding forward");
  if (m.last_inference_only)
    throw Error("backward_from_hidden(): the last forward ran in inference-only mode (set_inference_only(false) "
                "before it)");
  if (!params_.has_grad())
    throw Error("backward_from_hidden(): the model has no gradient block (an inference-only model)");
  const size_t Td = (size_t)m.batch.B * m.batch.n * cfg_.d_model;
  float* dx = grow(m.dx, Td);
  std::memcpy(dx, dhidden, Td * sizeof(float));
  encoder_backward();
}

// The layers and embeddings of backward, from the gradient w.r.t. the last layer's output in m.dx.
void Model::encoder_backward() {
  Impl& m = *impl_;
  const int d = cfg_.d_model, B = m.batch.B, n = m.batch.n, T = B * n;
  const size_t Td = (size_t)T * d;
  ParamTable& pt = params_;
  float* dx = m.dx.data();
  for (int l = cfg_.n_layers - 1; l >= 0; --l) {
    const float* x = l == 0 ? m.x0.data() : m.acts[l - 1].out.data();
    layer_backward(m.ctx, m.layers[l], *m.attn[l], m.acts[l], x, dx, m.layer_grads);
  }
  // x0 = Dropout(LN(emb))
  float* dtmp = grow(m.layer_grads.dtmp, Td);
  float* dres = grow(m.layer_grads.dres, Td);
  dropout_backward(dtmp, dx, m.emb_keep.data(), Td, m.ctx.p);
  layernorm_backward(dres, pt.grad(m.embln_w), pt.grad(m.embln_b), dtmp, m.emb.data(), m.emb_mean.data(),
                     m.emb_rstd.data(), pt.data(m.embln_w), T, d);
  embedding_backward(pt.grad(m.tok), pt.grad(m.pos), dres, m.batch.ids.data(), B, n, d);
}

}  // namespace linformer
