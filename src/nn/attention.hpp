// Attention kinds behind one interface, so that the same encoder, trainer and benchmarks run
// each of them. An attention module owns the buffers it saves for backward; its parameters
// live in the model's ParamTable (it keeps their indices).
#pragma once
#include <cstdint>
#include <memory>
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

// Full softmax attention with a key-padding mask. Keeps the n x n probabilities for backward.
std::unique_ptr<Attention> make_full_attention(const ModelConfig& cfg, ParamTable& pt, QkvoParams p);

// Exact attention in tiles with an online softmax (flash-style): O(n) memory, no n x n buffer.
std::unique_ptr<Attention> make_tiled_attention(const ModelConfig& cfg, ParamTable& pt, QkvoParams p);

// Linformer attention: keys and values projected along the sequence to k rows by E and F
// (indices into pt; e_heads = 1 when shared by the heads, else n_heads; f may equal e).
// No n x n buffer exists on this path.
struct LinformerProj {
  int e = -1, f = -1;  // parameter indices: [e_heads, k, max_len] (learned, random), [e_heads, w] (conv),
                       // -1 for mean/max pooling (no tensors)
  int heads = 1;       // e_heads
  int k = 0;
  ProjKind kind = ProjKind::Learned;
};
std::unique_ptr<Attention> make_linformer_attention(const ModelConfig& cfg, ParamTable& pt, QkvoParams p,
                                                    LinformerProj proj);

}  // namespace linformer
