// AdamW, the learning-rate schedule and gradient clipping (include/linformer/optimizer.hpp).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "linformer/optimizer.hpp"
#include "linformer/params.hpp"

using namespace linformer;

namespace {

// Deterministic pseudo-random floats in [-1, 1).
float hash_float(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return static_cast<float>((x >> 40) * (1.0 / 8388608.0) - 1.0);
}

// Fills every tensor's data (and, if `grad_seed` != 0, grad) deterministically; padding stays 0.
void fill(ParamTable& t, uint64_t data_seed, uint64_t grad_seed) {
  for (int i = 0; i < t.size(); ++i) {
    const ParamInfo& p = t.info(i);
    for (size_t k = 0; k < p.numel; ++k) {
      t.data(i)[k] = hash_float(data_seed * 1000003 + p.offset + k);
      if (grad_seed) t.grad(i)[k] = hash_float(grad_seed * 7919 + p.offset + k) * 0.5f;
    }
  }
}

void fill_grad(ParamTable& t, uint64_t grad_seed) {
  for (int i = 0; i < t.size(); ++i) {
    const ParamInfo& p = t.info(i);
    for (size_t k = 0; k < p.numel; ++k) t.grad(i)[k] = hash_float(grad_seed * 7919 + p.offset + k) * 0.5f;
  }
}

void build_table(ParamTable& t) {
  t.add("w1", {37, 53}, true);      // not a multiple of 16
  t.add("b1", {53}, false);
  t.add("w2", {300, 41}, true);     // spans several 4096-float chunks
  t.add("ln.weight", {41}, false);
  t.add("emb", {100, 64}, false);
  t.finalize();
}

double l2(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

}  // namespace

// ---- schedule --------------------------------------------------------------------------------

TEST(Schedule, LinearWarmupThenLinearDecay) {
  Schedule s{1e-3f, 10, 110, 0.0f, 1.0f};
  EXPECT_FLOAT_EQ(s.lr(0), 0.0f);
  EXPECT_FLOAT_EQ(s.lr(1), 1e-4f);
  EXPECT_FLOAT_EQ(s.lr(5), 5e-4f);
  EXPECT_FLOAT_EQ(s.lr(9), 9e-4f);
  EXPECT_FLOAT_EQ(s.lr(10), 1e-3f);  // warm-up end = peak
  EXPECT_FLOAT_EQ(s.lr(60), 5e-4f);  // middle of the decay
  EXPECT_FLOAT_EQ(s.lr(100), 1e-4f);
  EXPECT_FLOAT_EQ(s.lr(109), 1e-5f);  // last update: still non-zero
  EXPECT_FLOAT_EQ(s.lr(110), 0.0f);   // end
  EXPECT_FLOAT_EQ(s.lr(1000), 0.0f);  // beyond: clamped
  EXPECT_FLOAT_EQ(s.lr(-3), 0.0f);    // negative treated as 0
}

TEST(Schedule, LinearDecayToEndLr) {
  Schedule s{1e-3f, 10, 110, 1e-4f, 1.0f};
  EXPECT_FLOAT_EQ(s.lr(0), 0.0f);
  EXPECT_FLOAT_EQ(s.lr(10), 1e-3f);
  EXPECT_FLOAT_EQ(s.lr(60), 5.5e-4f);
  EXPECT_FLOAT_EQ(s.lr(110), 1e-4f);
  EXPECT_FLOAT_EQ(s.lr(5000), 1e-4f);
}

TEST(Schedule, PolynomialDecay) {
  Schedule s{2e-3f, 100, 1100, 1e-5f, 2.0f};
  EXPECT_FLOAT_EQ(s.lr(0), 0.0f);
  EXPECT_FLOAT_EQ(s.lr(50), 1e-3f);
  EXPECT_FLOAT_EQ(s.lr(100), 2e-3f);
  // middle: remaining = 0.5 -> end + (peak - end) * 0.25
  EXPECT_FLOAT_EQ(s.lr(600), static_cast<float>(1e-5 + (2e-3 - 1e-5) * 0.25));
  // remaining = 0.1 -> 0.01
  EXPECT_FLOAT_EQ(s.lr(1000), static_cast<float>(1e-5 + (2e-3 - 1e-5) * 0.01));
  EXPECT_FLOAT_EQ(s.lr(1100), 1e-5f);
  EXPECT_FLOAT_EQ(s.lr(1101), 1e-5f);
  EXPECT_FLOAT_EQ(s.lr(99999), 1e-5f);

  Schedule sq{1.0f, 0, 4, 0.0f, 0.5f};  // power < 1
  EXPECT_FLOAT_EQ(sq.lr(0), 1.0f);
  EXPECT_FLOAT_EQ(sq.lr(3), 0.5f);  // sqrt(1/4)
  EXPECT_FLOAT_EQ(sq.lr(4), 0.0f);
}

TEST(Schedule, NoWarmupAndDegenerateCases) {
  Schedule s{1e-3f, 0, 4, 0.0f, 1.0f};
  EXPECT_FLOAT_EQ(s.lr(0), 1e-3f);  // no warm-up: first update at peak
  EXPECT_FLOAT_EQ(s.lr(1), 7.5e-4f);
  EXPECT_FLOAT_EQ(s.lr(3), 2.5e-4f);
  EXPECT_FLOAT_EQ(s.lr(4), 0.0f);

  Schedule w{1e-3f, 10, 5, 1e-6f, 1.0f};  // warm-up longer than the run
  EXPECT_FLOAT_EQ(w.lr(4), 4e-4f);
  EXPECT_FLOAT_EQ(w.lr(10), 1e-6f);

  Schedule one{3e-4f, 0, 1, 0.0f, 1.0f};
  EXPECT_FLOAT_EQ(one.lr(0), 3e-4f);
  EXPECT_FLOAT_EQ(one.lr(1), 0.0f);
}

// ---- clipping --------------------------------------------------------------------------------

TEST(ClipGradNorm, KnownVector) {
  ParamTable t;
  const int a = t.add("a", {2}, true);
  const int b = t.add("b", {1}, false);
  t.finalize();
  t.grad(a)[0] = 3.0f;
  t.grad(a)[1] = 0.0f;
  t.grad(b)[0] = 4.0f;  // global norm = 5, across two tensors (with padding between them)
  const float norm = clip_grad_norm(t, 1.0f);
  EXPECT_FLOAT_EQ(norm, 5.0f);
  const double coef = 1.0 / (5.0 + 1e-6);
  EXPECT_FLOAT_EQ(t.grad(a)[0], static_cast<float>(3.0 * coef));
  EXPECT_FLOAT_EQ(t.grad(a)[1], 0.0f);
  EXPECT_FLOAT_EQ(t.grad(b)[0], static_cast<float>(4.0 * coef));
  EXPECT_NEAR(l2(t.all_grad()), 1.0, 1e-6);
  for (size_t i = 0; i < t.total(); ++i)  // padding stays zero
    if (i != t.info(a).offset && i != t.info(a).offset + 1 && i != t.info(b).offset) {
      EXPECT_EQ(t.all_grad()[i], 0.0f);
    }
}

TEST(ClipGradNorm, BelowThresholdUnchanged) {
  ParamTable t;
  const int a = t.add("a", {4}, true);
  t.finalize();
  const float g[4] = {1.0f, -2.0f, 2.0f, 0.0f};  // norm 3
  std::memcpy(t.grad(a), g, sizeof g);
  EXPECT_FLOAT_EQ(clip_grad_norm(t, 10.0f), 3.0f);
  for (int k = 0; k < 4; ++k) EXPECT_EQ(t.grad(a)[k], g[k]);
}

TEST(ClipGradNorm, DisabledWithZeroMaxNorm) {
  ParamTable t;
  const int a = t.add("a", {2}, true);
  t.finalize();
  t.grad(a)[0] = 30.0f;
  t.grad(a)[1] = 40.0f;
  EXPECT_FLOAT_EQ(clip_grad_norm(t, 0.0f), 50.0f);
  EXPECT_EQ(t.grad(a)[0], 30.0f);
  EXPECT_EQ(t.grad(a)[1], 40.0f);
}

TEST(ClipGradNorm, LargeTableMatchesDoubleNorm) {
  ParamTable t;
  build_table(t);
  fill(t, 1, 2);
  const double expect = l2(t.all_grad());
  const float norm = clip_grad_norm(t, 0.5f);
  EXPECT_NEAR(norm, expect, expect * 1e-6);
  EXPECT_NEAR(l2(t.all_grad()), 0.5, 1e-5);
}

TEST(ClipGradNorm, NonFiniteLeavesGradients) {
  ParamTable t;
  const int a = t.add("a", {2}, true);
  t.finalize();
  t.grad(a)[0] = INFINITY;
  t.grad(a)[1] = 1.0f;
  EXPECT_TRUE(std::isinf(clip_grad_norm(t, 1.0f)));
  EXPECT_EQ(t.grad(a)[1], 1.0f);
}

// ---- AdamW -----------------------------------------------------------------------------------

TEST(AdamW, SingleStepMatchesFormula) {
  ParamTable t;
  const int a = t.add("a", {3}, true);
  const int b = t.add("b", {3}, false);
  t.finalize();
  const float p0[3] = {0.5f, -1.0f, 2.0f}, g0[3] = {0.1f, -0.2f, 0.0f};
  for (int k = 0; k < 3; ++k) {
    t.data(a)[k] = t.data(b)[k] = p0[k];
    t.grad(a)[k] = t.grad(b)[k] = g0[k];
  }
  AdamWOptions o;
  o.beta1 = 0.9f;
  o.beta2 = 0.98f;
  o.eps = 1e-6f;
  o.weight_decay = 0.1f;
  AdamW opt(t, o);
  const float lr = 0.01f;
  opt.step(lr);
  EXPECT_EQ(opt.steps(), 1);
  for (int k = 0; k < 3; ++k) {
    // t = 1: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps).
    const double upd = lr * g0[k] / (std::fabs(g0[k]) + 1e-6);
    EXPECT_NEAR(t.data(a)[k], p0[k] * (1.0 - lr * 0.1) - upd, 1e-6) << k;
    EXPECT_NEAR(t.data(b)[k], p0[k] - upd, 1e-6) << k;  // no decay
    EXPECT_NEAR(opt.m()[t.info(a).offset + k], 0.1 * g0[k], 1e-7);
    EXPECT_NEAR(opt.v()[t.info(a).offset + k], 0.02 * g0[k] * g0[k], 1e-9);
  }
}

TEST(AdamW, NoDecayOnDecayFalseTensors) {
  ParamTable t;
  const int a = t.add("w", {20}, true);
  const int b = t.add("bias", {20}, false);
  t.finalize();
  for (int k = 0; k < 20; ++k) t.data(a)[k] = t.data(b)[k] = 1.0f + k;
  AdamWOptions o;
  o.weight_decay = 0.5f;
  AdamW opt(t, o);
  for (int s = 0; s < 3; ++s) opt.step(0.1f);  // zero gradients: only weight decay moves params
  for (int k = 0; k < 20; ++k) {
    EXPECT_EQ(t.data(b)[k], 1.0f + k);
    const float f = static_cast<float>(1.0 - 0.1 * 0.5);
    EXPECT_FLOAT_EQ(t.data(a)[k], (1.0f + k) * f * f * f);
  }
  for (size_t i = 0; i < t.total(); ++i) {  // padding is never moved
    const bool real = (i >= t.info(a).offset && i < t.info(a).offset + 20) ||
                      (i >= t.info(b).offset && i < t.info(b).offset + 20);
    if (!real) {
      EXPECT_EQ(t.all_data()[i], 0.0f);
    }
  }
}

TEST(AdamW, ZeroLrLeavesParams) {
  ParamTable t;
  build_table(t);
  fill(t, 3, 4);
  const std::vector<float> before = t.all_data();
  AdamW opt(t, AdamWOptions{});
  opt.step(0.0f);
  EXPECT_EQ(t.all_data(), before);
  EXPECT_EQ(opt.steps(), 1);
}

TEST(AdamW, RejectsUnfinalizedTable) {
  ParamTable t;
  t.add("a", {3}, true);
  EXPECT_ANY_THROW(AdamW(t, AdamWOptions{}));
}

// ---- thread-count independence ---------------------------------------------------------------

namespace {

struct RunResult {
  std::vector<float> data, m, v, grad;
  std::vector<float> norms;
};

RunResult run_steps(int threads) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  ParamTable t;
  build_table(t);
  fill(t, 11, 0);
  AdamWOptions o;
  o.weight_decay = 0.05f;
  AdamW opt(t, o);
  Schedule sched{1e-2f, 3, 8, 1e-4f, 1.5f};
  RunResult r;
  for (int s = 0; s < 8; ++s) {
    fill_grad(t, 100 + s);
    r.norms.push_back(clip_grad_norm(t, s % 2 ? 0.5f : 100.0f));
    opt.step(sched.lr(s));
  }
  r.data = t.all_data();
  r.m = opt.m();
  r.v = opt.v();
  r.grad = t.all_grad();
  omp_set_num_threads(saved);
  return r;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST(Determinism, ThreadCountIndependent) {
  const RunResult r1 = run_steps(1);
  const RunResult r2 = run_steps(2);
  const RunResult r3 = run_steps(3);
  EXPECT_TRUE(bitwise_equal(r1.data, r2.data));
  EXPECT_TRUE(bitwise_equal(r1.m, r2.m));
  EXPECT_TRUE(bitwise_equal(r1.v, r2.v));
  EXPECT_TRUE(bitwise_equal(r1.grad, r2.grad));
  EXPECT_TRUE(bitwise_equal(r1.norms, r2.norms));
  EXPECT_TRUE(bitwise_equal(r1.data, r3.data));
  EXPECT_TRUE(bitwise_equal(r1.norms, r3.norms));
  // The run actually moved the parameters.
  ParamTable t;
  build_table(t);
  fill(t, 11, 0);
  EXPECT_FALSE(bitwise_equal(r1.data, t.all_data()));
}
