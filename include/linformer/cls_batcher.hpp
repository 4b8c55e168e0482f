// The classification data pipeline (fine-tuning, docs/finetune.md): the examples of a task's
// training split in batches, in a shuffled order per epoch (optionally grouped by length), each
// shard of a data-parallel run taking its slice of every batch; with the data position
// State{epoch, cursor} for checkpoints and resume, as MlmBatcher (data.hpp) for pretraining.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "linformer/batch.hpp"
#include "linformer/data.hpp"
#include "linformer/tasks.hpp"

namespace linformer {

// The order of the n examples in an epoch: a Fisher-Yates shuffle driven by a splitmix64
// generator keyed by (seed, epoch), so any epoch's order is recomputed without replaying the run,
// identically on every platform.
std::vector<uint32_t> epoch_order(size_t n, uint64_t seed, uint64_t epoch);

// --group-by-length: cuts the epoch's shuffled `order` into pools of kLengthGroupBatches batches,
// sorts each pool by length (longest first) and shuffles its whole batches (seeded by seed and
// epoch; a short last batch stays last), so consecutive runs of `batch` examples have similar
// lengths while the pools keep the epoch random. A permutation of `order`.
constexpr size_t kLengthGroupBatches = 50;
std::vector<uint32_t> group_by_length(const std::vector<uint32_t>& order, const std::vector<size_t>& lengths,
                                      size_t batch, uint64_t seed, uint64_t epoch);

// The "balanced" class weights: N / (num_classes * count of class c) for the N labels (0 for a
// class without an example), so that the weighted examples of every class add up to N / num_classes.
std::vector<float> balanced_class_weights(const std::vector<int32_t>& labels, int num_classes);

// The class ids of a split's examples, in order.
std::vector<int32_t> labels_of(const TaskSplit& split);

struct ClsOptions {
  int batch_size = 16;  // examples per shard in a batch
  uint64_t seed = 0;    // example order (and its grouping)
  bool group_by_length = false;
  // Loss weight of each class (balanced_class_weights); empty: no weights.
  std::vector<float> class_weights;
  // Data parallelism (docs/distributed.md): a batch of the run is batch_size x shards consecutive
  // examples of the epoch order (grouped for that whole batch), and this batcher returns slice
  // `shard` of it, so the shards' batches together are those of one batcher with batch_size x shards.
  int shards = 1;
  int shard = 0;
};

class ClsBatcher {
 public:
  // seqs: the training examples (<s> ids </s>), labels: their classes; both must outlive the batcher.
  ClsBatcher(const std::vector<std::vector<int32_t>>& seqs, const std::vector<int32_t>& labels, ClsOptions opt);
  // This shard's slice of the next batch: `batch` padded to its longest sequence (B = 0 when the
  // batch at the end of an epoch, which may be short, leaves this shard nothing), the classes of
  // its sequences and, with class weights, their loss weights. After the last batch of an epoch
  // the next call starts a new epoch.
  void next(Batch& batch, std::vector<int32_t>& labels, std::vector<float>& weights);
  size_t num_examples() const { return seqs_.size(); }

  // Data position, for checkpoints and resume (cursor: examples of this epoch already returned).
  using State = DataPosition;
  State state() const { return state_; }
  void set_state(State s);  // InputError when the cursor is past the examples

 private:
  const std::vector<std::vector<int32_t>>& seqs_;
  const std::vector<int32_t>& labels_;
  ClsOptions opt_;
  std::vector<size_t> lengths_;  // of seqs_, for group_by_length
  std::vector<uint32_t> order_;  // this epoch's
  std::vector<std::vector<int32_t>> chunk_;
  State state_;
  void make_order();
};

}  // namespace linformer
