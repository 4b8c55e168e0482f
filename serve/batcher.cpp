#include "batcher.hpp"

#include <omp.h>

#include <algorithm>
#include <numeric>

#include <fmt/core.h>

#include "api_error.hpp"
#include "metrics.hpp"

namespace linformer::serve {

using clock_type = std::chrono::steady_clock;

struct Batcher::Request {
  bool is_task = false;
  BatchKey key;
  std::vector<std::vector<int32_t>> ids;
  long long tokens = 0;
  std::function<void()> task;
  clock_type::time_point queued = clock_type::now();
  std::promise<BatchResult> result;
  std::promise<void> task_done;
};

Batcher::Batcher(const InferenceModel& model, int max_batch_tokens, int max_in_flight, int threads,
                 int compute_delay_ms, Metrics& metrics)
    : model_(model),
      max_batch_tokens_(max_batch_tokens),
      max_in_flight_(max_in_flight),
      threads_(threads),
      compute_delay_ms_(compute_delay_ms),
      metrics_(metrics) {
  thread_ = std::thread([this] { loop(); });
}

Batcher::~Batcher() { stop(); }

void Batcher::admit() {
  if (stopping_) throw unhealthy("the server is shutting down");
  if (in_flight_ >= max_in_flight_)
    throw overloaded(fmt::format("{} requests are queued or computing (--max-concurrent-requests {}); retry later",
                                 in_flight_, max_in_flight_));
  ++in_flight_;
  metrics_.in_flight(in_flight_);
}

void Batcher::enqueue(std::shared_ptr<Request> r) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    admit();
    queue_.push_back(std::move(r));
    metrics_.queue_depth((int)queue_.size());
  }
  cv_.notify_one();
}

std::future<BatchResult> Batcher::submit(const BatchKey& key, std::vector<std::vector<int32_t>> ids) {
  auto r = std::make_shared<Request>();
  r->key = key;
  for (const auto& s : ids) r->tokens += (long long)s.size();
  r->ids = std::move(ids);
  auto fut = r->result.get_future();
  enqueue(std::move(r));
  return fut;
}

std::future<void> Batcher::submit_task(std::function<void()> task) {
  auto r = std::make_shared<Request>();
  r->is_task = true;
  r->task = std::move(task);
  auto fut = r->task_done.get_future();
  enqueue(std::move(r));
  return fut;
}

void Batcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int Batcher::in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_flight_;
}

void Batcher::finished(int n) {
  std::lock_guard<std::mutex> lock(mu_);
  in_flight_ -= n;
  metrics_.in_flight(in_flight_);
}

void Batcher::loop() {
  // This thread owns the cores: every forward pass runs its parallel loops on threads_ threads.
  omp_set_num_threads(threads_);
  for (;;) {
    std::vector<std::shared_ptr<Request>> group;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued is done
      group.push_back(queue_.front());
      queue_.pop_front();
      if (!group[0]->is_task) {
        // Gather the waiting requests of the same key (in queue order, skipping others, which the
        // next rounds take from the front) while the batch stays within the token budget.
        long long tokens = group[0]->tokens;
        for (auto it = queue_.begin(); it != queue_.end();) {
          const Request& r = **it;
          if (!r.is_task && r.key == group[0]->key && tokens + r.tokens <= max_batch_tokens_) {
            tokens += r.tokens;
            group.push_back(*it);
            it = queue_.erase(it);
          } else {
            ++it;
          }
        }
      }
      metrics_.queue_depth((int)queue_.size());
    }
    if (compute_delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(compute_delay_ms_));
    if (group[0]->is_task) {
      const auto t0 = clock_type::now();
      try {
        group[0]->task();
        metrics_.task(std::chrono::duration<double>(clock_type::now() - t0).count());
        group[0]->task_done.set_value();
      } catch (...) {
        group[0]->task_done.set_exception(std::current_exception());
      }
    } else {
      run_batch(group);
    }
    finished((int)group.size());
  }
}

void Batcher::run_batch(std::vector<std::shared_ptr<Request>>& group) {
  const auto start = clock_type::now();
  const BatchKey key = group[0]->key;
  // Every sequence of the group, longest first (ties: in queue order, so a batch is reproducible).
  struct Seq {
    int req, idx;
    size_t len;
  };
  std::vector<Seq> seqs;
  std::vector<BatchResult> results(group.size());
  for (size_t r = 0; r < group.size(); ++r) {
    const size_t n = group[r]->ids.size();
    if (key.kind == BatchKey::Kind::embed) results[r].embeddings.resize(n);
    else results[r].classifications.resize(n);
    for (size_t i = 0; i < n; ++i) seqs.push_back({(int)r, (int)i, group[r]->ids[i].size()});
  }
  std::stable_sort(seqs.begin(), seqs.end(), [](const Seq& a, const Seq& b) { return a.len > b.len; });

  std::vector<std::exception_ptr> errors(group.size());
  long long tokens = 0, padded = 0;
  size_t begin = 0;
  while (begin < seqs.size()) {
    // One forward pass: as many of the next sequences as fit the budget padded to the first
    // (longest) one; at least one.
    const size_t longest = seqs[begin].len;
    size_t end = begin + 1;
    while (end < seqs.size() && (long long)(end + 1 - begin) * (long long)longest <= max_batch_tokens_) ++end;
    std::vector<std::vector<int32_t>> ids;
    for (size_t s = begin; s < end; ++s) {
      ids.push_back(group[seqs[s].req]->ids[seqs[s].idx]);
      tokens += (long long)seqs[s].len;
    }
    padded += (long long)(end - begin) * (long long)longest;
    metrics_.forward_pass((long long)(end - begin) * (long long)longest);
    try {
      if (key.kind == BatchKey::Kind::embed) {
        EmbedOptions eo;
        eo.pooling = key.pooling;
        eo.normalize = key.normalize;
        eo.batch_size = (int)ids.size();
        const Embeddings e = model_.embed_ids(ids, eo);
        for (size_t s = begin; s < end; ++s) {
          const float* row = e.values.data() + (s - begin) * (size_t)e.dim;
          results[seqs[s].req].embeddings[seqs[s].idx].assign(row, row + e.dim);
        }
      } else {
        ClassifyOptions co;
        co.batch_size = (int)ids.size();
        std::vector<Classification> c = model_.classify_ids(ids, co);
        for (size_t s = begin; s < end; ++s) results[seqs[s].req].classifications[seqs[s].idx] = std::move(c[s - begin]);
      }
    } catch (...) {
      // Inputs are checked before they are queued, so this is rare (e.g. out of memory): every
      // request with a sequence in this pass fails with it.
      for (size_t s = begin; s < end; ++s) errors[seqs[s].req] = std::current_exception();
    }
    begin = end;
  }
  const auto done = clock_type::now();
  const double compute_s = std::chrono::duration<double>(done - start).count();
  metrics_.batch((int)group.size(), (int)seqs.size(), tokens, padded, compute_s);
  for (size_t r = 0; r < group.size(); ++r) {
    if (errors[r]) {
      group[r]->result.set_exception(errors[r]);
      continue;
    }
    results[r].queue_s = std::chrono::duration<double>(start - group[r]->queued).count();
    results[r].compute_s = compute_s;
    group[r]->result.set_value(std::move(results[r]));
  }
}

}  // namespace linformer::serve
