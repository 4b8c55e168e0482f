#include "routes.hpp"

#include <chrono>

#include <fmt/core.h>

#include "api_error.hpp"
#include "batcher.hpp"
#include "linformer/error.hpp"
#include "linformer/tokenizer.hpp"
#include "linformer/version.hpp"
#include "metrics.hpp"
#include "requests.hpp"

namespace linformer::serve {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {
double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

void need_tokenizer(const InferenceModel& m) {
  if (!m.has_tokenizer())
    throw not_supported("this model has no tokenizer (a bare model file): serve a run folder, whose tokenizer.model "
                        "turns texts into ids");
}
}  // namespace

std::vector<std::vector<int32_t>> Routes::encode_all(const std::vector<std::string>& texts, bool truncate) const {
  need_tokenizer(model_);
  std::vector<std::vector<int32_t>> ids;
  long long tokens = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (!valid_utf8(texts[i])) throw validation(fmt::format("inputs[{}] is not valid UTF-8", i));
    try {
      ids.push_back(model_.encode(texts[i], truncate));
    } catch (const InputError& e) {
      // The library's message names the command line's option; here it is a field.
      std::string m = e.what();
      const std::string flag = "--truncate";
      if (const size_t at = m.find(flag); at != std::string::npos) m.replace(at, flag.size(), "\"truncate\": true");
      throw validation(fmt::format("inputs[{}]: {}", i, m));
    }
    tokens += (long long)ids.back().size();
  }
  if (tokens > opt_.max_batch_tokens)
    throw too_large(fmt::format("the request holds {} tokens; at most {} (--max-batch-tokens)", tokens,
                                opt_.max_batch_tokens));
  return ids;
}

std::vector<std::vector<float>> Routes::embeddings(const std::vector<std::string>& texts, Pooling pooling,
                                                   bool normalize, bool truncate, long long* tokens) const {
  const auto t0 = clock_type::now();
  std::vector<std::vector<int32_t>> ids = encode_all(texts, truncate);
  *tokens = 0;
  for (const auto& s : ids) *tokens += (long long)s.size();
  metrics_.stage("parse", since(t0));
  BatchKey key;
  key.kind = BatchKey::Kind::embed;
  key.pooling = pooling;
  key.normalize = normalize;
  BatchResult r = batcher_.submit(key, std::move(ids)).get();
  metrics_.stage("queue", r.queue_s);
  metrics_.stage("compute", r.compute_s);
  return std::move(r.embeddings);
}

json Routes::embed(const json& body) const {
  const EmbedRequest q = parse_embed(body, opt_.max_client_batch_size);
  long long tokens = 0;
  return embeddings(q.inputs, q.pooling, q.normalize, q.truncate, &tokens);
}

json Routes::openai_embeddings(const json& body) const {
  const OpenAiEmbedRequest q = parse_openai_embed(body, opt_.max_client_batch_size);
  long long tokens = 0;
  const auto vecs = embeddings(q.inputs, Pooling::Mean, true, false, &tokens);
  json data = json::array();
  for (size_t i = 0; i < vecs.size(); ++i)
    data.push_back({{"object", "embedding"}, {"embedding", vecs[i]}, {"index", i}});
  return {{"object", "list"},
          {"data", std::move(data)},
          {"model", q.model.empty() ? model_.info().source : q.model},
          {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}};
}

json Routes::predict(const json& body) const {
  if (!model_.has_classifier())
    throw not_supported("this model has no classification head: serve a fine-tuning run folder for /predict");
  const PredictRequest q = parse_predict(body, opt_.max_client_batch_size, model_.info().trained_with_truncation);
  const auto t0 = clock_type::now();
  std::vector<std::vector<int32_t>> ids = encode_all(q.inputs, q.truncate);
  metrics_.stage("parse", since(t0));
  BatchKey key;
  key.kind = BatchKey::Kind::classify;
  BatchResult r = batcher_.submit(key, std::move(ids)).get();
  metrics_.stage("queue", r.queue_s);
  metrics_.stage("compute", r.compute_s);
  const auto& labels = model_.labels();
  json out = json::array();
  for (const Classification& c : r.classifications) {
    json probs = json::object();
    for (size_t k = 0; k < labels.size(); ++k) probs[labels[k]] = c.probs[k];
    out.push_back({{"label", c.label}, {"label_index", c.label_index}, {"probs", std::move(probs)}});
  }
  // One text in, one answer out; a list in, a list out.
  return body.at("inputs").is_string() ? out[0] : out;
}

json Routes::fill_mask(const json& body) const {
  need_tokenizer(model_);
  const FillMaskRequest q = parse_fill_mask(body);
  if (!valid_utf8(q.input)) throw validation("\"inputs\" is not valid UTF-8");
  FillMaskResult r;
  const auto t0 = clock_type::now();
  batcher_.submit_task([&] { r = model_.fill_mask(q.input, q.top_k); }).get();
  metrics_.stage("compute", since(t0));
  json masks = json::array();
  for (const MaskPrediction& m : r.masks) {
    json cands = json::array();
    for (const FillMaskCandidate& c : m.candidates) cands.push_back({{"token", c.token}, {"id", c.id}, {"score", c.prob}});
    masks.push_back({{"position", m.position}, {"candidates", std::move(cands)}});
  }
  return {{"masks", std::move(masks)}, {"ids", r.ids}};
}

json Routes::tokenize(const json& body) const {
  need_tokenizer(model_);
  const TokenizeRequest q = parse_tokenize(body, opt_.max_client_batch_size);
  json out = json::array();
  for (size_t i = 0; i < q.inputs.size(); ++i) {
    if (!valid_utf8(q.inputs[i])) throw validation(fmt::format("inputs[{}] is not valid UTF-8", i));
    std::vector<int32_t> ids;
    try {
      ids = model_.tokenize(q.inputs[i]);
    } catch (const InputError& e) {
      throw validation(fmt::format("inputs[{}]: {}", i, e.what()));
    }
    if (q.add_special_tokens) {
      ids.insert(ids.begin(), kBosId);
      ids.push_back(kEosId);
    }
    json toks = json::array();
    for (int32_t id : ids)
      toks.push_back({{"id", id}, {"text", model_.piece(id)}, {"special", id < kNumSpecial}});
    out.push_back(std::move(toks));
  }
  return out;
}

json Routes::attention(const json& body) const {
  need_tokenizer(model_);
  const AttentionRequest q = parse_attention(body);
  const ModelConfig& cfg = model_.config();
  if (q.layer >= cfg.n_layers)
    throw validation(fmt::format("\"layer\" must be in 0..{} (the model has {} layers), not {}", cfg.n_layers - 1,
                                 cfg.n_layers, q.layer));
  if (q.head >= cfg.n_heads)
    throw validation(fmt::format("\"head\" must be in 0..{} (the model has {} heads), not {}", cfg.n_heads - 1,
                                 cfg.n_heads, q.head));
  const std::vector<int32_t> ids = encode_all({q.input}, q.truncate)[0];
  AttentionMap m;
  batcher_.submit_task([&] { m = model_.attention_map(ids, q.layer); }).get();
  json rows = json::array();
  for (int t = 0; t < m.n; ++t) {
    const float* p = m.probs.data() + ((size_t)q.head * m.n + t) * m.cols;
    rows.push_back(std::vector<float>(p, p + m.cols));
  }
  json tokens = json::array();
  for (int32_t id : ids) tokens.push_back(model_.piece(id));
  return {{"tokens", std::move(tokens)}, {"layer", q.layer}, {"head", q.head}, {"heads", m.heads},
          {"n", m.n}, {"cols", m.cols}, {"attention", to_string(cfg.attention)}, {"probs", std::move(rows)}};
}

json Routes::info() const {
  const ModelInfo& i = model_.info();
  return {{"model", i.source},
          {"model_file", i.model_file},
          {"run_dir", i.run_dir},
          {"config", i.config.to_json()},
          {"max_len", i.config.max_len},
          {"attention", to_string(i.config.attention)},
          {"labels", i.labels},
          {"task", i.task_name},
          {"tokenizer", i.tokenizer},
          {"version", kVersion},
          {"model_file_format", kModelFileFormatVersion},
          {"limits",
           {{"max_batch_tokens", opt_.max_batch_tokens},
            {"max_concurrent_requests", opt_.max_concurrent_requests},
            {"max_body_bytes", opt_.max_body_bytes},
            {"max_client_batch_size", opt_.max_client_batch_size},
            {"timeout_s", opt_.timeout_s}}},
          {"threads", opt_.threads}};
}

}  // namespace linformer::serve
