// The activation table (Model::activations, docs/model.md "Activations"): every tensor a forward
// produces, by name, with its shape as a function of the batch and whether backward reads it;
// and the debug dump that hands each one over by name (Model::set_activation_dump).
#include <fmt/format.h>

#include "linformer/error.hpp"
#include "nn/model_impl.hpp"

namespace linformer::model_detail {

std::vector<ActivationInfo> activation_table(const ModelConfig& cfg) {
  using R = ActivationInfo::Rows;
  const int64_t d = cfg.d_model, f = cfg.d_ff;
  std::vector<ActivationInfo> t = {
      {"emb", R::Tokens, d, true},         // tok + pos (LayerNorm backward reads it)
      {"emb_norm", R::Tokens, d, false},   // its LayerNorm
      {"emb_out", R::Tokens, d, true},     // after dropout: layer 0's input
  };
  for (int l = 0; l < cfg.n_layers; ++l) {
    const std::string b = fmt::format("blk.{}.", l);
    t.push_back({b + "attn_out", R::Tokens, d, false});  // attention, out map included
    t.push_back({b + "attn_res", R::Tokens, d, true});   // x + Dropout(attn_out)
    t.push_back({b + "attn_norm", R::Tokens, d, true});  // x1 = LN(attn_res)
    t.push_back({b + "ffn_up", R::Tokens, f, true});     // x1 W_up^T + b_up
    t.push_back({b + "ffn_act", R::Tokens, f, true});    // GELU(ffn_up)
    t.push_back({b + "ffn_down", R::Tokens, d, false});  // ffn_act W_down^T + b_down
    t.push_back({b + "ffn_res", R::Tokens, d, true});    // x1 + Dropout(ffn_down)
    t.push_back({b + "out", R::Tokens, d, true});        // LN(ffn_res): the next layer's input
  }
  t.push_back({"mlm.dense", R::HeadRows, d, true});
  t.push_back({"mlm.act", R::HeadRows, d, true});
  t.push_back({"mlm.norm", R::HeadRows, d, true});
  t.push_back({"mlm.logits", R::HeadRows, cfg.vocab_size, true});
  if (cfg.num_labels > 0) {
    t.push_back({"cls.pooled", R::Sequences, d, false});
    t.push_back({"cls.pooled_drop", R::Sequences, d, true});
    t.push_back({"cls.dense", R::Sequences, d, false});
    t.push_back({"cls.tanh", R::Sequences, d, true});
    t.push_back({"cls.tanh_drop", R::Sequences, d, true});
    t.push_back({"cls.logits", R::Sequences, cfg.num_labels, true});
  }
  return t;
}

// Only in debug mode: the look-up and the checks cost nothing otherwise.
void dump_activation(const ForwardCtx& ctx, int layer, const char* name, const float* data, int64_t rows,
                     int64_t cols) {
  const std::string full = layer < 0 ? std::string(name) : fmt::format("blk.{}.{}", layer, name);
  for (const ActivationInfo& a : *ctx.table) {
    if (a.name != full) continue;
    const int64_t B = ctx.shape.B, T = B * ctx.shape.n;
    if (a.cols != cols || (a.rows == ActivationInfo::Rows::Tokens && rows != T) ||
        (a.rows == ActivationInfo::Rows::Sequences && rows != B))
      throw Error(fmt::format("activation {}: [{}, {}] does not match the activation table ([{}, {}])", full, rows,
                              cols, a.rows == ActivationInfo::Rows::Sequences ? B : T, a.cols));
    (*ctx.dump)(a, data, rows);
    return;
  }
  throw Error(fmt::format("activation {} is not in the activation table", full));
}

}  // namespace linformer::model_detail
