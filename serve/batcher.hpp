// The dynamic batcher: requests wait in one queue and one compute thread (the pool that owns the
// cores: it runs every forward pass with --threads OpenMP threads) takes them in order, gathering
// the waiting requests that share the same computation into one batch of at most
// --max-batch-tokens tokens. The gathered sequences are sorted by length, longest first, and cut
// into forward passes whose padded size (sequences x longest) stays within the same budget, so
// padding stays small. Each sequence's result is what a request of that sequence alone gets, up to
// the rounding of a different batch shape (tested to 1e-6).
//
// Requests queued or computing are bounded (--max-concurrent-requests): beyond it submit throws
// a 429 ApiError; after stop() it throws a 503. stop() lets the queued requests finish.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "linformer/inference.hpp"

namespace linformer::serve {

class Metrics;

// What the batch computes for each sequence; requests with equal keys may share a forward pass.
struct BatchKey {
  enum class Kind { embed, classify } kind = Kind::embed;
  Pooling pooling = Pooling::Mean;
  bool normalize = false;
  bool operator==(const BatchKey&) const = default;
};

// One request's results, in the order of its sequences.
struct BatchResult {
  std::vector<std::vector<float>> embeddings;   // Kind::embed
  std::vector<Classification> classifications;  // Kind::classify
  double queue_s = 0, compute_s = 0;            // time waiting, time in its forward passes
};

class Batcher {
 public:
  Batcher(const InferenceModel& model, int max_batch_tokens, int max_in_flight, int threads, int compute_delay_ms,
          Metrics& metrics);
  ~Batcher();  // stop()

  // Sequences already encoded (<s> ... </s>, at most max_len; their total at most max_batch_tokens).
  std::future<BatchResult> submit(const BatchKey& key, std::vector<std::vector<int32_t>> ids);
  // Work that runs alone on the compute thread (fill-mask, attention maps), in queue order.
  std::future<void> submit_task(std::function<void()> task);
  // No new requests (503); finish the queued ones, then end the compute thread.
  void stop();
  int in_flight() const;

 private:
  struct Request;
  void loop();
  void run_batch(std::vector<std::shared_ptr<Request>>& group);
  void admit();    // under mu_: throws 429/503
  void enqueue(std::shared_ptr<Request> r);  // admit(), then queue it and wake the compute thread
  void finished(int n);

  const InferenceModel& model_;
  const int max_batch_tokens_, max_in_flight_, threads_, compute_delay_ms_;
  Metrics& metrics_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Request>> queue_;
  int in_flight_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace linformer::serve
