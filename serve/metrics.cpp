#include "metrics.hpp"

#include <sstream>

#include <prometheus/text_serializer.h>

namespace linformer::serve {

using namespace prometheus;

namespace {
Histogram::BucketBoundaries seconds_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}
Histogram::BucketBoundaries powers_of_two(double top) {
  Histogram::BucketBoundaries b;
  for (double x = 1; x <= top; x *= 2) b.push_back(x);
  return b;
}
}  // namespace

Metrics::Metrics() : registry_(std::make_shared<Registry>()) {
  requests_ = &BuildCounter().Name("linformer_requests_total").Help("HTTP requests by route and status").Register(*registry_);
  latency_ = &BuildHistogram()
                  .Name("linformer_request_duration_seconds")
                  .Help("Seconds per request stage: parse (JSON and tokenizer), queue, compute, total")
                  .Register(*registry_);
  batch_requests_ = &BuildHistogram()
                         .Name("linformer_batch_requests")
                         .Help("Requests per batch (the requests the batcher gathered at once)")
                         .Register(*registry_)
                         .Add({}, powers_of_two(1024));
  batch_sequences_ = &BuildHistogram()
                          .Name("linformer_batch_sequences")
                          .Help("Sequences per batch")
                          .Register(*registry_)
                          .Add({}, powers_of_two(4096));
  batch_tokens_ = &BuildHistogram()
                       .Name("linformer_batch_tokens")
                       .Help("Padded tokens per forward pass (sequences x longest)")
                       .Register(*registry_)
                       .Add({}, powers_of_two(1 << 20));
  tokens_ = &BuildCounter().Name("linformer_tokens_total").Help("Tokens computed (without padding)").Register(*registry_).Add({});
  padded_tokens_ = &BuildCounter()
                        .Name("linformer_padded_tokens_total")
                        .Help("Tokens computed, padding included")
                        .Register(*registry_)
                        .Add({});
  batches_ = &BuildCounter().Name("linformer_batches_total").Help("Batches run by the batcher").Register(*registry_).Add({});
  // Busy time of the compute thread in the inference API's calls: against the wall time it gives
  // the server's overhead at saturation (bench/serve_load.py).
  compute_seconds_ = &BuildCounter()
                          .Name("linformer_compute_seconds_total")
                          .Help("Seconds the compute pool spent in the inference API (batches, fill-mask, attention)")
                          .Register(*registry_)
                          .Add({});
  queue_depth_ = &BuildGauge().Name("linformer_queue_depth").Help("Requests waiting for the compute pool").Register(*registry_).Add({});
  in_flight_ = &BuildGauge()
                    .Name("linformer_requests_in_flight")
                    .Help("Requests queued or computing (the --max-concurrent-requests limit)")
                    .Register(*registry_)
                    .Add({});
}

void Metrics::request(const std::string& route, int status) {
  requests_->Add({{"route", route}, {"status", std::to_string(status)}}).Increment();
}

void Metrics::stage(const std::string& stage, double seconds) {
  latency_->Add({{"stage", stage}}, seconds_buckets()).Observe(seconds);
}

void Metrics::batch(int requests, int sequences, long long tokens, long long padded_tokens, double seconds) {
  compute_seconds_->Increment(seconds);
  batch_requests_->Observe(requests);
  batch_sequences_->Observe(sequences);
  tokens_->Increment((double)tokens);
  padded_tokens_->Increment((double)padded_tokens);
  batches_->Increment();
}

void Metrics::forward_pass(long long padded_tokens) { batch_tokens_->Observe((double)padded_tokens); }

void Metrics::task(double seconds) { compute_seconds_->Increment(seconds); }

void Metrics::queue_depth(int requests) { queue_depth_->Set(requests); }
void Metrics::in_flight(int requests) { in_flight_->Set(requests); }

std::string Metrics::text() const {
  std::ostringstream out;
  TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace linformer::serve
