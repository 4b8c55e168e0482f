// Model::backward_from_hidden (include/linformer/model.hpp), the backward that linformer.torch's
// autograd Function runs: for L = sum(hidden * W) its gradients equal central finite differences
// of L (a few entries of every tensor the encoder uses; float32, so a loose tolerance), it
// accumulates like backward(), and it refuses what backward() refuses.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "linformer/batch.hpp"
#include "linformer/error.hpp"
#include "linformer/model.hpp"

using namespace linformer;

namespace {

ModelConfig config(AttentionKind kind) {
  ModelConfig c;
  c.vocab_size = 20;
  c.max_len = 8;
  c.d_model = 8;
  c.n_heads = 2;
  c.d_ff = 16;
  c.n_layers = 2;
  c.attention = kind;
  c.k = {4};
  c.dropout = 0;
  c.attention_dropout = 0;
  return c;
}

double loss(Model& m, const Batch& b, const std::vector<float>& w) {
  const float* h = m.encode(b);
  double s = 0;
  for (size_t i = 0; i < w.size(); ++i) s += (double)h[i] * w[i];
  return s;
}

}  // namespace

class ModelBackwardFromHidden : public ::testing::TestWithParam<AttentionKind> {};

TEST_P(ModelBackwardFromHidden, EqualsFiniteDifferences) {
  Model m(config(GetParam()));
  m.init(3);
  m.train();  // dropout 0: training mode keeps what backward needs
  const Batch b = Batch::from_sequences({{1, 5, 6, 7, 2}, {1, 9, 2}});
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> w((size_t)b.B * b.n * m.config().d_model);
  for (float& x : w) x = nd(rng);
  loss(m, b, w);
  m.zero_grad();
  m.backward_from_hidden(w.data());
  ParamTable& pt = m.params();
  double worst = 0;
  int checked = 0;
  for (int i = 0; i < pt.size(); ++i) {
    const ParamInfo& info = pt.info(i);
    if (info.name.rfind("mlm.", 0) == 0 || info.name.rfind("cls.", 0) == 0 || !info.trainable) continue;
    for (size_t j = 0; j < info.numel; j += std::max<size_t>(1, info.numel / 3)) {  // a few entries per tensor
      float* p = pt.data(i) + j;
      const float keep = *p, eps = 3e-3f;
      *p = keep + eps;
      const double up = loss(m, b, w);
      *p = keep - eps;
      const double down = loss(m, b, w);
      *p = keep;
      const double fd = (up - down) / (2.0 * eps), g = pt.grad(i)[j];
      worst = std::max(worst, std::fabs(fd - g) / std::max(1.0, std::fabs(fd)));
      ++checked;
    }
  }
  std::printf("%s: worst relative difference to finite differences %.3g over %d entries\n", to_string(GetParam()),
              worst, checked);
  EXPECT_LT(worst, 1e-2);  // about 1.4e-3 seen
  EXPECT_GT(checked, 30);
  // Accumulates: a second backward of the same forward doubles the gradients.
  loss(m, b, w);
  m.zero_grad();
  m.backward_from_hidden(w.data());
  const std::vector<float> once = pt.all_grad();
  m.backward_from_hidden(w.data());
  for (size_t i = 0; i < once.size(); i += 97) EXPECT_FLOAT_EQ(pt.all_grad()[i], 2 * once[i]);
}

INSTANTIATE_TEST_SUITE_P(Kinds, ModelBackwardFromHidden, ::testing::Values(AttentionKind::Full, AttentionKind::Linformer),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(ModelBackwardFromHiddenChecks, RefusesWhatBackwardRefuses) {
  Model m(config(AttentionKind::Linformer));
  m.init(1);
  std::vector<float> w(2 * 3 * 8, 1.0f);
  EXPECT_THROW(m.backward_from_hidden(w.data()), Error);  // no forward yet
  m.set_inference_only(true);
  m.encode(Batch::from_sequences({{1, 5, 2}, {1, 6, 2}}));
  EXPECT_THROW(m.backward_from_hidden(w.data()), Error);  // inference-only forward keeps nothing
}
