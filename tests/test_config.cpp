// ModelConfig: JSON round trip, validation (every invalid value names its field), strict parsing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "linformer/config.hpp"
#include "linformer/error.hpp"

using namespace linformer;
using json = nlohmann::json;

namespace {

// Runs f, expects an exception of type E whose message contains every string in `needles`.
template <class E>
void expect_error(const std::function<void()>& f, std::initializer_list<std::string> needles) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one mentioning " << *needles.begin();
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

void expect_config_error(const json& j, std::initializer_list<std::string> needles) {
  expect_error<ConfigError>([&] { ModelConfig::from_json(j); }, needles);
}

ModelConfig nondefault() {
  ModelConfig c;
  c.vocab_size = 123;
  c.max_len = 77;
  c.d_model = 48;
  c.n_heads = 6;
  c.d_ff = 100;
  c.n_layers = 3;
  c.attention = AttentionKind::Linformer;
  c.k = {16, 8, 4};
  c.sharing = Sharing::None;
  c.proj_order = ProjOrder::LinearFirst;
  c.projection = ProjKind::Random;
  c.dropout = 0.25f;
  c.attention_dropout = 0.05f;
  c.layer_norm_eps = 1e-12f;
  c.init_std = 0.037f;
  c.num_labels = 5;
  c.pooling = Pooling::Mean;
  return c;
}

void expect_same(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.max_len, b.max_len);
  EXPECT_EQ(a.d_model, b.d_model);
  EXPECT_EQ(a.n_heads, b.n_heads);
  EXPECT_EQ(a.d_ff, b.d_ff);
  EXPECT_EQ(a.n_layers, b.n_layers);
  EXPECT_EQ(a.attention, b.attention);
  EXPECT_EQ(a.k, b.k);
  EXPECT_EQ(a.sharing, b.sharing);
  EXPECT_EQ(a.proj_order, b.proj_order);
  EXPECT_EQ(a.projection, b.projection);
  // Bitwise: floats must survive the trip through JSON exactly.
  EXPECT_EQ(std::bit_cast<uint32_t>(a.dropout), std::bit_cast<uint32_t>(b.dropout));
  EXPECT_EQ(std::bit_cast<uint32_t>(a.attention_dropout), std::bit_cast<uint32_t>(b.attention_dropout));
  EXPECT_EQ(std::bit_cast<uint32_t>(a.layer_norm_eps), std::bit_cast<uint32_t>(b.layer_norm_eps));
  EXPECT_EQ(std::bit_cast<uint32_t>(a.init_std), std::bit_cast<uint32_t>(b.init_std));
  EXPECT_EQ(a.num_labels, b.num_labels);
  EXPECT_EQ(a.pooling, b.pooling);
}

}  // namespace

TEST(Config, DefaultsAreValid) { EXPECT_NO_THROW(ModelConfig().validate()); }

TEST(Config, EmptyObjectGivesDefaults) { expect_same(ModelConfig::from_json(json::object()), ModelConfig()); }

TEST(Config, RoundTripDefaults) {
  const ModelConfig c;
  expect_same(ModelConfig::from_json(c.to_json()), c);
  expect_same(ModelConfig::from_json(json::parse(c.to_json().dump())), c);
}

TEST(Config, RoundTripNondefault) {
  const ModelConfig c = nondefault();
  expect_same(ModelConfig::from_json(json::parse(c.to_json().dump())), c);
}

TEST(Config, RoundTripEveryEnumValue) {
  for (auto att : {AttentionKind::Full, AttentionKind::Linformer})
    for (auto sh : {Sharing::None, Sharing::Headwise, Sharing::KeyValue, Sharing::Layerwise})
      for (auto po : {ProjOrder::InputFirst, ProjOrder::LinearFirst})
        for (auto pool : {Pooling::First, Pooling::Mean})
          for (auto pk : {ProjKind::Learned, ProjKind::Mean, ProjKind::Max, ProjKind::Conv, ProjKind::Random}) {
            ModelConfig c;
            c.attention = att;
            c.sharing = sh;
            c.proj_order = po;
            c.pooling = pool;
            c.projection = pk;
            expect_same(ModelConfig::from_json(json::parse(c.to_json().dump())), c);
          }
}

TEST(Config, FloatsRoundTripBitwise) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (int i = 0; i < 20000; ++i) {
    ModelConfig c;
    c.dropout = u(rng) * 0.999f;
    c.attention_dropout = std::ldexp(u(rng), -(int)(rng() % 40));
    c.layer_norm_eps = std::ldexp(0.5f + u(rng), -(int)(rng() % 100));
    c.init_std = std::ldexp(0.5f + u(rng), (int)(rng() % 20) - 10);
    const ModelConfig d = ModelConfig::from_json(json::parse(c.to_json().dump()));
    ASSERT_EQ(std::bit_cast<uint32_t>(c.dropout), std::bit_cast<uint32_t>(d.dropout)) << c.dropout;
    ASSERT_EQ(std::bit_cast<uint32_t>(c.attention_dropout), std::bit_cast<uint32_t>(d.attention_dropout));
    ASSERT_EQ(std::bit_cast<uint32_t>(c.layer_norm_eps), std::bit_cast<uint32_t>(d.layer_norm_eps));
    ASSERT_EQ(std::bit_cast<uint32_t>(c.init_std), std::bit_cast<uint32_t>(d.init_std));
  }
}

TEST(Config, JsonIsReadable) {
  const json j = ModelConfig().to_json();
  EXPECT_EQ(j.dump(),
            R"({"attention":"linformer","attention_dropout":0.1,"d_ff":1024,"d_model":256,"dropout":0.1,)"
            R"("init_std":0.02,"k":64,"layer_norm_eps":1e-05,"max_len":512,"n_heads":4,"n_layers":4,)"
            R"("num_labels":0,"pooling":"first","proj_order":"input_first","projection":"learned","sharing":"headwise",)"
            R"("vocab_size":8000})");
}

TEST(Config, KeysAreTheFieldNames) {
  const json j = nondefault().to_json();
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  std::vector<std::string> expected = {"vocab_size", "max_len",    "d_model",    "n_heads",         "d_ff",
                                       "n_layers",   "attention",  "k",          "sharing",         "proj_order",
                                       "projection", "dropout",    "attention_dropout",       "layer_norm_eps", "init_std",
                                       "num_labels", "pooling"};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(keys, expected);
  EXPECT_EQ(j["k"], json({16, 8, 4}));
  EXPECT_EQ(j["sharing"], "none");
  EXPECT_EQ(j["proj_order"], "linear_first");
  EXPECT_EQ(j["pooling"], "mean");
  EXPECT_EQ(j["projection"], "random");
}

TEST(Config, KAsIntOrList) {
  EXPECT_EQ(ModelConfig::from_json(json{{"k", 32}}).k, std::vector<int>{32});
  EXPECT_EQ(ModelConfig::from_json(json{{"k", {32}}}).k, std::vector<int>{32});
  EXPECT_EQ(ModelConfig::from_json(json{{"n_layers", 2}, {"k", {32, 16}}}).k, (std::vector<int>{32, 16}));
  EXPECT_EQ(ModelConfig().to_json()["k"], json(64));  // one value is written as an int
  const ModelConfig c = ModelConfig::from_json(json{{"n_layers", 3}, {"k", {8, 4, 2}}});
  EXPECT_EQ(c.k_of(0), 8);
  EXPECT_EQ(c.k_of(2), 2);
  EXPECT_EQ(ModelConfig::from_json(json{{"k", 5}}).k_of(3), 5);
}

TEST(Config, ToStringGivesJsonStrings) {
  EXPECT_STREQ(to_string(AttentionKind::Full), "full");
  EXPECT_STREQ(to_string(AttentionKind::Linformer), "linformer");
  EXPECT_STREQ(to_string(Sharing::None), "none");
  EXPECT_STREQ(to_string(Sharing::Headwise), "headwise");
  EXPECT_STREQ(to_string(Sharing::KeyValue), "kv");
  EXPECT_STREQ(to_string(Sharing::Layerwise), "layerwise");
  EXPECT_STREQ(to_string(ProjOrder::InputFirst), "input_first");
  EXPECT_STREQ(to_string(ProjOrder::LinearFirst), "linear_first");
  EXPECT_STREQ(to_string(Pooling::First), "first");
  EXPECT_STREQ(to_string(Pooling::Mean), "mean");
  EXPECT_STREQ(to_string(ProjKind::Learned), "learned");
  EXPECT_STREQ(to_string(ProjKind::Mean), "mean");
  EXPECT_STREQ(to_string(ProjKind::Max), "max");
  EXPECT_STREQ(to_string(ProjKind::Conv), "conv");
  EXPECT_STREQ(to_string(ProjKind::Random), "random");
}

// ---- validate(): every invalid value gives a ConfigError naming the field and the value.

TEST(ConfigValidate, NonPositiveSizes) {
  for (const char* field : {"vocab_size", "max_len", "d_model", "n_heads", "d_ff", "n_layers"}) {
    expect_config_error(json{{field, 0}}, {field, "(0)"});
    expect_config_error(json{{field, -3}}, {field, "(-3)"});
  }
}

TEST(ConfigValidate, DModelNotDivisibleByHeads) {
  expect_config_error(json{{"d_model", 250}, {"n_heads", 4}},
                      {"config: d_model (250) is not divisible by n_heads (4)"});
}

TEST(ConfigValidate, KListLengthMismatch) {
  expect_config_error(json{{"n_layers", 4}, {"k", {8, 8}}}, {"k", "2 values", "n_layers = 4"});
  expect_config_error(json{{"n_layers", 2}, {"k", {8, 8, 8}}}, {"k", "3 values"});
  expect_config_error(json{{"k", json::array()}}, {"k", "empty"});
}

TEST(ConfigValidate, KOutOfRange) {
  expect_config_error(json{{"k", 0}}, {"k[0]", "(0)", "max_len"});
  expect_config_error(json{{"max_len", 32}, {"k", 33}}, {"k[0]", "(33)", "max_len = 32"});
  expect_config_error(json{{"n_layers", 2}, {"max_len", 32}, {"k", {8, -1}}}, {"k[1]", "(-1)"});
  // k == max_len is allowed.
  EXPECT_NO_THROW(ModelConfig::from_json(json{{"max_len", 32}, {"k", 32}}));
}

TEST(ConfigValidate, KRangeIgnoredForFullAttention) {
  // The default k = 64 with max_len 32 is fine when there is no projection.
  EXPECT_NO_THROW(ModelConfig::from_json(json{{"attention", "full"}, {"max_len", 32}}));
  // ...but the list length is still checked (k_of depends on it).
  expect_config_error(json{{"attention", "full"}, {"n_layers", 3}, {"k", {8, 8}}}, {"k", "2 values"});
}

TEST(ConfigValidate, LayerwiseNeedsUniformK) {
  expect_config_error(json{{"n_layers", 3}, {"k", {16, 8, 8}}, {"sharing", "layerwise"}},
                      {"k", "[16, 8, 8]", "layerwise"});
  EXPECT_NO_THROW(ModelConfig::from_json(json{{"n_layers", 3}, {"k", {8, 8, 8}}, {"sharing", "layerwise"}}));
  // Nonuniform k is fine with the other sharing modes.
  for (const char* sh : {"none", "headwise", "kv"})
    EXPECT_NO_THROW(ModelConfig::from_json(json{{"n_layers", 3}, {"k", {16, 8, 4}}, {"sharing", sh}}));
}

// Window kinds (mean, max, conv) cut max_len into k equal windows; the learned and random
// projections take any k in [1, max_len]; full attention ignores the projection.
TEST(ConfigValidate, WindowKindsNeedKDividingMaxLen) {
  for (const char* kind : {"mean", "max", "conv"}) {
    expect_config_error(json{{"max_len", 100}, {"k", 30}, {"projection", kind}},
                        {"projection", kind, "max_len (100)", "k (30)", "divide"});
    expect_config_error(json{{"max_len", 100}, {"n_layers", 2}, {"k", {25, 30}}, {"projection", kind}},
                        {"projection", "k[1] (30)"});
    EXPECT_NO_THROW(ModelConfig::from_json(json{{"max_len", 100}, {"k", 25}, {"projection", kind}}));
    EXPECT_NO_THROW(ModelConfig::from_json(json{{"max_len", 100}, {"k", 30}, {"projection", kind}, {"attention", "full"}}));
  }
  for (const char* kind : {"learned", "random"})
    EXPECT_NO_THROW(ModelConfig::from_json(json{{"max_len", 100}, {"k", 30}, {"projection", kind}}));
  EXPECT_EQ(ModelConfig::from_json(json{{"max_len", 100}, {"k", 25}, {"projection", "conv"}}).window_of(0), 4);
}

TEST(ConfigValidate, Dropouts) {
  for (const char* field : {"dropout", "attention_dropout"}) {
    expect_config_error(json{{field, -0.1}}, {field, "-0.1"});
    expect_config_error(json{{field, 1.0}}, {field, "(1)", "[0, 1)"});
    expect_config_error(json{{field, 2.5}}, {field, "2.5"});
    EXPECT_NO_THROW(ModelConfig::from_json(json{{field, 0.0}}));
    EXPECT_NO_THROW(ModelConfig::from_json(json{{field, 0.99}}));
  }
}

TEST(ConfigValidate, EpsAndInitStd) {
  for (const char* field : {"layer_norm_eps", "init_std"}) {
    expect_config_error(json{{field, 0.0}}, {field, "(0)"});
    expect_config_error(json{{field, -1e-5}}, {field, "-1e-05"});
    expect_config_error(json{{field, 1e300}}, {field, "inf"});  // overflows float
  }
}

TEST(ConfigValidate, NanIsRejected) {
  ModelConfig c;
  c.dropout = std::numeric_limits<float>::quiet_NaN();
  expect_error<ConfigError>([&] { c.validate(); }, {"dropout", "nan"});
  c = ModelConfig();
  c.init_std = std::numeric_limits<float>::quiet_NaN();
  expect_error<ConfigError>([&] { c.validate(); }, {"init_std"});
}

TEST(ConfigValidate, NumLabels) {
  expect_config_error(json{{"num_labels", -1}}, {"num_labels", "(-1)"});
  EXPECT_NO_THROW(ModelConfig::from_json(json{{"num_labels", 0}}));
  EXPECT_EQ(ModelConfig::from_json(json{{"num_labels", 3}}).num_labels, 3);
}

TEST(ConfigValidate, ValidateOnStruct) {
  ModelConfig c;
  c.k = {8, 8};
  c.n_layers = 3;
  expect_error<ConfigError>([&] { c.validate(); }, {"k has 2 values"});
  c = ModelConfig();
  c.k.clear();
  expect_error<ConfigError>([&] { c.validate(); }, {"k has 0 values"});
}

// ---- from_json: strict types and keys.

TEST(ConfigJson, UnknownKey) {
  expect_config_error(json{{"d_modle", 256}}, {"unknown key", "d_modle"});
  expect_config_error(json{{"vocab_size", 10}, {"extra", nullptr}}, {"unknown key", "extra"});
}

TEST(ConfigJson, WrongTypes) {
  expect_config_error(json{{"d_model", "256"}}, {"d_model", "integer", "\"256\""});
  expect_config_error(json{{"d_model", 256.5}}, {"d_model", "integer"});
  expect_config_error(json{{"n_layers", true}}, {"n_layers", "integer"});
  expect_config_error(json{{"n_heads", nullptr}}, {"n_heads", "integer", "null"});
  expect_config_error(json{{"dropout", "0.1"}}, {"dropout", "number"});
  expect_config_error(json{{"init_std", json::array()}}, {"init_std", "number"});
  expect_config_error(json{{"k", "64"}}, {"k", "integer or a list of integers"});
  expect_config_error(json{{"k", 64.0}}, {"k", "integer"});
  expect_config_error(json{{"n_layers", 2}, {"k", {8, "x"}}}, {"k[1]", "integer"});
  expect_config_error(json{{"attention", 1}}, {"attention", "string", "\"full\", \"linformer\""});
  expect_config_error(json{{"d_model", 1ll << 40}}, {"d_model", "out of range"});
  expect_config_error(json{{"vocab_size", -(1ll << 40)}}, {"vocab_size", "out of range"});
  expect_config_error(json{{"vocab_size", 18446744073709551615ull}}, {"vocab_size", "out of range"});
}

TEST(ConfigJson, UnknownEnumValues) {
  expect_config_error(json{{"attention", "linear"}}, {"attention", "\"linear\"", "\"full\", \"linformer\""});
  expect_config_error(json{{"sharing", "layer"}},
                      {"sharing", "\"layer\"", "\"none\", \"headwise\", \"kv\", \"layerwise\""});
  expect_config_error(json{{"proj_order", "first"}}, {"proj_order", "\"input_first\", \"linear_first\""});
  expect_config_error(json{{"pooling", "max"}}, {"pooling", "\"first\", \"mean\""});
  expect_config_error(json{{"projection", "avg"}},
                      {"projection", "\"avg\"", "\"learned\", \"mean\", \"max\", \"conv\", \"random\""});
  expect_config_error(json{{"attention", "Full"}}, {"attention"});  // case matters
}

TEST(ConfigJson, NotAnObject) {
  expect_config_error(json::array({1, 2}), {"object"});
  expect_config_error(json("x"), {"object"});
}

// ---- from_file

class ConfigFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("linformer_test_config_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const auto p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  std::filesystem::path dir_;
};

TEST_F(ConfigFile, ReadsAFile) {
  const std::string p = write("c.json", nondefault().to_json().dump(2));
  expect_same(ModelConfig::from_file(p), nondefault());
}

TEST_F(ConfigFile, ReadsTheShippedConfigs) {
  const auto root = std::filesystem::path(__FILE__).parent_path().parent_path() / "configs";
  if (!std::filesystem::exists(root)) GTEST_SKIP() << "no configs/ folder";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(root))
    if (e.path().extension() == ".json") {
      EXPECT_NO_THROW(ModelConfig::from_file(e.path().string())) << e.path();
      ++n;
    }
  EXPECT_GT(n, 0);
}

TEST_F(ConfigFile, MissingFileIsIoError) {
  const std::string p = (dir_ / "nope.json").string();
  expect_error<IoError>([&] { ModelConfig::from_file(p); }, {p});
}

TEST_F(ConfigFile, DirectoryIsIoError) {
  expect_error<IoError>([&] { ModelConfig::from_file(dir_.string()); }, {dir_.string(), "directory"});
}

TEST_F(ConfigFile, InvalidJsonNamesPathAndPosition) {
  const std::string p = write("bad.json", "{\n  \"d_model\": 256,\n  \"n_heads\": 4,,\n}\n");
  expect_error<ConfigError>([&] { ModelConfig::from_file(p); }, {p, "invalid JSON", "line 3"});
  const std::string e = write("empty.json", "");
  expect_error<ConfigError>([&] { ModelConfig::from_file(e); }, {e, "invalid JSON"});
}

TEST_F(ConfigFile, InvalidValueNamesPathAndField) {
  const std::string p = write("c.json", R"({"d_model": 250, "n_heads": 4})");
  expect_error<ConfigError>([&] { ModelConfig::from_file(p); }, {p, "d_model (250) is not divisible by n_heads (4)"});
  const std::string q = write("d.json", R"({"sharing": "all"})");
  expect_error<ConfigError>([&] { ModelConfig::from_file(q); }, {q, "sharing", "layerwise"});
}
