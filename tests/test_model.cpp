// Model-level properties that hold whatever the weights: padding invariance, Linformer with
// identity projections equals full attention, determinism of dropout, memory linear in n.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "linformer/error.hpp"
#include "linformer/model.hpp"

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
  ModelConfig c = tiny(AttentionKind::Linformer);
  c.max_len = 16384;
  c.d_model = 16;
  c.n_heads = 2;
  c.d_ff = 16;
  c.n_layers = 1;
  c.k = {16};
  c.vocab_size = 8;
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

// Tiled (flash-style) attention computes exactly full attention, dropout masks included (both
// draw them from the same element index), on lengths that are not multiples of the tile sizes.
TEST(Model, TiledAttentionEqualsFullAttention) {
  for (float p : {0.0f, 0.2f}) {
    ModelConfig cf = tiny(AttentionKind::Full);
    cf.max_len = 200;
    cf.attention_dropout = p;
    cf.dropout = p;
    ModelConfig ct = cf;
    ct.attention = AttentionKind::Tiled;
    Model full(cf), tiled(ct);
    full.init(11);
    tiled.init(11);
    Batch b = Batch::from_sequences({random_ids(200, cf.vocab_size, 1), random_ids(131, cf.vocab_size, 2),
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
