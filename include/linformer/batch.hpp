// A batch of token sequences as the model reads it: ids [B, n] and a key-padding mask [B, n].
// It sits on the ground floor (core) because data code builds batches and the model reads them.
#pragma once
#include <cstdint>
#include <vector>

namespace linformer {

// Token ids [B, n] with a key-padding mask [B, n] (1 = real token, 0 = padding).
struct Batch {
  int B = 0, n = 0;
  std::vector<int32_t> ids;  // [B*n]
  std::vector<uint8_t> mask; // [B*n]
  // Pads sequences of different lengths with pad_id to the longest; throws InputError if empty.
  static Batch from_sequences(const std::vector<std::vector<int32_t>>& seqs, int32_t pad_id = 0);
  int length(int b) const;  // number of real tokens in sequence b
};

constexpr int kIgnoreIndex = -100;  // label value that the losses skip (as PyTorch)

}  // namespace linformer
