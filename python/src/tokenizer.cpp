// linformer.Tokenizer (include/linformer/tokenizer.hpp: the SentencePiece unigram tokenizer with the
// fixed special ids) and token files (linformer/data.hpp: encode_corpus, for pretraining).
#include <memory>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "common.hpp"
#include "linformer/data.hpp"
#include "linformer/tokenizer.hpp"

namespace linformer::python {

namespace {

// A str or a list of str (files or folders).
std::vector<std::string> paths_of(py::handle inputs) {
  if (py::isinstance<py::str>(inputs)) return {inputs.cast<std::string>()};
  return texts_from_python(inputs, "inputs");
}

}  // namespace

void register_tokenizer(py::module_& m) {
  m.attr("PAD_ID") = kPadId;
  m.attr("BOS_ID") = kBosId;
  m.attr("EOS_ID") = kEosId;
  m.attr("UNK_ID") = kUnkId;
  m.attr("MASK_ID") = kMaskId;

  py::class_<Tokenizer, std::shared_ptr<Tokenizer>> cls(m, "Tokenizer", R"doc(A SentencePiece (unigram) tokenizer with the fixed special ids of every tokenizer linformer trains:
<pad> 0, <s> 1, </s> 2, <unk> 3, <mask> 4 (docs/data.md).)doc");
  cls.def(py::init([](const std::string& path) {
            py::gil_scoped_release nogil;
            return std::make_shared<Tokenizer>(path);
          }),
          py::arg("path"),
          "Loads a tokenizer model file; IoError if it is unreadable or its special pieces are not the ids above.");
  cls.def_static(
      "load",
      [](const std::string& path) {
        py::gil_scoped_release nogil;
        return std::make_shared<Tokenizer>(path);
      },
      py::arg("path"), "The same as Tokenizer(path).");
  cls.def_static(
      "train",
      [](py::handle inputs, int vocab_size, const std::string& out, uint64_t seed) {
        const std::vector<std::string> files = paths_of(inputs);
        py::gil_scoped_release nogil;
        Tokenizer::train(files, vocab_size, out, seed);
        return std::make_shared<Tokenizer>(out);
      },
      py::arg("inputs"), py::arg("vocab_size"), py::arg("out"), py::arg("seed") = 0,
      R"doc(Trains a unigram model of exactly vocab_size pieces (specials included) on text files (a folder:
every file in it), writes it to out and returns it loaded (`linformer tokenizer train`).
Deterministic. IoError for a missing file, InputError for text that is not UTF-8 (naming
file:line) or a corpus too small for vocab_size, ConfigError for vocab_size < 16.)doc");
  cls.def(
      "encode", [](const Tokenizer& t, const std::string& text) { return t.encode(text); }, py::arg("text"),
      "The ids of a text (no <s> / </s> added).");
  cls.def(
      "decode", [](const Tokenizer& t, py::handle ids) { return t.decode(sequence_from_python(ids, "ids")); },
      py::arg("ids"), "The text of ids.");
  cls.def("piece", &Tokenizer::piece, py::arg("id"), "The piece of one id.");
  cls.def("piece_to_id", &Tokenizer::piece_to_id, py::arg("piece"), "The id of a piece (<unk>'s, 3, if unknown).");
  cls.def_property_readonly("vocab_size", &Tokenizer::vocab_size, "Number of pieces, specials included.");
  cls.def(
      "encode_corpus",
      [](const Tokenizer& t, py::handle inputs, const std::string& out) {
        const std::vector<std::string> files = paths_of(inputs);
        py::gil_scoped_release nogil;
        return encode_corpus(t, files, out);
      },
      py::arg("inputs"), py::arg("out"),
      R"doc(Encodes text files (a folder: all its files) into a token file for linformer.pretrain
(`linformer tokenizer encode`): each non-empty line a sentence, an empty line or the end of a file
ends a document. Returns the number of tokens.)doc");
  cls.def("__repr__", [](const Tokenizer& t) { return "<linformer.Tokenizer " + std::to_string(t.vocab_size()) + " pieces>"; });
}

}  // namespace linformer::python
