// Classification batches: per-epoch order, grouping by length, a shard's slice of each batch and
// the class weights. See cls_batcher.hpp.
#include "linformer/cls_batcher.hpp"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "core/rng.hpp"
#include "core/slice.hpp"
#include "linformer/error.hpp"

namespace linformer {

using core::splitmix64;

std::vector<uint32_t> epoch_order(size_t n, uint64_t seed, uint64_t epoch) {
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  core::Rng rng(splitmix64(seed ^ splitmix64(0xF17E ^ splitmix64(epoch))));
  core::shuffle(order, rng);
  return order;
}

std::vector<uint32_t> group_by_length(const std::vector<uint32_t>& order, const std::vector<size_t>& lengths,
                                      size_t batch, uint64_t seed, uint64_t epoch) {
  if (batch == 0) throw ConfigError("group_by_length: the batch size must be at least 1");
  std::vector<uint32_t> out;
  out.reserve(order.size());
  const size_t pool = batch * kLengthGroupBatches;
  core::Rng rng(splitmix64(seed ^ splitmix64(0x6B0C ^ splitmix64(epoch))));
  for (size_t begin = 0; begin < order.size(); begin += pool) {
    const size_t end = std::min(order.size(), begin + pool);
    std::vector<uint32_t> chunk(order.begin() + (std::ptrdiff_t)begin, order.begin() + (std::ptrdiff_t)end);
    // Longest first; ties keep the shuffled order, so the result depends only on (order, lengths).
    std::stable_sort(chunk.begin(), chunk.end(), [&](uint32_t a, uint32_t b) { return lengths[a] > lengths[b]; });
    // Shuffle the whole batches of the chunk (a short last batch of the epoch stays last), so the
    // batches do not run from long to short.
    const size_t full = chunk.size() / batch;
    std::vector<size_t> batches(full);
    std::iota(batches.begin(), batches.end(), size_t{0});
    core::shuffle(batches, rng);
    for (size_t b : batches)
      out.insert(out.end(), chunk.begin() + (std::ptrdiff_t)(b * batch),
                 chunk.begin() + (std::ptrdiff_t)((b + 1) * batch));
    out.insert(out.end(), chunk.begin() + (std::ptrdiff_t)(full * batch), chunk.end());
  }
  return out;
}

std::vector<float> balanced_class_weights(const std::vector<int32_t>& labels, int num_classes) {
  std::vector<size_t> count((size_t)std::max(num_classes, 0), 0);
  for (int32_t l : labels)
    if (l >= 0 && l < num_classes) ++count[(size_t)l];
  std::vector<float> w(count.size(), 0.0f);
  for (size_t c = 0; c < count.size(); ++c)
    if (count[c] > 0) w[c] = (float)((double)labels.size() / ((double)num_classes * (double)count[c]));
  return w;
}

std::vector<int32_t> labels_of(const TaskSplit& s) {
  std::vector<int32_t> out;
  out.reserve(s.examples.size());
  for (const TaskExample& e : s.examples) out.push_back(e.label);
  return out;
}

ClsBatcher::ClsBatcher(const std::vector<std::vector<int32_t>>& seqs, const std::vector<int32_t>& labels,
                       ClsOptions opt)
    : seqs_(seqs), labels_(labels), opt_(std::move(opt)) {
  if (opt_.batch_size < 1) throw ConfigError(fmt::format("cls: batch_size {} must be positive", opt_.batch_size));
  if (opt_.shards < 1 || opt_.shard < 0 || opt_.shard >= opt_.shards)
    throw ConfigError(fmt::format("cls: shard {} of {} is not a valid slice", opt_.shard, opt_.shards));
  if (labels_.size() != seqs_.size())
    throw InputError(fmt::format("cls: {} labels for {} sequences", labels_.size(), seqs_.size()));
  if (seqs_.size() > UINT32_MAX)
    throw InputError(fmt::format("cls: {} examples are more than this batcher indexes", seqs_.size()));
  if (!opt_.class_weights.empty())
    for (size_t i = 0; i < labels_.size(); ++i)
      if (labels_[i] < 0 || (size_t)labels_[i] >= opt_.class_weights.size())
        throw InputError(fmt::format("cls: label {} of example {} has no class weight (of {} classes)", labels_[i],
                                     i, opt_.class_weights.size()));
  lengths_.reserve(seqs_.size());
  for (const std::vector<int32_t>& seq : seqs_) lengths_.push_back(seq.size());
  make_order();
}

void ClsBatcher::set_state(State s) {
  if (s.cursor >= seqs_.size())
    throw InputError(fmt::format("cls: data position {} is past the {} training examples", s.cursor, seqs_.size()));
  state_ = s;
  make_order();
}

void ClsBatcher::make_order() {
  order_ = epoch_order(seqs_.size(), opt_.seed, state_.epoch);
  // Grouped for the batch of the whole run, so that the shards' slices come from one group.
  if (opt_.group_by_length)
    order_ = group_by_length(order_, lengths_, (size_t)opt_.batch_size * (size_t)opt_.shards, opt_.seed, state_.epoch);
}

void ClsBatcher::next(Batch& batch, std::vector<int32_t>& labels, std::vector<float>& weights) {
  const size_t N = seqs_.size();
  // The run's batch (all shards) may be short at the end of an epoch; this shard's slice of it.
  const size_t global = std::min<size_t>((size_t)opt_.batch_size * (size_t)opt_.shards, N - state_.cursor);
  const core::Slice part = core::rank_slice(global, (size_t)opt_.batch_size, opt_.shard);
  chunk_.clear();
  labels.clear();
  weights.clear();
  for (size_t i = 0; i < part.count; ++i) {
    const uint32_t ex = order_[state_.cursor + part.begin + i];
    chunk_.push_back(seqs_[ex]);
    labels.push_back(labels_[ex]);
    if (!opt_.class_weights.empty()) weights.push_back(opt_.class_weights[(size_t)labels_[ex]]);
  }
  batch = chunk_.empty() ? Batch{} : Batch::from_sequences(chunk_);
  if (state_.advance(global, N)) make_order();  // the epoch is over: the next call starts a new order
}

}  // namespace linformer
