// End-to-end tests of `linformer spectrum` and `linformer attention-map` (docs/analysis.md):
// the files they write (valid SVG, CSV of the right size) and their errors.
#include <gtest/gtest.h>

#include <string>

#include "analysis_test_util.hpp"
#include "cli_test_util.hpp"

using analysis_test::count_of;
using analysis_test::svg_problem;

namespace {

class CliAnalysis : public cli_test::CliTest {
 protected:
  CliAnalysis() : CliTest("linformer_test_cli_analysis") {}
  void SetUp() override {
    CliTest::SetUp();
    const std::string base = R"({"vocab_size": 40, "max_len": 32, "d_model": 16, "n_heads": 2, "d_ff": 24,
                                 "n_layers": 2, "init_std": 0.5, )";
    write("full.json", base + R"("attention": "full"})");
    write("lin.json", base + R"("attention": "linformer", "k": 8, "projection": "mean"})");
    ok("init --config full.json --out full.safetensors --seed 1");
    ok("init --config lin.json --out lin.safetensors --seed 1");
    analysis_test::write_token_file(path("data.tokens"), 300, 40, 7);
  }
};

}  // namespace

TEST_F(CliAnalysis, SpectrumWritesCsvAndPictures) {
  const auto r = run("spectrum --model full.safetensors --data data.tokens --out spec --sequences 6 --threads 1");
  ASSERT_EQ(r.code, 0) << r.output;
  // n = max_len = 32 (< 512), so the heat map is at index n/4 = 8; the table is printed.
  EXPECT_NE(r.output.find("6 sequences of n = 32"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("largest 8 of 32"), std::string::npos) << r.output;
  const std::string csv = read("spec/spectrum.csv");
  EXPECT_EQ(count_of(csv, "\n"), 1u + 2 * 2 * 32);
  EXPECT_NE(csv.find("\n1,1,32,1.000000\n"), std::string::npos);  // every curve ends at 1
  for (const char* svg : {"spec/spectrum_curves.svg", "spec/spectrum_heatmap.svg"}) {
    const std::string s = read(svg);
    EXPECT_GT(s.size(), 1000u) << svg;
    EXPECT_EQ(svg_problem(s), "") << svg;
  }
  ok("spectrum --model full.safetensors --data data.tokens --out spec16 --sequences 2 --seq-len 16 --at 3");
  EXPECT_EQ(count_of(read("spec16/spectrum.csv"), "\n"), 1u + 2 * 2 * 16);
}

TEST_F(CliAnalysis, SpectrumErrors) {
  expect_failure("spectrum --model lin.safetensors --data data.tokens --out s", {"lin.safetensors", "linformer",
                                                                                  "full attention"});
  expect_failure("spectrum --model full.safetensors --data data.tokens --out s --seq-len 64", {"--seq-len 64",
                                                                                                "max_len 32"});
  expect_failure("spectrum --model full.safetensors --data data.tokens --out s --seq-len 16 --at 17", {"--at 17"});
  expect_failure("spectrum --model full.safetensors --data missing.tokens --out s", {"missing.tokens"});
  analysis_test::write_token_file(path("short.tokens"), 10, 40, 1);
  expect_failure("spectrum --model full.safetensors --data short.tokens --out s", {"short.tokens", "tokens"});
  analysis_test::write_token_file(path("big.tokens"), 100, 400, 1);
  expect_failure("spectrum --model full.safetensors --data big.tokens --out s", {"big.tokens", "vocabulary"});
}

TEST_F(CliAnalysis, AttentionMapFilesAndDimensions) {
  write("ids.txt", "1 5 6 7 8 2\n1 9 10 11 12 13 14 15 16 2\n");
  for (const char* model : {"full", "lin"}) {
    const std::string m = std::string(model) + ".safetensors", out = std::string("maps_") + model;
    ok("attention-map --model " + m + " --ids ids.txt --line 2 --out " + out);
    const int n = 10, cols = std::string(model) == "full" ? 10 : 8;
    for (int l = 0; l < 2; ++l)
      for (int h = 0; h < 2; ++h) {
        const std::string s = read(out + "/attention_L" + std::to_string(l) + "_H" + std::to_string(h) + ".svg");
        EXPECT_EQ(svg_problem(s), "") << model;
        EXPECT_EQ(count_of(s, "<rect"), (size_t)n * cols + 3) << model;  // cells + background, frame, colour bar
      }
    EXPECT_EQ(svg_problem(read(out + "/attention_grid.svg")), "");
    EXPECT_EQ(count_of(read(out + "/attention.csv"), "\n"), 1u + 2 * 2 * n * cols) << model;
  }
  // The ids themselves instead of a file.
  ok("attention-map --model full.safetensors --ids '1 5 6 2' --out inline");
  EXPECT_EQ(count_of(read("inline/attention.csv"), "\n"), 1u + 2 * 2 * 4 * 4);
}

TEST_F(CliAnalysis, AttentionMapErrors) {
  write("ids.txt", "1 5 6 2\n");
  expect_failure("attention-map --model full.safetensors --ids 'idz.txt' --out m", {"idz.txt", "neither"});
  expect_failure("attention-map --model full.safetensors --ids '1 5 99' --out m", {"99", "vocabulary"});
  expect_failure("attention-map --model full.safetensors --ids ids.txt --line 3 --out m", {"ids.txt", "--line 3"});
  expect_failure("attention-map --model full.safetensors --out m", {"--ids", "--text"});
  expect_failure("attention-map --model full.safetensors --text 'hello' --out m", {"tokenizer"});
  std::string long_ids;
  for (int i = 0; i < 33; ++i) long_ids += "5 ";
  expect_failure("attention-map --model full.safetensors --ids '" + long_ids + "' --out m", {"33", "max_len"});
}
