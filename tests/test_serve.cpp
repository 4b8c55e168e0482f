// The server's library pieces without HTTP (serve/, linformer_serve_lib): the UTF-8 check, body
// parsing and field checks with their statuses, and the dynamic batcher: many requests at once
// give what each alone gives, batches respect the token budget, 429 beyond the in-flight limit,
// 503 after stop, and stop finishes what is queued. The HTTP side: tests/serve/*.py.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "linformer/inference.hpp"
#include "linformer/error.hpp"
#include "linformer/model.hpp"
#include "serve/api_error.hpp"
#include "serve/batcher.hpp"
#include "serve/metrics.hpp"
#include "serve/requests.hpp"

using namespace linformer;
using namespace linformer::serve;
using json = nlohmann::json;

namespace {

// The status and type of the ApiError `f` throws (0 and "" if none).
template <class F>
std::pair<int, std::string> status_of(F&& f) {
  try {
    f();
  } catch (const ApiError& e) {
    return {e.status(), e.type()};
  }
  return {0, ""};
}

InferenceModel tiny_model(int num_labels = 0) {
  ModelConfig c;
  c.vocab_size = 50;
  c.max_len = 32;
  c.d_model = 32;
  c.n_heads = 2;
  c.d_ff = 64;
  c.n_layers = 2;
  c.attention = AttentionKind::Linformer;
  c.k = {8};
  c.num_labels = num_labels;
  auto m = std::make_unique<Model>(c);
  m->init(3);
  return InferenceModel::from_model(std::move(m), {.max_workers = 1, .threads = 1});
}

std::vector<int32_t> seq(int len, uint32_t seed) {
  std::vector<int32_t> s(len);
  s[0] = 1;
  for (int i = 1; i < len - 1; ++i) s[i] = 5 + (int32_t)((seed * 2654435761u + (uint32_t)i * 40503u) % 45u);
  s[len - 1] = 2;
  return s;
}

}  // namespace

TEST(ServeRequests, Utf8) {
  EXPECT_TRUE(valid_utf8("plain ascii"));
  EXPECT_TRUE(valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));  // é € 😀
  EXPECT_FALSE(valid_utf8("caf\xe9"));                                   // Latin-1
  EXPECT_FALSE(valid_utf8("\xc0\xaf"));                                  // overlong '/'
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));                              // a surrogate
  EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));                          // above U+10FFFF
  EXPECT_FALSE(valid_utf8("\xe2\x82"));                                  // cut short
  EXPECT_FALSE(valid_utf8("\x80"));                                      // a lone continuation byte
}

TEST(ServeRequests, BodyStatuses) {
  EXPECT_EQ(status_of([] { parse_body("{\"inputs\": \"a"); }), std::make_pair(400, std::string("malformed")));
  EXPECT_EQ(status_of([] { parse_body("\x01\xff\xfe garbage"); }).first, 400);
  EXPECT_EQ(status_of([] { parse_body("[1, 2]"); }).first, 400);
  EXPECT_EQ(status_of([] { parse_body(""); }).first, 400);
  // Valid JSON but for a Latin-1 text: 422, not 400.
  EXPECT_EQ(status_of([] { parse_body("{\"inputs\": \"caf\xe9\"}"); }), std::make_pair(422, std::string("validation")));
  EXPECT_EQ(parse_body("{\"inputs\": \"caf\xc3\xa9\"}")["inputs"], "caf\xc3\xa9");
}

TEST(ServeRequests, FieldStatuses) {
  const auto embed = [](const std::string& body, int max_inputs = 32) { return parse_embed(parse_body(body), max_inputs); };
  EXPECT_EQ(embed("{\"inputs\": \"a\"}").inputs, std::vector<std::string>{"a"});
  EXPECT_TRUE(embed("{\"inputs\": \"a\"}").normalize);  // TEI's default
  EXPECT_EQ(embed("{\"inputs\": [\"a\", \"b\"], \"pooling\": \"first\"}").pooling, Pooling::First);
  EXPECT_EQ(status_of([&] { embed("{\"inputs\": 5}"); }).first, 400);
  EXPECT_EQ(status_of([&] { embed("{\"inputs\": [\"a\", null]}"); }).first, 400);
  EXPECT_EQ(status_of([&] { embed("{}"); }).first, 400);
  EXPECT_EQ(status_of([&] { embed("{\"inputs\": \"a\", \"truncate\": 1}"); }).first, 400);
  EXPECT_EQ(status_of([&] { embed("{\"inputs\": \"\"}"); }), std::make_pair(422, std::string("empty")));
  EXPECT_EQ(status_of([&] { embed("{\"inputs\": []}"); }).second, "empty");
  EXPECT_EQ(status_of([&] { embed("{\"inputs\": \" \\n\"}"); }).second, "empty");
  EXPECT_EQ(status_of([&] { embed("{\"inputs\": \"a\", \"pooling\": \"max\"}"); }).first, 422);
  EXPECT_EQ(status_of([&] { embed("{\"inputs\": [\"a\", \"b\", \"c\"]}", 2); }),
            std::make_pair(413, std::string("payload_too_large")));
  const auto fill = [](const std::string& body) { return parse_fill_mask(parse_body(body)); };
  EXPECT_EQ(fill("{\"inputs\": \"a <mask>\"}").top_k, 5);
  EXPECT_EQ(status_of([&] { fill("{\"inputs\": \"a <mask>\", \"top_k\": 0}"); }).first, 422);
  EXPECT_EQ(status_of([&] { fill("{\"inputs\": \"a <mask>\", \"top_k\": 2.5}"); }).first, 400);
  EXPECT_EQ(status_of([&] { fill("{\"inputs\": [\"a <mask>\"]}"); }).first, 400);
  // The message names the field.
  try {
    embed("{\"inputs\": [\"a\", 7]}");
    FAIL() << "no error";
  } catch (const ApiError& e) {
    EXPECT_NE(std::string(e.what()).find("\"inputs\"[1]"), std::string::npos) << e.what();
  }
}

// Requests submitted together are gathered into batches, and each gets what it gets alone.
TEST(ServeBatcher, ConcurrentRequestsEqualSingleOnes) {
  const InferenceModel model = tiny_model(3);
  Metrics metrics;
  std::vector<std::vector<int32_t>> seqs;
  for (int i = 0; i < 24; ++i) seqs.push_back(seq(4 + (i * 7) % 28, i));
  std::vector<std::vector<float>> single(seqs.size());
  std::vector<std::vector<double>> single_probs(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    single[i] = model.embed_ids({seqs[i]}, {.pooling = Pooling::Mean, .normalize = true}).values;
    single_probs[i] = model.classify_ids({seqs[i]})[0].probs;
  }
  // A 40 ms pause before each batch lets the queue fill, so batches really hold many requests.
  Batcher batcher(model, /*max_batch_tokens=*/200, /*max_in_flight=*/100, /*threads=*/1, /*delay_ms=*/40, metrics);
  std::vector<std::future<BatchResult>> embeds, classes;
  BatchKey ek{BatchKey::Kind::embed, Pooling::Mean, true}, ck{BatchKey::Kind::classify, Pooling::Mean, false};
  for (size_t i = 0; i < seqs.size(); ++i) {
    embeds.push_back(batcher.submit(ek, {seqs[i]}));
    classes.push_back(batcher.submit(ck, {seqs[i]}));
  }
  for (size_t i = 0; i < seqs.size(); ++i) {
    const BatchResult e = embeds[i].get();
    ASSERT_EQ(e.embeddings.size(), 1u);
    ASSERT_EQ(e.embeddings[0].size(), single[i].size());
    for (size_t k = 0; k < single[i].size(); ++k) EXPECT_NEAR(e.embeddings[0][k], single[i][k], 1e-6) << i;
    const BatchResult c = classes[i].get();
    ASSERT_EQ(c.classifications.size(), 1u);
    for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(c.classifications[0].probs[k], single_probs[i][k], 1e-6) << i;
  }
  const std::string text = metrics.text();
  // Fewer batches than requests: they were gathered; and every batch within the budget.
  const auto value = [&](const std::string& name) {
    const size_t at = text.find("\n" + name + " ");
    EXPECT_NE(at, std::string::npos) << name;
    return std::stod(text.substr(at + name.size() + 2));
  };
  EXPECT_LT(value("linformer_batches_total"), 2.0 * seqs.size() / 2);
  EXPECT_EQ(value("linformer_batch_requests_sum"), 2.0 * seqs.size());
  // Every forward pass within the budget of 200 padded tokens: all of them in the bucket le="256".
  const double passes = value("linformer_batch_tokens_count");
  EXPECT_GE(passes, value("linformer_batches_total"));
  EXPECT_NE(text.find("linformer_batch_tokens_bucket{le=\"256\"} " + std::to_string((int)passes) + "\n"),
            std::string::npos)
      << "a forward pass over 256 padded tokens:\n" << text;
  EXPECT_LE(value("linformer_batch_tokens_sum"), 200 * passes);
}

TEST(ServeBatcher, LimitsAndStop) {
  const InferenceModel model = tiny_model();
  Metrics metrics;
  auto batcher = std::make_unique<Batcher>(model, 1000, /*max_in_flight=*/2, 1, /*delay_ms=*/200, metrics);
  const BatchKey key;
  auto a = batcher->submit(key, {seq(8, 1)});
  auto b = batcher->submit(key, {seq(9, 2)});
  EXPECT_EQ(status_of([&] { batcher->submit(key, {seq(8, 3)}); }), std::make_pair(429, std::string("overloaded")));
  EXPECT_EQ(status_of([&] { batcher->submit_task([] {}); }).first, 429);
  std::atomic<bool> ran{false};
  a.get();  // a's batch done: room for one more
  std::future<void> t;
  for (int tries = 0; tries < 100 && batcher->in_flight() >= 2; ++tries) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  t = batcher->submit_task([&] { ran = true; });
  batcher->stop();  // finishes b and the task
  EXPECT_EQ(b.get().embeddings.size(), 1u);
  t.get();
  EXPECT_TRUE(ran);
  EXPECT_EQ(status_of([&] { batcher->submit(key, {seq(8, 4)}); }), std::make_pair(503, std::string("unhealthy")));
  // An exception in a task reaches its caller, and the batcher goes on.
  Batcher again(model, 1000, 4, 1, 0, metrics);
  EXPECT_THROW(again.submit_task([] { throw InputError("no <mask>"); }).get(), InputError);
  EXPECT_EQ(again.submit(key, {seq(5, 5)}).get().embeddings.size(), 1u);
}
