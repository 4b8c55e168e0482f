// The inference API (include/linformer/inference.hpp): forward bitwise equal to Model's forward
// passes and to `linformer forward` (LINFORMER_BIN), embed against a hand pooling of forward's
// hidden states, classify and evaluate equal to the Classifier of the same fine-tuning run,
// fill_mask against a hand softmax, attention maps against Model::attention_probs, truncation on
// and off, the typed error of every bad input, run folders (tokenizer, checkpoint folders),
// weight-sharing workers, and several threads calling one InferenceModel at once (the same results
// as serial calls, more than one worker).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "finetune_test_util.hpp"
#include "linformer/checkpoint.hpp"
#include "linformer/data.hpp"
#include "linformer/error.hpp"
#include "linformer/finetune.hpp"
#include "linformer/inference.hpp"
#include "linformer/model.hpp"
#include "linformer/tokenizer.hpp"
#include "linformer/trainer.hpp"
#include "pretrain_test_util.hpp"

namespace fs = std::filesystem;
using namespace linformer;
using namespace pretrain_test;
using test_util::ckpt_name;
using test_util::expect_throw;
using test_util::Threads;
using namespace finetune_test;

namespace {



ModelConfig small_config(AttentionKind kind, int vocab = 50, int max_len = 32) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.max_len = max_len;
  c.d_model = 32;
  c.n_heads = 2;
  c.d_ff = 64;
  c.n_layers = 2;
  c.attention = kind;
  c.k = {8};
  return c;
}

std::shared_ptr<Model> make_model(const ModelConfig& c, uint64_t seed) {
  auto m = std::make_shared<Model>(c);
  m->init(seed);
  return m;
}

// Sequences of lengths `lens` with ids from a fixed pattern in [0, vocab).
std::vector<std::vector<int32_t>> sequences(const std::vector<int>& lens, int vocab, uint32_t seed = 1) {
  std::vector<std::vector<int32_t>> out;
  uint32_t x = seed;
  for (int len : lens) {
    std::vector<int32_t> s(len);
    for (int& id : s) {
      x = x * 1664525u + 1013904223u;
      id = (int32_t)((x >> 8) % (uint32_t)vocab);
    }
    out.push_back(s);
  }
  return out;
}

bool same_bits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, (double)std::fabs(a[i] - b[i]));
  return m;
}

// A pretraining-style run folder written by hand: latest -> ckpt-00000001/model.safetensors, and
// tokenizer.model (a tokenizer of kTokVocab pieces trained on the grammar corpus).
struct RunFolder {
  std::string dir, tok;
};
RunFolder make_run_folder(const TempDir& tmp, const Model& m) {
  RunFolder r{tmp / "run", tmp / "run/tokenizer.model"};
  fs::create_directories(tmp / "run/ckpt-00000001");
  write_file(tmp / "corpus.txt", grammar_corpus(200, 3));
  Tokenizer::train({tmp / "corpus.txt"}, kTokVocab, r.tok);
  save_model(m, tmp / "run/ckpt-00000001/model.safetensors");
  write_file(tmp / "run/latest", "ckpt-00000001\n");
  return r;
}

// A fine-tuning run on the has7 task (ListOps vocabulary), 20 steps from scratch, mean pooling.
std::string make_finetuned_run(const TempDir& tmp) {
  write_has7_task(tmp / "task");
  write_file(tmp / "cfg.json", has7_config_json("linformer"));
  FinetuneOptions o;
  o.config = tmp / "cfg.json";
  o.task = tmp / "task";
  o.steps = 20;
  o.batch_size = 16;
  o.lr = 3e-3f;
  o.warmup = 3;
  o.eval_every = 10;
  o.save_every = 10;
  o.seed = 11;
  o.pooling = "mean";
  finetune(o, tmp / "run");
  return tmp / "run";
}

}  // namespace

// ------------------------------------------------------------------ forward

class ForwardKinds : public ::testing::TestWithParam<AttentionKind> {};

// forward() is bitwise Model::forward_mlm_logits / hidden / encode in inference-only mode on the
// batch Batch::from_sequences pads, and within float rounding of the plain eval-mode forward.
TEST_P(ForwardKinds, EqualsModelForwardBitwise) {
  Threads threads(2);
  const ModelConfig c = small_config(GetParam());
  std::shared_ptr<Model> ref = make_model(c, 7);
  const InferenceModel im = InferenceModel::from_model(std::shared_ptr<const Model>(ref));
  const auto seqs = sequences({5, 17, 1, 32, 9}, c.vocab_size);
  const ForwardResult r = im.forward(seqs);
  const ForwardResult h = im.forward(seqs, {.logits = false});

  const Batch b = Batch::from_sequences(seqs);
  ASSERT_EQ(r.B, b.B);
  ASSERT_EQ(r.n, 32);
  EXPECT_EQ(r.d_model, c.d_model);
  EXPECT_EQ(r.vocab_size, c.vocab_size);
  EXPECT_EQ(r.ids, b.ids);
  EXPECT_EQ(r.mask, b.mask);
  const size_t T = (size_t)b.B * b.n;
  ASSERT_EQ(r.hidden.size(), T * c.d_model);
  ASSERT_EQ(r.logits.size(), T * c.vocab_size);
  EXPECT_TRUE(h.logits.empty());

  ref->eval();
  ref->set_inference_only(true);
  const float* logits = ref->forward_mlm_logits(b);
  EXPECT_TRUE(same_bits(r.logits.data(), logits, T * c.vocab_size)) << "logits differ";
  EXPECT_TRUE(same_bits(r.hidden.data(), ref->hidden(), T * c.d_model)) << "hidden states differ";
  const float* enc = ref->encode(b);
  EXPECT_TRUE(same_bits(h.hidden.data(), enc, T * c.d_model)) << "hidden states (logits off) differ";
  // The eval-mode forward that keeps activations: the same up to rounding.
  ref->set_inference_only(false);
  const float* logits_eval = ref->forward_mlm_logits(b);
  const double worst = max_abs_diff(r.logits.data(), logits_eval, T * c.vocab_size);
  std::printf("forward %s: worst |logits - eval-mode logits| = %.3g\n", to_string(c.attention), worst);
  EXPECT_LT(worst, 1e-4);

  // A reused result: the same values, and the handed-over logits buffer keeps its size.
  ForwardResult again;
  for (int i = 0; i < 3; ++i) {
    im.forward(seqs, {}, again);
    ASSERT_EQ(again.logits.size(), T * c.vocab_size);
    EXPECT_TRUE(same_bits(again.logits.data(), r.logits.data(), T * c.vocab_size));
    EXPECT_TRUE(same_bits(again.hidden.data(), r.hidden.data(), T * c.d_model));
  }
  // A smaller batch after a larger one: sized to its own batch.
  const ForwardResult small = im.forward({{3, 4}});
  EXPECT_EQ(small.logits.size(), (size_t)2 * c.vocab_size);
  EXPECT_EQ(small.hidden.size(), (size_t)2 * c.d_model);
}

INSTANTIATE_TEST_SUITE_P(Kinds, ForwardKinds,
                         ::testing::Values(AttentionKind::Full, AttentionKind::Linformer, AttentionKind::Tiled),
                         [](const auto& info) { return std::string(to_string(info.param)); });

// `linformer forward` on an ids file writes what InferenceModel::forward returns, byte for byte
// (padding with id 0 to the longest line, mask 1 on the real tokens).
TEST(Inference, ForwardEqualsTheCli) {
  const char* bin = std::getenv("LINFORMER_BIN");
  ASSERT_NE(bin, nullptr) << "LINFORMER_BIN is not set (ctest sets it)";
  Threads threads(1);
  TempDir tmp("linformer_test_inference_");
  const ModelConfig c = small_config(AttentionKind::Linformer);
  std::shared_ptr<Model> m = make_model(c, 3);
  save_model(*m, tmp / "m.safetensors");
  const auto seqs = sequences({4, 11, 2, 7}, c.vocab_size, 5);
  std::string text;
  for (const auto& s : seqs) {
    for (size_t t = 0; t < s.size(); ++t) text += (t ? " " : "") + std::to_string(s[t]);
    text += "\n";
  }
  write_file(tmp / "ids.txt", text);
  const std::string cmd = std::string("'") + bin + "' forward --threads 1 --model '" + (tmp / "m.safetensors") +
                          "' --ids '" + (tmp / "ids.txt") + "' --out '" + (tmp / "out.safetensors") + "' > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const SafetensorsFile f = read_safetensors(tmp / "out.safetensors");

  const InferenceModel im = InferenceModel::load(tmp / "m.safetensors");
  EXPECT_FALSE(im.has_tokenizer());
  EXPECT_EQ(im.info().model_file, tmp / "m.safetensors");
  const ForwardResult r = im.forward(seqs);
  auto bytes_of = [](const auto& v) {
    return std::vector<uint8_t>((const uint8_t*)v.data(), (const uint8_t*)v.data() + v.size() * sizeof(v[0]));
  };
  ASSERT_NE(f.find("hidden"), nullptr);
  EXPECT_TRUE(f.find("hidden")->bytes == bytes_of(r.hidden));
  EXPECT_TRUE(f.find("logits")->bytes == bytes_of(r.logits));
  EXPECT_TRUE(f.find("ids")->bytes == bytes_of(r.ids));
  const std::vector<int32_t> mask(r.mask.begin(), r.mask.end());
  EXPECT_TRUE(f.find("mask")->bytes == bytes_of(mask));
  EXPECT_EQ(f.find("hidden")->shape, (std::vector<int64_t>{4, 11, c.d_model}));
  for (int b = 0; b < r.B; ++b)
    for (int t = 0; t < r.n; ++t) {
      const bool real = t < (int)seqs[b].size();
      EXPECT_EQ(r.mask[(size_t)b * r.n + t], real ? 1 : 0);
      EXPECT_EQ(r.ids[(size_t)b * r.n + t], real ? seqs[b][t] : kPadId);
    }
}

// ------------------------------------------------------------------ embed

// embed pools forward's hidden states: the first position, or the mean over the real tokens
// (padding excluded), optionally divided by the L2 norm. Checked bitwise against a hand pooling
// of the batch embed runs (longest first) and within rounding against one in the input order.
TEST(Inference, EmbedPoolsForwardHiddenStates) {
  Threads threads(2);
  const ModelConfig c = small_config(AttentionKind::Linformer);
  const InferenceModel im = InferenceModel::from_model(std::shared_ptr<const Model>(make_model(c, 9)));
  const auto seqs = sequences({6, 20, 3, 11}, c.vocab_size, 2);
  const int d = c.d_model;
  std::vector<size_t> order(seqs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return seqs[a].size() > seqs[b].size(); });
  std::vector<std::vector<int32_t>> sorted;
  for (size_t i : order) sorted.push_back(seqs[i]);
  const ForwardResult fs_sorted = im.forward(sorted, {.logits = false});
  const ForwardResult fs_input = im.forward(seqs, {.logits = false});

  auto hand = [&](const ForwardResult& f, size_t row, Pooling pooling, bool normalize) {
    std::vector<float> v(d, 0.0f);
    const float* h = f.hidden.data() + row * f.n * d;
    if (pooling == Pooling::First) {
      std::copy(h, h + d, v.begin());
    } else {
      int len = 0;
      for (int t = 0; t < f.n; ++t)
        if (f.mask[row * f.n + t]) {
          ++len;
          for (int k = 0; k < d; ++k) v[k] += h[(size_t)t * d + k];
        }
      for (float& x : v) x /= len;
    }
    if (normalize) {
      double ss = 0;
      for (float x : v) ss += (double)x * x;
      for (float& x : v) x = (float)(x / std::sqrt(ss));
    }
    return v;
  };
  double worst = 0;
  for (Pooling pooling : {Pooling::First, Pooling::Mean})
    for (bool normalize : {false, true}) {
      const Embeddings e = im.embed_ids(seqs, {.pooling = pooling, .normalize = normalize});
      ASSERT_EQ(e.rows, 4);
      ASSERT_EQ(e.dim, d);
      ASSERT_EQ(e.values.size(), (size_t)4 * d);
      for (size_t j = 0; j < order.size(); ++j) {
        const size_t i = order[j];
        const std::vector<float> want = hand(fs_sorted, j, pooling, normalize);
        EXPECT_TRUE(same_bits(e.values.data() + i * d, want.data(), d))
            << "input " << i << " pooling " << to_string(pooling) << " normalize " << normalize;
        const std::vector<float> near = hand(fs_input, i, pooling, normalize);
        worst = std::max(worst, max_abs_diff(e.values.data() + i * d, near.data(), d));
        if (normalize) {
          double ss = 0;
          for (int k = 0; k < d; ++k) ss += (double)e.values[i * d + k] * e.values[i * d + k];
          EXPECT_NEAR(std::sqrt(ss), 1.0, 1e-6);
        }
      }
    }
  std::printf("embed: worst |embed - pooling of one input-order batch| = %.3g\n", worst);
  EXPECT_LT(worst, 1e-5);
  // Batches of one give the pooling of each sequence alone.
  const Embeddings one = im.embed_ids(seqs, {.pooling = Pooling::Mean, .batch_size = 1});
  for (size_t i = 0; i < seqs.size(); ++i) {
    const ForwardResult alone = im.forward({seqs[i]}, {.logits = false});
    const std::vector<float> want = hand(alone, 0, Pooling::Mean, false);
    EXPECT_TRUE(same_bits(one.values.data() + i * d, want.data(), d)) << i;
  }
}

// ------------------------------------------------------------------ run folders, text, fill-mask

// A pretraining run folder: its latest checkpoint and tokenizer.model; a checkpoint folder finds
// the run's tokenizer. Texts are <s> pieces </s>; fill_mask's candidates are the softmax of the
// logits at the mask, most probable first.
TEST(Inference, RunFolderTextAndFillMask) {
  Threads threads(1);
  TempDir tmp("linformer_test_inference_");
  const ModelConfig c = small_config(AttentionKind::Linformer, kTokVocab, 32);
  std::shared_ptr<Model> m = make_model(c, 5);
  const RunFolder run = make_run_folder(tmp, *m);
  const Tokenizer tok(run.tok);

  for (const std::string& path : {run.dir, run.dir + "/ckpt-00000001"}) {
    const InferenceModel im = InferenceModel::load(path);
    EXPECT_TRUE(im.has_tokenizer()) << path;
    EXPECT_EQ(im.info().tokenizer, "sentencepiece");
    EXPECT_EQ(im.info().tokenizer_file, run.tok);
    EXPECT_EQ(im.info().run_dir, run.dir);
    EXPECT_EQ(im.info().model_file, run.dir + "/ckpt-00000001/model.safetensors");
    EXPECT_FALSE(im.has_classifier());
    EXPECT_TRUE(im.labels().empty());
    EXPECT_EQ(im.max_len(), 32);
    EXPECT_EQ(im.vocab_size(), kTokVocab);
    EXPECT_EQ(im.config().attention, AttentionKind::Linformer);
    EXPECT_FALSE(im.model().params().has_grad()) << "a loaded model keeps no gradient block";
  }
  const InferenceModel im = InferenceModel::load(run.dir);
  const std::string text = "the cat sees the bird .";
  EXPECT_EQ(im.tokenize(text), tok.encode(text));
  std::vector<int32_t> want = tok.encode(text);
  want.insert(want.begin(), kBosId);
  want.push_back(kEosId);
  EXPECT_EQ(im.encode(text), want);
  EXPECT_EQ(im.decode(im.tokenize(text)), tok.decode(tok.encode(text)));
  EXPECT_EQ(im.piece(kMaskId), tok.piece(kMaskId));

  const int top_k = 5;
  const FillMaskResult r = im.fill_mask("the cat <mask> the bird . a <mask>", top_k);
  ASSERT_EQ(r.masks.size(), 2u);
  EXPECT_EQ(r.ids.front(), kBosId);
  EXPECT_EQ(r.ids.back(), kEosId);
  const ForwardResult f = im.forward({r.ids});
  double worst = 0;
  for (const MaskPrediction& mp : r.masks) {
    EXPECT_EQ(r.ids[mp.position], kMaskId);
    ASSERT_EQ(mp.candidates.size(), (size_t)top_k);
    const float* l = f.logits.data() + (size_t)mp.position * c.vocab_size;
    double z = 0, sum = 0;
    const float mx = *std::max_element(l, l + c.vocab_size);
    for (int v = 0; v < c.vocab_size; ++v) z += std::exp((double)l[v] - mx);
    std::vector<float> sorted(l, l + c.vocab_size);
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    for (int i = 0; i < top_k; ++i) {
      const FillMaskCandidate& cand = mp.candidates[i];
      if (i > 0) EXPECT_GE(mp.candidates[i - 1].prob, cand.prob);
      EXPECT_EQ(l[cand.id], sorted[i]) << "candidate " << i << " is not the " << i + 1 << "th largest logit";
      EXPECT_EQ(cand.token, tok.piece(cand.id));
      worst = std::max(worst, std::fabs(cand.prob - std::exp((double)l[cand.id] - mx) / z));
      sum += cand.prob;
    }
    EXPECT_LE(sum, 1.0 + 1e-12);
    EXPECT_GT(sum, 0.0);
  }
  std::printf("fill_mask: worst |prob - softmax| = %.3g\n", worst);
  EXPECT_LT(worst, 1e-6);
  // top_k beyond the vocabulary: the whole vocabulary, probabilities summing to 1.
  const FillMaskResult all = im.fill_mask("<mask> dog", 1000);
  ASSERT_EQ(all.masks[0].candidates.size(), (size_t)kTokVocab);
  double total = 0;
  for (const auto& cand : all.masks[0].candidates) total += cand.prob;
  EXPECT_NEAR(total, 1.0, 1e-6);

  expect_throw<InputError>([&] { im.fill_mask("no mask here"); }, {"<mask>"});
  expect_throw<ConfigError>([&] { im.fill_mask("a <mask>", 0); }, {"top_k", "0"});
  std::string long_text = "<mask>";
  for (int i = 0; i < 40; ++i) long_text += " the cat";
  expect_throw<InputError>([&] { im.fill_mask(long_text); }, {"tokens", "at most 32"});
  expect_throw<InputError>([&] { im.encode("caf\xe9"); }, {"UTF-8"});
  expect_throw<InputError>([&] { im.embed(std::vector<std::string>{"ok", "caf\xe9"}); }, {"input 1", "UTF-8"});

  // An explicit tokenizer wins; a model file alone has none.
  const InferenceModel file_only = InferenceModel::load(run.dir + "/ckpt-00000001/model.safetensors");
  EXPECT_FALSE(file_only.has_tokenizer());
  expect_throw<ConfigError>([&] { file_only.tokenize("the cat"); }, {"no tokenizer"});
  expect_throw<ConfigError>([&] { file_only.embed(std::vector<std::string>{"the cat"}); }, {"no tokenizer"});
  expect_throw<ConfigError>([&] { file_only.fill_mask("the <mask>"); }, {"no tokenizer"});
  expect_throw<ConfigError>([&] { file_only.decode({5}); }, {"no tokenizer"});
  const InferenceModel with_tok = InferenceModel::load(run.dir + "/ckpt-00000001/model.safetensors", {.tokenizer = run.tok});
  EXPECT_EQ(with_tok.encode(text), want);

  // evaluate_mlm is linformer::evaluate_mlm on the same model.
  encode_corpus(tok, {tmp / "corpus.txt"}, tmp / "valid.tokens");
  std::unique_ptr<Model> ref = load_trained_model(run.dir);
  EXPECT_EQ(im.evaluate_mlm(tmp / "valid.tokens", 16, 4, 3, 7), evaluate_mlm(*ref, tmp / "valid.tokens", 16, 4, 3, 7));
  EXPECT_EQ(im.evaluate_mlm(tmp / "valid.tokens", 0, 4, 2, 7), evaluate_mlm(*ref, tmp / "valid.tokens", 32, 4, 2, 7));
}

// ------------------------------------------------------------------ classify, evaluate

// classify, encode and evaluate equal the Classifier of the same fine-tuning run (bitwise
// probabilities, the same metrics); labels come from task.json.
TEST(Inference, ClassifyEqualsClassifier) {
  Threads threads(1);
  TempDir tmp("linformer_test_inference_");
  const std::string run = make_finetuned_run(tmp);
  Classifier ref(run);
  const InferenceModel im = InferenceModel::load(run);
  EXPECT_TRUE(im.has_classifier());
  EXPECT_EQ(im.labels(), (std::vector<std::string>{"no", "yes"}));
  EXPECT_EQ(im.info().task_name, "has7");
  EXPECT_EQ(im.info().tokenizer, "listops");
  EXPECT_EQ(im.info().trained_task, tmp / "task");
  EXPECT_FALSE(im.info().trained_with_truncation);
  EXPECT_EQ(im.config().pooling, Pooling::Mean);

  const std::vector<std::string> texts = {"1 2 7 3", "4 5 6", "8 8 8 8 8 7", "0 0 1", "9", "7 7 1 2 3 4 5 6 0 1"};
  std::vector<std::vector<int32_t>> seqs;
  for (const auto& t : texts) {
    seqs.push_back(ref.tokenize(t, false));
    EXPECT_EQ(im.encode(t), seqs.back());
  }
  for (int bs : {1, 4, 32}) {
    const auto want = classify(ref.model(), seqs, bs);
    const auto got = im.classify(texts, {.batch_size = bs});
    const auto got_ids = im.classify_ids(seqs, {.batch_size = bs});
    ASSERT_EQ(got.size(), texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      EXPECT_EQ(got[i].probs, want[i]) << "input " << i << ", batch size " << bs;
      EXPECT_EQ(got_ids[i].probs, want[i]);
      const int best = (int)(std::max_element(want[i].begin(), want[i].end()) - want[i].begin());
      EXPECT_EQ(got[i].label_index, best);
      EXPECT_EQ(got[i].label, im.labels()[best]);
      EXPECT_NEAR(std::accumulate(got[i].probs.begin(), got[i].probs.end(), 0.0), 1.0, 1e-12);
    }
  }
  for (const std::string split : {"valid", "test"}) {
    const ClassifierEval a = ref.evaluate(tmp / "task", split, false, 7);
    const ClassifierEval b = im.evaluate(tmp / "task", split, {.batch_size = 7});
    EXPECT_EQ(a.examples, b.examples);
    EXPECT_EQ(a.accuracy, b.accuracy);
    EXPECT_EQ(a.loss, b.loss);
    EXPECT_EQ(a.macro_f1, b.macro_f1);
    EXPECT_EQ(a.confusion, b.confusion);
  }
  // A checkpoint folder stands for its run; load_classifier refuses what is not a fine-tuning run.
  EXPECT_EQ(InferenceModel::load_classifier(run + "/ckpt-00000010").labels(), im.labels());
  expect_throw<IoError>([&] { InferenceModel::load_classifier(tmp / "task"); }, {"task", "not a fine-tuning run folder"});
  expect_throw<IoError>([&] { InferenceModel::load_classifier(tmp / "nowhere"); }, {"nowhere", "not a fine-tuning"});
  expect_throw<ConfigError>([&] { im.evaluate(tmp / "task", "bogus"); }, {"bogus"});
  // Class names given replace task.json's; a wrong count is refused.
  EXPECT_EQ(InferenceModel::load(run, {.labels = {"n", "y"}}).classify(texts)[0].label.size(), 1u);
  expect_throw<ConfigError>([&] { InferenceModel::load(run, {.labels = {"a"}}); }, {"1 labels", "2 classes"});
  // The fixed ListOps vocabulary: an unknown token names the input.
  expect_throw<InputError>([&] { im.classify(std::vector<std::string>{"1 2", "1 x"}); }, {"input 1", "x"});
}

// ------------------------------------------------------------------ truncation

// Longer than max_len: an InputError naming the input and the lengths, unless truncate; then
// <s>, the first max_len - 2 ids, </s> for texts and encoded sequences, the first max_len ids
// otherwise.
TEST(Inference, TruncationIsExplicit) {
  Threads threads(1);
  TempDir tmp("linformer_test_inference_");
  const std::string run = make_finetuned_run(tmp);  // max_len 16
  const InferenceModel im = InferenceModel::load(run);
  std::string long_text = "1";
  for (int i = 0; i < 19; ++i) long_text += " 7";  // 20 digits: 22 tokens with <s> </s>
  expect_throw<InputError>([&] { im.encode(long_text); }, {"22 tokens", "max_len 16"});
  const std::vector<int32_t> cut = im.encode(long_text, true);
  ASSERT_EQ(cut.size(), 16u);
  EXPECT_EQ(cut.front(), kBosId);
  EXPECT_EQ(cut.back(), kEosId);
  const std::vector<std::string> texts = {"1 2", long_text};
  expect_throw<InputError>([&] { im.classify(texts); }, {"classify: input 1", "22 tokens", "max_len 16"});
  expect_throw<InputError>([&] { im.embed(texts); }, {"embed: input 1", "22 tokens"});
  const auto cls = im.classify(texts, {.truncate = true});
  // Against the same batch of ids (same shape: a batch of one can round differently in BLAS).
  EXPECT_EQ(cls[1].probs, im.classify_ids({im.encode("1 2"), cut})[1].probs);
  EXPECT_EQ(im.embed(texts, {.truncate = true}).rows, 2);

  // Id sequences: the encoded text cut as encode cuts it; raw ids to their first max_len.
  std::vector<int32_t> enc = {kBosId};
  for (int i = 0; i < 20; ++i) enc.push_back(kListOpsFirstDigit + 7);
  enc.push_back(kEosId);
  EXPECT_EQ(im.truncate(enc).size(), 16u);
  EXPECT_EQ(im.truncate(enc).back(), kEosId);
  const std::vector<int32_t> raw(20, 9);
  EXPECT_EQ(im.truncate(raw), std::vector<int32_t>(16, 9));
  EXPECT_EQ(im.truncate({1, 2}), (std::vector<int32_t>{1, 2}));
  const std::vector<std::vector<int32_t>> ids = {{1, 2}, raw};
  expect_throw<InputError>([&] { im.forward(ids); }, {"forward: input 1", "20 ids", "max_len 16"});
  expect_throw<InputError>([&] { im.classify_ids(ids); }, {"classify: input 1", "20 ids"});
  const ForwardResult f = im.forward(ids, {.truncate = true});
  EXPECT_EQ(f.n, 16);
  EXPECT_EQ(f.ids[16], 9);
  const ForwardResult g = im.forward({{1, 2}, std::vector<int32_t>(16, 9)});
  EXPECT_TRUE(same_bits(f.hidden.data(), g.hidden.data(), f.hidden.size()));
}

// ------------------------------------------------------------------ bad input

TEST(Inference, BadInputGivesTypedErrors) {
  Threads threads(1);
  TempDir tmp("linformer_test_inference_");
  const ModelConfig c = small_config(AttentionKind::Full);
  const InferenceModel im = InferenceModel::from_model(std::shared_ptr<const Model>(make_model(c, 1)));
  using Seqs = std::vector<std::vector<int32_t>>;
  expect_throw<InputError>([&] { im.forward(Seqs{}); }, {"forward", "no inputs"});
  expect_throw<InputError>([&] { im.forward(Seqs{{1, 2}, {}}); }, {"input 1 is empty"});
  expect_throw<InputError>([&] { im.forward(Seqs{{1, 2}, {3, -1}}); }, {"input 1", "token id -1", "position 1", "[0, 50)"});
  expect_throw<InputError>([&] { im.forward(Seqs{{50}}); }, {"input 0", "token id 50"});
  expect_throw<InputError>([&] { im.embed_ids(Seqs{}); }, {"embed", "no inputs"});
  expect_throw<InputError>([&] { im.embed(std::vector<std::string>{}); }, {"embed", "no inputs"});
  expect_throw<InputError>([&] { im.embed_ids(Seqs{{1}, {99}}); }, {"input 1", "token id 99"});
  expect_throw<ConfigError>([&] { im.embed_ids(Seqs{{1}}, {.batch_size = 0}); }, {"batch_size 0"});
  // No tokenizer: texts are refused; no classification head: classify and evaluate are refused.
  expect_throw<ConfigError>([&] { im.encode("text"); }, {"no tokenizer"});
  expect_throw<ConfigError>([&] { im.piece(3); }, {"no tokenizer"});
  expect_throw<ConfigError>([&] { im.classify_ids(Seqs{{1, 2}}); }, {"classify", "no classification head"});
  expect_throw<ConfigError>([&] { im.classify(std::vector<std::string>{"a"}); }, {"no classification head"});
  expect_throw<ConfigError>([&] { im.evaluate(tmp / "task", "test"); }, {"no classification head"});
  // A model with a head but no task.json: classes named by index, evaluate refused.
  ModelConfig hc = c;
  hc.num_labels = 3;
  const InferenceModel headed = InferenceModel::from_model(std::shared_ptr<const Model>(make_model(hc, 2)));
  EXPECT_EQ(headed.labels(), (std::vector<std::string>{"0", "1", "2"}));
  expect_throw<InputError>([&] { headed.classify_ids(Seqs{}); }, {"classify", "no inputs"});
  expect_throw<ConfigError>([&] { headed.classify_ids(Seqs{{1}}, {.batch_size = -1}); }, {"batch_size -1"});
  expect_throw<ConfigError>([&] { headed.evaluate(tmp / "task", "test"); }, {"not a fine-tuning run"});
  EXPECT_EQ(headed.classify_ids(Seqs{{1, 2, 3}})[0].probs.size(), 3u);
  // Files.
  expect_throw<IoError>([&] { InferenceModel::load(tmp / "none.safetensors"); }, {"none.safetensors"});
  write_file(tmp / "junk.safetensors", "junk");
  expect_throw<IoError>([&] { InferenceModel::load(tmp / "junk.safetensors"); }, {"junk.safetensors"});
  fs::create_directories(tmp / "empty");
  expect_throw<IoError>([&] { InferenceModel::load(tmp / "empty"); }, {"empty", "latest"});
  save_model(*make_model(c, 1), tmp / "m.safetensors");
  expect_throw<IoError>([&] { InferenceModel::load(tmp / "m.safetensors", {.tokenizer = tmp / "junk.safetensors"}); },
                        {"junk.safetensors"});
  expect_throw<ConfigError>([&] { InferenceModel::load(tmp / "m.safetensors", {.max_workers = -1}); }, {"max_workers"});
  expect_throw<ConfigError>([&] { InferenceModel::load(tmp / "m.safetensors", {.threads = -2}); }, {"threads"});
  expect_throw<ConfigError>([&] { InferenceModel::from_model(std::unique_ptr<Model>()); }, {"no model"});
  // A failed call leaves the object usable.
  EXPECT_EQ(im.forward(Seqs{{1, 2}}).B, 1);
}

// ------------------------------------------------------------------ attention maps

// attention_map is Model::attention_probs of the eval-mode forward, bitwise, and its rows sum to 1;
// the worker is inference-only again afterwards.
TEST(Inference, AttentionMapEqualsModel) {
  Threads threads(1);
  for (AttentionKind kind : {AttentionKind::Full, AttentionKind::Linformer}) {
    const ModelConfig c = small_config(kind);
    std::shared_ptr<Model> ref = make_model(c, 6);
    const InferenceModel im = InferenceModel::from_model(std::shared_ptr<const Model>(ref), {.max_workers = 1});
    const std::vector<int32_t> ids = sequences({13}, c.vocab_size)[0];
    const AttentionMap a = im.attention_map(ids, 1);
    EXPECT_EQ(a.heads, c.n_heads);
    EXPECT_EQ(a.n, 13);
    EXPECT_EQ(a.cols, kind == AttentionKind::Full ? 13 : 8);
    ASSERT_EQ(a.probs.size(), (size_t)a.heads * a.n * a.cols);
    ref->eval();
    ref->encode(Batch::from_sequences({ids}));
    const AttentionProbs p = ref->attention_probs(1);
    EXPECT_TRUE(same_bits(a.probs.data(), p.data, a.probs.size())) << to_string(kind);
    double worst = 0;
    for (int r = 0; r < a.heads * a.n; ++r) {
      double sum = 0;
      for (int k = 0; k < a.cols; ++k) sum += a.probs[(size_t)r * a.cols + k];
      worst = std::max(worst, std::fabs(sum - 1.0));
    }
    std::printf("attention_map %s: worst |row sum - 1| = %.3g\n", to_string(kind), worst);
    EXPECT_LT(worst, 1e-5);
    // The same worker serves forward afterwards, in inference-only mode, with the same results.
    const ForwardResult f = im.forward({ids});
    ref->set_inference_only(true);
    EXPECT_TRUE(same_bits(f.logits.data(), ref->forward_mlm_logits(Batch::from_sequences({ids})), f.logits.size()));
    EXPECT_EQ(im.workers(), 1);
    expect_throw<ConfigError>([&] { im.attention_map(ids, 2); }, {"layer 2", "[0, 2)"});
    expect_throw<InputError>([&] { im.attention_map({}, 0); }, {"input 0 is empty"});
  }
  const InferenceModel tiled =
      InferenceModel::from_model(std::shared_ptr<const Model>(make_model(small_config(AttentionKind::Tiled), 1)));
  expect_throw<ConfigError>([&] { tiled.attention_map({1, 2}, 0); }, {"tiled", "full"});
}

// ------------------------------------------------------------------ workers and threads

// A worker reads the weights in place: no copy, no gradient block; init and backward refuse.
TEST(Inference, WorkersShareTheWeights) {
  const ModelConfig c = small_config(AttentionKind::Linformer);
  std::shared_ptr<Model> m = make_model(c, 4);
  std::unique_ptr<Model> w = Model::sharing_weights_of(*m);
  EXPECT_TRUE(w->params().is_view());
  EXPECT_FALSE(w->params().has_grad());
  EXPECT_TRUE(w->params().all_data().empty());
  EXPECT_TRUE(w->inference_only());
  for (int i = 0; i < m->params().size(); ++i) EXPECT_EQ(w->params().data(i), m->params().data(i));
  const auto seqs = sequences({7, 3}, c.vocab_size);
  const Batch b = Batch::from_sequences(seqs);
  m->eval();
  m->set_inference_only(true);
  const float* logits = m->forward_mlm_logits(b);
  const std::vector<float> want(logits, logits + (size_t)14 * c.vocab_size);
  EXPECT_TRUE(same_bits(w->forward_mlm_logits(b), want.data(), want.size()));
  expect_throw<Error>([&] { w->init(1); }, {"another model's weights"});
  w->set_inference_only(false);
  w->forward_mlm(b, std::vector<int32_t>(14, 5));
  expect_throw<Error>([&] { w->backward(); }, {"no gradient block"});
  // A table of other tensors cannot view these.
  ModelConfig other = c;
  other.d_ff = 128;
  Model o(other);
  ParamTable t;
  for (const ParamInfo& p : o.params().infos()) t.add(p.name, p.shape, p.decay, p.trainable);
  expect_throw<Error>([&] { t.view_data_of(m->params()); }, {"different tensors"});
  // from_model with a unique_ptr takes the model over and frees its gradients.
  auto owned = std::make_unique<Model>(c);
  owned->init(4);
  const InferenceModel im = InferenceModel::from_model(std::move(owned));
  EXPECT_FALSE(im.model().params().has_grad());
  const ForwardResult r = im.forward(seqs);
  ASSERT_EQ(r.logits.size(), want.size());
  EXPECT_TRUE(same_bits(r.logits.data(), want.data(), want.size()));
}

// Several std::threads calling forward and embed at once on one InferenceModel: the results equal
// those of serial calls, and the pool created more than one worker (only a caller finding every
// worker busy creates one) but no more than max_workers.
TEST(Inference, ConcurrentCallsMatchSerialCalls) {
  ModelConfig c = small_config(AttentionKind::Linformer, 200, 256);
  c.d_model = 64;
  c.d_ff = 256;
  c.k = {32};
  const int kThreads = 4, kCalls = 6;
  const InferenceModel im =
      InferenceModel::from_model(std::shared_ptr<const Model>(make_model(c, 8)), {.max_workers = 3, .threads = 1});
  EXPECT_EQ(im.max_workers(), 3);
  EXPECT_EQ(im.workers(), 0);
  std::vector<std::vector<std::vector<int32_t>>> inputs;
  for (int i = 0; i < kThreads * kCalls; ++i) inputs.push_back(sequences({200, 31 + i, 256, 7}, c.vocab_size, 100 + i));
  std::vector<ForwardResult> serial_f;
  std::vector<Embeddings> serial_e;
  for (const auto& in : inputs) {
    serial_f.push_back(im.forward(in));
    serial_e.push_back(im.embed_ids(in, {.pooling = Pooling::Mean, .normalize = true, .batch_size = 2}));
  }
  EXPECT_EQ(im.workers(), 1) << "serial calls reuse one worker";

  std::vector<ForwardResult> par_f(inputs.size());
  std::vector<Embeddings> par_e(inputs.size());
  std::atomic<int> ready{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t)
    pool.emplace_back([&, t] {
      ++ready;
      while (ready.load() < kThreads) std::this_thread::yield();  // start together
      for (int k = 0; k < kCalls; ++k) {
        const size_t i = (size_t)t * kCalls + k;
        par_f[i] = im.forward(inputs[i]);
        par_e[i] = im.embed_ids(inputs[i], {.pooling = Pooling::Mean, .normalize = true, .batch_size = 2});
      }
    });
  for (std::thread& th : pool) th.join();
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_EQ(par_f[i].logits.size(), serial_f[i].logits.size());
    EXPECT_TRUE(same_bits(par_f[i].logits.data(), serial_f[i].logits.data(), serial_f[i].logits.size())) << i;
    EXPECT_TRUE(same_bits(par_f[i].hidden.data(), serial_f[i].hidden.data(), serial_f[i].hidden.size())) << i;
    EXPECT_TRUE(same_bits(par_e[i].values.data(), serial_e[i].values.data(), serial_e[i].values.size())) << i;
  }
  std::printf("concurrent calls: %d threads, %d workers created (max %d)\n", kThreads, im.workers(), im.max_workers());
  EXPECT_GT(im.workers(), 1) << "the calls did not run at once";
  EXPECT_LE(im.workers(), 3);

  // One worker at most: the threads wait their turn, with the same results.
  const InferenceModel one =
      InferenceModel::from_model(std::shared_ptr<const Model>(make_model(c, 8)), {.max_workers = 1, .threads = 1});
  std::vector<ForwardResult> one_f(kThreads);
  pool.clear();
  for (int t = 0; t < kThreads; ++t) pool.emplace_back([&, t] { one_f[t] = one.forward(inputs[t]); });
  for (std::thread& th : pool) th.join();
  for (int t = 0; t < kThreads; ++t)
    EXPECT_TRUE(same_bits(one_f[t].logits.data(), serial_f[t].logits.data(), serial_f[t].logits.size())) << t;
  EXPECT_EQ(one.workers(), 1);
}
