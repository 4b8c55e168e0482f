// linformer spectrum, attention-map and curves: looking inside a model and a run (docs/analysis.md).
#include <algorithm>
#include <charconv>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "ids_file.hpp"
#include "registry.hpp"
#include "linformer/analysis.hpp"
#include "linformer/data.hpp"
#include "linformer/error.hpp"
#include "linformer/model.hpp"
#include "linformer/tokenizer.hpp"
#include "linformer/trainer.hpp"

namespace fs = std::filesystem;

namespace linformer::app {

namespace {

void make_out_dir(const std::string& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw IoError(fmt::format("{}: --out must be a folder, and this is a file", dir));
  fs::create_directories(dir, ec);
  if (ec) throw IoError(fmt::format("{}: cannot create the output folder: {}", dir, ec.message()));
}

// linformer spectrum --model M --data TOKENS --out DIR [--seq-len N] [--sequences S] [--at I]
struct SpectrumOptions {
  std::string model, data, out;
  int seq_len = 0;    // 0: min(512, max_len)
  int sequences = 32;
  int at = 0;         // 0: 128, or n/4 when n < 512
  int batch_size = 4;
  ComputeOptions compute;
};

// linformer attention-map --model M (--ids FILE_OR_IDS | --text TEXT) --out DIR
struct AttentionMapOptions {
  std::string model, ids, text, tokenizer, out;
  int line = 1;
  ComputeOptions compute;
};

CLI::App* add_spectrum_command(CLI::App& app, SpectrumOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "spectrum", "Singular values of the attention matrices of a full-attention model (the paper's Figure 1)");
  cmd->add_option("--model", o.model, "Run folder (its latest checkpoint) or model file, with full attention")
      ->required()
      ->type_name("PATH");
  cmd->add_option("--data", o.data, "Token file (linformer tokenizer encode) to take the sequences from")
      ->required()
      ->type_name("FILE");
  cmd->add_option("--out", o.out, "Output folder: spectrum.csv, spectrum_curves.svg, spectrum_heatmap.svg")
      ->required()
      ->type_name("DIR");
  cmd->add_option("--seq-len", o.seq_len, "Sequence length n (0: 512, or max_len if smaller)")
      ->capture_default_str()
      ->check(integer_at_least(0));
  cmd->add_option("--sequences", o.sequences, "Number of sequences to average over")
      ->capture_default_str()
      ->check(integer_at_least(1));
  cmd->add_option("--at", o.at, "Singular-value index of the heat map (0: 128, or n/4 when n < 512)")
      ->capture_default_str()
      ->check(integer_at_least(0));
  cmd->add_option("--batch-size", o.batch_size, "Sequences per forward pass")
      ->capture_default_str()
      ->check(integer_at_least(1));
  o.compute.declare(*cmd);
  return cmd;
}

void run_spectrum(const SpectrumOptions& o, const ComputeOptions& global) {
  o.compute.over(global).apply();
  auto model = load_trained_model(o.model);
  const ModelConfig& cfg = model->config();
  if (!attention_is_exact(cfg.attention)) {
    std::string exact;  // "full" or "tiled"
    for (AttentionKind k : attention_kinds())
      if (attention_is_exact(k)) exact += fmt::format("{}\"{}\"", exact.empty() ? "" : " or ", to_string(k));
    throw ConfigError(fmt::format("spectrum: {} has attention \"{}\"; the spectrum is that of the n x n "
                                  "attention matrices of a model with full attention ({})",
                                  o.model, to_string(cfg.attention), exact));
  }
  const int n = o.seq_len > 0 ? o.seq_len : std::min(512, cfg.max_len);
  if (n > cfg.max_len)
    throw InputError(fmt::format("spectrum: --seq-len {} exceeds the model's max_len {}", n, cfg.max_len));
  const int at = o.at > 0 ? o.at : (n >= 512 ? 128 : std::max(1, n / 4));
  if (at > n) throw InputError(fmt::format("spectrum: --at {} exceeds the sequence length {}", at, n));
  TokenFile file(o.data);
  const auto seqs = spectrum_sequences(file, n, o.sequences, cfg.vocab_size);
  make_out_dir(o.out);
  const Spectrum s = attention_spectrum(*model, seqs, o.batch_size);
  const auto paths = write_spectrum(s, (fs::path(o.out) / "spectrum").string(), at);
  fmt::print("spectrum: {} sequences of n = {} from {}; share of the largest {} of {} singular values:\n",
             s.sequences, n, o.data, at, n);
  fmt::print("  layer |");
  for (int h = 0; h < s.heads; ++h) fmt::print(" head {:<2}", h);
  fmt::print("\n");
  for (int l = 0; l < s.layers; ++l) {
    fmt::print("  {:>5} |", l);
    for (int h = 0; h < s.heads; ++h) fmt::print(" {:7.4f}", s.at(l, h, at - 1));
    fmt::print("\n");
  }
  for (const auto& p : paths) fmt::print("  -> {}\n", p);
}

CLI::App* add_attention_map_command(CLI::App& app, AttentionMapOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "attention-map", "Attention weights of one input per layer and head, as SVG heat maps and CSV");
  cmd->add_option("--model", o.model, "Run folder (its latest checkpoint) or model file")->required()->type_name("PATH");
  auto* ids = cmd->add_option("--ids", o.ids,
                              "The input: a token-id file (one sequence per line, see --line) or the ids themselves "
                              "(\"1 52 7 2\")")
                  ->type_name("FILE_OR_IDS");
  auto* text = cmd->add_option("--text", o.text, "The input as text (tokenized with <s> ... </s>)");
  ids->excludes(text);
  text->excludes(ids);
  cmd->add_option("--tokenizer", o.tokenizer, "Tokenizer model for --text (default: tokenizer.model in the run folder)")
      ->type_name("FILE");
  cmd->add_option("--line", o.line, "With an ids file: which line (1-based)")
      ->capture_default_str()
      ->check(integer_at_least(1));
  cmd->add_option("--out", o.out, "Output folder: attention_L<l>_H<h>.svg, attention_grid.svg, attention.csv")
      ->required()
      ->type_name("DIR");
  o.compute.declare(*cmd);
  return cmd;
}

void run_attention_map(const AttentionMapOptions& o, const ComputeOptions& global) {
  o.compute.over(global).apply();
  if (o.ids.empty() && o.text.empty()) throw InputError("attention-map: give the input with --ids or --text");
  auto model = load_trained_model(o.model);
  const ModelConfig& cfg = model->config();
  std::vector<int32_t> ids;
  std::error_code ec;
  if (!o.text.empty()) {
    std::string tok_path = o.tokenizer;
    if (tok_path.empty()) {
      tok_path = (fs::path(o.model) / "tokenizer.model").string();
      if (!fs::is_directory(o.model) || !fs::exists(tok_path))
        throw ConfigError(fmt::format("attention-map: no tokenizer.model in {}; pass --tokenizer", o.model));
    }
    Tokenizer tok(tok_path);
    ids.push_back(kBosId);
    const auto enc = tok.encode(o.text);
    ids.insert(ids.end(), enc.begin(), enc.end());
    ids.push_back(kEosId);
  } else if (fs::exists(o.ids, ec)) {
    const auto seqs = read_ids_file(o.ids, cfg.vocab_size, cfg.max_len);
    if (o.line > (int)seqs.size())
      throw InputError(fmt::format("{}: --line {} but the file has {} sequence(s)", o.ids, o.line, seqs.size()));
    ids = seqs[o.line - 1];
  } else {
    std::istringstream in(o.ids);
    std::string tok;
    while (in >> tok) {
      int32_t v = 0;
      const auto [end, err] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
      if (err != std::errc() || end != tok.data() + tok.size())
        throw InputError(fmt::format("attention-map: --ids '{}' is neither an existing file nor token ids ('{}' is "
                                     "not an integer)",
                                     o.ids.size() > 60 ? o.ids.substr(0, 60) + "..." : o.ids, tok));
      ids.push_back(v);
    }
    if (ids.empty()) throw InputError("attention-map: --ids is empty");
  }
  for (size_t i = 0; i < ids.size(); ++i)  // checked before the output folder is made
    if (ids[i] < 0 || ids[i] >= cfg.vocab_size)
      throw InputError(fmt::format("attention-map: token id {} (position {}) is outside the model's vocabulary [0, {})",
                                   ids[i], i, cfg.vocab_size));
  if ((int)ids.size() > cfg.max_len)
    throw InputError(fmt::format("attention-map: the input is {} tokens, the model takes at most {} (max_len)",
                                 ids.size(), cfg.max_len));
  make_out_dir(o.out);
  const auto paths = write_attention_maps(*model, ids, (fs::path(o.out) / "attention").string());
  const bool lin = !attention_is_exact(cfg.attention);  // columns: projected keys
  fmt::print("attention-map: n = {} tokens, {} layers x {} heads, maps of {} x {} ({}) -> {} ({} files)\n",
             ids.size(), cfg.n_layers, cfg.n_heads, ids.size(), lin ? "k per layer" : std::to_string(ids.size()),
             lin ? "queries x projected keys" : "queries x keys", o.out, paths.size());
}

struct CurvesOptions {
  std::string run, out;
};

CLI::App* add_curves_command(CLI::App& app, CurvesOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "curves", "SVG of a pretraining run's validation loss and masked-token accuracy against steps, with the "
                "unigram baseline");
  cmd->add_option("--run", o.run, "Pretraining run folder (or its metrics.jsonl)")->required()->type_name("PATH");
  cmd->add_option("--out", o.out, "SVG file to write (default: curves.svg in the run folder)")->type_name("FILE");
  return cmd;
}

void run_curves(const CurvesOptions& o) {
  std::string out = o.out;
  if (out.empty()) {
    if (!fs::is_directory(o.run)) throw ConfigError("curves: --out is required when --run is not a folder");
    out = (fs::path(o.run) / "curves.svg").string();
  }
  fmt::print("curves: {}\n", write_pretraining_curves(o.run, out));
}

}  // namespace

void register_analysis(CLI::App& app, Context& ctx) {
  auto spectrum = std::make_shared<SpectrumOptions>();
  ctx.on_run(add_spectrum_command(app, *spectrum), [spectrum, &ctx] { run_spectrum(*spectrum, ctx.compute); });
  auto map = std::make_shared<AttentionMapOptions>();
  ctx.on_run(add_attention_map_command(app, *map), [map, &ctx] { run_attention_map(*map, ctx.compute); });
  auto curves = std::make_shared<CurvesOptions>();
  ctx.on_run(add_curves_command(app, *curves), [curves] { run_curves(*curves); });
}

}  // namespace linformer::app
