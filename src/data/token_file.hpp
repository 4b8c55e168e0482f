// Internal: the on-disk header of a token file (docs/data.md). All fields little-endian.
#pragma once
#include <cstdint>

namespace linformer::data_detail {

inline constexpr char kTokenMagic[8] = {'L', 'F', 'T', 'O', 'K', 'E', 'N', 'S'};
inline constexpr uint32_t kTokenVersion = 1;
inline constexpr uint32_t kDtypeInt32 = 1;  // the only token dtype so far

struct TokenHeader {
  char magic[8];            // "LFTOKENS"
  uint32_t version;         // 1
  uint32_t dtype;           // 1 = int32 tokens
  uint64_t num_tokens;      // T
  uint64_t num_sentences;   // S
  uint64_t num_documents;   // D (documents ended by a lone kEosId sentence)
  int32_t max_id;           // largest token id in the file
  int32_t vocab_size;       // of the tokenizer that wrote it (0: unknown)
  uint8_t reserved[16];     // zero
};
static_assert(sizeof(TokenHeader) == 64);

// Byte offset of the sentence end offsets: after the tokens, rounded up to 8 bytes.
inline uint64_t token_ends_offset(uint64_t num_tokens) { return (64 + 4 * num_tokens + 7) / 8 * 8; }

}  // namespace linformer::data_detail
