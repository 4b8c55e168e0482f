// Helpers shared by the fine-tuning tests (test_finetune.cpp, test_cli_finetune.cpp): a
// trivially separable synthetic task written by hand (label "yes" when the digit 7 occurs in a
// ListOps-vocabulary text of digits), and a model config small enough to learn it in a second.
#pragma once
#include <cstdint>
#include <random>
#include <string>

#include "pretrain_test_util.hpp"

namespace finetune_test {

// One split: `n` lines "LABEL<TAB>d d d ..." of 3..10 digits; about half contain a 7 ("yes").
inline std::string has7_split(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out;
  for (int i = 0; i < n; ++i) {
    const int len = 3 + (int)(rng() % 8);
    std::string digits[10];
    for (int t = 0; t < len; ++t) {
      int d = (int)(rng() % 9);  // 0..8, then skip 7
      digits[t] = std::to_string(d == 7 ? 9 : d);
    }
    const bool yes = rng() % 2 == 0;
    if (yes) digits[rng() % len] = "7";
    std::string text;
    for (int t = 0; t < len; ++t) text += (t ? " " : "") + digits[t];
    out += std::string(yes ? "yes" : "no") + "\t" + text + "\n";
  }
  return out;
}

inline const char* kHas7TaskJson =
    "{\"name\": \"has7\", \"labels\": [\"no\", \"yes\"], \"tokenizer\": \"listops\", \"source\": \"test\", "
    "\"licence\": \"none\"}\n";

// Writes a task folder: task.json, train.tsv (n_train), valid.tsv, test.tsv.
inline void write_has7_task(const std::string& dir, int n_train = 200, int n_valid = 50, int n_test = 50) {
  std::filesystem::create_directories(dir);
  pretrain_test::write_file(dir + "/task.json", kHas7TaskJson);
  pretrain_test::write_file(dir + "/train.tsv", has7_split(n_train, 1));
  pretrain_test::write_file(dir + "/valid.tsv", has7_split(n_valid, 2));
  pretrain_test::write_file(dir + "/test.tsv", has7_split(n_test, 3));
}

// vocab 20 (the ListOps vocabulary), max_len 16: the longest example (10 digits + <s> </s>) fits.
inline std::string has7_config_json(const std::string& attention = "linformer") {
  std::string s = "{\"vocab_size\": 20, \"max_len\": 16, \"d_model\": 32, \"n_heads\": 2, \"d_ff\": 64, "
                  "\"n_layers\": 1, \"attention\": \"" + attention + "\"";
  if (attention == "linformer") s += ", \"k\": [8]";
  return s + "}\n";
}

}  // namespace finetune_test
