// The inside of InferenceModel (linformer/inference.hpp), shared by src/api/inference_load.cpp
// (loading, information) and src/api/inference.cpp (the requests): the weights, the tokenizer, the
// pool of worker models that share the weights, and the per-call OpenMP thread count.
#pragma once
#include <omp.h>

#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "linformer/inference.hpp"
#include "linformer/model.hpp"
#include "linformer/tasks.hpp"
#include "linformer/tokenizer.hpp"

namespace linformer {

namespace api_detail {

enum class TextKind { None, SentencePiece, ListOps, Pixels };

inline const char* to_string(TextKind k) {
  switch (k) {
    case TextKind::SentencePiece: return "sentencepiece";
    case TextKind::ListOps: return "listops";
    case TextKind::Pixels: return "pixels";
    case TextKind::None: break;
  }
  return "";
}

// The calling thread's OpenMP thread count for one call (omp_set_num_threads acts on the calling
// thread only), restored at its end.
class ThreadCount {
 public:
  explicit ThreadCount(int n) {
    if (n > 0 && n != omp_get_max_threads()) {
      previous_ = omp_get_max_threads();
      omp_set_num_threads(n);
    }
  }
  ~ThreadCount() {
    if (previous_ > 0) omp_set_num_threads(previous_);
  }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace api_detail

struct InferenceModel::Impl {
  std::shared_ptr<const Model> weights;
  std::unique_ptr<Tokenizer> tok;  // SentencePiece, when kind is SentencePiece
  api_detail::TextKind kind = api_detail::TextKind::None;
  bool has_task = false;
  TaskInfo task;  // a fine-tuning run's task.json
  ModelInfo info;
  int threads = 0;

  // The worker pool: models that read `weights` in place, each with its own buffers.
  int max_workers = 1;
  mutable std::mutex mu;
  mutable std::condition_variable cv;
  mutable std::vector<std::unique_ptr<Model>> idle;
  mutable int created = 0;

  // A worker for one call: an idle one, a new one while fewer than max_workers exist, else the
  // next one given back.
  class Lease {
   public:
    explicit Lease(const Impl& im) : im_(im) {
      std::unique_lock<std::mutex> lock(im_.mu);
      while (im_.idle.empty() && im_.created >= im_.max_workers) im_.cv.wait(lock);
      if (!im_.idle.empty()) {
        m_ = std::move(im_.idle.back());
        im_.idle.pop_back();
        return;
      }
      ++im_.created;  // reserve the slot; build the worker outside the lock
      lock.unlock();
      try {
        m_ = Model::sharing_weights_of(*im_.weights);
      } catch (...) {
        lock.lock();
        --im_.created;
        im_.cv.notify_one();
        throw;
      }
    }
    ~Lease() {
      {
        std::lock_guard<std::mutex> lock(im_.mu);
        im_.idle.push_back(std::move(m_));
      }
      im_.cv.notify_one();
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Model& operator*() const { return *m_; }
    Model* operator->() const { return m_.get(); }

   private:
    const Impl& im_;
    std::unique_ptr<Model> m_;
  };

  const ModelConfig& cfg() const { return weights->config(); }

  // Loading (inference_load.cpp).
  void load_sentencepiece(const std::string& path);
  void own(std::unique_ptr<Model> m);
  void load_finetuned(const std::string& path, const std::filesystem::path& run, const InferenceOptions& opt);
  void finish(const InferenceOptions& opt);
  void check_classifier(const char* what) const;

  // Requests (inference.cpp). Checks id sequences against the model (and cuts them with `truncate`); errors name the input.
  std::vector<std::vector<int32_t>> checked(const std::vector<std::vector<int32_t>>& ids, bool truncate,
                                            const char* what) const;
  // encode() of every text; errors name the input.
  std::vector<std::vector<int32_t>> encoded(const std::vector<std::string>& texts, bool truncate,
                                            const char* what) const;
  [[noreturn]] void no_tokenizer() const;
  std::vector<int32_t> tokenize(const std::string& text) const;
  std::vector<int32_t> encode(const std::string& text, bool truncate) const;
  std::vector<int32_t> truncate(const std::vector<int32_t>& ids) const;
  Embeddings embed(const std::vector<std::vector<int32_t>>& seqs, const EmbedOptions& opt) const;
  std::vector<Classification> classify(const std::vector<std::vector<int32_t>>& seqs, const ClassifyOptions& opt) const;
};

}  // namespace linformer
