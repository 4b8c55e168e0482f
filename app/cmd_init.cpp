// linformer init: builds a model from a JSON config, initialises its parameters from a seed and
// writes it as a safetensors model file.
#include <cstdint>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "linformer/checkpoint.hpp"
#include "linformer/config.hpp"
#include "linformer/model.hpp"
#include "registry.hpp"

namespace linformer::app {

namespace {

// linformer init --config C.json --seed S --out M.safetensors
struct InitOptions {
  std::string config;
  uint64_t seed = 0;
  std::string out;
};

CLI::App* add_init_command(CLI::App& app, InitOptions& opt) {
  CLI::App* cmd = app.add_subcommand("init", "Create a model with freshly initialised parameters from a JSON config");
  cmd->add_option("--config", opt.config, "Model config (JSON, see docs/model.md)")->required()->type_name("FILE");
  cmd->add_option("--seed", opt.seed, "Seed of the initialisation (same seed, same parameters)")
      ->capture_default_str()
      ->type_name("S");
  cmd->add_option("--out", opt.out, "Model file to write (safetensors, see docs/format.md)")
      ->required()
      ->type_name("FILE");
  return cmd;
}

void run_init(const InitOptions& opt) {
  const ModelConfig cfg = ModelConfig::from_file(opt.config);
  Model model(cfg);
  model.init(opt.seed);
  save_model(model, opt.out);

  fmt::print("init: attention={} layers={} d_model={} heads={} d_ff={} vocab={} max_len={}{}", to_string(cfg.attention),
             cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.vocab_size, cfg.max_len,
             attention_config_summary(cfg));  // the kind's own fields (Linformer: k, sharing, ...)
  const size_t n = model.params().total();
  fmt::print(" params={} ({:.1f} MB) seed={} -> {}\n", n, static_cast<double>(n) * 4.0 / 1e6, opt.seed, opt.out);
}

}  // namespace

void register_init(CLI::App& app, Context& ctx) {
  auto o = std::make_shared<InitOptions>();
  ctx.on_run(add_init_command(app, *o), [o] { run_init(*o); });
}

}  // namespace linformer::app
