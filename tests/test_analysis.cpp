// Analyses (include/linformer/analysis.hpp): LAPACK singular values, the normalised cumulative
// spectrum on matrices of known rank, the spectrum of a model's attention, attention maps, SVG.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "analysis/svg.hpp"
#include "analysis_test_util.hpp"
#include "linformer/analysis.hpp"
#include "linformer/data.hpp"
#include "linformer/error.hpp"
#include "linformer/model.hpp"
#include "linformer/tokenizer.hpp"

using namespace linformer;
namespace fs = std::filesystem;
using analysis_test::count_of;
using analysis_test::slurp;
using analysis_test::svg_problem;

namespace {

// A row-stochastic n x n matrix of rank r: each row is one of r random probability vectors
// (mixtures of them would do too), like an attention matrix whose queries fall into r groups.
std::vector<float> rank_r_attention(int n, int r, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.1f, 1.0f);
  std::vector<std::vector<float>> basis(r, std::vector<float>(n));
  for (auto& row : basis) {
    float s = 0;
    for (float& v : row) s += (v = u(rng) * u(rng) * u(rng));
    for (float& v : row) v /= s;
  }
  std::vector<float> P((size_t)n * n);
  for (int i = 0; i < n; ++i) std::copy(basis[i % r].begin(), basis[i % r].end(), P.begin() + (size_t)i * n);
  return P;
}

ModelConfig full_config() {
  ModelConfig c;
  c.vocab_size = 30;
  c.max_len = 24;
  c.d_model = 16;
  c.n_heads = 2;
  c.d_ff = 24;
  c.n_layers = 2;
  c.attention = AttentionKind::Full;
  c.init_std = 0.5f;
  return c;
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("linformer_test_analysis_" + std::to_string(getpid()));
  TempDir() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

TEST(Spectrum, SingularValuesOfADiagonalMatrix) {
  const std::vector<float> A = {0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0, 0};  // 4 x 3 with singular values 5, 3, 0
  const auto s = singular_values(A.data(), 4, 3);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_NEAR(s[0], 5.0, 1e-12);
  EXPECT_NEAR(s[1], 3.0, 1e-12);
  EXPECT_NEAR(s[2], 0.0, 1e-12);
  const auto c = normalized_cumsum(s);
  EXPECT_NEAR(c[0], 5.0 / 8, 1e-12);
  EXPECT_NEAR(c[1], 1.0, 1e-12);
  EXPECT_NEAR(c[2], 1.0, 1e-12);
}

// The curve of a rank-r attention matrix reaches 1 at index r (1-based) and not before.
TEST(Spectrum, CurveOfRankRMatrixHitsOneAtR) {
  double worst = 0;
  for (int n : {16, 64, 128})
    for (int r : {1, 2, 5, 11}) {
      const auto P = rank_r_attention(n, r, (uint32_t)(n * 100 + r));
      const auto c = normalized_cumsum(singular_values(P.data(), n, n));
      worst = std::max(worst, std::fabs(c[r - 1] - 1.0));
      EXPECT_NEAR(c[r - 1], 1.0, 1e-5) << "n=" << n << " r=" << r;
      EXPECT_NEAR(c[n - 1], 1.0, 1e-12);
      if (r > 1) EXPECT_LT(c[r - 2], 1.0 - 1e-4) << "n=" << n << " r=" << r;
    }
  std::printf("[spectrum] rank-r matrices: worst |curve(r) - 1| %.3g\n", worst);
}

// End to end through a model: with zero query maps every score is 0, so each P is uniform
// (rank 1): the mean curve is 1 from index 1 on, for every layer and head.
TEST(Spectrum, ModelWithUniformAttentionHasRankOne) {
  Model m(full_config());
  m.init(1);
  for (int i = 0; i < m.params().size(); ++i)
    if (m.params().info(i).name.find("attn_q") != std::string::npos)
      std::fill(m.params().data(i), m.params().data(i) + m.params().info(i).numel, 0.0f);
  std::vector<std::vector<int32_t>> seqs;
  for (int s = 0; s < 3; ++s) seqs.push_back(std::vector<int32_t>(20, 5 + s));
  const Spectrum sp = attention_spectrum(m, seqs, 2);
  EXPECT_EQ(sp.layers, 2);
  EXPECT_EQ(sp.heads, 2);
  EXPECT_EQ(sp.n, 20);
  EXPECT_EQ(sp.sequences, 3);
  double worst = 0;
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h) worst = std::max(worst, std::fabs(sp.at(l, h, 0) - 1.0));
  std::printf("[spectrum] uniform attention: worst |curve(1) - 1| %.3g\n", worst);
  EXPECT_LT(worst, 1e-5);
}

// A trained-looking (random, sharp) model: curves rise from about 1/n to exactly 1; tiled
// attention gives the same spectrum as full (it is run as full); Linformer is refused.
TEST(Spectrum, CurvesAreMonotoneTiledEqualsFullLinformerRefused) {
  ModelConfig c = full_config();
  Model full(c);
  full.init(4);
  std::mt19937 rng(3);
  std::vector<std::vector<int32_t>> seqs(4, std::vector<int32_t>(24));
  for (auto& s : seqs)
    for (auto& t : s) t = (int32_t)(rng() % 30);
  const Spectrum a = attention_spectrum(full, seqs);
  for (int l = 0; l < a.layers; ++l)
    for (int h = 0; h < a.heads; ++h) {
      for (int i = 1; i < a.n; ++i) EXPECT_GE(a.at(l, h, i), a.at(l, h, i - 1) - 1e-12);
      EXPECT_NEAR(a.at(l, h, a.n - 1), 1.0, 1e-9);
    }
  c.attention = AttentionKind::Tiled;
  Model tiled(c);
  tiled.params().all_data() = full.params().all_data();
  const Spectrum b = attention_spectrum(tiled, seqs);
  ASSERT_EQ(a.cum.size(), b.cum.size());
  for (size_t i = 0; i < a.cum.size(); ++i) EXPECT_EQ(a.cum[i], b.cum[i]);

  c.attention = AttentionKind::Linformer;
  c.k = {8};
  Model lin(c);
  try {
    attention_spectrum(lin, seqs);
    ADD_FAILURE() << "no error for a Linformer model";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("full attention"), std::string::npos) << e.what();
  }
  EXPECT_THROW(attention_spectrum(full, {std::vector<int32_t>(25, 5)}), InputError);  // n > max_len
  EXPECT_THROW(attention_spectrum(full, {std::vector<int32_t>(5, 5), std::vector<int32_t>(6, 5)}), InputError);
}

TEST(Spectrum, SequencesFromATokenFile) {
  TempDir dir;
  const std::string p = (dir.path / "t.tokens").string();
  analysis_test::write_token_file(p, 100, 30, 1);
  TokenFile f(p);
  const auto seqs = spectrum_sequences(f, 12, 5, 30);
  ASSERT_EQ(seqs.size(), 5u);
  for (const auto& s : seqs) {
    ASSERT_EQ(s.size(), 12u);
    EXPECT_EQ(s.front(), kBosId);
    EXPECT_EQ(s.back(), kEosId);
  }
  EXPECT_EQ(std::vector<int32_t>(seqs[0].begin() + 1, seqs[0].end() - 1),
            std::vector<int32_t>(f.tokens(), f.tokens() + 10));                  // the first window
  EXPECT_EQ(seqs[4][10], f.tokens()[f.num_tokens() - 1]);                         // the last one ends the file
  EXPECT_THROW(spectrum_sequences(f, 200, 2, 30), InputError);  // file too short
  EXPECT_THROW(spectrum_sequences(f, 12, 2, 20), InputError);   // ids beyond the vocabulary
}

TEST(Spectrum, WritesCsvAndValidSvg) {
  TempDir dir;
  Model m(full_config());
  m.init(2);
  std::vector<std::vector<int32_t>> seqs(2, std::vector<int32_t>(16, 7));
  seqs[1][3] = 9;
  const Spectrum s = attention_spectrum(m, seqs);
  const auto paths = write_spectrum(s, (dir.path / "spectrum").string(), 4);
  ASSERT_EQ(paths.size(), 3u);
  const std::string csv = slurp(paths[0]);
  EXPECT_EQ(csv.rfind("layer,head,index,cumulative\n", 0), 0u);
  EXPECT_EQ(count_of(csv, "\n"), 1u + 2 * 2 * 16);
  for (size_t i = 1; i < 3; ++i) {
    const std::string svg = slurp(paths[i]);
    EXPECT_GT(svg.size(), 1000u) << paths[i];
    EXPECT_EQ(svg_problem(svg), "") << paths[i];
  }
  EXPECT_EQ(count_of(slurp(paths[1]), "<polyline"), 2u * (2 + 1));  // per layer: 2 heads and the mean
  EXPECT_THROW(write_spectrum(s, (dir.path / "x").string(), 17), InputError);
}

// Attention maps: one SVG per layer and head with n x cols cells, a grid, and a CSV of
// layers x heads x n x cols weights; for Linformer cols = k.
TEST(AttentionMap, FilesHaveTheRightDimensions) {
  TempDir dir;
  for (auto kind : {AttentionKind::Full, AttentionKind::Linformer, AttentionKind::Tiled}) {
    ModelConfig c = full_config();
    c.attention = kind;
    c.k = {6};
    Model m(c);
    m.init(5);
    const std::vector<int32_t> ids = {1, 8, 9, 10, 11, 12, 13, 2};  // n = 8
    const std::string prefix = (dir.path / to_string(kind)).string();
    const auto paths = write_attention_maps(m, ids, prefix);
    ASSERT_EQ(paths.size(), 2u * 2 + 2);
    const int cols = kind == AttentionKind::Linformer ? 6 : 8;
    for (int l = 0; l < 2; ++l)
      for (int h = 0; h < 2; ++h) {
        const std::string svg = slurp(prefix + "_L" + std::to_string(l) + "_H" + std::to_string(h) + ".svg");
        EXPECT_EQ(svg_problem(svg), "");
        // Cells plus the background, the frame and the colour bar.
        EXPECT_EQ(count_of(svg, "<rect"), (size_t)8 * cols + 3) << to_string(kind);
      }
    EXPECT_EQ(svg_problem(slurp(prefix + "_grid.svg")), "");
    const std::string csv = slurp(prefix + ".csv");
    EXPECT_EQ(count_of(csv, "\n"), 1u + 2 * 2 * 8 * cols) << to_string(kind);
    EXPECT_NE(csv.find("\n1,1,7," + std::to_string(cols - 1) + ","), std::string::npos);  // the last cell
  }
  Model m(full_config());
  EXPECT_THROW(write_attention_maps(m, {1, 99}, (dir.path / "bad").string()), InputError);  // id >= vocab
  EXPECT_THROW(write_attention_maps(m, std::vector<int32_t>(25, 5), (dir.path / "bad").string()), InputError);
  EXPECT_THROW(write_attention_maps(m, {}, (dir.path / "bad").string()), InputError);
}

// Large maps are shown as block means (the file stays small) and say so.
TEST(Svg, LargeHeatmapIsBlockAveraged) {
  svg::Heatmap h;
  h.rows = h.cols = 600;
  h.values.assign(600 * 600, 0.5);
  h.max_cells = 100;
  const std::string s = svg::heatmap(h);
  EXPECT_EQ(svg_problem(s), "");
  EXPECT_EQ(count_of(s, "<rect"), 100u * 100 + 3);
  EXPECT_NE(s.find("block means"), std::string::npos);
  EXPECT_EQ(svg::escape("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
}
