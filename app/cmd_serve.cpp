// linformer serve: the HTTP inference server (include/linformer/serve.hpp, docs/serving.md). This file only
// declares the options; the server is its own library (linformer_serve_lib).
#include <memory>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "registry.hpp"
#include "linformer/serve.hpp"

namespace linformer::app {

namespace {

struct ServeCmdOptions {
  serve::ServeOptions s;
  ComputeOptions compute;
};

CLI::App* add_serve_command(CLI::App& app, ServeCmdOptions& o) {
  serve::ServeOptions& s = o.s;
  CLI::App* cmd = app.add_subcommand(
      "serve", "HTTP inference server: /embed, /v1/embeddings, /predict, /fill-mask, /tokenize, /metrics, a page "
               "at / (docs/serving.md)");
  cmd->add_option("--model", s.model, "Run folder (its latest checkpoint, tokenizer and labels), checkpoint or model file")
      ->required()
      ->type_name("PATH");
  cmd->add_option("--tokenizer", s.tokenizer, "SentencePiece model for the texts (default: the run folder's)")
      ->type_name("FILE");
  cmd->add_option("--host", s.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", s.port, "Port (0: a free one, printed on the 'listening on' line)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key-file", s.api_key_file,
                  "File holding the API key: requests need 'Authorization: Bearer KEY' (GET / and /health excepted)")
      ->type_name("FILE");
  cmd->add_option("--max-batch-tokens", s.max_batch_tokens,
                  "Tokens per forward pass, padding included; also the most one request may hold (413 beyond)")
      ->capture_default_str()
      ->check(integer_at_least(1));
  cmd->add_option("--max-concurrent-requests", s.max_concurrent_requests,
                  "Requests queued or computing at once; beyond it 429")
      ->capture_default_str()
      ->check(integer_at_least(1));
  cmd->add_option("--max-body-bytes", s.max_body_bytes, "Largest request body; beyond it 413")
      ->capture_default_str()
      ->check(integer_at_least(1));
  cmd->add_option("--max-client-batch-size", s.max_client_batch_size, "Inputs per request; beyond it 413")
      ->capture_default_str()
      ->check(integer_at_least(1));
  cmd->add_option("--http-threads", s.http_threads, "Connections served at once (a keep-alive connection holds one)")
      ->capture_default_str()
      ->check(integer_at_least(1));
  cmd->add_option("--timeout", s.timeout_s, "Seconds a read or write may wait on a client before it is dropped")
      ->capture_default_str()
      ->check(integer_at_least(1));
  cmd->add_option("--keep-alive", s.keep_alive_s, "Seconds an idle keep-alive connection stays open")
      ->capture_default_str()
      ->check(integer_at_least(1));
  cmd->add_option("--compute-delay-ms", s.compute_delay_ms, "Testing only: sleep this long before each batch")
      ->check(integer_at_least(0))
      ->group("");  // hidden from --help
  cmd->add_option("--load-delay-ms", s.load_delay_ms, "Testing only: wait this long before loading the model")
      ->check(integer_at_least(0))
      ->group("");
  o.compute.declare(*cmd);
  return cmd;
}

void run_serve(ServeCmdOptions& o, const ComputeOptions& global) {
  const ComputeOptions c = o.compute.over(global);
  c.apply();  // --bf16: a ConfigError naming AVX512_BF16 on a CPU without it
  o.s.threads = c.threads > 0 ? c.threads : (int)std::max(1u, std::thread::hardware_concurrency());
  serve::run_server(o.s);
}

}  // namespace

void register_serve(CLI::App& app, Context& ctx) {
  auto o = std::make_shared<ServeCmdOptions>();
  ctx.on_run(add_serve_command(app, *o), [o, &ctx] { run_serve(*o, ctx.compute); });
}

}  // namespace linformer::app
