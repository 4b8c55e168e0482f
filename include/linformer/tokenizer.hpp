// SentencePiece tokenizer (unigram), trained by the tool, with fixed special-token ids.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace linformer {

// Byte offset of the first invalid UTF-8 sequence in s (overlong forms, surrogates and code points
// past U+10FFFF included), or std::string_view::npos when s is valid UTF-8: the check every text
// input of the library goes through, for clients that must tell bad text apart before calling it.
size_t find_invalid_utf8(std::string_view s);

// Special tokens, the same ids in every tokenizer this tool trains (docs/data.md).
constexpr int32_t kPadId = 0;   // <pad>
constexpr int32_t kBosId = 1;   // <s>   (also the classification token)
constexpr int32_t kEosId = 2;   // </s>  (also the separator)
constexpr int32_t kUnkId = 3;   // <unk>
constexpr int32_t kMaskId = 4;  // <mask>
constexpr int32_t kNumSpecial = 5;

class Tokenizer {
 public:
  // Trains a unigram model of exactly vocab_size pieces (specials included) on text files (a folder
  // means every regular file in it, recursively, sorted by path, hidden files skipped) and writes
  // it to out_model (atomically). Deterministic; seed only matters for corpora over 1M lines
  // (which are subsampled). Throws IoError (missing file), InputError (non-UTF-8 text naming
  // file:line, empty corpus, corpus too small for vocab_size), ConfigError (vocab_size < 16).
  static void train(const std::vector<std::string>& inputs, int vocab_size, const std::string& out_model,
                    uint64_t seed = 0);
  // Loads a model; IoError if unreadable or its special pieces are not the ids above.
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;

  std::vector<int32_t> encode(const std::string& text) const;  // no bos/eos added; InputError if not UTF-8
  std::string decode(const std::vector<int32_t>& ids) const;
  std::string piece(int32_t id) const;
  int32_t piece_to_id(const std::string& piece) const;
  int vocab_size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace linformer
