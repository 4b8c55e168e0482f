// Helpers of the analysis tests (test_analysis.cpp, test_cli_analysis.cpp): token files written
// directly, and a check that a file is well-formed SVG.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "data/token_file.hpp"

namespace analysis_test {

// One document of `count` random ids in [5, vocab) followed by its lone </s> sentence.
inline void write_token_file(const std::string& path, int count, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> tokens;
  for (int i = 0; i < count; ++i) tokens.push_back(5 + (int32_t)(rng() % (uint32_t)(vocab - 5)));
  tokens.push_back(2);
  const std::vector<uint64_t> ends = {(uint64_t)count, (uint64_t)count + 1};
  linformer::data_detail::TokenHeader h{};
  std::memcpy(h.magic, "LFTOKENS", 8);
  h.version = 1;
  h.dtype = 1;
  h.num_tokens = tokens.size();
  h.num_sentences = ends.size();
  h.num_documents = 1;
  h.max_id = *std::max_element(tokens.begin(), tokens.end());
  std::string bytes(reinterpret_cast<const char*>(&h), sizeof h);
  bytes.append(reinterpret_cast<const char*>(tokens.data()), tokens.size() * 4);
  bytes.resize(linformer::data_detail::token_ends_offset(tokens.size()), '\0');
  bytes.append(reinterpret_cast<const char*>(ends.data()), ends.size() * 8);
  std::ofstream(path, std::ios::binary) << bytes;
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// "" when `text` is a well-formed SVG document (an XML declaration, one <svg> root, every tag
// closed in order, quotes balanced inside tags), else what is wrong.
inline std::string svg_problem(const std::string& text) {
  if (text.rfind("<?xml", 0) != 0) return "no XML declaration";
  std::vector<std::string> open;
  bool saw_root = false;
  size_t i = 0;
  while ((i = text.find('<', i)) != std::string::npos) {
    const size_t end = text.find('>', i);
    if (end == std::string::npos) return "unterminated tag";
    const std::string tag = text.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag.empty()) return "empty tag";
    if (std::count(tag.begin(), tag.end(), '"') % 2) return "unbalanced quotes in <" + tag.substr(0, 40) + ">";
    if (tag[0] == '?') continue;
    if (tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (open.empty() || open.back() != name) return "unexpected </" + name + ">";
      open.pop_back();
      continue;
    }
    const std::string name = tag.substr(0, tag.find_first_of(" \n/"));
    if (open.empty()) {
      if (saw_root || name != "svg") return "root element is <" + name + ">, not one <svg>";
      saw_root = true;
    }
    if (tag.back() != '/') open.push_back(name);
  }
  if (!saw_root) return "no <svg> element";
  if (!open.empty()) return "<" + open.back() + "> not closed";
  return "";
}

inline size_t count_of(const std::string& text, const std::string& needle) {
  size_t c = 0;
  for (size_t i = text.find(needle); i != std::string::npos; i = text.find(needle, i + 1)) ++c;
  return c;
}

}  // namespace analysis_test
