// Batch: padding sequences of different lengths into one [B, n] block with its mask.
#include "linformer/batch.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "linformer/error.hpp"

namespace linformer {

Batch Batch::from_sequences(const std::vector<std::vector<int32_t>>& seqs, int32_t pad_id) {
  if (seqs.empty()) throw InputError("batch: no sequences");
  Batch b;
  b.B = (int)seqs.size();
  for (auto& s : seqs) b.n = std::max(b.n, (int)s.size());
  b.ids.assign((size_t)b.B * b.n, pad_id);
  b.mask.assign((size_t)b.B * b.n, 0);
  for (int i = 0; i < b.B; ++i) {
    if (seqs[i].empty()) throw InputError(fmt::format("batch: sequence {} is empty", i));
    for (size_t t = 0; t < seqs[i].size(); ++t) {
      b.ids[(size_t)i * b.n + t] = seqs[i][t];
      b.mask[(size_t)i * b.n + t] = 1;
    }
  }
  return b;
}

int Batch::length(int b) const {
  int c = 0;
  for (int t = 0; t < n; ++t) c += mask[(size_t)b * n + t];
  return c;
}

}  // namespace linformer
