// The data-parallel pieces of a training step (docs/distributed.md), shared by pretraining and
// fine-tuning: which slice of a batch a rank takes, the gradient all-reduce, and the check that
// every rank holds the same weights.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/slice.hpp"
#include "dist/communicator.hpp"

namespace linformer {
class ParamTable;
}

namespace linformer::dist {

// Gradients are summed in buckets of this many floats (4 MiB) of the flat gradient block.
inline constexpr size_t kGradBucketFloats = (size_t)1 << 20;

// Sums the gradient block over the ranks, in place, bucket by bucket (after the backward pass;
// see docs/distributed.md for why it is not overlapped with it).
void allreduce_gradients(const Communicator& comm, ParamTable& params);

// This rank's part of a batch (core/slice.hpp; the batchers of the data floor use it too).
using core::rank_slice;
using core::Slice;

// A 64-bit hash of the bits of `v` (FNV-1a over the 32-bit words), and of a few integers.
uint64_t checksum(const std::vector<float>& v);
uint64_t checksum(const std::vector<uint64_t>& values);
// Throws Error "WHAT: not the same on every rank (checksum ... on rank 0, ... on rank R); ..."
// unless `value` is the same on every rank. Collective: every rank must call it at the same point.
void check_same_on_all_ranks(const Communicator& comm, uint64_t value, const std::string& what);

// Dropout seed of a rank: rank 0 keeps `seed` (so a single process is unchanged), the others get
// streams of their own, so that ranks do not drop the same units of different sequences.
uint64_t rank_seed(uint64_t seed, int rank);

}  // namespace linformer::dist
