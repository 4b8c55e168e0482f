// The server's Prometheus metrics (GET /metrics, text exposition format 0.0.4), kept with
// prometheus-cpp's core library and serialised by its TextSerializer (no exposer: the server's own
// HTTP route serves them). Names are prefixed linformer_ (docs/serving.md, "Metrics").
#pragma once
#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace linformer::serve {

class Metrics {
 public:
  Metrics();
  // One finished HTTP request: counted by route (a known route, or "other") and status.
  void request(const std::string& route, int status);
  // Seconds spent in one stage of a request: "parse" (body and tokenizer), "queue" (waiting for the
  // compute pool), "compute" (the forward pass of its batch), "total" (route start to response).
  void stage(const std::string& stage, double seconds);
  // One batch of the batcher (the requests gathered at once): requests and sequences in it, its
  // tokens (real and padded) and the seconds its forward passes took.
  void batch(int requests, int sequences, long long tokens, long long padded_tokens, double seconds);
  // One forward pass of a batch: its padded tokens (sequences x longest; at most --max-batch-tokens
  // unless one sequence alone is longer).
  void forward_pass(long long padded_tokens);
  void task(double seconds);  // one fill-mask or attention computation
  void queue_depth(int requests);
  void in_flight(int requests);
  std::string text() const;  // the exposition text

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* latency_;
  prometheus::Histogram* batch_requests_;
  prometheus::Histogram* batch_sequences_;
  prometheus::Histogram* batch_tokens_;
  prometheus::Counter* tokens_;
  prometheus::Counter* padded_tokens_;
  prometheus::Counter* batches_;
  prometheus::Counter* compute_seconds_;
  prometheus::Gauge* queue_depth_;
  prometheus::Gauge* in_flight_;
};

}  // namespace linformer::serve
