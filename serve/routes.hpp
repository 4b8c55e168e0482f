// The routes' work, without HTTP: each takes the parsed JSON body and gives the JSON answer, or
// throws an ApiError (or the library's InputError / ConfigError, which the server maps to 422).
// server.cpp connects them to cpp-httplib; keeping them here keeps the shapes in one place.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "linformer/inference.hpp"
#include "linformer/serve.hpp"  // ServeOptions

namespace linformer::serve {

class Batcher;
class Metrics;

class Routes {
 public:
  Routes(const InferenceModel& model, Batcher& batcher, Metrics& metrics, const ServeOptions& opt)
      : model_(model), batcher_(batcher), metrics_(metrics), opt_(opt) {}

  nlohmann::json embed(const nlohmann::json& body) const;             // POST /embed
  nlohmann::json openai_embeddings(const nlohmann::json& body) const; // POST /v1/embeddings
  nlohmann::json predict(const nlohmann::json& body) const;           // POST /predict
  nlohmann::json fill_mask(const nlohmann::json& body) const;         // POST /fill-mask
  nlohmann::json tokenize(const nlohmann::json& body) const;          // POST /tokenize
  nlohmann::json attention(const nlohmann::json& body) const;         // POST /attention
  nlohmann::json info() const;                                        // GET /info

 private:
  // The texts as model inputs (<s> ... </s>), with the request's limits checked.
  std::vector<std::vector<int32_t>> encode_all(const std::vector<std::string>& texts, bool truncate) const;
  std::vector<std::vector<float>> embeddings(const std::vector<std::string>& texts, Pooling pooling, bool normalize,
                                             bool truncate, long long* tokens) const;

  const InferenceModel& model_;
  Batcher& batcher_;
  Metrics& metrics_;
  const ServeOptions& opt_;
};

}  // namespace linformer::serve
