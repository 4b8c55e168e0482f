// The encoder's insides, shared by its parts (internal to src/nn): the parameter indices, what
// a forward keeps, the layer (layer.cpp), the heads and losses (heads.cpp) and the activation
// table with its debug dump (activations.cpp). Model (model.cpp) orchestrates them.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "linformer/model.hpp"
#include "nn/attention/attention.hpp"

namespace linformer::model_detail {

// Seeds for the dropout sites of one forward pass, from (model seed, forward counter, site).
uint64_t site_seed(uint64_t seed, uint64_t counter, uint64_t site);

struct LayerParams {  // the attention's: AttentionParams
  int ln1_w, ln1_b, up_w, up_b, down_w, down_b, ln2_w, ln2_b;
};

// What one layer's forward writes when it keeps its activations for backward (names in the
// activation table: blk.<l>.<name>). The layer's input is the previous layer's `out`.
struct LayerActs {
  std::vector<float> attn, res1, x1, up, act, down, res2, out;  // [T,d] or [T,f]
  std::vector<float> mean1, rstd1, mean2, rstd2;                 // [T]
  std::vector<uint8_t> keep1, keep2;                             // dropout masks [T,d]
};

// The inference-only workspace (Model::set_inference_only): what every layer shares.
struct SharedWorkspace {
  std::vector<std::vector<float>> attn_scratch;  // swapped into each layer's attention in turn
  std::vector<float> ffn_block;                  // the FFN's [rows, d_ff] block
  std::vector<float> mean, rstd;                 // LayerNorm statistics [T] (not needed after)
};

struct ForwardCtx;
// The debug dump of one activation (activations.cpp): finds it in the table and hands it over.
void dump_activation(const ForwardCtx& ctx, int layer, const char* name, const float* data, int64_t rows,
                     int64_t cols);

// The activation table of a config (Model::activations), in forward order.
std::vector<ActivationInfo> activation_table(const ModelConfig& cfg);

// How one forward runs: its shape, dropout and the debug dump.
struct ForwardCtx {
  const ModelConfig* cfg = nullptr;
  ParamTable* pt = nullptr;
  AttnShape shape;
  bool keep = true;     // keep activations for backward (false: inference only)
  float p = 0.0f;       // dropout
  bool attn_dropout = false;
  uint64_t seed = 0, counter = 0, site = 0;
  const ActivationDump* dump = nullptr;  // null: no dump (the normal case)
  const std::vector<ActivationInfo>* table = nullptr;
  uint64_t next_seed() { return site_seed(seed, counter, site++); }
  // Hands a finished activation ("blk.<layer>.<name>", or <name> for layer < 0; rows x cols
  // floats) to the dump when one is set.
  void emit(int layer, const char* name, const float* data, int64_t rows, int64_t cols) const {
    if (dump) dump_activation(*this, layer, name, data, rows, cols);
  }
};

// One encoder layer: out = LN2(x1 + Dropout(FFN(x1))), x1 = LN1(x + Dropout(Attn(x))).
// ctx.keep: into `a` (kept for backward; x only read); returns a.out.data(). Otherwise in place: x, [T,d],
// becomes the layer's output, y [T,d] is scratch, and ws lends the attention and FFN buffers;
// returns x. Both paths run the same steps in the same order (the inference-only path fuses the
// residual sums into their LayerNorm and runs the FFN in row blocks).
float* layer_forward(ForwardCtx& ctx, int layer, const LayerParams& lp, Attention& attn, LayerActs& a,
                           float* x, float* y, SharedWorkspace& ws);

// Gradient workspace of the layers' backward.
struct LayerGrads {
  std::vector<float> dtmp, dres, dup, dattn;
};

// Backward of one kept layer: dx [T,d] holds the gradient w.r.t. its output and is overwritten
// with the gradient w.r.t. its input x (the pointer its forward read); parameter gradients add up.
void layer_backward(const ForwardCtx& ctx, const LayerParams& lp, Attention& attn, const LayerActs& a,
                    const float* x, float* dx, LayerGrads& g);

enum class LossKind { None, Mlm, Cls };

}  // namespace linformer::model_detail

namespace linformer {

struct Model::Impl {
  const ModelConfig* cfg = nullptr;
  ParamTable* pt = nullptr;
  // Parameter indices.
  int tok, pos, embln_w, embln_b;
  std::vector<model_detail::LayerParams> layers;
  std::vector<std::unique_ptr<Attention>> attn;
  int mlm_dense_w, mlm_dense_b, mlm_ln_w, mlm_ln_b, mlm_bias;
  int cls_dense_w = -1, cls_dense_b = -1, cls_out_w = -1, cls_out_b = -1;
  std::vector<ActivationInfo> table;
  ActivationDump dump;

  // The last forward.
  Batch batch;
  model_detail::ForwardCtx ctx;
  bool training = false;
  std::vector<float> emb, emb_ln, x0, emb_mean, emb_rstd;
  std::vector<uint8_t> emb_keep;
  std::vector<model_detail::LayerActs> acts;
  // MLM head
  std::vector<float> mlm_h, mlm_act, mlm_z, mlm_mean, mlm_rstd, logits;
  // CLS head
  std::vector<float> pooled, pooled_d, cls_h, cls_t, cls_td, cls_logits;
  std::vector<uint8_t> cls_keep1, cls_keep2;
  // Loss
  model_detail::LossKind loss_kind = model_detail::LossKind::None;
  std::vector<int32_t> labels;
  std::vector<int> rows;                   // MLM: the labelled positions, in order
  std::vector<float> gathered, dgathered;  // MLM: hidden states of those rows [R, d] and their gradient
  std::vector<float> losses;
  std::vector<float> cls_weights;  // CLS: per-sequence loss weights (empty: all 1)
  int count = 0;
  // Gradient workspace
  std::vector<float> dlogits, dz, dh, dx;
  model_detail::LayerGrads layer_grads;

  // Inference-only mode: the buffers the layers share.
  model_detail::SharedWorkspace shared;
  bool last_inference_only = false;
  const float* last_hidden = nullptr;

  // heads.cpp. The MLM head on R rows of x: z = LN(GELU(x Wd^T + bd)); logits = z tok^T + bias.
  void mlm_head_forward(const float* x, int R);
  // The classification head on the hidden states x of the last forward's batch.
  void cls_head_forward(const float* x, bool dropout);
  // Backward of the last loss through its head: dx [T, d] = the gradient w.r.t. the hidden states.
  void head_backward(float* dx);
};

}  // namespace linformer
