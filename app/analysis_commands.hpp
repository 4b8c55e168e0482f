// Options of the analysis subcommands (cmd_analysis.cpp, docs/analysis.md).
#pragma once
#include <string>

namespace CLI {
class App;
}

namespace linformer::app {

// linformer spectrum --model M --data TOKENS --out DIR [--seq-len N] [--sequences S] [--at I]
struct SpectrumOptions {
  std::string model, data, out;
  int seq_len = 0;    // 0: min(512, max_len)
  int sequences = 32;
  int at = 0;         // 0: 128, or n/4 when n < 512
  int batch_size = 4;
  int threads = 0;
};
CLI::App* add_spectrum_command(CLI::App& app, SpectrumOptions& o);
void run_spectrum(const SpectrumOptions& o, int threads);

// linformer attention-map --model M (--ids FILE_OR_IDS | --text TEXT) --out DIR
struct AttentionMapOptions {
  std::string model, ids, text, tokenizer, out;
  int line = 1;
  int threads = 0;
};
CLI::App* add_attention_map_command(CLI::App& app, AttentionMapOptions& o);
void run_attention_map(const AttentionMapOptions& o, int threads);

}  // namespace linformer::app
