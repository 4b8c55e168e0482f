// AdamW, the learning-rate schedule and global-norm gradient clipping (include/linformer/optimizer.hpp).
//
// Determinism: every loop walks the flat parameter block in fixed chunks of kChunk floats (a
// multiple of the 16-float tensor padding) and OpenMP only decides which thread handles which
// chunk. The arithmetic applied to an element therefore does not depend on the thread count
// (the same vectorised / remainder code path handles it), and the gradient norm is a double sum
// of fixed per-chunk partial sums added in chunk order.
#include "linformer/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "linformer/error.hpp"

namespace linformer {

namespace {

constexpr size_t kChunk = 4096;  // floats; multiple of 16

inline size_t num_chunks(size_t n) { return (n + kChunk - 1) / kChunk; }

}  // namespace

AdamW::AdamW(ParamTable& params, AdamWOptions opt) : params_(params), opt_(opt) {
  const size_t n = params_.all_data().size();
  if (n != params_.total() || params_.all_grad().size() != n)
    throw Error("AdamW: the parameter table must be finalized before creating the optimizer");
  if (!(opt_.beta1 >= 0.0f && opt_.beta1 < 1.0f) || !(opt_.beta2 >= 0.0f && opt_.beta2 < 1.0f))
    throw ConfigError("AdamW: betas must be in [0, 1)");
  if (!(opt_.eps >= 0.0f)) throw ConfigError("AdamW: eps must be >= 0");
  if (!(opt_.weight_decay >= 0.0f)) throw ConfigError("AdamW: weight_decay must be >= 0");
  m_.assign(n, 0.0f);
  v_.assign(n, 0.0f);
  decay_.assign(n, 0);
  frozen_.assign(n, 0);
  for (const ParamInfo& p : params_.infos()) {
    if (p.decay) std::fill(decay_.begin() + p.offset, decay_.begin() + p.offset + p.numel, uint8_t{1});
    if (!p.trainable) std::fill(frozen_.begin() + p.offset, frozen_.begin() + p.offset + p.numel, uint8_t{1});
  }
}

void AdamW::step(float lr) {
  const size_t n = params_.all_data().size();
  if (m_.size() != n || v_.size() != n) throw Error("AdamW: moment buffers do not match the parameter table");
  ++t_;
  // Scalars as torch.optim.AdamW (1.13, single-tensor path) computes them: in double on the
  // Python side, then rounded to float when applied to float32 tensors.
  const double lr_d = lr, b1 = opt_.beta1, b2 = opt_.beta2;
  const float decay_mul = static_cast<float>(1.0 - lr_d * static_cast<double>(opt_.weight_decay));
  const float beta1 = opt_.beta1, beta2 = opt_.beta2;
  const float one_m_b1 = static_cast<float>(1.0 - b1), one_m_b2 = static_cast<float>(1.0 - b2);
  const double bc1 = 1.0 - std::pow(b1, static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(b2, static_cast<double>(t_));
  const float step_size = static_cast<float>(lr_d / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float eps = opt_.eps;

  float* __restrict p = params_.all_data().data();
  const float* __restrict g = params_.all_grad().data();
  float* __restrict m = m_.data();
  float* __restrict v = v_.data();
  const uint8_t* __restrict dk = decay_.data();
  const uint8_t* __restrict fz = frozen_.data();
  const ptrdiff_t chunks = static_cast<ptrdiff_t>(num_chunks(n));

#pragma omp parallel for schedule(static)
  for (ptrdiff_t c = 0; c < chunks; ++c) {
    const size_t b = static_cast<size_t>(c) * kChunk, e = std::min(n, b + kChunk);
    for (size_t i = b; i < e; ++i) {
      float pi = p[i];
      if (dk[i]) pi *= decay_mul;  // decoupled weight decay: p *= 1 - lr*wd
      const float gi = g[i];
      const float mi = m[i] * beta1 + gi * one_m_b1;
      const float vi = v[i] * beta2 + (gi * gi) * one_m_b2;
      const float denom = std::sqrt(vi) / bc2_sqrt + eps;
      // Frozen elements keep everything (selects rather than a branch, so the loop stays vectorised).
      const bool keep = fz[i];
      m[i] = keep ? m[i] : mi;
      v[i] = keep ? v[i] : vi;
      p[i] = keep ? p[i] : pi - step_size * (mi / denom);
    }
  }
}

float Schedule::lr(int64_t step) const {
  const int64_t s = std::max<int64_t>(step, 0);
  const double peak = peak_lr, end = end_lr;
  if (warmup_steps > 0 && s < warmup_steps)
    return static_cast<float>(peak * static_cast<double>(s) / static_cast<double>(warmup_steps));
  if (s >= total_steps) return end_lr;
  const double decay_steps = static_cast<double>(total_steps - warmup_steps);  // > 0 here
  const double remaining = 1.0 - static_cast<double>(s - warmup_steps) / decay_steps;
  const double f = power == 1.0f ? remaining : std::pow(remaining, static_cast<double>(power));
  return static_cast<float>(end + (peak - end) * f);
}

float clip_grad_norm(ParamTable& params, float max_norm) {
  std::vector<float>& grad = params.all_grad();
  const size_t n = grad.size();
  const ptrdiff_t chunks = static_cast<ptrdiff_t>(num_chunks(n));
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
  const float* __restrict g = grad.data();

#pragma omp parallel for schedule(static)
  for (ptrdiff_t c = 0; c < chunks; ++c) {
    const size_t b = static_cast<size_t>(c) * kChunk, e = std::min(n, b + kChunk);
    double s = 0.0;
    for (size_t i = b; i < e; ++i) {
      const double x = g[i];
      s += x * x;
    }
    partial[static_cast<size_t>(c)] = s;
  }
  double total = 0.0;
  for (double s : partial) total += s;  // fixed order
  const double norm = std::sqrt(total);

  if (max_norm > 0.0f && std::isfinite(norm)) {
    // torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied when coef < 1.
    const double coef = static_cast<double>(max_norm) / (norm + 1e-6);
    if (coef < 1.0) {
      const float cf = static_cast<float>(coef);
      float* __restrict gw = grad.data();
#pragma omp parallel for schedule(static)
      for (ptrdiff_t c = 0; c < chunks; ++c) {
        const size_t b = static_cast<size_t>(c) * kChunk, e = std::min(n, b + kChunk);
        for (size_t i = b; i < e; ++i) gw[i] *= cf;
      }
    }
  }
  return static_cast<float>(norm);
}

}  // namespace linformer
