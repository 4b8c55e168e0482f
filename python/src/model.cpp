// linformer.Model (over linformer::InferenceModel, include/linformer/inference.hpp), linformer.load
// and linformer.init. Every computation checks its inputs with the GIL held, then runs with the GIL
// released, so that Python threads calling one model run in parallel (the InferenceModel lends
// each call a worker of its own).
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <pybind11/stl.h>

#include "common.hpp"
#include "linformer/checkpoint.hpp"
#include "linformer/error.hpp"
#include "linformer/finetune.hpp"
#include "linformer/inference.hpp"
#include "linformer/model.hpp"

namespace linformer::python {

namespace {

struct PyModel {
  std::shared_ptr<const InferenceModel> im;
  std::optional<MatmulPrecision> precision;  // none: the process default (linformer.set_precision)

  const InferenceModel& get() const { return *im; }
  // The precision of a call: its own (`call`, a name or None), the model's, the default; checked.
  MatmulPrecision precision_of(const std::optional<std::string>& call) const {
    const MatmulPrecision p = call ? precision_from_name(*call, "precision") : precision.value_or(default_precision());
    check_precision_supported(p, "precision");
    return p;
  }
};

std::optional<MatmulPrecision> optional_precision(const std::optional<std::string>& name) {
  if (!name) return std::nullopt;
  const MatmulPrecision p = precision_from_name(*name, "precision");
  check_precision_supported(p, "precision");
  return p;
}

InferenceOptions inference_options(const std::optional<std::string>& tokenizer,
                                   const std::optional<std::vector<std::string>>& labels, int max_workers,
                                   int threads) {
  InferenceOptions o;
  if (tokenizer) o.tokenizer = *tokenizer;
  if (labels) o.labels = *labels;
  o.max_workers = max_workers;
  o.threads = threads;
  return o;
}

Pooling pooling_from_name(const std::string& name) {
  if (name == "mean") return Pooling::Mean;
  if (name == "first") return Pooling::First;
  throw ConfigError(fmt::format("pooling: unknown pooling '{}' (mean or first)", name));
}

py::dict info_dict(const ModelInfo& i) {
  py::dict d;
  d["config"] = to_python(i.config.to_json());
  d["source"] = i.source;
  d["model_file"] = i.model_file;
  d["run_dir"] = i.run_dir;
  d["labels"] = i.labels;
  d["task_name"] = i.task_name;
  d["trained_task"] = i.trained_task;
  d["trained_with_truncation"] = i.trained_with_truncation;
  d["tokenizer"] = i.tokenizer;
  d["tokenizer_file"] = i.tokenizer_file;
  return d;
}

py::list classifications(const std::vector<Classification>& rs, const std::vector<std::string>& labels) {
  py::list out;
  for (const Classification& r : rs) {
    py::dict probs;  // in class order, as `linformer predict` writes them
    for (size_t k = 0; k < labels.size(); ++k) probs[py::str(labels[k])] = r.probs[k];
    py::dict d;
    d["label"] = r.label;
    d["label_index"] = r.label_index;
    d["probs"] = probs;
    out.append(d);
  }
  return out;
}

PyModel load(const std::string& path, const std::optional<std::string>& tokenizer,
             const std::optional<std::vector<std::string>>& labels, int max_workers, int threads,
             const std::optional<std::string>& precision) {
  PyModel m;
  m.precision = optional_precision(precision);
  const InferenceOptions o = inference_options(tokenizer, labels, max_workers, threads);
  py::gil_scoped_release nogil;
  m.im = std::make_shared<const InferenceModel>(InferenceModel::load(path, o));
  return m;
}

PyModel init(py::handle config, uint64_t seed, const std::optional<std::string>& tokenizer,
             const std::optional<std::vector<std::string>>& labels, int max_workers, int threads,
             const std::optional<std::string>& precision) {
  if (!py::isinstance<py::dict>(config))
    throw ConfigError(fmt::format("config: a {} (expected a dict of model config fields, docs/model.md)",
                                  py::type::of(config).attr("__name__").cast<std::string>()));
  const ModelConfig cfg = ModelConfig::from_json(from_python(config, "config"));
  PyModel m;
  m.precision = optional_precision(precision);
  const InferenceOptions o = inference_options(tokenizer, labels, max_workers, threads);
  py::gil_scoped_release nogil;
  auto model = std::make_unique<Model>(cfg);
  model->init(seed);
  m.im = std::make_shared<const InferenceModel>(InferenceModel::from_model(std::move(model), o));
  return m;
}

}  // namespace

void register_model(py::module_& m) {
  py::class_<PyModel> cls(m, "Model", R"doc(A Linformer (or Transformer) encoder ready for inference.

Made by linformer.load (a model file or a run folder, with its tokenizer and class names) or
linformer.init (a new model from a config). Every method may be called from several Python
threads at once: the computation runs with the GIL released, each call on a worker of its own
(up to max_workers at once), all reading one copy of the weights.)doc");

  m.def("load", &load, py::arg("path"), py::kw_only(), py::arg("tokenizer") = py::none(),
        py::arg("labels") = py::none(), py::arg("max_workers") = 0, py::arg("threads") = 0,
        py::arg("precision") = py::none(),
        R"doc(Loads a model file (.safetensors), a run folder or one of its checkpoint folders.

A pretraining run folder brings its tokenizer.model; a fine-tuning run folder its tokenizer and
class names (task.json). tokenizer: a SentencePiece model file used instead; labels: class names
instead of task.json's; max_workers: computations at once (0: one per hardware thread);
threads: OpenMP threads of each call (0: linformer.set_num_threads's); precision: 'float32' or
'bf16' for this model's calls (None: linformer.set_precision's).
Raises IoError naming the file for a missing or malformed one.)doc");
  m.def("init", &init, py::arg("config"), py::arg("seed") = 0, py::kw_only(), py::arg("tokenizer") = py::none(),
        py::arg("labels") = py::none(), py::arg("max_workers") = 0, py::arg("threads") = 0,
        py::arg("precision") = py::none(),
        R"doc(A new model from a config dict (the fields of config.json, docs/model.md; missing ones take
their defaults, unknown ones are a ConfigError), initialised from seed as training does.
The other arguments are those of linformer.load.)doc");

  cls.def(
      "save",
      [](const PyModel& self, const std::string& path) {
        py::gil_scoped_release nogil;
        save_model(self.get().model(), path);
      },
      py::arg("path"),
      "Writes the weights and config to a model file (.safetensors, written atomically); the tokenizer\n"
      "and class names are not part of it.");
  cls.def_property_readonly(
      "config", [](const PyModel& self) { return to_python(self.get().config().to_json()); },
      "The model config as a dict (the fields of config.json).");
  cls.def_property_readonly(
      "info", [](const PyModel& self) { return info_dict(self.get().info()); },
      "What was loaded: config, source, model_file, run_dir, labels, task_name, trained_task,\n"
      "trained_with_truncation, tokenizer ('sentencepiece', 'listops', 'pixels' or ''), tokenizer_file.");
  cls.def_property_readonly(
      "labels", [](const PyModel& self) { return self.get().labels(); },
      "Class names of the classification head (index = class id); empty without one.");
  cls.def_property_readonly("vocab_size", [](const PyModel& self) { return self.get().vocab_size(); },
                            "Vocabulary size (token ids are 0 .. vocab_size - 1).");
  cls.def_property_readonly("max_len", [](const PyModel& self) { return self.get().max_len(); },
                            "The longest sequence the model accepts (<s> and </s> included).");
  cls.def_property_readonly("d_model", [](const PyModel& self) { return self.get().config().d_model; },
                            "Width of the hidden states.");
  cls.def_property_readonly("has_tokenizer", [](const PyModel& self) { return self.get().has_tokenizer(); },
                            "Whether the model reads texts (a tokenizer was loaded with it).");
  cls.def_property_readonly("has_classifier", [](const PyModel& self) { return self.get().has_classifier(); },
                            "Whether the model has a classification head (classify works).");
  cls.def_property(
      "precision",
      [](const PyModel& self) -> py::object {
        if (!self.precision) return py::none();
        return py::str(precision_name(*self.precision));
      },
      [](PyModel& self, const std::optional<std::string>& p) { self.precision = optional_precision(p); },
      "Matrix-product precision of this model's calls: 'float32', 'bf16' (ConfigError on a CPU without\n"
      "AVX512_BF16) or None (linformer.set_precision's). A call's precision= comes first.");

  cls.def(
      "tokenize",
      [](const PyModel& self, const std::string& text) { return self.get().tokenize(text); }, py::arg("text"),
      "The tokenizer's ids of a text, without <s> and </s> (ConfigError without a tokenizer).");
  cls.def(
      "encode",
      [](const PyModel& self, const std::string& text, bool truncate) { return self.get().encode(text, truncate); },
      py::arg("text"), py::kw_only(), py::arg("truncate") = false,
      "The model input of a text: <s> ids </s>. Longer than max_len: InputError, unless truncate (then <s>,\n"
      "the first max_len - 2 ids, </s>).");
  cls.def(
      "decode",
      [](const PyModel& self, py::handle ids) { return self.get().decode(sequence_from_python(ids, "ids")); },
      py::arg("ids"), "The text of token ids (special tokens dropped).");
  cls.def(
      "piece", [](const PyModel& self, int32_t id) { return self.get().piece(id); }, py::arg("id"),
      "The token of one id (special tokens as <s>, <mask>, ...).");

  cls.def(
      "forward",
      [](const PyModel& self, py::handle ids, py::handle mask, bool logits, bool truncate,
         const std::optional<std::string>& precision) {
        const MatmulPrecision p = self.precision_of(precision);
        const std::vector<std::vector<int32_t>> seqs = ids_from_python(ids, mask, "ids");
        // Warm storage for the results (the buffers of freed results): sizes as the batch will pad.
        size_t n = 0;
        for (const auto& s : seqs) n = std::max(n, s.size());
        if (truncate) n = std::min(n, (size_t)self.get().max_len());
        const size_t tokens = seqs.size() * n;
        ForwardResult r;
        r.hidden = recycled_buffer(tokens * self.get().config().d_model);
        if (logits) r.logits = recycled_buffer(tokens * self.get().vocab_size());
        {
          py::gil_scoped_release nogil;
          ComputeScope scope(p);
          self.get().forward(seqs, {.logits = logits, .truncate = truncate}, r);
        }
        py::object hidden = to_numpy(std::move(r.hidden), {r.B, r.n, r.d_model});
        py::object lg = logits ? py::object(to_numpy(std::move(r.logits), {r.B, r.n, r.vocab_size})) : py::none();
        return py::make_tuple(hidden, lg);
      },
      py::arg("ids"), py::arg("mask") = py::none(), py::kw_only(), py::arg("logits") = true,
      py::arg("truncate") = false, py::arg("precision") = py::none(),
      R"doc(One forward pass (eval mode) over token-id sequences as one padded batch.

ids: a list of lists of ints (lengths may differ) or a 2-D integer numpy array [B, n].
mask: optional, the shape of ids: 1 for each token, then 0 for the padding after them (rows are cut
there). Returns (hidden, logits): numpy float32 arrays [B, n, d_model] and [B, n, vocab_size] (None
with logits=False), n the longest sequence, shorter ones padded with <pad> (id 0) and masked exactly
as `linformer forward` does. InputError for ids outside the vocabulary, an empty sequence, or one
longer than max_len (unless truncate: then cut as Model.truncate does).)doc");

  cls.def(
      "embed",
      [](const PyModel& self, py::handle texts, const std::string& pooling, bool normalize, bool truncate,
         int batch_size, const std::optional<std::string>& precision) {
        const MatmulPrecision p = self.precision_of(precision);
        EmbedOptions o;
        o.pooling = pooling_from_name(pooling);
        o.normalize = normalize;
        o.truncate = truncate;
        o.batch_size = batch_size;
        Embeddings e;
        if (looks_like_ids(texts)) {
          const auto seqs = ids_from_python(texts, py::none(), "texts");
          py::gil_scoped_release nogil;
          ComputeScope scope(p);
          e = self.get().embed_ids(seqs, o);
        } else {
          const auto t = texts_from_python(texts, "texts");
          py::gil_scoped_release nogil;
          ComputeScope scope(p);
          e = self.get().embed(t, o);
        }
        return to_numpy(std::move(e.values), {e.rows, e.dim});
      },
      py::arg("texts"), py::arg("pooling") = "mean", py::arg("normalize") = false, py::kw_only(),
      py::arg("truncate") = false, py::arg("batch_size") = 32, py::arg("precision") = py::none(),
      R"doc(One vector per input: a numpy float32 array [len(texts), d_model].

texts: a list of str (encoded as <s> ids </s>), or token-id sequences as forward takes them.
pooling: 'mean' (over the real tokens) or 'first' (the <s> position); normalize: divide each
vector by its L2 norm; truncate: cut inputs longer than max_len instead of an InputError;
batch_size: sequences per forward pass.)doc");

  cls.def(
      "classify",
      [](const PyModel& self, py::handle texts, std::optional<bool> truncate, int batch_size,
         const std::optional<std::string>& precision) {
        const MatmulPrecision p = self.precision_of(precision);
        ClassifyOptions o;
        o.truncate = truncate.value_or(self.get().info().trained_with_truncation);
        o.batch_size = batch_size;
        std::vector<Classification> rs;
        if (looks_like_ids(texts)) {
          const auto seqs = ids_from_python(texts, py::none(), "texts");
          py::gil_scoped_release nogil;
          ComputeScope scope(p);
          rs = self.get().classify_ids(seqs, o);
        } else {
          const auto t = texts_from_python(texts, "texts");
          py::gil_scoped_release nogil;
          ComputeScope scope(p);
          rs = self.get().classify(t, o);
        }
        return classifications(rs, self.get().labels());
      },
      py::arg("texts"), py::kw_only(), py::arg("truncate") = py::none(), py::arg("batch_size") = 32,
      py::arg("precision") = py::none(),
      R"doc(Class and probabilities of each input (a model with a classification head; ConfigError
otherwise): a list of {'label': str, 'label_index': int, 'probs': {label: probability}}, the
probabilities those of `linformer predict` for the same batch size.

texts: a list of str, or token-id sequences (<s> ids </s>). truncate: None follows the run
(finetune.json 'truncate', as `linformer predict` does).)doc");

  cls.def(
      "fill_mask",
      [](const PyModel& self, const std::string& text, int top_k, const std::optional<std::string>& precision) {
        const MatmulPrecision p = self.precision_of(precision);
        FillMaskResult r;
        {
          py::gil_scoped_release nogil;
          ComputeScope scope(p);
          r = self.get().fill_mask(text, top_k);
        }
        py::list out;
        for (const MaskPrediction& mp : r.masks) {
          py::list cands;
          for (const FillMaskCandidate& c : mp.candidates) {
            py::dict d;
            d["token"] = c.token;
            d["id"] = c.id;
            d["prob"] = c.prob;
            cands.append(d);
          }
          out.append(cands);
        }
        return out;
      },
      py::arg("text"), py::arg("top_k") = 5, py::kw_only(), py::arg("precision") = py::none(),
      R"doc(The top_k tokens for each <mask> of the text: a list with one list per <mask> (in the order of
the text) of {'token', 'id', 'prob'}, most probable first. InputError without a <mask>.)doc");

  cls.def(
      "truncate",
      [](const PyModel& self, py::handle ids) { return self.get().truncate(sequence_from_python(ids, "ids")); },
      py::arg("ids"),
      "A copy of ids cut to max_len (ending with </s> when ids did), as truncate=True cuts inputs.");

  cls.def(
      "attention_map",
      [](const PyModel& self, py::handle ids, int layer, bool truncate, const std::optional<std::string>& precision) {
        const MatmulPrecision p = self.precision_of(precision);
        const std::vector<int32_t> seq = sequence_from_python(ids, "ids");
        AttentionMap a;
        {
          py::gil_scoped_release nogil;
          ComputeScope scope(p);
          a = self.get().attention_map(seq, layer, truncate);
        }
        return to_numpy(std::move(a.probs), {a.heads, a.n, a.cols});
      },
      py::arg("ids"), py::arg("layer"), py::kw_only(), py::arg("truncate") = false, py::arg("precision") = py::none(),
      "The attention probabilities of one layer for one sequence: float32 [heads, n, cols] (cols = n for\n"
      "full attention, k for Linformer). ConfigError for tiled attention or a layer out of range.");

  cls.def(
      "evaluate",
      [](const PyModel& self, const std::string& task, const std::string& split, std::optional<bool> truncate,
         int batch_size) {
        ClassifyOptions o;
        o.truncate = truncate.value_or(self.get().info().trained_with_truncation);
        o.batch_size = batch_size;
        const MatmulPrecision p = self.precision_of(std::nullopt);
        ClassifierEval e;
        {
          py::gil_scoped_release nogil;
          ComputeScope scope(p);
          e = self.get().evaluate(task, split, o);
        }
        return to_python(to_json(e, self.get().labels()));
      },
      py::arg("task"), py::arg("split") = "test", py::kw_only(), py::arg("truncate") = py::none(),
      py::arg("batch_size") = 32,
      "Accuracy, loss, macro-F1, per-class metrics and the confusion matrix of a fine-tuned model on a\n"
      "task folder's split ('train', 'valid', 'test'), as `linformer eval --json` writes them.");
  cls.def(
      "evaluate_mlm",
      [](const PyModel& self, const std::string& tokens, int seq_len, int batch_size, int max_batches,
         uint64_t seed) {
        const MatmulPrecision p = self.precision_of(std::nullopt);
        py::gil_scoped_release nogil;
        ComputeScope scope(p);
        return self.get().evaluate_mlm(tokens, seq_len, batch_size, max_batches, seed);
      },
      py::arg("tokens"), py::arg("seq_len") = 0, py::arg("batch_size") = 16, py::arg("max_batches") = 0,
      py::arg("seed") = 1,
      "Mean masked-LM loss over a token file with fixed masks from seed (seq_len 0: max_len;\n"
      "max_batches 0: all), as `linformer eval-mlm`.");

  cls.def("__repr__", [](const PyModel& self) {
    const ModelConfig& c = self.get().config();
    return fmt::format("<linformer.Model {} attention, {} layers, d_model {}, vocab {}, max_len {}{}{}>",
                       to_string(c.attention), c.n_layers, c.d_model, c.vocab_size, c.max_len,
                       c.num_labels > 0 ? fmt::format(", {} classes", c.num_labels) : "",
                       self.get().info().source.empty() ? "" : ", from " + self.get().info().source);
  });
}

}  // namespace linformer::python
