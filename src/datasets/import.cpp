// Importing the user's own TSV/JSONL data as a task folder (docs/tasks.md).
#include <algorithm>
#include <charconv>
#include <filesystem>
#include <map>
#include <set>
#include <unordered_set>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "data/tasks_detail.hpp"
#include "data/text_io.hpp"
#include "linformer/datasets.hpp"
#include "linformer/error.hpp"

namespace fs = std::filesystem;

namespace linformer {

using namespace data_detail;
using namespace task_detail;

// ------------------------------------------------------------------------------------------------
// importing the user's data

namespace {

struct RawExample {
  std::string label, text;
  uint64_t line;
};

std::string join_labels(const std::vector<std::string>& labels) {
  std::string out;
  for (size_t i = 0; i < labels.size() && i < 20; ++i) out += (i ? ", " : "") + labels[i];
  if (labels.size() > 20) out += ", ...";
  return out;
}

bool is_integer(const std::string& s) {
  if (s.empty()) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size() || s.size() > 18) return false;
  for (; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

std::vector<RawExample> read_user_file(const std::string& path, const ImportOptions& opt) {
  std::vector<RawExample> out;
  LineReader r(path);
  std::string line;
  bool first = true;
  while (r.next(line)) {
    const auto where = [&] { return fmt::format("{}:{}", path, r.line_number()); };
    if (first && opt.format == "tsv" && opt.skip_header) {
      first = false;
      continue;
    }
    first = false;
    if (line.empty() || is_blank(line)) throw InputError(fmt::format("{}: empty line", where()));
    RawExample ex;
    ex.line = r.line_number();
    if (opt.format == "tsv") {
      const size_t tab = line.find('\t');
      const size_t cols = 1 + std::count(line.begin(), line.end(), '\t');
      if (cols != 2)
        throw InputError(fmt::format("{}: {} column{}, expected 2 ({}; no tab inside the text: use JSONL for that)",
                                     where(), cols, cols == 1 ? "" : "s",
                                     opt.text_first ? "TEXT<TAB>LABEL" : "LABEL<TAB>TEXT"));
      std::string a = line.substr(0, tab), b = line.substr(tab + 1);
      ex.label = opt.text_first ? b : a;
      ex.text = opt.text_first ? a : b;
    } else {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        throw InputError(fmt::format("{}: invalid JSON: {}", where(), e.what()));
      }
      if (!j.is_object()) throw InputError(fmt::format("{}: not a JSON object", where()));
      if (!j.contains(opt.text_field))
        throw InputError(fmt::format("{}: missing field \"{}\"", where(), opt.text_field));
      if (!j.contains(opt.label_field))
        throw InputError(fmt::format("{}: missing field \"{}\"", where(), opt.label_field));
      const auto& t = j[opt.text_field];
      const auto& l = j[opt.label_field];
      if (!t.is_string()) throw InputError(fmt::format("{}: field \"{}\" is not a string", where(), opt.text_field));
      if (l.is_string()) ex.label = l.get<std::string>();
      else if (l.is_number_integer()) ex.label = std::to_string(l.get<int64_t>());
      else if (l.is_boolean()) ex.label = l.get<bool>() ? "true" : "false";
      else
        throw InputError(fmt::format("{}: field \"{}\" must be a string or an integer", where(), opt.label_field));
      ex.text = t.get<std::string>();
    }
    if (ex.label.empty()) throw InputError(fmt::format("{}: empty label", where()));
    if (ex.label.find_first_of("\t\r\n") != std::string::npos)
      throw InputError(fmt::format("{}: the label holds a tab or line break", where()));
    if (ex.text.empty() || is_blank(ex.text)) throw InputError(fmt::format("{}: empty text", where()));
    if (find_invalid_utf8(ex.text) != std::string::npos)  // JSON \u escapes can still make lone surrogates
      throw InputError(fmt::format("{}: the text is not valid UTF-8", where()));
    out.push_back(std::move(ex));
  }
  return out;
}

}  // namespace

TaskSummary import_task(const std::string& out_dir, const ImportOptions& opt) {
  if (opt.format != "tsv" && opt.format != "jsonl")
    throw ConfigError(fmt::format("import: unknown format \"{}\" (expected tsv or jsonl)", opt.format));
  if (opt.train.empty()) throw ConfigError("import: a training file is required");
  if (opt.valid.empty() && opt.valid_every < 2)
    throw ConfigError(fmt::format("import: valid_every {} must be at least 2", opt.valid_every));
  if (opt.max_len > 0 && opt.tokenizer == TaskTokenizer::SentencePiece)
    throw ConfigError("import: --max-len needs a fixed tokenizer (listops or pixels); SentencePiece sequences are "
                      "cut to the model's length when fine-tuning");
  for (const std::string* f : {&opt.train, &opt.valid, &opt.test}) {
    if (f->empty()) continue;
    std::error_code ec;
    if (fs::exists(out_dir, ec) && fs::exists(*f, ec))
      for (const char* n : {"train.tsv", "valid.tsv", "test.tsv"})
        if (fs::exists(fs::path(out_dir) / n, ec) && fs::equivalent(*f, fs::path(out_dir) / n, ec))
          throw IoError(fmt::format("{}: input and output are the same file", *f));
  }

  std::vector<RawExample> files[3];
  files[0] = read_user_file(opt.train, opt);
  if (files[0].empty()) throw InputError(fmt::format("{}: no examples", opt.train));
  if (!opt.valid.empty()) files[1] = read_user_file(opt.valid, opt);
  if (!opt.test.empty()) files[2] = read_user_file(opt.test, opt);

  // The label set: given, or found in train (integers sorted numerically, otherwise byte order).
  TaskInfo info;
  info.name = opt.name;
  info.tokenizer = opt.tokenizer;
  info.source = opt.source;
  info.licence = opt.licence;
  if (!opt.labels.empty()) {
    info.labels = opt.labels;
  } else {
    std::set<std::string> found;
    for (const RawExample& ex : files[0]) found.insert(ex.label);
    info.labels.assign(found.begin(), found.end());
    if (std::all_of(info.labels.begin(), info.labels.end(), is_integer))
      std::sort(info.labels.begin(), info.labels.end(),
                [](const std::string& a, const std::string& b) { return std::stoll(a) < std::stoll(b); });
  }
  std::map<std::string, int32_t> ids;
  for (size_t i = 0; i < info.labels.size(); ++i) ids[info.labels[i]] = (int32_t)i;
  if (ids.size() != info.labels.size()) throw ConfigError("import: a label is given twice in --labels");
  if (info.labels.size() < 2)
    throw ConfigError(fmt::format("import: {} label{} ({}); a classification task needs at least 2",
                                  info.labels.size(), info.labels.size() == 1 ? "" : "s",
                                  info.labels.empty() ? "" : info.labels[0]));

  const std::string* paths[3] = {&opt.train, &opt.valid, &opt.test};
  TaskWriter w(out_dir, info, opt.tokenizer == TaskTokenizer::SentencePiece);
  std::unordered_set<uint64_t> train_texts;
  size_t overlap[3] = {0, 0, 0};
  for (int f = 0; f < 3; ++f) {
    size_t i = 0;
    for (const RawExample& ex : files[f]) {
      const auto where = [&] { return fmt::format("{}:{}", *paths[f], ex.line); };
      const auto it = ids.find(ex.label);
      if (it == ids.end())
        throw InputError(fmt::format("{}: unknown label \"{}\" (labels: {}{})", where(), ex.label,
                                     join_labels(info.labels),
                                     opt.labels.empty() ? ", those found in the training file" : ""));
      if (opt.tokenizer != TaskTokenizer::SentencePiece) {
        size_t n;
        try {
          n = tokenize_example(info, ex.text, nullptr).size();
        } catch (const InputError& e) {
          throw InputError(fmt::format("{}: {}", where(), e.what()));
        }
        if (opt.max_len > 0 && n > (size_t)opt.max_len)
          throw InputError(fmt::format("{}: sequence too long: {} tokens (with <s> and </s>) exceed --max-len {}",
                                       where(), n, opt.max_len));
      }
      int split = f;
      if (f == 0 && opt.valid.empty() && i % opt.valid_every == opt.valid_every - 1) split = 1;
      ++i;
      const uint64_t h = core::hash_string(ex.text, 1) ^ (core::hash_string(ex.text, 2) << 1);
      if (split == 0) train_texts.insert(h);
      else if (train_texts.count(h)) ++overlap[split];
      w.add(split, it->second, ex.text);
    }
  }
  nlohmann::json extra;
  extra["import"] = {{"format", opt.format},
                     {"train", opt.train},
                     {"valid", opt.valid.empty() ? fmt::format("every {}th training example", opt.valid_every) : opt.valid},
                     {"test", opt.test}};
  w.commit(extra);

  TaskSummary s = summarize_task(load_task(out_dir));
  s.dir = out_dir;
  if (opt.valid.empty())
    s.notes.push_back(fmt::format("no --valid file: training example i went to valid.tsv when i % {} == {}",
                                  opt.valid_every, opt.valid_every - 1));
  if (opt.test.empty()) s.notes.push_back("no --test file: test.tsv is empty");
  for (int f = 1; f < 3; ++f)
    if (overlap[f])
      s.notes.push_back(fmt::format("warning: {} {} examples have the same text as a training example", overlap[f],
                                    kSplitNames[f]));
  return s;
}

}  // namespace linformer
