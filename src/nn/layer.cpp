// One encoder layer, forward and backward (docs/model.md "Layer l"): the one layer loop body of
// both the training path (activations kept for backward) and the inference-only path (the
// layers share their buffers; nothing kept).
#include <algorithm>
#include <utility>

#include "core/buffers.hpp"
#include "kernels/kernels.hpp"
#include "nn/model_impl.hpp"

namespace linformer::model_detail {

using namespace kernels;
using core::grow;

namespace {

// Rows per FFN block in inference-only mode: its [rows, d_ff] activations stay small (12 MB at
// d_ff 3072) while the matmuls keep enough rows to run at full speed.
constexpr int kInferenceBlockRows = 1024;

// The buffers one layer's forward writes: the kept activations (a), or the inference-only
// workspace where x becomes the output, y holds the attention block and the FFN runs in blocks.
struct LayerBuffers {
  float *attn, *res1, *x1, *up, *act, *down, *res2, *out;
  float *mean1, *rstd1, *mean2, *rstd2;
  uint8_t *keep1, *keep2;
  int block_rows;  // FFN rows per block; up/act hold one block unless kept
};

LayerBuffers kept_buffers(LayerActs& a, int T, int d, int f) {
  const size_t Td = (size_t)T * d, Tf = (size_t)T * f;
  return {grow(a.attn, Td),   grow(a.res1, Td),  grow(a.x1, Td),    grow(a.up, Tf),    grow(a.act, Tf),
          grow(a.down, Td),   grow(a.res2, Td),  grow(a.out, Td),   grow(a.mean1, T),  grow(a.rstd1, T),
          grow(a.mean2, T),   grow(a.rstd2, T),  grow(a.keep1, Td), grow(a.keep2, Td), T};
}

// x: the layer's input, then (x is free once the attention block has read it) the FFN's
// output and the layer's; y: the attention block.
LayerBuffers shared_buffers(SharedWorkspace& ws, float* x, float* y, int T, int f) {
  const int rows = std::min(T, kInferenceBlockRows);
  float* up = grow(ws.ffn_block, (size_t)rows * f);
  float* mean = grow(ws.mean, T);
  float* rstd = grow(ws.rstd, T);
  return {y, nullptr, y, up, up, x, nullptr, x, mean, rstd, mean, rstd, nullptr, nullptr, rows};
}

}  // namespace

float* layer_forward(ForwardCtx& ctx, int l, const LayerParams& lp, Attention& attn, LayerActs& a, float* x,
                           float* y, SharedWorkspace& ws) {
  const ModelConfig& cfg = *ctx.cfg;
  ParamTable& pt = *ctx.pt;
  const int d = cfg.d_model, f = cfg.d_ff, T = ctx.shape.B * ctx.shape.n;
  const size_t Td = (size_t)T * d;
  const float eps = cfg.layer_norm_eps;
  const LayerBuffers o = ctx.keep ? kept_buffers(a, T, d, f) : shared_buffers(ws, x, y, T, f);

  // Attention block: x1 = LN(x + Dropout(Attn(x)))
  if (ctx.keep) {
    attn.forward(o.attn, x, ctx.shape, ctx.attn_dropout, ctx.next_seed());
  } else {  // one set of attention buffers for all layers
    std::vector<std::vector<float>*> bufs = attn.forward_buffers();
    if (ws.attn_scratch.size() < bufs.size()) ws.attn_scratch.resize(bufs.size());
    for (size_t i = 0; i < bufs.size(); ++i) std::swap(*bufs[i], ws.attn_scratch[i]);
    attn.forward(o.attn, x, ctx.shape, false, 0);
    for (size_t i = 0; i < bufs.size(); ++i) std::swap(*bufs[i], ws.attn_scratch[i]);
  }
  ctx.emit(l, "attn_out", o.attn, T, d);
  if (ctx.keep) {
    dropout_forward(o.res1, o.keep1, o.attn, Td, ctx.p, ctx.next_seed());
    add_inplace(o.res1, x, Td);
    ctx.emit(l, "attn_res", o.res1, T, d);
    layernorm_forward(o.x1, o.mean1, o.rstd1, o.res1, pt.data(lp.ln1_w), pt.data(lp.ln1_b), T, d, eps);
  } else {
    residual_layernorm_forward(o.x1, o.mean1, o.rstd1, o.attn, x, pt.data(lp.ln1_w), pt.data(lp.ln1_b), T, d, eps);
  }
  ctx.emit(l, "attn_norm", o.x1, T, d);

  // FFN block: out = LN(x1 + Dropout(W_down GELU(W_up x1 + b_up) + b_down)), in blocks of rows
  // (one block of all T rows when kept).
  for (int r0 = 0; r0 < T; r0 += o.block_rows) {
    const int rows = std::min(o.block_rows, T - r0);
    const size_t up_off = ctx.keep ? (size_t)r0 * f : 0;
    linear_forward(o.up + up_off, o.x1 + (size_t)r0 * d, pt.data(lp.up_w), nullptr, rows, d, f);
    bias_gelu_forward(o.act + up_off, o.up + up_off, pt.data(lp.up_b), rows, f);  // up keeps x1 W_up^T + b
    linear_forward(o.down + (size_t)r0 * d, o.act + up_off, pt.data(lp.down_w), pt.data(lp.down_b), rows, f, d);
  }
  if (ctx.keep) {
    ctx.emit(l, "ffn_up", o.up, T, f);
    ctx.emit(l, "ffn_act", o.act, T, f);
  }
  ctx.emit(l, "ffn_down", o.down, T, d);
  if (ctx.keep) {
    dropout_forward(o.res2, o.keep2, o.down, Td, ctx.p, ctx.next_seed());
    add_inplace(o.res2, o.x1, Td);
    ctx.emit(l, "ffn_res", o.res2, T, d);
    layernorm_forward(o.out, o.mean2, o.rstd2, o.res2, pt.data(lp.ln2_w), pt.data(lp.ln2_b), T, d, eps);
  } else {
    residual_layernorm_forward(o.out, o.mean2, o.rstd2, o.down, o.x1, pt.data(lp.ln2_w), pt.data(lp.ln2_b), T, d,
                               eps);
  }
  ctx.emit(l, "out", o.out, T, d);
  return o.out;
}

void layer_backward(const ForwardCtx& ctx, const LayerParams& lp, Attention& attn, const LayerActs& a,
                    const float* x, float* dx, LayerGrads& g) {
  const ModelConfig& cfg = *ctx.cfg;
  ParamTable& pt = *ctx.pt;
  const int d = cfg.d_model, f = cfg.d_ff, T = ctx.shape.B * ctx.shape.n;
  const size_t Td = (size_t)T * d;
  const float p = ctx.p;
  float* dres = grow(g.dres, Td);
  float* dtmp = grow(g.dtmp, Td);
  float* dup = grow(g.dup, (size_t)T * f);
  float* dattn = grow(g.dattn, Td);
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
  attn.backward(dx, dattn, x, ctx.shape);
  add_inplace(dx, dtmp, Td);
}

}  // namespace linformer::model_detail
