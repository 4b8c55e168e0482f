// A rank's (or shard's) part of a batch in data-parallel training (docs/distributed.md): the
// batch's items are dealt out in rank order, `per_rank` to each. Used by the batchers (data) and
// by the evaluation of a data-parallel run (train).
#pragma once
#include <algorithm>
#include <cstddef>

namespace linformer::core {

// This rank's part [begin, begin + count) of a batch of `global` consecutive items in which every
// rank takes `per_rank` items in rank order (the last ranks get fewer, or none, when the batch is
// short at the end of an epoch).
struct Slice {
  size_t begin = 0, count = 0;
};
inline Slice rank_slice(size_t global, size_t per_rank, int rank) {
  Slice s;
  s.begin = std::min(per_rank * (size_t)rank, global);
  s.count = std::min(per_rank, global - s.begin);
  return s;
}

}  // namespace linformer::core
