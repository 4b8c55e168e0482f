// Internal helpers of the data code: listing input files, reading text line by line with UTF-8
// validation (files are written with core::AtomicFile).
#pragma once
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/fs.hpp"  // core::AtomicFile, which the data writers use
#include "linformer/tokenizer.hpp"  // find_invalid_utf8

namespace linformer::data_detail {

// Files named by `inputs`: a file as is, a folder as every regular file below it (recursively,
// hidden files skipped), sorted by path. Throws IoError for a missing path or no files at all.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs);

// The UTF-8 check (include/linformer/tokenizer.hpp), under the name the data code uses.
using linformer::find_invalid_utf8;

// Reads one text file line by line ('\n' or "\r\n"); every line is checked to be UTF-8
// (InputError naming the file, line and byte otherwise).
class LineReader {
 public:
  explicit LineReader(const std::string& path);  // IoError if it cannot be opened
  bool next(std::string& line);                   // false at the end of the file
  uint64_t line_number() const { return line_no_; }  // 1-based number of the last line read
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ifstream in_;
  uint64_t line_no_ = 0;
};

// True when the line holds nothing but spaces and tabs.
bool is_blank(std::string_view line);

}  // namespace linformer::data_detail
