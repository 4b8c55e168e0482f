// The encoder: RoBERTa-style (post-LayerNorm) with full or Linformer attention, an MLM head
// whose decoder is tied to the token embedding, and an optional classification head.
//
// Typical use:
//   Model m(cfg); m.init(seed);
//   Batch b = Batch::from_sequences({{5, 6, 7}, {8, 9}});      // padded and masked
//   float loss = m.forward_mlm(b, labels);  m.backward();      // grads in m.params()
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "linformer/batch.hpp"
#include "linformer/config.hpp"
#include "linformer/params.hpp"

namespace linformer {

// One layer's attention probabilities P (softmax output, before dropout) from the last forward:
// data[((b * heads + i) * n + t) * cols + c] is how much query t of sequence b attends, in head i,
// to key c: cols = n for full attention, k (the projected keys) for Linformer.
struct AttentionProbs {
  const float* data = nullptr;
  int B = 0, heads = 0, n = 0, cols = 0;
};

// One entry of the activation table (Model::activations): a tensor a forward produces, named
// like the parameters ("emb_norm", "blk.3.attn_out", "blk.3.ffn_up", "mlm.logits"), of shape
// [rows, cols]. rows: Tokens = B*n; HeadRows = the rows the MLM head ran on (B*n, or the R
// labelled positions in forward_mlm); Sequences = B. kept: saved for backward (the rest is
// scratch, read once by the next step). docs/model.md "Activations" lists them.
struct ActivationInfo {
  enum class Rows { Tokens, HeadRows, Sequences };
  std::string name;
  Rows rows = Rows::Tokens;
  int64_t cols = 0;
  bool kept = false;
};

// Receives each activation as the forward finishes it (Model::set_activation_dump); data is
// [rows, cols] floats, valid during the call only.
using ActivationDump = std::function<void(const ActivationInfo& info, const float* data, int64_t rows)>;

class Model {
 public:
  explicit Model(const ModelConfig& cfg);  // validates cfg; parameters zeroed until init()
  // An inference-only model (eval mode) that reads the parameters of `weights` in place (no copy,
  // no gradient block) and has its own activation buffers: several of them run forward passes on
  // one set of weights at once, one per thread (InferenceModel). `weights` must outlive it and its
  // parameters must not change while it runs; init() and backward() throw Error.
  static std::unique_ptr<Model> sharing_weights_of(const Model& weights);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return cfg_; }
  ParamTable& params() { return params_; }
  const ParamTable& params() const { return params_; }

  // BERT initialisation: N(0, init_std) for matrices and E/F, zero biases, LayerNorm (1, 0).
  // Deterministic in seed.
  void init(uint64_t seed);

  // Dropout is active only in training mode. Each forward in training mode draws new dropout
  // masks from (dropout_seed, forward counter); set_dropout_seed resets the counter.
  void train(bool on = true) { training_ = on; }
  void eval() { training_ = false; }
  bool is_training() const { return training_; }
  void set_dropout_seed(uint64_t seed, uint64_t counter = 0) { dropout_seed_ = seed; dropout_counter_ = counter; }
  uint64_t dropout_counter() const { return dropout_counter_; }

  void zero_grad() { params_.zero_grad(); }

  // Inference only (like PyTorch's no_grad): forward passes keep nothing for backward. The layers
  // then share their buffers, the FFN runs in blocks of rows and attention keeps one score block
  // per thread, so peak memory is the parameters plus a few [B*n, d] buffers instead of a dozen
  // per layer (docs/BENCHMARKS.md). Dropout is off; backward() and attention_probs() refuse.
  // Results equal the normal eval-mode forward up to float rounding.
  void set_inference_only(bool on);
  bool inference_only() const { return inference_only_; }

  // Runs the encoder; returns hidden states [B, n, d] (valid until the next forward).
  // Throws InputError for ids outside the vocabulary, n > max_len, or a sequence with no real token.
  const float* encode(const Batch& batch);

  // Encoder + MLM head on every position: logits [B, n, vocab].
  const float* forward_mlm_logits(const Batch& batch);
  // Encoder + MLM head on the labelled positions only (labels [B*n], kIgnoreIndex to skip):
  // returns the mean cross-entropy over them and prepares backward(). Afterwards mlm_logits()
  // holds [R, vocab] for the R labelled positions in order.
  // normaliser > 0: the loss (and so its gradient) is the sum over the R positions divided by
  // normaliser instead of R; data-parallel ranks pass the labelled count of the whole batch
  // across ranks, so that the ranks' losses add up to the mean over the whole batch.
  float forward_mlm(const Batch& batch, const std::vector<int32_t>& labels, int normaliser = 0);

  // Encoder + classification head (needs num_labels > 0). logits [B, num_labels].
  const float* forward_cls_logits(const Batch& batch);
  // labels [B]; normaliser > 0 as for forward_mlm (the sum over the B sequences / normaliser).
  // weights [B] (empty: all 1): sequence b's loss, and so its gradient, counts weights[b] times
  // (class weighting, docs/finetune.md); the normaliser stays the count of sequences.
  float forward_cls(const Batch& batch, const std::vector<int32_t>& labels, int normaliser = 0,
                    const std::vector<float>& weights = {});

  // Backpropagates the last loss (forward_mlm or forward_cls), accumulating into params().grad.
  void backward();
  // Backpropagates a gradient of the hidden states of the last forward (dhidden [B, n, d], the
  // shape of hidden()), accumulating into params().grad: for a loss computed outside the model
  // (the PyTorch module of the Python package). The same checks as backward(): Error after an
  // inference-only forward, without a forward, or without a gradient block.
  void backward_from_hidden(const float* dhidden);

  // Pointers into the last forward's buffers.
  const float* hidden() const;      // [B, n, d]
  const float* mlm_logits() const;  // [B, n, vocab] after forward_mlm_logits; see forward_mlm
  const float* cls_logits() const;  // [B, num_labels]
  // Exchanges the buffer that holds the MLM logits with `v`, so that a caller takes the logits of
  // the last forward_mlm_logits without copying them (v then holds them: [B, n, vocab] first, and
  // possibly more room); the next forward grows the buffer it gets back as needed.
  void swap_mlm_logits(std::vector<float>& v);
  // The attention probabilities of layer `layer` in the last forward (docs/analysis.md). They are
  // kept for backward anyway, so reading them costs nothing. Throws Error for tiled attention
  // (it keeps none: load the same weights with "attention": "full"), before any forward, or for a
  // layer out of range.
  AttentionProbs attention_probs(int layer) const;

  // The activation table of this model's forward, in the order a forward produces them: the
  // embeddings, each layer's, the MLM head's, then the classification head's (if any).
  const std::vector<ActivationInfo>& activations() const;
  // Debug mode: every later forward hands each activation of the table to `dump` as it is
  // finished (the PyTorch parity test compares them by name; tests/parity_dump.cpp). An
  // inference-only forward hands over only those that exist whole there (not blk.*.attn_res,
  // ffn_up, ffn_act, ffn_res). An empty function turns it off; off, a forward pays nothing.
  void set_activation_dump(ActivationDump dump);

 private:
  Model(const ModelConfig& cfg, const ParamTable* weights_of);
  void encoder_backward();
  struct Impl;
  ModelConfig cfg_;
  ParamTable params_;
  std::unique_ptr<Impl> impl_;
  bool training_ = false;
  bool inference_only_ = false;
  uint64_t dropout_seed_ = 0x5eed;
  uint64_t dropout_counter_ = 0;
};

// Eval and inference-only mode for one scope (validation loops); the previous modes come back
// at its end.
class InferenceScope {
 public:
  explicit InferenceScope(Model& m) : m_(m), was_training_(m.is_training()), was_inference_only_(m.inference_only()) {
    m_.eval();
    m_.set_inference_only(true);
  }
  ~InferenceScope() {
    m_.set_inference_only(was_inference_only_);
    m_.train(was_training_);
  }
  InferenceScope(const InferenceScope&) = delete;
  InferenceScope& operator=(const InferenceScope&) = delete;

 private:
  Model& m_;
  bool was_training_, was_inference_only_;
};

}  // namespace linformer
