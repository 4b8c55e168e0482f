// End-to-end tests of the `linformer` command: runs the binary (LINFORMER_BIN, set by
// tests/CMakeLists.txt) in a fresh temporary folder and checks exit codes, messages and the
// files it writes (read back with read_safetensors).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "cli_test_util.hpp"
#include "linformer/checkpoint.hpp"
#include "linformer/precision.hpp"
#include "linformer/version.hpp"

namespace fs = std::filesystem;
using cli_test::RunResult;
using pretrain_test::read_bytes;
using linformer::NamedTensor;
using linformer::read_safetensors;
using linformer::SafetensorsFile;

namespace {

// A small model that runs in milliseconds.
std::string small_config(const std::string& attention, int n_layers = 2) {
  std::string s = R"({"vocab_size": 50, "max_len": 16, "d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": )" +
                  std::to_string(n_layers) + R"(, "attention": ")" + attention + "\"";
  if (attention == "linformer") s += R"(, "k": [4], "sharing": "headwise", "proj_order": "input_first")";
  return s + "}\n";
}

std::vector<int64_t> shape_of(const SafetensorsFile& f, const std::string& name) {
  const NamedTensor* t = f.find(name);
  if (!t) {
    ADD_FAILURE() << "tensor " << name << " missing";
    return {};
  }
  return t->shape;
}

template <typename T>
std::vector<T> values_of(const SafetensorsFile& f, const std::string& name) {
  const NamedTensor* t = f.find(name);
  if (!t) {
    ADD_FAILURE() << "tensor " << name << " missing";
    return {};
  }
  std::vector<T> v(t->bytes.size() / sizeof(T));
  std::memcpy(v.data(), t->bytes.data(), v.size() * sizeof(T));
  return v;
}

class Cli : public cli_test::CliTest {
 protected:
  Cli() : CliTest("linformer_test_cli_") {}

  // Writes config.json and model.safetensors: the small model.
  void make_model(const std::string& attention = "linformer") const {
    write("config.json", small_config(attention));
    ok("init --config config.json --seed 7 --out model.safetensors");
  }
};

// --- success paths ----------------------------------------------------------------------------

TEST_F(Cli, HelpWorksForEveryCommand) {
  struct Case {
    std::string args;
    std::vector<std::string> mentions;
  };
  const std::vector<Case> cases = {
      {"--help", {"init", "forward", "--threads", "--version"}},
      {"init --help", {"--config", "--seed", "--out"}},
      {"forward --help", {"--model", "--ids", "--out", "--threads"}},
  };
  for (const Case& c : cases) {
    const RunResult r = run(c.args);
    EXPECT_EQ(r.code, 0) << c.args << ":\n" << r.output;
    for (const std::string& m : c.mentions) {
      EXPECT_NE(r.output.find(m), std::string::npos) << c.args << " does not mention " << m << ":\n" << r.output;
    }
  }
  const RunResult v = run("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_EQ(v.output.rfind("linformer ", 0), 0u) << v.output;
}

TEST_F(Cli, NoSubcommandIsAnError) {
  const RunResult r = run("");
  EXPECT_NE(r.code, 0) << r.output;
}

TEST_F(Cli, InitIsDeterministicInTheSeed) {
  write("config.json", small_config("linformer"));
  ASSERT_EQ(run("init --config config.json --seed 3 --out a.safetensors").code, 0);
  ASSERT_EQ(run("init --config config.json --seed 3 --out b.safetensors").code, 0);
  ASSERT_EQ(run("init --config config.json --seed 4 --out c.safetensors").code, 0);
  const std::string a = read_bytes(path("a.safetensors"));
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, read_bytes(path("b.safetensors"))) << "same seed, different files";
  EXPECT_NE(a, read_bytes(path("c.safetensors"))) << "different seeds, same file";

  const SafetensorsFile f = read_safetensors(path("a.safetensors"));
  EXPECT_EQ(f.metadata.count("linformer.config"), 1u);
  EXPECT_EQ(shape_of(f, "tok_emb.weight"), (std::vector<int64_t>{50, 16}));
  EXPECT_EQ(shape_of(f, "pos_emb.weight"), (std::vector<int64_t>{16, 16}));
}

class CliAttention : public Cli, public ::testing::WithParamInterface<std::string> {};

TEST_P(CliAttention, InitAndForwardWriteTensorsOfTheRightShapes) {
  make_model(GetParam());
  const std::vector<std::vector<int>> seqs = {{1, 2, 3, 4, 5}, {7, 8, 9}, {10, 11, 12, 13, 14, 15, 49}};
  std::string ids;
  for (const auto& s : seqs) {
    for (size_t i = 0; i < s.size(); ++i) {
      if (i) ids += ' ';
      ids += std::to_string(s[i]);
    }
    ids += "\n";
  }
  write("ids.txt", ids);
  RunResult r = run("forward --model model.safetensors --ids ids.txt --out out.safetensors --threads 1");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("B=3 n=7"), std::string::npos) << r.output;

  const SafetensorsFile f = read_safetensors(path("out.safetensors"));
  EXPECT_EQ(shape_of(f, "hidden"), (std::vector<int64_t>{3, 7, 16}));
  EXPECT_EQ(shape_of(f, "logits"), (std::vector<int64_t>{3, 7, 50}));
  EXPECT_EQ(shape_of(f, "mask"), (std::vector<int64_t>{3, 7}));
  ASSERT_NE(f.find("hidden"), nullptr);
  EXPECT_EQ(f.find("hidden")->dtype, "F32");
  ASSERT_NE(f.find("logits"), nullptr);
  EXPECT_EQ(f.find("logits")->dtype, "F32");
  ASSERT_NE(f.find("mask"), nullptr);
  EXPECT_EQ(f.find("mask")->dtype, "I32");

  const std::vector<int32_t> mask = values_of<int32_t>(f, "mask");
  ASSERT_EQ(mask.size(), 21u);
  for (int b = 0; b < 3; ++b) {
    for (int t = 0; t < 7; ++t) {
      EXPECT_EQ(mask[b * 7 + t], t < static_cast<int>(seqs[b].size()) ? 1 : 0) << "mask[" << b << "," << t << "]";
    }
  }
  const std::vector<float> hidden = values_of<float>(f, "hidden");
  const std::vector<float> logits = values_of<float>(f, "logits");
  for (float x : hidden) ASSERT_TRUE(std::isfinite(x));
  for (float x : logits) ASSERT_TRUE(std::isfinite(x));

  // The padded sequence's real positions give what the sequence alone gives: padding is masked.
  write("one.txt", "7 8 9\n");
  r = run("--threads 1 forward --model model.safetensors --ids one.txt --out one.safetensors");
  ASSERT_EQ(r.code, 0) << r.output;
  const SafetensorsFile g = read_safetensors(path("one.safetensors"));
  EXPECT_EQ(shape_of(g, "hidden"), (std::vector<int64_t>{1, 3, 16}));
  const std::vector<float> alone = values_of<float>(g, "hidden");
  ASSERT_EQ(alone.size(), 48u);
  double worst = 0;
  for (int t = 0; t < 3; ++t) {
    for (int c = 0; c < 16; ++c) {
      worst = std::max(worst, std::abs(double(alone[t * 16 + c]) - double(hidden[(1 * 7 + t) * 16 + c])));
    }
  }
  std::printf("[%s] worst |hidden(padded) - hidden(alone)| = %.3g\n", GetParam().c_str(), worst);
  EXPECT_LT(worst, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Attention, CliAttention, ::testing::Values("linformer", "full"));

// --bf16: the logits stay within bf16 rounding of float32's but are not identical (the products
// did run in bf16); on a CPU without AVX512_BF16 the flag is refused with a clear error.
TEST_F(Cli, Bf16ModeIsCloseToFloat32OrRefused) {
  make_model("linformer");
  write("ids.txt", "1 2 3 4 5 6 7 8 9 10 11 12\n13 14 15\n");
  ok("forward --model model.safetensors --ids ids.txt --out f32.safetensors --threads 1");
  if (!linformer::bf16_supported()) {
    expect_failure("forward --bf16 --model model.safetensors --ids ids.txt --out bf16.safetensors", {"AVX512_BF16"});
    return;
  }
  ok("forward --bf16 --model model.safetensors --ids ids.txt --out bf16.safetensors --threads 1");
  const std::vector<float> a = values_of<float>(read_safetensors(path("f32.safetensors")), "logits");
  const std::vector<float> b = values_of<float>(read_safetensors(path("bf16.safetensors")), "logits");
  ASSERT_EQ(a.size(), b.size());
  double diff2 = 0, ref2 = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff2 += (double(b[i]) - a[i]) * (double(b[i]) - a[i]);
    ref2 += double(a[i]) * a[i];
  }
  const double rel = std::sqrt(diff2 / ref2);
  std::printf("[bf16] logits: ||bf16 - f32|| / ||f32|| = %.3g\n", rel);
  EXPECT_GT(rel, 0.0);
  EXPECT_LT(rel, 2e-2);
}

// --- errors: non-zero exit, a message naming the culprit, no file left behind -------------------

TEST_F(Cli, InitRejectsBadConfigs) {
  expect_failure("init --config missing.json --out m.safetensors", {"missing.json"});

  write("zero_layers.json", small_config("linformer", 0));
  expect_failure("init --config zero_layers.json --out m.safetensors", {"n_layers"});

  write("heads.json", R"({"d_model": 16, "n_heads": 3})");
  expect_failure("init --config heads.json --out m.safetensors", {"n_heads"});

  write("typo.json", R"({"n_head": 2})");
  expect_failure("init --config typo.json --out m.safetensors", {"n_head"});

  write("notjson.json", "{\"vocab_size\": ");
  expect_failure("init --config notjson.json --out m.safetensors", {"notjson.json"});

  write("config.json", small_config("linformer"));
  expect_failure("init --config config.json --out no_such_dir/m.safetensors", {"no_such_dir"});
  expect_failure("init --out m.safetensors", {"--config"});  // CLI11: required option
}

TEST_F(Cli, ForwardRejectsBadIds) {
  make_model();
  const std::string fwd = "forward --model model.safetensors --out out.safetensors --ids ";

  write("vocab.txt", "1 2 3\n4 50 6\n");
  expect_failure(fwd + "vocab.txt", {"vocab.txt:2:", "50"});

  write("negative.txt", "1 2 -1\n");
  expect_failure(fwd + "negative.txt", {"negative.txt:1:", "-1"});

  write("word.txt", "1 2\n3 4\n5 x7 6\n");
  expect_failure(fwd + "word.txt", {"word.txt:3:", "x7"});

  write("float.txt", "1 2.5\n");
  expect_failure(fwd + "float.txt", {"float.txt:1:", "2.5"});

  std::string long_line;
  for (int i = 0; i < 17; ++i) long_line += std::to_string(i + 1) + " ";
  write("long.txt", "1 2\n" + long_line + "\n");
  expect_failure(fwd + "long.txt", {"long.txt:2:", "17", "16"});

  write("blank.txt", "1 2\n\n3\n");
  expect_failure(fwd + "blank.txt", {"blank.txt:2:", "empty"});

  write("empty.txt", "");
  expect_failure(fwd + "empty.txt", {"empty.txt"});

  expect_failure(fwd + "nope.txt", {"nope.txt"});

  write("ok.txt", "1 2 3\n");
  expect_failure("forward --model model.safetensors --out out.safetensors", {"--ids"});
  expect_failure("forward --model model.safetensors --ids ok.txt --out out.safetensors --threads -1", {"--threads"});
  expect_failure("forward --model model.safetensors --ids ok.txt --out no_such_dir/out.safetensors", {"no_such_dir"});
}

TEST_F(Cli, ForwardRejectsBadModelFiles) {
  make_model();
  write("ids.txt", "1 2 3\n");
  expect_failure("forward --model nope.safetensors --ids ids.txt --out out.safetensors", {"nope.safetensors"});

  const std::string bytes = read_bytes(path("model.safetensors"));
  ASSERT_GT(bytes.size(), 100u);
  write("half.safetensors", bytes.substr(0, bytes.size() / 2));
  expect_failure("forward --model half.safetensors --ids ids.txt --out out.safetensors", {"half.safetensors"});

  write("short.safetensors", bytes.substr(0, bytes.size() - 4));
  expect_failure("forward --model short.safetensors --ids ids.txt --out out.safetensors", {"short.safetensors"});

  write("tiny.safetensors", bytes.substr(0, 4));
  expect_failure("forward --model tiny.safetensors --ids ids.txt --out out.safetensors", {"tiny.safetensors"});

  write("notes.txt", "not a model\n");
  expect_failure("forward --model notes.txt --ids ids.txt --out out.safetensors", {"notes.txt"});
}

}  // namespace

// --version prints the library's version constant (linformer/version.hpp) and the file format.
TEST_F(Cli, VersionIsTheLibraryConstant) {
  const RunResult v = run("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.output.find(std::string("linformer ") + linformer::kVersion + " (model file format " +
                          linformer::kModelFileFormatVersion + ")"),
            std::string::npos)
      << v.output;
}
