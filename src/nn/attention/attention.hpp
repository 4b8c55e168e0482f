// Attention kinds behind one interface, so that the same encoder, trainer and benchmarks run
// each of them, and the one registration table of the kinds (registry.cpp) that the model,
// config parsing, model-file loading, analysis, bench and the CLI ask about a kind. An
// attention module owns the buffers it saves for backward; its parameters live in the model's
// ParamTable (it keeps their indices). The math is in src/kernels/attention.hpp.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "linformer/config.hpp"
#include "linformer/params.hpp"

namespace linformer {

// What an attention forward needs to know about the batch.
struct AttnShape {
  int B = 0, n = 0;
  const uint8_t* mask = nullptr;  // [B, n], 1 = real token
};

class Attention {
 public:
  virtual ~Attention() = default;
  // out[T,d] = attention(x[T,d]) with T = B*n, including the output projection.
  // attn_dropout_seed: seed for dropout on the probabilities (ignored when p == 0 or !training).
  virtual void forward(float* out, const float* x, const AttnShape& s, bool training, uint64_t attn_dropout_seed) = 0;
  // dx[T,d] is overwritten with the gradient w.r.t. x; parameter gradients are accumulated.
  // Uses the buffers saved by the last forward (x must be the same pointer/content).
  virtual void backward(float* dx, const float* dout, const float* x, const AttnShape& s) = 0;
  // The attention probabilities of the last forward, before dropout: [B, heads, n, cols] with
  // cols = n (full attention) or k (Linformer: over the projected keys); *cols is set. Null for
  // kinds that keep none (tiled). The buffer exists anyway for backward: reading it costs nothing.
  virtual const float* probs(int* cols) const {
    *cols = 0;
    return nullptr;
  }

  // Inference only (Model::set_inference_only): no backward follows, so forward may keep less
  // (score blocks per thread instead of per sequence and head; Model::attention_probs refuses).
  void set_inference_only(bool on) { inference_only_ = on; }
  // The large buffers forward writes ([T, d] maps, score blocks). In inference-only mode the
  // model swaps one set of them into each layer's module in turn, so that the layers share it.
  virtual std::vector<std::vector<float>*> forward_buffers() = 0;

 protected:
  bool inference_only_ = false;
};

// Indices of the q/k/v/out maps in the ParamTable (common to every kind).
struct QkvoParams {
  int q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
};

// The tensors a kind registers once for the whole model, before the layers' (Linformer with
// sharing "layerwise": the one projection), as indices into the ParamTable.
struct AttentionShared {
  std::vector<int> own;
};

// The tensors of one layer's attention: the maps every kind has, and the kind's own (Linformer:
// E and F; none for the pooling projections), in the kind's order.
struct AttentionParams {
  QkvoParams qkvo{};
  std::vector<int> own;
};

// One row of the registration table (registry.cpp).
struct AttentionKindSpec {
  AttentionKind kind;
  const char* name;  // in config files ("attention"), bench --kinds, logs and messages
  // Attention::probs gives the probabilities of the last forward (Model::attention_probs).
  bool keeps_probs;
  // Softmax over all n keys with only the q/k/v/out maps: the function of "full" with the same
  // tensors. Analysis reads the probabilities of a kind that keeps none from a "full" copy, and
  // the spectrum (n x n matrices) exists only for these kinds.
  bool exact;
  // The kind's model-wide tensors, registered before those of layer 0 (null: none).
  AttentionShared (*declare_shared)(ParamTable& pt, const ModelConfig& cfg);
  // The kind's own tensors of layer `layer`, named prefix + ... (prefix "blk.<layer>."),
  // registered between the layer's v and out maps (null: none). Returns their indices.
  std::vector<int> (*declare_layer)(ParamTable& pt, const ModelConfig& cfg, int layer, const std::string& prefix,
                                    const AttentionShared& shared);
  // The module of layer `layer`; called after ParamTable::finalize.
  std::unique_ptr<Attention> (*make)(const ModelConfig& cfg, ParamTable& pt, int layer, const AttentionParams& p);
  // The config fields the kind reads beyond the common ones, for logs: " k=64 sharing=headwise
  // ..." (null: none).
  std::string (*describe)(const ModelConfig& cfg);
};

// The table (in the order of AttentionKind) and the row of a kind.
std::span<const AttentionKindSpec> attention_specs();
const AttentionKindSpec& attention_spec(AttentionKind kind);

// Registration of the attention tensors, in the order model files have (docs/format.md): once
// before the layers the kind's model-wide tensors; then per layer (prefix "blk.<layer>.") the
// q, k and v maps, the kind's own tensors and the out map. Model::Model calls these, and the
// size check of load_model counts what they declare.
AttentionShared declare_attention_shared(ParamTable& pt, const ModelConfig& cfg);
AttentionParams declare_attention_params(ParamTable& pt, const ModelConfig& cfg, int layer, const std::string& prefix,
                                         const AttentionShared& shared);
std::unique_ptr<Attention> make_attention(const ModelConfig& cfg, ParamTable& pt, int layer, const AttentionParams& p);
// The number of floats in every attention tensor of the model of `cfg` (model-wide ones and
// every layer's), counted from the declarations above into tables that are never allocated.
// Stops adding layers once the count passes stop_above (a hostile config cannot make it run
// long). In double: it cannot overflow.
double attention_param_count(const ModelConfig& cfg, double stop_above);

}  // namespace linformer
