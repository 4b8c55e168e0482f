// Model-level properties that hold whatever the weights: padding invariance, Linformer with
// identity projections equals full attention, determinism of dropout, memory linear in n.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

#include "linformer/error.hpp"
#include "linformer/model.hpp"
#include "linformer/optimizer.hpp"
#include "linformer/precision.hpp"

using namespace linformer;

namespace {

ModelConfig tiny(AttentionKind kind, Sharing sharing = Sharing::Headwise, ProjOrder order = ProjOrder::InputFirst) {
  ModelConfig c;
  c.vocab_size = 41;
  c.max_len = 16;
  c.d_model = 24;
  c.n_heads = 3;
  c.d_ff = 40;
  c.n_layers = 2;
  c.attention = kind;
  c.k = {6};
  c.sharing = sharing;
  c.proj_order = order;
  c.dropout = 0.0f;
  c.attention_dropout = 0.0f;
  return c;
}

std::vector<int32_t> random_ids(int n, int V, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = (int32_t)(rng() % V);
  return v;
}

// A one-sequence Linformer at n = 16384 for the memory tests: 2 heads, k = 16, 8 tokens.
ModelConfig long_linformer(int d_model, int d_ff, int layers) {
  ModelConfig c = tiny(AttentionKind::Linformer);
  c.max_len = 16384;
  c.d_model = d_model;
  c.n_heads = 2;
  c.d_ff = d_ff;
  c.n_layers = layers;
  c.k = {16};
  c.vocab_size = 8;
  return c;
}

double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, (double)std::fabs(a[i] - b[i]));
  return m;
}

}  // namespace

// A sequence alone and the same sequence inside a padded batch give the same hidden states.
TEST(Model, PaddingInvariance) {
  for (auto kind : {AttentionKind::Full, AttentionKind::Linformer})
    for (auto sharing : {Sharing::None, Sharing::Headwise, Sharing::KeyValue, Sharing::Layerwise})
      for (auto order : {ProjOrder::InputFirst, ProjOrder::LinearFirst}) {
        if (kind == AttentionKind::Full && (sharing != Sharing::Headwise || order != ProjOrder::InputFirst)) continue;
        ModelConfig c = tiny(kind, sharing, order);
        Model m(c);
        m.init(7);
        const int d = c.d_model;
        auto seq = random_ids(5, c.vocab_size, 1);
        const float* h_alone = m.encode(Batch::from_sequences({seq}));
        std::vector<float> alone(h_alone, h_alone + 5 * d);
        Batch batch = Batch::from_sequences({random_ids(13, c.vocab_size, 2), seq, random_ids(9, c.vocab_size, 3)});
        const float* h = m.encode(batch);
        double err = max_abs_diff(alone.data(), h + (size_t)1 * batch.n * d, 5 * d);
        std::printf("[padding] %s sharing=%s order=%s worst abs diff %.3g\n", to_string(kind), to_string(sharing),
                    to_string(order), err);
        EXPECT_LT(err, 1e-5);
      }
}

// With k = n = max_len and E = F = identity, Linformer attention is exactly full attention.
TEST(Model, IdentityProjectionEqualsFullAttention) {
  for (auto order : {ProjOrder::InputFirst, ProjOrder::LinearFirst}) {
    ModelConfig cf = tiny(AttentionKind::Full);
    cf.max_len = 12;
    ModelConfig cl = tiny(AttentionKind::Linformer, Sharing::Headwise, order);
    cl.max_len = 12;
    cl.k = {12};
    Model full(cf), lin(cl);
    full.init(3);
    // Copy every shared tensor by name; set the projections to the identity.
    for (int i = 0; i < lin.params().size(); ++i) {
      const auto& info = lin.params().info(i);
      int j = full.params().find(info.name);
      float* w = lin.params().data(i);
      if (j >= 0) {
        std::copy(full.params().data(j), full.params().data(j) + info.numel, w);
      } else {
        ASSERT_TRUE(info.name.find("attn_proj") != std::string::npos) << info.name;
        for (size_t r = 0; r < 12; ++r)
          for (size_t c = 0; c < 12; ++c) w[r * 12 + c] = r == c ? 1.0f : 0.0f;
      }
    }
    Batch b = Batch::from_sequences({random_ids(12, cf.vocab_size, 5), random_ids(12, cf.vocab_size, 6)});
    std::vector<int32_t> labels(b.ids.size(), kIgnoreIndex);
    for (size_t t = 0; t < labels.size(); t += 3) labels[t] = b.ids[t];
    float lf = full.forward_mlm(b, labels);
    float ll = lin.forward_mlm(b, labels);
    double err = max_abs_diff(full.hidden(), lin.hidden(), b.ids.size() * cf.d_model);
    std::printf("[identity] order=%s hidden worst abs diff %.3g, loss %.6f vs %.6f\n", to_string(order), err, lf, ll);
    EXPECT_LT(err, 1e-5);
    EXPECT_NEAR(lf, ll, 1e-5);
    // Gradients of the shared tensors agree too.
    full.zero_grad();
    lin.zero_grad();
    full.backward();
    lin.backward();
    double gerr = 0;
    for (int i = 0; i < full.params().size(); ++i) {
      const auto& info = full.params().info(i);
      int j = lin.params().find(info.name);
      ASSERT_GE(j, 0);
      gerr = std::max(gerr, max_abs_diff(full.params().grad(i), lin.params().grad(j), info.numel));
    }
    std::printf("[identity] order=%s gradient worst abs diff %.3g\n", to_string(order), gerr);
    EXPECT_LT(gerr, 1e-5);
  }
}

TEST(Model, DropoutIsSeededAndOffInEval) {
  ModelConfig c = tiny(AttentionKind::Linformer);
  c.dropout = 0.1f;
  c.attention_dropout = 0.1f;
  Model m(c);
  m.init(1);
  Batch b = Batch::from_sequences({random_ids(10, c.vocab_size, 1), random_ids(7, c.vocab_size, 2)});
  std::vector<int32_t> labels(b.ids.size(), kIgnoreIndex);
  for (size_t t = 0; t < labels.size(); t += 2) labels[t] = 3;
  m.eval();
  float e1 = m.forward_mlm(b, labels), e2 = m.forward_mlm(b, labels);
  EXPECT_EQ(e1, e2);
  m.train();
  m.set_dropout_seed(42);
  float t1 = m.forward_mlm(b, labels);
  float t2 = m.forward_mlm(b, labels);  // next counter: new masks
  m.set_dropout_seed(42);
  float t3 = m.forward_mlm(b, labels);
  EXPECT_NE(t1, e1);
  EXPECT_NE(t1, t2);
  EXPECT_EQ(t1, t3);
}

TEST(Model, RejectsBadInput) {
  ModelConfig c = tiny(AttentionKind::Linformer);
  Model m(c);
  EXPECT_THROW(m.encode(Batch::from_sequences({{1, 2, 41}})), InputError);
  EXPECT_THROW(m.encode(Batch::from_sequences({{1, 2, -1}})), InputError);
  EXPECT_THROW(m.encode(Batch::from_sequences({random_ids(17, 41, 1)})), InputError);
  EXPECT_THROW(Batch::from_sequences({}), InputError);
  Batch b = Batch::from_sequences({{1, 2}});
  EXPECT_THROW(m.forward_mlm(b, {1}), InputError);
  EXPECT_THROW(m.forward_cls(b, {0}), ConfigError);  // no classification head
  try {
    m.encode(Batch::from_sequences({{1, 2, 99}}));
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("99"), std::string::npos) << e.what();
  }
}

static long peak_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

// The Linformer path holds no n x n buffer: at n = 16384 a full-attention score buffer alone
// would be n*n*heads*4 bytes = 2 GiB; the Linformer forward+backward must stay far below.
TEST(Model, LinformerMemoryIsLinearInN) {
  const ModelConfig c = long_linformer(16, 16, 1);
  Model m(c);
  m.init(1);
  Batch b = Batch::from_sequences({random_ids(c.max_len, c.vocab_size, 1)});
  std::vector<int32_t> labels(b.ids.size(), kIgnoreIndex);
  labels[0] = 1;
  long before = peak_rss_kb();
  m.forward_mlm(b, labels);
  m.backward();
  long grown_mb = (peak_rss_kb() - before) / 1024;
  std::printf("[memory] n=16384 linformer forward+backward peak RSS growth %ld MB (an n x n buffer: 2048 MB)\n",
              grown_mb);
  EXPECT_LT(grown_mb, 200);
}

// bf16 mode (precision.hpp) in training: the loss and every gradient stay within bf16 rounding of
// float32's (norm-relative), for each attention kind; the optimizer sees float32 gradients.
TEST(Model, Bf16ModeGradientsAreCloseToFloat32) {
  if (!bf16_supported()) GTEST_SKIP() << "this CPU has no avx512_bf16";
  for (AttentionKind kind : {AttentionKind::Full, AttentionKind::Linformer, AttentionKind::Tiled}) {
    ModelConfig c = tiny(kind);
    c.max_len = 96;
    Model m(c);
    m.init(3);
    Batch b = Batch::from_sequences({random_ids(96, c.vocab_size, 1), random_ids(70, c.vocab_size, 2)});
    std::vector<int32_t> labels(b.ids.size(), kIgnoreIndex);
    for (size_t t = 0; t < labels.size(); t += 4) labels[t] = b.ids[t];
    m.zero_grad();
    const float loss32 = m.forward_mlm(b, labels);
    m.backward();
    const std::vector<float> g32 = m.params().all_grad();
    set_matmul_precision(MatmulPrecision::bf16);
    m.zero_grad();
    const float loss16 = m.forward_mlm(b, labels);
    m.backward();
    set_matmul_precision(MatmulPrecision::f32);
    const std::vector<float>& g16 = m.params().all_grad();
    double diff2 = 0, ref2 = 0;
    for (size_t i = 0; i < g32.size(); ++i) {
      diff2 += ((double)g16[i] - g32[i]) * ((double)g16[i] - g32[i]);
      ref2 += (double)g32[i] * g32[i];
    }
    const double rel = std::sqrt(diff2 / ref2);
    std::printf("[bf16] %s: loss %.6f vs %.6f (f32), gradient ||bf16 - f32|| / ||f32|| = %.3g\n", to_string(kind),
                loss16, loss32, rel);
    EXPECT_NEAR(loss16, loss32, 1e-2 * std::fabs(loss32));
    EXPECT_GT(rel, 0.0);
    EXPECT_LT(rel, 5e-2);
  }
}

// Tiled (flash-style) attention computes exactly full attention, dropout masks included (both
// draw them from the same element index), on lengths that are not multiples of the tile sizes.
TEST(Model, TiledAttentionEqualsFullAttention) {
  for (float p : {0.0f, 0.2f}) {
    ModelConfig cf = tiny(AttentionKind::Full);
    cf.max_len = 600;  // more than two key tiles (256) and four query tiles (128)
    cf.attention_dropout = p;
    cf.dropout = p;
    ModelConfig ct = cf;
    ct.attention = AttentionKind::Tiled;
    Model full(cf), tiled(ct);
    full.init(11);
    tiled.init(11);
    Batch b = Batch::from_sequences({random_ids(600, cf.vocab_size, 1), random_ids(331, cf.vocab_size, 2),
                                     random_ids(64, cf.vocab_size, 3)});
    std::vector<int32_t> labels(b.ids.size(), kIgnoreIndex);
    for (size_t t = 0; t < labels.size(); t += 5) labels[t] = b.ids[t];
    full.train();
    tiled.train();
    full.set_dropout_seed(5);
    tiled.set_dropout_seed(5);
    float lf = full.forward_mlm(b, labels), lt = tiled.forward_mlm(b, labels);
    double herr = 0;
    for (int s = 0; s < b.B; ++s)
      for (int t = 0; t < b.length(s); ++t)
        for (int c = 0; c < cf.d_model; ++c) {
          size_t i = ((size_t)s * b.n + t) * cf.d_model + c;
          herr = std::max(herr, (double)std::fabs(full.hidden()[i] - tiled.hidden()[i]));
        }
    full.zero_grad();
    tiled.zero_grad();
    full.backward();
    tiled.backward();
    double gerr = 0, gmax = 0;
    for (size_t i = 0; i < full.params().total(); ++i) {
      gerr = std::max(gerr, (double)std::fabs(full.params().all_grad()[i] - tiled.params().all_grad()[i]));
      gmax = std::max(gmax, (double)std::fabs(full.params().all_grad()[i]));
    }
    std::printf("[tiled] dropout %.1f: hidden worst abs diff %.3g, loss %.6f vs %.6f, grad worst %.3g (max %.3g)\n", p,
                herr, lf, lt, gerr, gmax);
    EXPECT_LT(herr, 1e-4);
    EXPECT_NEAR(lf, lt, 1e-4);
    EXPECT_LT(gerr, 1e-4 * gmax);
  }
}

// ---------------------------------------------------------------------------------------------
// Projection kinds other than the learned matrix (docs/model.md, "Projection kinds").

namespace {

const ProjKind kAllKinds[] = {ProjKind::Learned, ProjKind::Mean, ProjKind::Max, ProjKind::Conv, ProjKind::Random};

// A small Linformer with k = 4 windows of w = 2 positions (max_len 8).
ModelConfig small_kind(ProjKind kind, Sharing sharing, ProjOrder order) {
  ModelConfig c = tiny(AttentionKind::Linformer, sharing, order);
  c.vocab_size = 13;
  c.max_len = 8;
  c.d_model = 8;
  c.n_heads = 2;
  c.d_ff = 12;
  c.n_layers = 2;
  c.k = {4};
  c.projection = kind;
  c.init_std = 0.3f;  // far from uniform attention, so every path matters
  return c;
}

}  // namespace

// Padding invariance holds for every kind: window kinds fix their windows by max_len, not n.
TEST(ProjectionKinds, PaddingInvariance) {
  for (ProjKind kind : kAllKinds)
    for (auto sharing : {Sharing::None, Sharing::KeyValue})
      for (auto order : {ProjOrder::InputFirst, ProjOrder::LinearFirst}) {
        ModelConfig c = tiny(AttentionKind::Linformer, sharing, order);
        c.projection = kind;
        c.k = {4};  // 4 windows of 4 positions in max_len 16
        Model m(c);
        m.init(7);
        const int d = c.d_model;
        auto seq = random_ids(6, c.vocab_size, 1);
        const float* h_alone = m.encode(Batch::from_sequences({seq}));
        std::vector<float> alone(h_alone, h_alone + 6 * d);
        Batch batch = Batch::from_sequences({random_ids(15, c.vocab_size, 2), seq, random_ids(9, c.vocab_size, 3)});
        const float* h = m.encode(batch);
        double err = max_abs_diff(alone.data(), h + (size_t)1 * batch.n * d, 6 * d);
        std::printf("[padding] projection=%s sharing=%s order=%s worst abs diff %.3g\n", to_string(kind),
                    to_string(sharing), to_string(order), err);
        EXPECT_LT(err, 1e-5);
      }
}

// Central differences of the MLM loss along a random +-1 direction per trainable tensor, against
// the analytic gradient (float32 model: h = 3e-3, bound 2e-2 of the tensor's gradient scale).
TEST(ProjectionKinds, GradientsMatchFiniteDifferences) {
  double worst_all = 0;
  // Sharing none, plus layerwise for the conv kernel (whose gradient sums over layers and
  // windows); the parity test covers the other combinations against autograd.
  for (ProjKind kind : kAllKinds)
    for (auto sharing : {Sharing::None, Sharing::Layerwise})
      for (auto order : {ProjOrder::InputFirst, ProjOrder::LinearFirst}) {
        if (sharing == Sharing::Layerwise && kind != ProjKind::Conv) continue;
        ModelConfig c = small_kind(kind, sharing, order);
        Model m(c);
        m.init(21);
        Batch b = Batch::from_sequences({random_ids(7, c.vocab_size, 4), random_ids(5, c.vocab_size, 5)});
        std::vector<int32_t> labels(b.ids.size(), kIgnoreIndex);
        for (size_t t = 0; t < labels.size(); ++t)
          if (b.mask[t]) labels[t] = (b.ids[t] * 5 + 1) % c.vocab_size;
        m.zero_grad();
        m.forward_mlm(b, labels);
        m.backward();
        ParamTable& pt = m.params();
        std::mt19937 rng(9);
        double worst = 0;
        std::string worst_name;
        for (int i = 0; i < pt.size(); ++i) {
          const ParamInfo& info = pt.info(i);
          if (!info.trainable) continue;
          std::vector<float> dir(info.numel);
          double analytic = 0, gscale = 0;
          for (size_t j = 0; j < info.numel; ++j) {
            dir[j] = (rng() & 1) ? 1.0f : -1.0f;
            analytic += (double)dir[j] * pt.grad(i)[j];
            gscale += std::fabs(pt.grad(i)[j]);
          }
          const float h = 3e-3f;
          std::vector<float> saved(pt.data(i), pt.data(i) + info.numel);
          for (size_t j = 0; j < info.numel; ++j) pt.data(i)[j] = saved[j] + h * dir[j];
          const double lp = m.forward_mlm(b, labels);
          for (size_t j = 0; j < info.numel; ++j) pt.data(i)[j] = saved[j] - h * dir[j];
          const double lm = m.forward_mlm(b, labels);
          std::copy(saved.begin(), saved.end(), pt.data(i));
          const double fd = (lp - lm) / (2.0 * h);
          // Relative to the sum of |g| (the largest the directional derivative can be), floored so that
          // tensors with a zero gradient (the key bias with input_first) compare against the noise level.
          const double err = std::fabs(fd - analytic) / std::max(gscale, 1e-2);
          if (err > worst) worst = err, worst_name = info.name;
        }
        std::printf("[grad fd] projection=%s sharing=%s order=%s worst rel err %.3g (%s)\n", to_string(kind),
                    to_string(sharing), to_string(order), worst, worst_name.c_str());
        EXPECT_LT(worst, 2e-2) << to_string(kind) << " " << worst_name;
        worst_all = std::max(worst_all, worst);
      }
  std::printf("[grad fd] worst over all kinds %.3g\n", worst_all);
}

// With windows of one position (k = max_len), mean and max pooling are the identity and a conv
// with kernel [1] too: Linformer then computes exactly full attention, padding included (the
// window mask is the key padding mask). Gradients of the shared tensors agree.
TEST(ProjectionKinds, WindowOfOneEqualsFullAttention) {
  for (ProjKind kind : {ProjKind::Mean, ProjKind::Max, ProjKind::Conv})
    for (auto order : {ProjOrder::InputFirst, ProjOrder::LinearFirst}) {
      ModelConfig cf = tiny(AttentionKind::Full);
      ModelConfig cl = tiny(AttentionKind::Linformer, Sharing::Headwise, order);
      cl.k = {cl.max_len};
      cl.projection = kind;
      Model full(cf), lin(cl);
      full.init(3);
      for (int i = 0; i < lin.params().size(); ++i) {
        const auto& info = lin.params().info(i);
        const int j = full.params().find(info.name);
        if (j >= 0) std::copy(full.params().data(j), full.params().data(j) + info.numel, lin.params().data(i));
        else std::fill(lin.params().data(i), lin.params().data(i) + info.numel, 1.0f);  // conv kernel [1] = 1
      }
      Batch b = Batch::from_sequences({random_ids(11, cf.vocab_size, 5), random_ids(6, cf.vocab_size, 6)});
      std::vector<int32_t> labels(b.ids.size(), kIgnoreIndex);
      for (size_t t = 0; t < labels.size(); t += 2)
        if (b.mask[t]) labels[t] = b.ids[t];
      const float lf = full.forward_mlm(b, labels), ll = lin.forward_mlm(b, labels);
      double err = 0;
      for (int s = 0; s < b.B; ++s)
        for (int t = 0; t < b.length(s); ++t)
          for (int c = 0; c < cf.d_model; ++c) {
            const size_t i = ((size_t)s * b.n + t) * cf.d_model + c;
            err = std::max(err, (double)std::fabs(full.hidden()[i] - lin.hidden()[i]));
          }
      full.zero_grad();
      lin.zero_grad();
      full.backward();
      lin.backward();
      double gerr = 0;
      for (int i = 0; i < full.params().size(); ++i) {
        const auto& info = full.params().info(i);
        gerr = std::max(gerr, max_abs_diff(full.params().grad(i), lin.params().grad(lin.params().find(info.name)),
                                           info.numel));
      }
      std::printf("[window 1] projection=%s order=%s hidden worst abs diff %.3g, grad %.3g, loss %.6f vs %.6f\n",
                  to_string(kind), to_string(order), err, gerr, lf, ll);
      EXPECT_LT(err, 1e-5);
      EXPECT_LT(gerr, 1e-5);
      EXPECT_NEAR(lf, ll, 1e-5);
    }
}

// The random projection: saved like E/F but frozen. Same seed, same matrix; N(0, 1/k); no
// gradient, and an AdamW step leaves it bitwise unchanged while everything else moves.
TEST(ProjectionKinds, RandomProjectionIsSeededAndFrozen) {
  ModelConfig c = small_kind(ProjKind::Random, Sharing::Headwise, ProjOrder::InputFirst);
  c.max_len = 64;
  c.k = {16};
  Model a(c), b(c), other(c);
  a.init(5);
  b.init(5);
  other.init(6);
  const int e = a.params().find("blk.0.attn_proj_e");
  ASSERT_GE(e, 0);
  const ParamInfo& info = a.params().info(e);
  EXPECT_FALSE(info.trainable);
  EXPECT_FALSE(info.decay);
  EXPECT_EQ(info.shape, (std::vector<int64_t>{16, 64}));
  EXPECT_EQ(std::memcmp(a.params().data(e), b.params().data(e), info.numel * 4), 0);
  EXPECT_NE(std::memcmp(a.params().data(e), other.params().data(e), info.numel * 4), 0);
  double sq = 0;
  for (size_t j = 0; j < info.numel; ++j) sq += (double)a.params().data(e)[j] * a.params().data(e)[j];
  const double std_dev = std::sqrt(sq / info.numel);
  std::printf("[random] std of E %.4f (1/sqrt(k) = %.4f)\n", std_dev, 1.0 / std::sqrt(16.0));
  EXPECT_NEAR(std_dev, 0.25, 0.02);

  Batch batch = Batch::from_sequences({random_ids(40, c.vocab_size, 1), random_ids(64, c.vocab_size, 2)});
  std::vector<int32_t> labels(batch.ids.size(), kIgnoreIndex);
  for (size_t t = 0; t < labels.size(); t += 3)
    if (batch.mask[t]) labels[t] = batch.ids[t];
  const std::vector<float> before = a.params().all_data();
  AdamW opt(a.params(), AdamWOptions{});
  a.train();
  for (int step = 0; step < 2; ++step) {
    a.zero_grad();
    a.forward_mlm(batch, labels);
    a.backward();
    for (const char* name : {"blk.0.attn_proj_e", "blk.0.attn_proj_f", "blk.1.attn_proj_e", "blk.1.attn_proj_f"}) {
      const int i = a.params().find(name);
      const float* g = a.params().grad(i);
      EXPECT_TRUE(std::all_of(g, g + a.params().info(i).numel, [](float v) { return v == 0.0f; })) << name;
    }
    opt.step(1e-2f);
  }
  for (int i = 0; i < a.params().size(); ++i) {
    const ParamInfo& p = a.params().info(i);
    const bool same = std::memcmp(a.params().data(i), before.data() + p.offset, p.numel * 4) == 0;
    if (p.name.find("attn_proj") != std::string::npos) EXPECT_TRUE(same) << p.name << " changed";
    else if (p.name.ends_with(".weight")) EXPECT_FALSE(same) << p.name << " did not train";
  }
}

// The conv kernel trains like any weight; pooling kinds have no tensors at all.
TEST(ProjectionKinds, TensorsPerKind) {
  for (ProjKind kind : kAllKinds) {
    Model m(small_kind(kind, Sharing::None, ProjOrder::InputFirst));
    int count = 0;
    for (const ParamInfo& p : m.params().infos())
      if (p.name.find("attn_proj") != std::string::npos) {
        ++count;
        EXPECT_EQ(p.trainable, kind != ProjKind::Random) << p.name;
        if (kind == ProjKind::Conv) EXPECT_EQ(p.shape, (std::vector<int64_t>{2, 2})) << p.name;  // [h, w]
        else EXPECT_EQ(p.shape, (std::vector<int64_t>{2, 4, 8})) << p.name;                    // [h, k, N]
      }
    EXPECT_EQ(count, kind == ProjKind::Mean || kind == ProjKind::Max ? 0 : 4) << to_string(kind);
  }
}

// The attention probabilities are exposed per layer: rows sum to 1, [B, h, n, n] for full
// attention, [B, h, n, k] for Linformer; tiled attention keeps none (clear error).
TEST(Model, AttentionProbs) {
  for (auto kind : {AttentionKind::Full, AttentionKind::Linformer}) {
    ModelConfig c = tiny(kind);
    Model m(c);
    m.init(2);
    EXPECT_THROW(m.attention_probs(0), Error);  // no forward yet
    Batch b = Batch::from_sequences({random_ids(9, c.vocab_size, 1), random_ids(4, c.vocab_size, 2)});
    m.encode(b);
    for (int l = 0; l < c.n_layers; ++l) {
      const AttentionProbs p = m.attention_probs(l);
      EXPECT_EQ(p.B, 2);
      EXPECT_EQ(p.heads, c.n_heads);
      EXPECT_EQ(p.n, 9);
      EXPECT_EQ(p.cols, kind == AttentionKind::Full ? 9 : 6);
      double worst = 0;
      for (int r = 0; r < p.B * p.heads * p.n; ++r) {
        double s = 0;
        for (int j = 0; j < p.cols; ++j) s += p.data[(size_t)r * p.cols + j];
        worst = std::max(worst, std::fabs(s - 1.0));
      }
      EXPECT_LT(worst, 1e-5);
      if (kind == AttentionKind::Full)  // padded keys of sequence 1 (positions 4..8) get 0
        for (int j = 4; j < 9; ++j) EXPECT_EQ(p.data[((size_t)(1 * c.n_heads) * p.n) * p.cols + j], 0.0f);
    }
    EXPECT_THROW(m.attention_probs(c.n_layers), Error);
  }
  Model tiled(tiny(AttentionKind::Tiled));
  tiled.encode(Batch::from_sequences({{1, 2, 3}}));
  try {
    tiled.attention_probs(0);
    ADD_FAILURE() << "no error for tiled attention";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tiled"), std::string::npos) << e.what();
  }
}

// Class weighting (finetune --class-weights): the loss and every gradient are linear in the
// per-sequence weights, and weights of 1 change nothing.
TEST(Model, ClassificationWeightsScaleLossAndGradients) {
  ModelConfig c = tiny(AttentionKind::Linformer);
  c.num_labels = 3;
  Model m(c);
  m.init(11);
  m.train();
  const Batch b = Batch::from_sequences({random_ids(9, 41, 2), random_ids(5, 41, 3)});
  const std::vector<int32_t> labels = {2, 0};
  auto run = [&](const std::vector<float>& w, std::vector<float>& grad) {
    m.zero_grad();
    const float loss = m.forward_cls(b, labels, 0, w);
    m.backward();
    grad = m.params().all_grad();
    return loss;
  };
  std::vector<float> g_none, g_ones, g_a, g_b, g_mix;
  const float l_none = run({}, g_none), l_ones = run({1.0f, 1.0f}, g_ones);
  EXPECT_EQ(l_none, l_ones);
  EXPECT_EQ(g_none, g_ones);
  const float l_a = run({1.0f, 0.0f}, g_a), l_b = run({0.0f, 1.0f}, g_b);
  const float l_mix = run({2.5f, 0.5f}, g_mix);
  EXPECT_NEAR(l_mix, 2.5f * l_a + 0.5f * l_b, 1e-5f * std::fabs(l_mix));
  double worst = 0, scale = 0;
  for (size_t i = 0; i < g_mix.size(); ++i) {
    worst = std::max(worst, (double)std::fabs(g_mix[i] - (2.5f * g_a[i] + 0.5f * g_b[i])));
    scale = std::max(scale, (double)std::fabs(g_mix[i]));
  }
  std::printf("class weights: worst |grad(2.5, 0.5) - (2.5 grad(1, 0) + 0.5 grad(0, 1))| = %.3g (max |grad| %.3g)\n",
              worst, scale);
  EXPECT_GT(scale, 0.0);
  EXPECT_LT(worst, 1e-5 * scale);
  EXPECT_THROW(m.forward_cls(b, labels, 0, {1.0f}), InputError);                 // one weight per sequence
  EXPECT_THROW(m.forward_cls(b, labels, 0, {1.0f, -1.0f}), InputError);          // negative
  EXPECT_THROW(m.forward_cls(b, labels, 0, {1.0f, std::nanf("")}), InputError);  // not a number
}

// Inference-only mode (Model::set_inference_only) gives the eval-mode results of the normal
// forward: hidden states, MLM logits and classification logits, for every attention kind and
// the window projections, with padding, and with more rows than one FFN block (1024).
TEST(Model, InferenceOnlyEqualsEvalForward) {
  struct Case {
    AttentionKind kind;
    ProjKind proj;
    int n;
  };
  const Case cases[] = {{AttentionKind::Full, ProjKind::Learned, 13},
                        {AttentionKind::Tiled, ProjKind::Learned, 13},
                        {AttentionKind::Linformer, ProjKind::Learned, 13},
                        {AttentionKind::Linformer, ProjKind::Mean, 12},
                        {AttentionKind::Linformer, ProjKind::Conv, 12},
                        {AttentionKind::Linformer, ProjKind::Learned, 600}};  // B*n = 1200 rows
  double worst = 0;
  for (const Case& cs : cases) {
    ModelConfig c = tiny(cs.kind);
    c.max_len = cs.n;
    c.projection = cs.proj;
    c.k = {cs.proj == ProjKind::Learned ? 6 : 4};
    c.n_layers = 3;
    c.num_labels = 3;
    c.dropout = 0.1f;  // off in eval and in inference-only mode alike
    Model m(c);
    m.init(11);
    m.eval();
    Batch b = Batch::from_sequences({random_ids(cs.n, c.vocab_size, 1), random_ids(cs.n / 2, c.vocab_size, 2)});
    const size_t Td = (size_t)b.B * b.n * c.d_model, TV = (size_t)b.B * b.n * c.vocab_size;
    const float* h = m.encode(b);
    std::vector<float> hidden(h, h + Td);
    const float* lg = m.forward_mlm_logits(b);
    std::vector<float> logits(lg, lg + TV);
    const float* cl = m.forward_cls_logits(b);
    std::vector<float> cls(cl, cl + (size_t)b.B * c.num_labels);
    m.set_inference_only(true);
    for (int pass = 0; pass < 2; ++pass) {  // the second pass reuses the lent buffers
      const double eh = max_abs_diff(hidden.data(), m.encode(b), Td);
      const double el = max_abs_diff(logits.data(), m.forward_mlm_logits(b), TV);
      const double ec = max_abs_diff(cls.data(), m.forward_cls_logits(b), cls.size());
      std::printf("[inference-only] %s %s n=%d pass %d: worst abs diff hidden %.3g, logits %.3g, cls %.3g\n",
                  to_string(cs.kind), to_string(cs.proj), cs.n, pass, eh, el, ec);
      worst = std::max({worst, eh, el, ec});
      EXPECT_LT(std::max({eh, el, ec}), 2e-5);
    }
  }
  std::printf("[inference-only] worst abs diff over all cases %.3g\n", worst);
}

// Inference-only mode keeps nothing for backward: backward and attention_probs refuse with a
// clear error, and once the mode is off again training gives the gradients of a model that
// never used it.
TEST(Model, InferenceOnlyRefusesBackwardAndThenTrainsNormally) {
  ModelConfig c = tiny(AttentionKind::Linformer);
  Batch b = Batch::from_sequences({random_ids(11, c.vocab_size, 3), random_ids(7, c.vocab_size, 4)});
  std::vector<int32_t> labels(b.ids.size(), kIgnoreIndex);
  for (size_t i = 0; i < labels.size(); i += 3) labels[i] = b.ids[i];
  Model plain(c), m(c);
  plain.init(5);
  m.init(5);
  m.set_inference_only(true);
  m.forward_mlm(b, labels);
  try {
    m.backward();
    ADD_FAILURE() << "backward after an inference-only forward";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("inference-only"), std::string::npos) << e.what();
  }
  EXPECT_THROW(m.attention_probs(0), Error);
  m.set_inference_only(false);
  EXPECT_NEAR(m.forward_mlm(b, labels), plain.forward_mlm(b, labels), 1e-6);
  m.backward();
  plain.backward();
  double worst = 0;
  for (int i = 0; i < m.params().size(); ++i)
    worst = std::max(worst, max_abs_diff(m.params().grad(i), plain.params().grad(i), m.params().info(i).numel));
  std::printf("[inference-only] gradients after the mode is off: worst abs diff %.3g\n", worst);
  EXPECT_EQ(worst, 0.0);
  EXPECT_NO_THROW(m.attention_probs(0));
}

// The point of the mode: peak memory no longer grows with the layer count. Six layers at
// n = 16384 (d 32, d_ff 128): the normal eval forward keeps about 36 MB per layer (200+ MB);
// inference-only needs two [n, d] buffers, one layer's attention buffers and an FFN block.
TEST(Model, InferenceOnlyMemoryDoesNotGrowWithLayers) {
  const ModelConfig c = long_linformer(32, 128, 6);
  Model m(c);
  m.init(1);
  m.eval();
  m.set_inference_only(true);
  Batch b = Batch::from_sequences({random_ids(c.max_len, c.vocab_size, 1)});
  const long before = peak_rss_kb();
  m.encode(b);
  const long grown_mb = (peak_rss_kb() - before) / 1024;
  std::printf("[memory] n=16384, 6 layers, inference-only encode: peak RSS growth %ld MB (normal eval: ~216 MB)\n",
              grown_mb);
  EXPECT_LT(grown_mb, 40);
}

// The activation table and the debug dump (docs/model.md "Activations"): the dump hands over
// exactly the table's activations in its order, with the table's shapes, and its tensors are
// the forward's (hidden states and logits bitwise). Inference-only mode hands over the ones
// that exist whole there, with the same values.
TEST(Model, ActivationDumpFollowsTheTable) {
  ModelConfig c = tiny(AttentionKind::Linformer);  // 2 layers
  c.num_labels = 3;
  Model m(c);
  m.init(5);
  m.eval();
  const Batch b = Batch::from_sequences({random_ids(9, c.vocab_size, 1), random_ids(5, c.vocab_size, 2)});
  const int64_t T = (int64_t)b.B * b.n;
  struct Got {
    std::string name;
    int64_t rows, cols;
    std::vector<float> data;
  };
  std::vector<Got> got;
  m.set_activation_dump([&](const ActivationInfo& a, const float* data, int64_t rows) {
    got.push_back({a.name, rows, a.cols, std::vector<float>(data, data + rows * a.cols)});
  });
  const float* lg = m.forward_mlm_logits(b);
  const std::vector<float> logits(lg, lg + T * c.vocab_size);
  const std::vector<float> hidden(m.hidden(), m.hidden() + T * c.d_model);
  m.forward_cls_logits(b);
  const std::vector<ActivationInfo>& table = m.activations();
  // The MLM forward hands over the encoder's and the MLM head's; the CLS forward the encoder's
  // again and the classification head's.
  std::vector<std::string> want;
  for (const ActivationInfo& a : table)
    if (a.name.rfind("cls.", 0) != 0) want.push_back(a.name);
  for (const ActivationInfo& a : table)
    if (a.name.rfind("mlm.", 0) != 0) want.push_back(a.name);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].name, want[i]) << i;
    const bool seq = got[i].name.rfind("cls.", 0) == 0;
    EXPECT_EQ(got[i].rows, seq ? b.B : T) << got[i].name;
  }
  EXPECT_EQ(table.size(), 3u + 8u * c.n_layers + 4u + 6u);
  auto find = [&](const std::string& name) -> const Got& {
    for (const Got& g : got)
      if (g.name == name) return g;
    ADD_FAILURE() << name << " not dumped";
    return got.front();
  };
  EXPECT_EQ(find("blk.1.out").data, hidden);
  EXPECT_EQ(find("mlm.logits").data, logits);
  EXPECT_EQ(find("blk.0.ffn_up").cols, c.d_ff);

  // Inference only: a subset, the same values up to rounding.
  const std::vector<Got> eval_got = got;
  got.clear();
  m.set_inference_only(true);
  m.forward_mlm_logits(b);
  m.set_inference_only(false);
  ASSERT_FALSE(got.empty());
  double worst = 0;
  for (const Got& g : got) {
    EXPECT_TRUE(g.name.find("ffn_up") == std::string::npos && g.name.find("_res") == std::string::npos) << g.name;
    const Got& e = [&]() -> const Got& {
      for (const Got& x : eval_got)
        if (x.name == g.name) return x;
      return eval_got.front();
    }();
    ASSERT_EQ(e.name, g.name);
    ASSERT_EQ(e.data.size(), g.data.size()) << g.name;
    worst = std::max(worst, max_abs_diff(e.data.data(), g.data.data(), g.data.size()));
  }
  std::printf("activation dump: %zu activations in inference-only mode, worst |diff| vs eval %.2e\n", got.size(),
              worst);
  EXPECT_LE(worst, 1e-5);

  // Off again: nothing more is handed over.
  got.clear();
  m.set_activation_dump({});
  m.forward_mlm_logits(b);
  EXPECT_TRUE(got.empty());
}

// Every tensor carries the init kind its registration gave it, and init follows the kinds.
TEST(Model, InitKindsComeFromRegistration) {
  for (ProjKind proj : {ProjKind::Learned, ProjKind::Random, ProjKind::Conv}) {
    ModelConfig c = tiny(AttentionKind::Linformer, Sharing::None);
    c.projection = proj;
    c.k = {4};
    c.max_len = 16;
    c.num_labels = 2;
    Model m(c);
    m.init(3);
    const ParamTable& pt = m.params();
    for (int i = 0; i < pt.size(); ++i) {
      const ParamInfo& p = pt.info(i);
      const float* w = pt.data(i);
      const bool is_proj = p.name.find("attn_proj") != std::string::npos;
      ParamInit want = p.shape.size() >= 2 || is_proj ? ParamInit::Normal : ParamInit::Zeros;
      if (p.name.ends_with("norm.weight")) want = ParamInit::Ones;
      if (is_proj && proj == ProjKind::Random) want = ParamInit::RandomProjection;
      EXPECT_EQ(p.init, want) << p.name;
      if (want == ParamInit::Ones || want == ParamInit::Zeros)
        for (size_t j = 0; j < p.numel; ++j) ASSERT_EQ(w[j], want == ParamInit::Ones ? 1.0f : 0.0f) << p.name;
      if (want == ParamInit::RandomProjection) {
        double ss = 0;
        for (size_t j = 0; j < p.numel; ++j) ss += (double)w[j] * w[j];
        const double sd = std::sqrt(ss / p.numel), k = (double)p.shape[p.shape.size() - 2];
        EXPECT_NEAR(sd, 1.0 / std::sqrt(k), 0.15 / std::sqrt(k)) << p.name;
        EXPECT_FALSE(p.trainable) << p.name;
      }
    }
  }
}
