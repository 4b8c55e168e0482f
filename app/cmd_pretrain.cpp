// linformer pretrain / fill-mask / eval-mlm: masked-language-model pretraining and using the result.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "linformer/error.hpp"
#include "linformer/inference.hpp"
#include "linformer/model.hpp"
#include "linformer/parallel.hpp"
#include "linformer/trainer.hpp"
#include "registry.hpp"

namespace fs = std::filesystem;

namespace linformer::app {

namespace {

// linformer pretrain --config C --train T --valid V --out DIR [...]  |  --resume DIR [--steps N]
struct PretrainOptions {
  std::string config, out, resume;
  TrainOptions train;
  bool steps_given = false;
  ComputeOptions compute;   // --threads and --bf16 after the subcommand
  CLI::App* cmd = nullptr;  // set by add_pretrain_command: which options were given
};

// linformer fill-mask --model DIR --text "... <mask> ..."
struct FillMaskOptions {
  std::string model, tokenizer, text;
  int top_k = 5;
  ComputeOptions compute;
};

// linformer eval-mlm --model DIR --data V
struct EvalMlmOptions {
  std::string model, data;
  std::string baseline;  // training token file of the unigram baseline (optional)
  int seq_len = 0, batch_size = 16, max_batches = 0;
  uint64_t seed = 1;
  ComputeOptions compute;
};

CLI::App* add_pretrain_command(CLI::App& app, PretrainOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "pretrain", "Pretrain a masked language model on token files (RoBERTa recipe; resumable)");
  cmd->add_option("--config", o.config, "Model config (JSON, docs/model.md); not needed with --resume")
      ->type_name("FILE");
  cmd->add_option("--train", o.train.train_tokens, "Training token file (linformer tokenizer encode)")->type_name("FILE");
  cmd->add_option("--valid", o.train.valid_tokens, "Validation token file")->type_name("FILE");
  cmd->add_option("--tokenizer", o.train.tokenizer, "Tokenizer model, copied into the output folder for fill-mask")
      ->type_name("FILE");
  cmd->add_option("--out", o.out, "Output folder (checkpoints, metrics.jsonl)")->type_name("DIR");
  cmd->add_option("--resume", o.resume, "Continue the run in this folder from its latest checkpoint")->type_name("DIR");
  cmd->add_option("--steps", o.train.steps, "Optimizer updates in total (with --resume: the new total)")
      ->capture_default_str()
      ->check(integer_at_least(1))
      ->each([&o](const std::string&) { o.steps_given = true; });
  cmd->add_option("--batch-size", o.train.batch_size, "Sequences per micro-batch")
      ->capture_default_str()
      ->check(integer_at_least(1));
  cmd->add_option("--accum", o.train.accum, "Micro-batches per update (gradient accumulation)")
      ->capture_default_str()
      ->check(integer_at_least(1));
  cmd->add_option("--seq-len", o.train.seq_len, "Sequence length (0: the model's max_len)")->capture_default_str();
  cmd->add_option("--eval-every", o.train.eval_every, "Validate every N steps")
      ->capture_default_str()
      ->check(integer_at_least(1));
  cmd->add_option("--eval-batches", o.train.eval_batches, "Validation batches (0: the whole set)")
      ->capture_default_str();
  cmd->add_option("--mask-prob", o.train.mask_prob,
                  "Share of training tokens to predict (validation always masks 0.15)")
      ->capture_default_str();
  add_run_settings_options(*cmd, o.train);
  cmd->add_option("--seed", o.train.seed, "Seed (initialisation, data order, masks, dropout)")->capture_default_str();
  o.compute.declare(*cmd);
  o.cmd = cmd;
  return cmd;
}

void run_pretrain(PretrainOptions& o, const ComputeOptions& global) {
  const int nthreads = o.compute.over(global).apply();
  // Under mpirun only rank 0 prints (docs/distributed.md); "N threads" becomes "N threads x R ranks".
  const std::string ranks = parallel::size() > 1 ? fmt::format(" x {} ranks", parallel::size()) : "";
  TrainSummary s;
  if (!o.resume.empty()) {
    // A resumed run keeps its config and options (DIR/config.json, DIR/train.json): refuse
    // options that would otherwise be silently ignored.
    refuse_options_with_resume(o.cmd, "pretrain", o.resume + "/train.json and config.json");
    if (parallel::is_root()) fmt::print("pretrain: resuming {} ({} threads{})\n", o.resume, nthreads, ranks);
    s = resume_pretraining(o.resume, o.steps_given ? o.train.steps : 0);
    o.out = o.resume;
  } else {
    if (o.config.empty() || o.train.train_tokens.empty() || o.train.valid_tokens.empty() || o.out.empty())
      throw ConfigError("pretrain: --config, --train, --valid and --out are required (or --resume DIR)");
    o.train.validate();
    const ModelConfig cfg = ModelConfig::from_file(o.config);
    if (parallel::is_root())
      fmt::print("pretrain: {} attention, {} layers, d_model {}, {} steps of {}x{}{} sequences, {} threads{} -> {}\n",
                 to_string(cfg.attention), cfg.n_layers, cfg.d_model, o.train.steps, o.train.batch_size,
                 o.train.accum, parallel::size() > 1 ? fmt::format("x{}", parallel::size()) : "", nthreads, ranks, o.out);
    s = pretrain(cfg, o.train, o.out);
  }
  if (!parallel::is_root()) return;
  fmt::print("pretrain: {} steps in {:.1f} s, {:.0f} tokens/s\n", s.steps_done, s.seconds, s.tokens_per_second);
  if (s.interrupted)
    fmt::print("pretrain: interrupted at step {}; continue with: linformer pretrain --resume {}\n", s.steps_done,
               o.out);
  if (!std::isnan(s.final_valid_loss)) {  // NaN: interrupted between evaluations
    if (!std::isnan(s.initial_valid_loss))
      fmt::print("pretrain: validation perplexity {:.2f} before, {:.2f} after\n", std::exp(s.initial_valid_loss),
                 std::exp(s.final_valid_loss));
    else
      fmt::print("pretrain: validation perplexity {:.2f}\n", std::exp(s.final_valid_loss));
    fmt::print("pretrain: masked-token accuracy top-1 {:.2f}%, top-5 {:.2f}%; unigram baseline: perplexity {:.2f}, "
               "top-1 {:.2f}%, top-5 {:.2f}%\n",
               100 * s.final_valid_top1, 100 * s.final_valid_top5, std::exp(s.unigram_loss), 100 * s.unigram_top1,
               100 * s.unigram_top5);
  }
  fmt::print("pretrain: model in {}\n", s.checkpoint);
}

CLI::App* add_fill_mask_command(CLI::App& app, FillMaskOptions& o) {
  CLI::App* cmd = app.add_subcommand("fill-mask", "Predict the tokens behind <mask> in a text");
  cmd->add_option("--model", o.model, "Run folder (its latest checkpoint) or model file")->required()->type_name("PATH");
  cmd->add_option("--tokenizer", o.tokenizer, "Tokenizer model (default: tokenizer.model in the run folder)")
      ->type_name("FILE");
  cmd->add_option("--text", o.text, "Text with one or more <mask>")->required();
  cmd->add_option("--top-k", o.top_k, "Candidates printed per mask")->capture_default_str()->check(integer_at_least(1));
  o.compute.declare(*cmd);
  return cmd;
}

void run_fill_mask(const FillMaskOptions& o, const ComputeOptions& global) {
  o.compute.over(global).apply();
  InferenceOptions io;
  io.tokenizer = o.tokenizer;
  if (io.tokenizer.empty()) {
    io.tokenizer = (fs::path(o.model) / "tokenizer.model").string();
    if (!fs::is_directory(o.model) || !fs::exists(io.tokenizer))
      throw ConfigError(fmt::format("fill-mask: no tokenizer.model in {}; pass --tokenizer", o.model));
  }
  const InferenceModel model = InferenceModel::load(o.model, io);
  const FillMaskResult r = model.fill_mask(o.text, o.top_k);
  fmt::print("{}\n", o.text);
  for (size_t m = 0; m < r.masks.size(); ++m) {
    fmt::print("<mask> #{}:\n", m + 1);
    for (const FillMaskCandidate& c : r.masks[m].candidates) fmt::print("  {:>6.2f}%  {}\n", 100.0 * c.prob, c.token);
  }
}

CLI::App* add_eval_mlm_command(CLI::App& app, EvalMlmOptions& o) {
  CLI::App* cmd = app.add_subcommand("eval-mlm", "Masked-LM loss, perplexity and masked-token accuracy of a model on a token file");
  cmd->add_option("--model", o.model, "Run folder (its latest checkpoint) or model file")->required()->type_name("PATH");
  cmd->add_option("--data", o.data, "Token file")->required()->type_name("FILE");
  cmd->add_option("--seq-len", o.seq_len, "Sequence length (0: the model's max_len)")
      ->capture_default_str()
      ->check(integer_at_least(0));
  cmd->add_option("--batch-size", o.batch_size, "Sequences per batch")->capture_default_str()->check(integer_at_least(1));
  cmd->add_option("--max-batches", o.max_batches, "Evaluate at most this many batches (0: all)")
      ->capture_default_str()
      ->check(integer_at_least(0));
  cmd->add_option("--seed", o.seed, "Seed of the (fixed) masks")->capture_default_str();
  cmd->add_option("--baseline", o.baseline,
                  "Training token file: also score its token frequencies (the unigram baseline) on the same tokens")
      ->type_name("FILE");
  o.compute.declare(*cmd);
  return cmd;
}

void run_eval_mlm(const EvalMlmOptions& o, const ComputeOptions& global) {
  o.compute.over(global).apply();
  const InferenceModel model = InferenceModel::from_model(load_trained_model(o.model));
  const MlmEvaluation e = model.evaluate_mlm_scores(o.data, o.seq_len, o.batch_size, o.max_batches, o.seed, o.baseline);
  fmt::print("eval-mlm: loss {:.4f}, perplexity {:.3f}\n", e.loss, std::exp(e.loss));
  fmt::print("eval-mlm: masked-token accuracy top-1 {:.2f}%, top-5 {:.2f}% ({} masked tokens)\n", 100 * e.top1,
             100 * e.top5, e.tokens);
  if (!o.baseline.empty())
    fmt::print("eval-mlm: unigram baseline ({}): perplexity {:.3f}, top-1 {:.2f}%, top-5 {:.2f}%\n", o.baseline,
               std::exp(e.unigram_loss), 100 * e.unigram_top1, 100 * e.unigram_top5);
}

}  // namespace

void register_pretraining(CLI::App& app, Context& ctx) {
  auto pretrain = std::make_shared<PretrainOptions>();
  ctx.on_run(add_pretrain_command(app, *pretrain), [pretrain, &ctx] { run_pretrain(*pretrain, ctx.compute); },
             Context::Ranks::many);
  auto fill_mask = std::make_shared<FillMaskOptions>();
  ctx.on_run(add_fill_mask_command(app, *fill_mask), [fill_mask, &ctx] { run_fill_mask(*fill_mask, ctx.compute); });
  auto eval_mlm = std::make_shared<EvalMlmOptions>();
  ctx.on_run(add_eval_mlm_command(app, *eval_mlm), [eval_mlm, &ctx] { run_eval_mlm(*eval_mlm, ctx.compute); });
}

}  // namespace linformer::app
