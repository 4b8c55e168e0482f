// Helpers shared by the pretraining tests (test_trainer.cpp, test_cli_pretrain.cpp): a small
// generated corpus with structure a tiny model can learn, temporary folders, files, metrics.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_util.hpp"

namespace pretrain_test {

namespace fs = std::filesystem;

using test_util::read_bytes;
using test_util::TempDir;
using test_util::write_file;

// Sentences "subject verb object ." from a tiny grammar (6 x 6 x 6 choices), an empty line
// between documents of 5 sentences. A unigram tokenizer of 40 pieces fits it.
inline std::string grammar_corpus(int lines, uint32_t seed) {
  static const char* subj[] = {"the cat", "a dog", "my friend", "the teacher", "our neighbour", "the old man"};
  static const char* verb[] = {"sees", "likes", "finds", "follows", "calls", "helps"};
  static const char* obj[] = {"the bird", "a red ball", "the small house", "her brother", "the garden",
                              "a green apple"};
  std::mt19937 rng(seed);
  std::string text;
  for (int i = 0; i < lines; ++i) {
    text += std::string(subj[rng() % 6]) + " " + verb[rng() % 6] + " " + obj[rng() % 6] + " .\n";
    if (i % 5 == 4) text += "\n";
  }
  return text;
}

// Four fixed sentences, twice: a corpus a tiny model can learn by heart.
inline std::string tiny_corpus() {
  const std::string s =
      "the cat sees the bird .\na dog likes a red ball .\nmy friend follows the small house .\n"
      "the teacher calls her brother .\n";
  return s + s;
}

constexpr int kTokVocab = 40;  // tokenizer vocabulary for grammar_corpus

// A model config small enough to train hundreds of steps in a second (dropout on: the default).
inline std::string tiny_config_json(const std::string& attention, int vocab = kTokVocab) {
  std::string s = "{\"vocab_size\": " + std::to_string(vocab) +
                  ", \"max_len\": 32, \"d_model\": 32, \"n_heads\": 2, \"d_ff\": 64, \"n_layers\": 2, "
                  "\"attention\": \"" + attention + "\"";
  if (attention == "linformer") s += ", \"k\": [8], \"sharing\": \"headwise\", \"proj_order\": \"input_first\"";
  return s + "}\n";
}

// metrics.jsonl, one object per line.
inline std::vector<nlohmann::json> read_metrics(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

// The train_loss values of metrics.jsonl, in order.
inline std::vector<double> train_losses(const std::string& path) {
  std::vector<double> out;
  for (const auto& j : read_metrics(path))
    if (j.contains("train_loss")) out.push_back(j.at("train_loss").get<double>());
  return out;
}

// Two metrics files describe the same run: the same lines with the same keys and, except for
// the timing fields (tokens_per_s, elapsed_s, comm_s), the same values exactly (compared as
// their JSON text, i.e. bit for bit).
inline void expect_same_metrics(const std::string& a, const std::string& b) {
  const auto ma = read_metrics(a), mb = read_metrics(b);
  ASSERT_EQ(ma.size(), mb.size()) << a << " vs " << b;
  for (size_t i = 0; i < ma.size(); ++i) {
    ASSERT_EQ(ma[i].size(), mb[i].size()) << "line " << i + 1 << ": " << ma[i].dump() << " vs " << mb[i].dump();
    for (auto it = ma[i].begin(); it != ma[i].end(); ++it) {
      if (it.key() == "tokens_per_s" || it.key() == "elapsed_s" || it.key() == "comm_s") continue;
      ASSERT_TRUE(mb[i].contains(it.key())) << "line " << i + 1 << ": " << it.key();
      EXPECT_EQ(it.value().dump(), mb[i].at(it.key()).dump())
          << "line " << i + 1 << " (step " << ma[i].value("step", -1) << "), field " << it.key();
    }
  }
}

inline std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace pretrain_test
