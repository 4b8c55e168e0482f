// The registration table of attention kinds (src/nn/attention/registry.cpp): names round-trip
// through the config, what the table says about a kind (keeps_probs, exact) is what its module
// does, the tensors it declares are the model's and come in the model-file order, and the
// size check's count (attention_param_count) is exactly the model's attention tensors.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "linformer/config.hpp"
#include "linformer/error.hpp"
#include "linformer/model.hpp"
#include "nn/attention/attention.hpp"

using namespace linformer;

namespace {

ModelConfig tiny(AttentionKind kind) {
  ModelConfig c;
  c.vocab_size = 31;
  c.max_len = 16;
  c.d_model = 12;
  c.n_heads = 3;
  c.d_ff = 20;
  c.n_layers = 2;
  c.attention = kind;
  c.k = {4};
  c.dropout = 0.0f;
  c.attention_dropout = 0.0f;
  return c;
}

// Every kind, and Linformer in every sharing mode and projection kind, with one k per layer too.
std::vector<ModelConfig> every_config() {
  std::vector<ModelConfig> out;
  for (AttentionKind kind : attention_kinds()) {
    if (kind != AttentionKind::Linformer) {
      out.push_back(tiny(kind));
      continue;
    }
    for (Sharing s : {Sharing::None, Sharing::Headwise, Sharing::KeyValue, Sharing::Layerwise})
      for (ProjKind p : {ProjKind::Learned, ProjKind::Mean, ProjKind::Max, ProjKind::Conv, ProjKind::Random}) {
        ModelConfig c = tiny(kind);
        c.sharing = s;
        c.projection = p;
        out.push_back(c);
        if (s != Sharing::Layerwise) {
          c.k = {4, 8};
          out.push_back(c);
        }
      }
  }
  return out;
}

// Attention tensors of a model: the q/k/v/out maps and the projections (not attn_norm).
bool is_attention_tensor(const std::string& name) {
  return name.find("attn_") != std::string::npos && name.find("attn_norm") == std::string::npos;
}

std::vector<int32_t> ids(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = (int32_t)(rng() % 31);
  return v;
}

TEST(AttentionKinds, NamesRoundTripThroughTheTableAndTheConfig) {
  const std::vector<AttentionKind> kinds = attention_kinds();
  ASSERT_EQ(kinds.size(), attention_specs().size());
  EXPECT_GE(kinds.size(), 3u);
  for (AttentionKind k : kinds) {
    const std::string name = to_string(k);
    EXPECT_EQ(attention_kind_from_string(name), k) << name;
    EXPECT_EQ(attention_spec(k).kind, k);
    EXPECT_EQ(name, attention_spec(k).name);
    ModelConfig c = tiny(k);
    EXPECT_EQ(ModelConfig::from_json(c.to_json()).attention, k) << name;
    EXPECT_EQ(c.to_json().at("attention"), name);
  }
  EXPECT_STREQ(to_string(AttentionKind::Full), "full");
  EXPECT_STREQ(to_string(AttentionKind::Linformer), "linformer");
  EXPECT_STREQ(to_string(AttentionKind::Tiled), "tiled");
  try {
    attention_kind_from_string("nystrom");
    ADD_FAILURE() << "no ConfigError";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("\"nystrom\""), std::string::npos) << m;
    for (AttentionKind k : kinds) EXPECT_NE(m.find(std::string("\"") + to_string(k) + "\""), std::string::npos) << m;
  }
}

// keeps_probs: Model::attention_probs answers; exact: the outputs are those of "full" with the
// same tensors (so analysis may read a full copy's probabilities).
TEST(AttentionKinds, TheTableDescribesWhatTheModulesDo) {
  const Batch b = Batch::from_sequences({ids(16, 1), ids(9, 2)});
  ModelConfig cf = tiny(AttentionKind::Full);
  Model full(cf);
  full.init(3);
  full.eval();
  full.encode(b);
  const size_t n_hidden = (size_t)b.B * b.n * cf.d_model;
  const std::vector<float> h_full(full.hidden(), full.hidden() + n_hidden);
  for (AttentionKind k : attention_kinds()) {
    SCOPED_TRACE(to_string(k));
    Model m(tiny(k));
    m.init(3);
    m.eval();
    m.encode(b);
    if (attention_keeps_probs(k)) {
      const AttentionProbs p = m.attention_probs(0);
      ASSERT_NE(p.data, nullptr);
      EXPECT_EQ(p.cols, k == AttentionKind::Linformer ? 4 : b.n);
    } else {
      EXPECT_THROW(m.attention_probs(0), Error);
    }
    if (attention_is_exact(k)) {
      ASSERT_EQ(m.params().all_data(), full.params().all_data());  // the same tensors
      double err = 0;
      for (int s = 0; s < b.B; ++s)
        for (int t = 0; t < b.length(s); ++t)
          for (int c = 0; c < cf.d_model; ++c) {
            const size_t i = ((size_t)s * b.n + t) * cf.d_model + c;
            err = std::max(err, (double)std::fabs(m.hidden()[i] - h_full[i]));
          }
      std::printf("[%s vs full] max |hidden diff| %.3g\n", to_string(k), err);
      EXPECT_LT(err, 1e-5);
    }
  }
  EXPECT_TRUE(attention_is_exact(AttentionKind::Full));
  EXPECT_TRUE(attention_is_exact(AttentionKind::Tiled));
  EXPECT_FALSE(attention_is_exact(AttentionKind::Linformer));
}

// The size check of load_model counts exactly the model's attention tensors, from the same
// declarations, whatever the kind, sharing, projection and per-layer k.
TEST(AttentionKinds, ParamCountIsTheModelsAttentionTensors) {
  for (const ModelConfig& c : every_config()) {
    SCOPED_TRACE(c.to_json().dump());
    Model m(c);
    double n = 0;
    for (const ParamInfo& p : m.params().infos())
      if (is_attention_tensor(p.name)) n += (double)p.numel;
    EXPECT_EQ(attention_param_count(c, std::numeric_limits<double>::infinity()), n);
  }
}

// Stops adding layers once the count passes stop_above: a config with a billion layers is
// counted in no time (load_model refuses it against a small file).
TEST(AttentionKinds, ParamCountStopsAboveTheLimit) {
  ModelConfig c = tiny(AttentionKind::Linformer);
  c.n_layers = 1 << 30;
  const auto t0 = std::chrono::steady_clock::now();
  const double n = attention_param_count(c, 1e6);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GT(n, 1e6);
  EXPECT_LT(n, 2e6);
  EXPECT_LT(s, 5.0);
}

// The order of the attention tensors in a model file (docs/format.md): the kind's model-wide
// ones after the embedding norm, then per layer q, k, v, the kind's own, out, before attn_norm.
TEST(AttentionKinds, DeclarationsComeInTheModelFileOrder) {
  ModelConfig c = tiny(AttentionKind::Linformer);
  c.sharing = Sharing::Layerwise;
  std::vector<std::string> names;
  const Model layerwise(c);
  for (const ParamInfo& p : layerwise.params().infos()) names.push_back(p.name);
  const std::vector<std::string> head = {"tok_emb.weight", "pos_emb.weight", "emb_norm.weight", "emb_norm.bias",
                                         "attn_proj_shared", "blk.0.attn_q.weight", "blk.0.attn_q.bias",
                                         "blk.0.attn_k.weight", "blk.0.attn_k.bias", "blk.0.attn_v.weight",
                                         "blk.0.attn_v.bias", "blk.0.attn_out.weight", "blk.0.attn_out.bias",
                                         "blk.0.attn_norm.weight"};
  ASSERT_GE(names.size(), head.size());
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + head.size()), head);
  c.sharing = Sharing::None;
  names.clear();
  const Model m(c);
  for (const ParamInfo& p : m.params().infos()) names.push_back(p.name);
  const std::vector<std::string> layer = {"blk.0.attn_v.bias", "blk.0.attn_proj_e", "blk.0.attn_proj_f",
                                          "blk.0.attn_out.weight"};
  auto it = std::find(names.begin(), names.end(), layer[0]);
  ASSERT_NE(it, names.end());
  ASSERT_LE(it + layer.size(), names.end());
  EXPECT_EQ(std::vector<std::string>(it, it + layer.size()), layer);
  EXPECT_EQ(m.params().info(m.params().find("blk.1.attn_proj_e")).shape, (std::vector<int64_t>{3, 4, 16}));
}

}  // namespace
