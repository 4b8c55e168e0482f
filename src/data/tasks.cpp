// The task format (docs/tasks.md): task.json + train/valid/test.tsv; reading, writing, tokenizing,
// statistics. Importing the user's own TSV/JSONL data is src/datasets/import.cpp.
#include "linformer/tasks.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unordered_set>

#include <fmt/core.h>

#include "data/tasks_detail.hpp"
#include "data/text_io.hpp"
#include "linformer/error.hpp"
#include "linformer/tokenizer.hpp"

namespace fs = std::filesystem;

namespace linformer {

using namespace data_detail;
using namespace task_detail;

// ------------------------------------------------------------------------------------------------
// helpers

namespace task_detail {

void check_label_name(const std::string& name) {
  if (name.empty()) throw ConfigError("a label name is empty");
  if (name.find_first_of("\t\r\n") != std::string::npos)
    throw ConfigError(fmt::format("label name \"{}\" holds a tab or line break", escape_text(name)));
  if (find_invalid_utf8(name) != std::string_view::npos)
    throw ConfigError(fmt::format("label name \"{}\" is not valid UTF-8", escape_text(name)));
}

TaskWriter::TaskWriter(const std::string& dir, TaskInfo info, bool write_train_txt)
    : dir_(dir), info_(std::move(info)) {
  if (info_.labels.empty()) throw ConfigError(fmt::format("task {}: no labels", info_.name));
  std::set<std::string> seen;
  for (const std::string& l : info_.labels) {
    check_label_name(l);
    if (!seen.insert(l).second) throw ConfigError(fmt::format("task {}: label \"{}\" given twice", info_.name, l));
  }
  for (int s = 0; s < 3; ++s)
    files_[s] = std::make_unique<core::AtomicFile>((fs::path(dir) / (std::string(kSplitNames[s]) + ".tsv")).string(), core::kCreateParents);
  if (write_train_txt) train_txt_ = std::make_unique<core::AtomicFile>((fs::path(dir) / "train.txt").string(), core::kCreateParents);
}

void TaskWriter::add(int split, int32_t label, std::string_view text) {
  if (label < 0 || label >= (int32_t)info_.labels.size())
    throw Error(fmt::format("task {}: label id {} out of range", info_.name, label));
  if (text.empty()) throw Error(fmt::format("task {}: empty text", info_.name));
  buf_ = info_.labels[label];
  buf_ += '\t';
  buf_ += escape_text(text);
  buf_ += '\n';
  files_[split]->write(buf_);
  ++count_[split];
  if (split == 0 && train_txt_) {
    // One non-blank line per line, then an empty line: a document per example.
    buf_.clear();
    size_t pos = 0;
    while (pos <= text.size()) {
      size_t e = text.find('\n', pos);
      if (e == std::string_view::npos) e = text.size();
      std::string_view line = text.substr(pos, e - pos);
      if (!is_blank(line)) {
        for (char c : line) buf_ += (c == '\t' || c == '\r') ? ' ' : c;
        buf_ += '\n';
      }
      pos = e + 1;
    }
    if (!buf_.empty()) {
      buf_ += '\n';
      train_txt_->write(buf_);
    }
  }
}

void TaskWriter::commit(const nlohmann::json& extra) {
  for (auto& f : files_) f->commit();
  if (train_txt_) train_txt_->commit();
  nlohmann::json j = nlohmann::json::object();
  j["name"] = info_.name;
  j["labels"] = info_.labels;
  j["tokenizer"] = to_string(info_.tokenizer);
  j["source"] = info_.source;
  j["licence"] = info_.licence;
  j["examples"] = {{"train", count_[0]}, {"valid", count_[1]}, {"test", count_[2]}};
  if (info_.tokenizer != TaskTokenizer::SentencePiece) j["vocab_size"] = task_vocab_size(info_.tokenizer);
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  core::AtomicFile f((fs::path(dir_) / "task.json").string(), core::kCreateParents);
  f.write(j.dump(2) + "\n");
  f.commit();
}

}  // namespace task_detail

// ------------------------------------------------------------------------------------------------
// names, escaping

const char* to_string(TaskTokenizer t) {
  switch (t) {
    case TaskTokenizer::ListOps: return "listops";
    case TaskTokenizer::Pixels: return "pixels";
    case TaskTokenizer::SentencePiece: return "sentencepiece";
  }
  return "?";
}

TaskTokenizer task_tokenizer_from_string(std::string_view s) {
  if (s == "listops") return TaskTokenizer::ListOps;
  if (s == "pixels") return TaskTokenizer::Pixels;
  if (s == "sentencepiece") return TaskTokenizer::SentencePiece;
  throw ConfigError(fmt::format("unknown tokenizer \"{}\" (expected listops, pixels or sentencepiece)", s));
}

int32_t task_vocab_size(TaskTokenizer t) {
  switch (t) {
    case TaskTokenizer::ListOps: return kListOpsVocabSize;
    case TaskTokenizer::Pixels: return kPixelsVocabSize;
    case TaskTokenizer::SentencePiece: return 0;
  }
  return 0;
}

std::string escape_text(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 16);
  for (char c : text) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  }
  return out;
}

std::string unescape_text(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    const char c = field[i];
    if (c != '\\') {
      out += c;
      continue;
    }
    if (i + 1 == field.size()) throw InputError("bad escape: the text ends with a lone backslash (write \\\\)");
    const char e = field[++i];
    switch (e) {
      case '\\': out += '\\'; break;
      case 't': out += '\t'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      default:
        throw InputError(fmt::format("bad escape \"\\{}\" at column {} (only \\\\ \\t \\n \\r; write \\\\ for a backslash)",
                                     e, i));
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// reading a task folder

const TaskSplit& TaskData::split(std::string_view name) const {
  if (name == "train") return train;
  if (name == "valid") return valid;
  if (name == "test") return test;
  throw ConfigError(fmt::format("unknown split \"{}\" (expected train, valid or test)", name));
}

TaskInfo read_task_info(const std::string& dir) {
  const std::string path = (fs::path(dir) / "task.json").string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw IoError(fmt::format("{}: no such file (is {} a task folder? see `linformer task --help`)", path, dir));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(core::read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw IoError(fmt::format("{}: invalid JSON: {}", path, e.what()));
  }
  if (!j.is_object()) throw IoError(fmt::format("{}: not a JSON object", path));
  auto str = [&](const char* key, bool required) -> std::string {
    if (!j.contains(key)) {
      if (required) throw IoError(fmt::format("{}: missing field \"{}\"", path, key));
      return "";
    }
    if (!j[key].is_string()) throw IoError(fmt::format("{}: field \"{}\" must be a string", path, key));
    return j[key].get<std::string>();
  };
  TaskInfo info;
  info.name = str("name", true);
  info.source = str("source", false);
  info.licence = str("licence", false);
  try {
    info.tokenizer = task_tokenizer_from_string(str("tokenizer", true));
  } catch (const ConfigError& e) {
    throw IoError(fmt::format("{}: field \"tokenizer\": {}", path, e.what()));
  }
  if (!j.contains("labels") || !j["labels"].is_array() || j["labels"].empty())
    throw IoError(fmt::format("{}: field \"labels\" must be a non-empty array of strings", path));
  std::set<std::string> seen;
  for (const auto& l : j["labels"]) {
    if (!l.is_string()) throw IoError(fmt::format("{}: field \"labels\" must hold strings only", path));
    std::string name = l.get<std::string>();
    try {
      check_label_name(name);
    } catch (const ConfigError& e) {
      throw IoError(fmt::format("{}: {}", path, e.what()));
    }
    if (!seen.insert(name).second) throw IoError(fmt::format("{}: label \"{}\" appears twice", path, name));
    info.labels.push_back(std::move(name));
  }
  return info;
}

namespace {

void read_split(const std::string& dir, const TaskInfo& info, const std::map<std::string, int32_t>& label_ids,
                TaskSplit& split) {
  split.path = (fs::path(dir) / (split.name + ".tsv")).string();
  std::error_code ec;
  if (!fs::is_regular_file(split.path, ec)) throw IoError(fmt::format("{}: no such file", split.path));
  LineReader r(split.path);
  std::string line;
  while (r.next(line)) {
    const auto where = [&] { return fmt::format("{}:{}", split.path, r.line_number()); };
    if (line.empty() || is_blank(line))
      throw InputError(fmt::format("{}: empty line (every line is LABEL<TAB>TEXT)", where()));
    const size_t tab = line.find('\t');
    if (tab == std::string::npos)
      throw InputError(fmt::format("{}: 1 column, expected 2 (LABEL<TAB>TEXT)", where()));
    if (line.find('\t', tab + 1) != std::string::npos)
      throw InputError(fmt::format("{}: {} columns, expected 2 (LABEL<TAB>TEXT; a tab inside TEXT is written \\t)",
                                   where(), 1 + std::count(line.begin(), line.end(), '\t')));
    const std::string label = line.substr(0, tab);
    const auto it = label_ids.find(label);
    if (it == label_ids.end()) {
      std::string known;
      for (size_t i = 0; i < info.labels.size() && i < 20; ++i) known += (i ? ", " : "") + info.labels[i];
      if (info.labels.size() > 20) known += ", ...";
      throw InputError(fmt::format("{}: unknown label \"{}\" (task.json labels: {})", where(), label, known));
    }
    TaskExample ex;
    ex.label = it->second;
    ex.line = r.line_number();
    try {
      ex.text = unescape_text(std::string_view(line).substr(tab + 1));
    } catch (const InputError& e) {
      throw InputError(fmt::format("{}: {}", where(), e.what()));
    }
    if (ex.text.empty() || is_blank(ex.text)) throw InputError(fmt::format("{}: empty text", where()));
    split.examples.push_back(std::move(ex));
  }
}

}  // namespace

TaskData load_task(const std::string& dir) {
  TaskData t;
  t.info = read_task_info(dir);
  std::map<std::string, int32_t> ids;
  for (size_t i = 0; i < t.info.labels.size(); ++i) ids[t.info.labels[i]] = (int32_t)i;
  t.train.name = "train";
  t.valid.name = "valid";
  t.test.name = "test";
  read_split(dir, t.info, ids, t.train);
  read_split(dir, t.info, ids, t.valid);
  read_split(dir, t.info, ids, t.test);
  if (t.train.examples.empty()) throw InputError(fmt::format("{}: no training examples", t.train.path));
  return t;
}

// ------------------------------------------------------------------------------------------------
// tokenizing

std::vector<int32_t> encode_pixels(std::string_view text) {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 2 + 1);
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    while (i < n && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) ++i;
    if (i == n) break;
    size_t e = i;
    while (e < n && !(text[e] == ' ' || text[e] == '\t' || text[e] == '\n' || text[e] == '\r')) ++e;
    int v = -1;
    const auto [p, ec] = std::from_chars(text.data() + i, text.data() + e, v);
    if (ec != std::errc() || p != text.data() + e || v < 0 || v > 255)
      throw InputError(fmt::format("pixel {} \"{}\" is not an intensity 0..255", ids.size() + 1,
                                   std::string(text.substr(i, std::min<size_t>(e - i, 40)))));
    ids.push_back(kPixelFirstId + v);
    i = e;
  }
  return ids;
}

std::vector<int32_t> tokenize_example(const TaskInfo& info, std::string_view text, const Tokenizer* sp) {
  std::vector<int32_t> body;
  switch (info.tokenizer) {
    case TaskTokenizer::ListOps: body = encode_listops(text); break;
    case TaskTokenizer::Pixels: body = encode_pixels(text); break;
    case TaskTokenizer::SentencePiece:
      if (!sp)
        throw ConfigError(fmt::format("task {} uses a SentencePiece tokenizer: give its model (train one on "
                                      "train.txt with `linformer tokenizer train`)",
                                      info.name));
      body = sp->encode(std::string(text));
      break;
  }
  std::vector<int32_t> ids;
  ids.reserve(body.size() + 2);
  ids.push_back(kBosId);
  ids.insert(ids.end(), body.begin(), body.end());
  ids.push_back(kEosId);
  return ids;
}

std::vector<int32_t> fit_to_max_len(std::vector<int32_t> ids, int max_len, bool truncate) {
  if ((int64_t)ids.size() <= max_len) return ids;
  if (!truncate)
    throw InputError(fmt::format("sequence too long: {} tokens (with <s> and </s>) exceed max_len {} (--truncate "
                                 "cuts it)",
                                 ids.size(), max_len));
  ids.resize((size_t)max_len);
  ids.back() = kEosId;
  return ids;
}

std::vector<std::vector<int32_t>> tokenize_split(const TaskInfo& info, const TaskSplit& split, const Tokenizer* sp,
                                                 int max_len, bool truncate) {
  if (max_len < 3) throw ConfigError(fmt::format("max_len {} must be at least 3 (<s> token </s>)", max_len));
  std::vector<std::vector<int32_t>> out;
  out.reserve(split.examples.size());
  for (const TaskExample& ex : split.examples) {
    try {
      out.push_back(fit_to_max_len(tokenize_example(info, ex.text, sp), max_len, truncate));
    } catch (const InputError& e) {
      throw InputError(fmt::format("{}:{}: {}", split.path, ex.line, e.what()));
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// statistics

TaskSummary summarize_task(const TaskData& task, const Tokenizer* sp) {
  TaskSummary s;
  s.info = task.info;
  const bool tokens = task.info.tokenizer != TaskTokenizer::SentencePiece || sp;
  auto one = [&](const TaskSplit& split, SplitStats& st) {
    st.examples = split.examples.size();
    st.per_label.assign(task.info.labels.size(), 0);
    st.min_len = SIZE_MAX;
    std::vector<size_t> lens;
    lens.reserve(split.examples.size());
    double sum = 0;
    for (const TaskExample& ex : split.examples) {
      ++st.per_label[ex.label];
      size_t len = ex.text.size();
      if (tokens) {
        try {
          len = tokenize_example(task.info, ex.text, sp).size();
        } catch (const InputError& e) {
          throw InputError(fmt::format("{}:{}: {}", split.path, ex.line, e.what()));
        }
      }
      sum += (double)len;
      lens.push_back(len);
      st.max_len = std::max(st.max_len, len);
      st.min_len = std::min(st.min_len, len);
    }
    if (!st.examples) st.min_len = 0;
    if (!lens.empty()) {
      std::nth_element(lens.begin(), lens.begin() + (std::ptrdiff_t)(lens.size() / 2), lens.end());
      st.median_len = lens[lens.size() / 2];
    }
    st.mean_len = st.examples ? sum / (double)st.examples : 0.0;
  };
  one(task.train, s.train);
  one(task.valid, s.valid);
  one(task.test, s.test);
  return s;
}

}  // namespace linformer
