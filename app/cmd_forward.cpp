// linformer forward: runs a model over token-id sequences in evaluation mode (InferenceModel::forward)
// and writes the hidden states, the MLM logits and the padding mask as a safetensors file.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "ids_file.hpp"
#include "linformer/checkpoint.hpp"
#include "linformer/inference.hpp"
#include "linformer/model.hpp"
#include "registry.hpp"

namespace linformer::app {

namespace {

// linformer forward --model M.safetensors --ids IDS --out OUT.safetensors
struct ForwardOptions {
  std::string model;
  std::string ids;
  std::string out;
  int repeat = 1;
};

NamedTensor f32_tensor(std::string name, std::vector<int64_t> shape, const float* data) {
  size_t numel = 1;
  for (int64_t s : shape) numel *= static_cast<size_t>(s);
  NamedTensor t{std::move(name), "F32", std::move(shape), std::vector<uint8_t>(numel * sizeof(float))};
  std::memcpy(t.bytes.data(), data, t.bytes.size());
  return t;
}

NamedTensor i32_tensor(std::string name, std::vector<int64_t> shape, const std::vector<int32_t>& data) {
  NamedTensor t{std::move(name), "I32", std::move(shape), std::vector<uint8_t>(data.size() * sizeof(int32_t))};
  std::memcpy(t.bytes.data(), data.data(), t.bytes.size());
  return t;
}

CLI::App* add_forward_command(CLI::App& app, ForwardOptions& opt, ComputeOptions& compute) {
  CLI::App* cmd = app.add_subcommand(
      "forward", "Run a model over token-id sequences (eval mode); write hidden states, MLM logits and mask");
  cmd->add_option("--model", opt.model, "Model file (safetensors, from `linformer init` or training)")
      ->required()
      ->type_name("FILE");
  cmd->add_option("--ids", opt.ids,
                  "Token ids: a text file, one sequence of whitespace-separated ids per line (lengths may differ)")
      ->required()
      ->type_name("FILE");
  cmd->add_option("--out", opt.out,
                  "Output file (safetensors): hidden F32 [B,n,d], logits F32 [B,n,vocab], mask I32 [B,n], "
                  "ids I32 [B,n]")
      ->required()
      ->type_name("FILE");
  cmd->add_option("--repeat", opt.repeat, "Run the forward pass this many times and report the fastest (timing)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str()
      ->type_name("N");
  // Into the global options, not options of its own: `linformer --threads 4 forward --threads 0`
  // runs with OpenMP's default, as it always has.
  compute.declare(*cmd);
  return cmd;
}

void run_forward(const ForwardOptions& opt, const ComputeOptions& compute) {
  const InferenceModel model = InferenceModel::from_model(load_model(opt.model));
  const ModelConfig& cfg = model.config();
  const std::vector<std::vector<int32_t>> seqs = read_ids_file(opt.ids, cfg.vocab_size, cfg.max_len);
  const int nthreads = compute.apply();

  using clock = std::chrono::steady_clock;
  double first_ms = 0, best_ms = 0;
  ForwardResult r;
  for (int i = 0; i < opt.repeat; ++i) {
    const auto t0 = clock::now();
    model.forward(seqs, {}, r);
    const double ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    if (i == 0) first_ms = best_ms = ms;
    best_ms = std::min(best_ms, ms);
  }

  const int64_t B = r.B, n = r.n, d = cfg.d_model, V = cfg.vocab_size;
  std::vector<int32_t> mask(r.mask.begin(), r.mask.end());
  std::vector<NamedTensor> tensors;
  tensors.push_back(f32_tensor("hidden", {B, n, d}, r.hidden.data()));
  tensors.push_back(f32_tensor("logits", {B, n, V}, r.logits.data()));
  tensors.push_back(i32_tensor("mask", {B, n}, mask));
  tensors.push_back(i32_tensor("ids", {B, n}, r.ids));
  const std::map<std::string, std::string> metadata = {
      {"linformer.config", cfg.to_json().dump()},
      {"linformer.model_file", opt.model},
      {"linformer.ids_file", opt.ids},
  };
  write_safetensors(opt.out, tensors, metadata);

  size_t tokens = 0;
  for (const auto& s : seqs) tokens += s.size();
  fmt::print("forward: attention={} B={} n={} tokens={} d_model={} vocab={} threads={} ", to_string(cfg.attention), B,
             n, tokens, d, V, nthreads);
  if (opt.repeat > 1) {
    fmt::print("time_first_ms={:.2f} time_best_ms={:.2f} (of {}) ", first_ms, best_ms, opt.repeat);
  } else {
    fmt::print("time_ms={:.2f} ", first_ms);
  }
  fmt::print("hidden=[{},{},{}] logits=[{},{},{}] -> {}\n", B, n, d, B, n, V, opt.out);
}

}  // namespace

void register_forward(CLI::App& app, Context& ctx) {
  auto o = std::make_shared<ForwardOptions>();
  ctx.on_run(add_forward_command(app, *o, ctx.compute), [o, &ctx] { run_forward(*o, ctx.compute); });
}

}  // namespace linformer::app
