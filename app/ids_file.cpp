#include "ids_file.hpp"

#include <charconv>
#include <fstream>
#include <string_view>
#include <system_error>

#include <fmt/core.h>

#include "linformer/error.hpp"

namespace linformer::app {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

// Splits a line at whitespace.
std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !is_space(s[j])) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// Quotes a token for an error message, shortened (a binary file can have very long "tokens").
std::string quoted(std::string_view tok) {
  if (tok.size() > 40) return fmt::format("'{}...'", tok.substr(0, 40));
  return fmt::format("'{}'", tok);
}

}  // namespace

std::vector<std::vector<int32_t>> read_ids_file(const std::string& path, int vocab_size, int max_len) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("{}: cannot open the ids file", path));

  std::vector<std::vector<int32_t>> seqs;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    const std::vector<std::string_view> toks = split(line);
    if (toks.empty()) {
      throw InputError(fmt::format("{}:{}: empty line (every line must hold a sequence of token ids)", path, lineno));
    }
    std::vector<int32_t> seq;
    seq.reserve(toks.size());
    for (std::string_view tok : toks) {
      int64_t id = 0;
      auto [ptr, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), id);
      const bool whole = ptr == tok.data() + tok.size();
      if (ec == std::errc::result_out_of_range && whole) {
        throw InputError(fmt::format("{}:{}: token id {} is outside the vocabulary [0, {})", path, lineno,
                                     quoted(tok), vocab_size));
      }
      if (ec != std::errc() || !whole) {
        throw InputError(fmt::format("{}:{}: token {} is not an integer token id", path, lineno, quoted(tok)));
      }
      if (id < 0 || id >= vocab_size) {
        throw InputError(fmt::format("{}:{}: token id {} is outside the vocabulary [0, {})", path, lineno, id,
                                     vocab_size));
      }
      seq.push_back(static_cast<int32_t>(id));
    }
    if (static_cast<int64_t>(seq.size()) > max_len) {
      throw InputError(fmt::format("{}:{}: sequence has {} tokens, more than the model's max_len {}", path, lineno,
                                   seq.size(), max_len));
    }
    seqs.push_back(std::move(seq));
  }
  if (in.bad()) throw IoError(fmt::format("{}: read error after line {}", path, lineno));
  if (seqs.empty()) throw InputError(fmt::format("{}: no sequences (the file is empty)", path));
  return seqs;
}

}  // namespace linformer::app
