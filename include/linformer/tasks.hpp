// Classification tasks for fine-tuning (docs/tasks.md): the common on-disk format, the fixed
// vocabularies of the ListOps and pixel tokenizers, and the reader the fine-tuning trainer uses.
// Preparing datasets in this format (ListOps, SpamAssassin, Fashion-MNIST, the user's own
// TSV/JSONL) is linformer/datasets.hpp, beside the library.
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
// An encoded example (<s> ids </s>) that fits max_len as it is; a longer one is an InputError
// ("sequence too long: N tokens ... exceed max_len M"), or with `truncate` cut to <s>, its first
// max_len - 2 ids and </s>.
std::vector<int32_t> fit_to_max_len(std::vector<int32_t> ids, int max_len, bool truncate);
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

}  // namespace linformer
