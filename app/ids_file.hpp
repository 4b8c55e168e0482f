// Token-id files: plain text, one sequence per line, token ids separated by whitespace.
// Lines may differ in length. Every line must hold at least one id.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace linformer::app {

// Reads `path` and checks every id against the model: 0 <= id < vocab_size and at most
// max_len ids per line. Throws IoError if the file cannot be read and InputError naming the
// file, line and offending value ("ids.txt:3: ...") for a blank line, a token that is not an
// integer, an id outside the vocabulary or a line longer than max_len.
std::vector<std::vector<int32_t>> read_ids_file(const std::string& path, int vocab_size, int max_len);

}  // namespace linformer::app
