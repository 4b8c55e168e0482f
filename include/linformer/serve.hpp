// `linformer serve`: an HTTP/1.1 + JSON inference server on the public inference API
// (docs/serving.md). cpp-httplib (Debian's libcpp-httplib-dev, what llama.cpp's server uses)
// serves the connections on a pool of --http-threads threads; the model's computations all go
// through one Batcher (serve/batcher.hpp), whose compute thread owns the cores.
//
// Life cycle: bind (port 0: a free one) and print "serve: listening on http://HOST:PORT"; load
// the model in the background (GET /health and the model routes answer 503 until it is loaded);
// serve until SIGTERM or SIGINT; then stop accepting, finish the requests in flight and return.
//
// This header is the server's door for its clients (the `linformer serve` command); the server is
// a library of its own beside liblinformer (linformer_serve_lib, serve/), not installed with it.
// The options and limits (docs/serving.md, "Limits"): the defaults are text-embeddings-inference's
// where it has one (2 MB body, 32 inputs per request, 16,384 batch tokens, 512 requests at once).
#pragma once
#include <cstddef>
#include <string>

namespace linformer::serve {


struct ServeOptions {
  std::string model;              // run folder, checkpoint folder or model file (InferenceModel::load)
  std::string tokenizer;          // a SentencePiece model for a bare model file (default: the run folder's)
  std::string host = "127.0.0.1"; // loopback unless told otherwise
  int port = 8080;                // 0: a free port, printed on the "listening on" line
  std::string api_key_file;       // given: every route but GET / and GET /health needs "Authorization: Bearer KEY"
  int max_batch_tokens = 16384;   // tokens per forward pass (padded); also the most one request may hold
  int max_concurrent_requests = 512;  // requests queued or computing; beyond: 429
  size_t max_body_bytes = 2 * 1024 * 1024;  // beyond: 413
  int max_client_batch_size = 32; // inputs per request; beyond: 413
  int threads = 0;                // OpenMP threads of the compute pool (0: all cores)
  int http_threads = 128;         // connections served at once (each keep-alive connection holds one)
  int timeout_s = 10;             // read/write timeout per socket operation: slow clients are dropped
  int keep_alive_s = 5;           // an idle keep-alive connection is closed after this
  int compute_delay_ms = 0;       // testing only: sleep before each batch (makes queues fill)
  int load_delay_ms = 0;          // testing only: sleep before loading the model (shows the 503s of loading)
};


// Blocks until a signal ends the server. Returns normally after draining; throws the load error if
// the model could not be loaded (the server stops then), or an error if the address cannot be bound.
void run_server(const ServeOptions& opt);

}  // namespace linformer::serve
