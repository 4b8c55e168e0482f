// The inference API (docs/library.md, "Inference API"): one object that loads a model file or a
// run folder once (with its tokenizer and class names) and answers forward, embed, classify,
// fill-mask and tokenize requests, from several threads at once. The command line's forward,
// predict, fill-mask, eval and eval-mlm, the Python package and the server all go through it.
//
// Typical use:
//   auto m = linformer::InferenceModel::load("runs/spam");             // a fine-tuning run folder
//   auto r = m.classify({"cheap pills, click here", "minutes of Tuesday's meeting"});
//   // r[0].label == "spam", r[0].probs[r[0].label_index] == its probability
//   auto e = m.embed({"a text"}, {.pooling = linformer::Pooling::Mean, .normalize = true});
//   // e.values holds e.rows x e.dim floats
//
// Threads: every method is const and may be called from any number of threads at once. The calls
// really run in parallel: each one borrows a worker model from a small pool (grown on demand up
// to InferenceOptions::max_workers; a caller beyond that waits for a free worker). The workers read
// the one copy of the weights in place (no copy per worker) and each has its own activation
// buffers, which keep the size of the largest batch they ran. Two process-wide settings are not
// per model: the matrix-product precision (linformer/precision.hpp; set it before any call runs)
// and, per calling thread, OpenMP's thread count (omp_set_num_threads acts on the calling thread
// only, and a new std::thread starts from OMP_NUM_THREADS or all cores): every call runs its
// parallel loops on InferenceOptions::threads threads, or the calling thread's setting when that
// is 0. N callers x T threads should not exceed the cores. Results are the same whichever thread
// or worker computes them (for the same thread count and precision).
//
// Errors: InputError for bad input (empty input, ids outside the vocabulary, a sequence longer
// than max_len without `truncate`, text that is not UTF-8, no <mask>); ConfigError for a request
// the model cannot answer (texts without a tokenizer, classify without a classification head,
// bad option values); IoError for files that are missing or malformed. The message names the
// input index and the values. A failed call leaves the object usable.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "linformer/config.hpp"
#include "linformer/finetune.hpp"  // ClassifierEval
#include "linformer/trainer.hpp"   // MlmEvaluation

namespace linformer {

class Model;

struct InferenceOptions {
  // A SentencePiece model file; default: the run folder's tokenizer.model (for a checkpoint folder,
  // its run folder's), or a fine-tuning run's fixed vocabulary (ListOps, pixels). Given, it is
  // used for every text, whatever the run folder holds.
  std::string tokenizer;
  // Class names, one per class of the classification head (from_model; for load() they replace
  // those of the run's task.json). Empty: task.json's, else "0", "1", ...
  std::vector<std::string> labels;
  int max_workers = 0;  // computations at once, each with its own buffers (0: hardware threads, at least 1)
  int threads = 0;      // OpenMP threads of each call (0: the calling thread's omp_get_max_threads())
};

// What was loaded.
struct ModelInfo {
  ModelConfig config;               // vocab_size, max_len, attention kind, num_labels, pooling, ...
  std::string source;               // the path given to load() (empty for from_model)
  std::string model_file;           // the .safetensors file the weights came from (empty for from_model)
  std::string run_dir;              // the run folder (empty for a model file)
  std::vector<std::string> labels;  // class names (index = class id); empty without a classification head
  std::string task_name;            // a fine-tuning run's task (task.json "name"); empty otherwise
  std::string trained_task;         // the task folder the run was fine-tuned on (finetune.json); may be empty
  bool trained_with_truncation = false;  // finetune.json "truncate": the default of `linformer eval`/`predict`
  std::string tokenizer;            // "sentencepiece", "listops", "pixels", or empty (no tokenizer: ids only)
  std::string tokenizer_file;       // the SentencePiece model file, if any
};

struct ForwardOptions {
  bool logits = true;     // also run the MLM head (ForwardResult::logits); false: hidden states only
  bool truncate = false;  // cut sequences longer than max_len (see InferenceModel::truncate) instead of an InputError
};

// Sequences of different lengths padded with <pad> (id 0) to the longest, as `linformer forward`.
struct ForwardResult {
  int B = 0, n = 0, d_model = 0, vocab_size = 0;
  std::vector<float> hidden;   // [B, n, d_model]: the encoder's output
  std::vector<float> logits;   // [B, n, vocab_size]: the MLM head's; empty unless ForwardOptions::logits
  std::vector<uint8_t> mask;   // [B, n]: 1 = real token, 0 = padding
  std::vector<int32_t> ids;    // [B, n]: the padded ids
};

struct EmbedOptions {
  Pooling pooling = Pooling::Mean;  // First: the <s> position's hidden state; Mean: the mean over the real tokens
  bool normalize = false;           // divide each vector by its L2 norm (a zero vector stays zero)
  bool truncate = false;            // cut texts/sequences longer than max_len instead of an InputError
  int batch_size = 32;              // sequences per forward pass (longest first, as classify)
};

// Row-major [rows, dim], row i for input i.
struct Embeddings {
  int rows = 0, dim = 0;
  std::vector<float> values;
};

struct ClassifyOptions {
  bool truncate = false;  // cut texts/sequences longer than max_len instead of an InputError
  int batch_size = 32;    // sequences per forward pass; longest first, so batches pad little
};

struct Classification {
  std::string label;          // labels()[label_index]
  int label_index = 0;        // the most probable class (the lowest index on a tie)
  std::vector<double> probs;  // softmax of the logits, one per class
};

struct FillMaskCandidate {
  std::string token;  // the tokenizer's piece for id
  int32_t id = 0;
  double prob = 0;    // softmax over the whole vocabulary at the masked position
};

struct MaskPrediction {
  int position = 0;                          // index of the <mask> in FillMaskResult::ids
  std::vector<FillMaskCandidate> candidates;  // the top_k, most probable first (ties: lower id first)
};

struct FillMaskResult {
  std::vector<int32_t> ids;            // <s> text </s> with each <mask> as the mask id
  std::vector<MaskPrediction> masks;   // one per <mask>, in the order of the text
};

// One layer's attention probabilities (softmax output) for one sequence: probs[(h * n + t) * cols + c]
// is how much query t attends, in head h, to key c; cols = n for full attention, k for Linformer
// (the projected keys).
struct AttentionMap {
  int heads = 0, n = 0, cols = 0;
  std::vector<float> probs;  // [heads, n, cols]
};

class InferenceModel {
 public:
  // A model file (.safetensors), a run folder (pretraining or fine-tuning: its latest checkpoint,
  // its tokenizer.model, its task.json class names and finetune.json) or one of its checkpoint
  // folders. IoError naming what is missing or malformed.
  static InferenceModel load(const std::string& path, const InferenceOptions& opt = {});
  // The same, for a fine-tuning run folder (or one of its checkpoint folders) only: anything else
  // is an IoError "not a fine-tuning run folder" (the check of `linformer eval` and `predict`).
  static InferenceModel load_classifier(const std::string& path, const InferenceOptions& opt = {});
  // A model in memory. The first form takes it over (its gradient block is freed); the second
  // shares it with the caller, who must not change its weights while calls run.
  static InferenceModel from_model(std::unique_ptr<Model> model, const InferenceOptions& opt = {});
  static InferenceModel from_model(std::shared_ptr<const Model> model, const InferenceOptions& opt = {});

  InferenceModel(InferenceModel&&) noexcept;
  InferenceModel& operator=(InferenceModel&&) noexcept;
  ~InferenceModel();

  // ---- what is loaded
  const ModelInfo& info() const;
  const ModelConfig& config() const;
  int max_len() const;
  int vocab_size() const;
  const std::vector<std::string>& labels() const;  // empty without a classification head
  bool has_tokenizer() const;
  bool has_classifier() const;  // num_labels > 0
  const Model& model() const;   // the weights (e.g. for save_model)
  int workers() const;          // worker models created so far
  int max_workers() const;

  // ---- text <-> ids (ConfigError without a tokenizer; InputError for text that is not UTF-8 or,
  // with a fixed vocabulary, a token outside it)
  std::vector<int32_t> tokenize(const std::string& text) const;  // the tokenizer's ids, no <s> </s>
  // The model input of a text: <s> ids </s>. Longer than max_len: InputError, unless `truncate`
  // (then <s>, the first max_len - 2 ids, </s>).
  std::vector<int32_t> encode(const std::string& text, bool truncate = false) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  std::string piece(int32_t id) const;  // one id's token (special tokens as <s>, <mask>, ...)
  // A copy of ids cut to max_len: the first max_len ids, the last of them </s> when ids ended
  // with </s> (so an encoded text is cut as encode(text, true) cuts it). Shorter: unchanged.
  std::vector<int32_t> truncate(const std::vector<int32_t>& ids) const;

  // ---- computations (eval mode, no dropout; inputs are checked before anything runs)
  // One forward pass over the sequences as one padded batch, in order: bitwise the results of
  // `linformer forward` and of Model::forward_mlm_logits / Model::hidden on the same batch.
  ForwardResult forward(const std::vector<std::vector<int32_t>>& ids, const ForwardOptions& opt = {}) const;
  // The same into `out`, reusing its storage: calls in a loop touch no fresh memory (the logits
  // are handed over from the worker, not copied).
  void forward(const std::vector<std::vector<int32_t>>& ids, const ForwardOptions& opt, ForwardResult& out) const;
  // One vector per input: the hidden states pooled (first or mean) and optionally L2-normalised.
  // Texts are encoded as encode(text, opt.truncate) does; embed_ids takes model inputs as they are
  // (e.g. from encode; checked and cut as forward does).
  Embeddings embed(const std::vector<std::string>& texts, const EmbedOptions& opt = {}) const;
  Embeddings embed_ids(const std::vector<std::vector<int32_t>>& ids, const EmbedOptions& opt = {}) const;
  // Class and probabilities per input (a model with a classification head; ConfigError
  // otherwise): the probabilities of `linformer predict` bitwise for the same batch size.
  std::vector<Classification> classify(const std::vector<std::string>& texts, const ClassifyOptions& opt = {}) const;
  std::vector<Classification> classify_ids(const std::vector<std::vector<int32_t>>& ids,
                                           const ClassifyOptions& opt = {}) const;
  // The top_k tokens for each <mask> of the text (at least one; InputError otherwise).
  FillMaskResult fill_mask(const std::string& text, int top_k = 5) const;
  // The attention probabilities of layer `layer` (ConfigError out of range) for one sequence
  // (checked and cut as forward does). ConfigError for tiled attention, which keeps none (load the
  // weights with "attention": "full" to see them). The worker that runs it keeps the buffers of a
  // forward pass that saves every layer's activations.
  AttentionMap attention_map(const std::vector<int32_t>& ids, int layer, bool truncate = false) const;

  // ---- evaluation on files (what `linformer eval` and `eval-mlm` print)
  // A task folder's split (train, valid, test) against a fine-tuned model: its classes and
  // tokenizer must be those of the run (ConfigError). opt.truncate as in classify.
  ClassifierEval evaluate(const std::string& task_dir, const std::string& split, const ClassifyOptions& opt = {}) const;
  // Mean masked-LM loss over a token file with fixed masks from seed (max_batches 0: all).
  double evaluate_mlm(const std::string& token_file, int seq_len, int batch_size, int max_batches,
                      uint64_t seed) const;
  // The same with the masked-token accuracies and, given a training token file, the unigram
  // baseline of its token frequencies on the same tokens.
  MlmEvaluation evaluate_mlm_scores(const std::string& token_file, int seq_len, int batch_size, int max_batches,
                                    uint64_t seed, const std::string& baseline_tokens = "") const;

 private:
  struct Impl;
  explicit InferenceModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace linformer
