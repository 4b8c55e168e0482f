// Options of the data subcommands: `linformer data ...` (cmd_data.cpp) and
// `linformer tokenizer ...` (cmd_tokenizer.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace linformer::app {

// linformer data sotu --out DATA_DIR
// linformer data split --input FILES|DIR... --out DIR [--valid-every N]
struct DataOptions {
  CLI::App *sotu = nullptr, *split = nullptr;
  std::string out;
  std::vector<std::string> inputs;
  int valid_every = 10;
};
CLI::App* add_data_command(CLI::App& app, DataOptions& o);
void run_data(const DataOptions& o);

// linformer tokenizer train --input FILES|DIR... --vocab-size V --out tok.model [--seed S]
// linformer tokenizer encode --model tok.model --input FILES|DIR... --out X.tokens
// linformer tokenizer decode --model tok.model --ids "1 5 6 2"
struct TokenizerOptions {
  CLI::App *train = nullptr, *encode = nullptr, *decode = nullptr;
  std::vector<std::string> inputs;
  std::string model, out, ids;
  int vocab_size = 8000;
  uint64_t seed = 0;
};
CLI::App* add_tokenizer_command(CLI::App& app, TokenizerOptions& o);
void run_tokenizer(const TokenizerOptions& o);

}  // namespace linformer::app
