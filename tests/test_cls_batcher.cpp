// ClsBatcher (linformer/cls_batcher.hpp), the classification batches of fine-tuning: the shards'
// slices of a batch together are the batch of one batcher (short and empty slices at the end of an
// epoch included), every epoch uses every example once in epoch_order (grouped by length when
// asked), a saved State continues exactly, class weights follow the labels, bad input is refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "linformer/cls_batcher.hpp"
#include "linformer/error.hpp"

namespace linformer {
namespace {

// n examples of lengths 3..9 (ids encode the example index, so rows can be traced back), 3 classes.
struct Examples {
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int32_t> labels;
};
Examples make_examples(size_t n) {
  Examples e;
  for (size_t i = 0; i < n; ++i) {
    const size_t len = 3 + (i * 5) % 7;
    std::vector<int32_t> s(len, 5);
    s[0] = (int32_t)(100 + i);  // the example's index
    e.seqs.push_back(s);
    e.labels.push_back((int32_t)(i % 3));
  }
  return e;
}

// The example index of each row of a batch (its first id).
std::vector<int32_t> rows(const Batch& b) {
  std::vector<int32_t> out;
  for (int r = 0; r < b.B; ++r) out.push_back(b.ids[(size_t)r * b.n] - 100);
  return out;
}

ClsOptions options(int batch_size, bool group, int shards = 1, int shard = 0) {
  ClsOptions o;
  o.batch_size = batch_size;
  o.seed = 9;
  o.group_by_length = group;
  o.shards = shards;
  o.shard = shard;
  return o;
}

TEST(ClsBatcher, ShardsTogetherAreOneBatcher) {
  // 17 examples, 3 shards of 4: batches of 12 then 5 (shard 2 gets nothing: B = 0).
  const Examples e = make_examples(17);
  for (bool group : {false, true}) {
    SCOPED_TRACE(group ? "grouped" : "shuffled");
    ClsBatcher whole(e.seqs, e.labels, options(12, group));
    std::vector<ClsBatcher> shards;
    for (int s = 0; s < 3; ++s) shards.emplace_back(e.seqs, e.labels, options(4, group, 3, s));
    int empty = 0;
    for (int step = 0; step < 6; ++step) {  // three epochs
      Batch b;
      std::vector<int32_t> labels;
      std::vector<float> w;
      whole.next(b, labels, w);
      std::vector<int32_t> joined_rows, joined_labels;
      for (ClsBatcher& sh : shards) {
        Batch sb;
        std::vector<int32_t> sl;
        sh.next(sb, sl, w);
        EXPECT_EQ((size_t)sb.B, sl.size());
        if (sb.B == 0) {
          ++empty;
          EXPECT_TRUE(sb.ids.empty() && sb.mask.empty());
        }
        const std::vector<int32_t> r = rows(sb);
        joined_rows.insert(joined_rows.end(), r.begin(), r.end());
        joined_labels.insert(joined_labels.end(), sl.begin(), sl.end());
        EXPECT_EQ(sh.state().epoch, whole.state().epoch);
        EXPECT_EQ(sh.state().cursor, whole.state().cursor);
      }
      EXPECT_EQ(joined_rows, rows(b)) << "step " << step;
      EXPECT_EQ(joined_labels, labels) << "step " << step;
    }
    EXPECT_EQ(empty, 3) << "shard 2's slice of each epoch's short batch";
  }
}

TEST(ClsBatcher, EveryEpochIsItsOrderOnce) {
  const Examples e = make_examples(23);
  std::vector<size_t> lengths;
  for (const auto& s : e.seqs) lengths.push_back(s.size());
  for (bool group : {false, true}) {
    ClsBatcher b(e.seqs, e.labels, options(5, group));
    for (uint64_t epoch = 0; epoch < 3; ++epoch) {
      std::vector<uint32_t> expect = epoch_order(e.seqs.size(), 9, epoch);
      if (group) expect = group_by_length(expect, lengths, 5, 9, epoch);
      std::vector<int32_t> seen;
      for (int i = 0; i < 5; ++i) {  // 5 + 5 + 5 + 5 + 3
        Batch batch;
        std::vector<int32_t> labels;
        std::vector<float> w;
        b.next(batch, labels, w);
        EXPECT_EQ(batch.B, i < 4 ? 5 : 3);
        for (int r = 0; r < batch.B; ++r) EXPECT_EQ(batch.length(r), (int)e.seqs[rows(batch)[r]].size());
        const std::vector<int32_t> r = rows(batch);
        seen.insert(seen.end(), r.begin(), r.end());
      }
      EXPECT_EQ(b.state().epoch, epoch + 1);
      EXPECT_EQ(b.state().cursor, 0u);
      ASSERT_EQ(seen.size(), expect.size());
      for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ((uint32_t)seen[i], expect[i]) << "epoch " << epoch << " i " << i;
    }
  }
}

TEST(ClsBatcher, StateContinuesExactly) {
  const Examples e = make_examples(19);
  ClsBatcher a(e.seqs, e.labels, options(4, true));
  Batch batch;
  std::vector<int32_t> labels;
  std::vector<float> w;
  for (int i = 0; i < 7; ++i) a.next(batch, labels, w);  // into the second epoch
  const ClsBatcher::State st = a.state();
  EXPECT_EQ(st.epoch, 1u);
  ClsBatcher b(e.seqs, e.labels, options(4, true));
  b.set_state(st);
  for (int i = 0; i < 9; ++i) {
    Batch ba, bb;
    std::vector<int32_t> la, lb;
    a.next(ba, la, w);
    b.next(bb, lb, w);
    EXPECT_EQ(ba.ids, bb.ids) << i;
    EXPECT_EQ(ba.mask, bb.mask) << i;
    EXPECT_EQ(la, lb) << i;
  }
}

TEST(ClsBatcher, ClassWeightsFollowTheLabels) {
  const Examples e = make_examples(10);
  ClsOptions o = options(4, false);
  o.class_weights = balanced_class_weights(e.labels, 3);  // 4, 3, 3 examples
  ClsBatcher b(e.seqs, e.labels, o);
  Batch batch;
  std::vector<int32_t> labels;
  std::vector<float> w;
  b.next(batch, labels, w);
  ASSERT_EQ(w.size(), labels.size());
  for (size_t i = 0; i < w.size(); ++i) EXPECT_EQ(w[i], o.class_weights[(size_t)labels[i]]);
  ClsBatcher none(e.seqs, e.labels, options(4, false));
  none.next(batch, labels, w);
  EXPECT_TRUE(w.empty());
}

TEST(ClsBatcher, BadInputIsRefused) {
  const Examples e = make_examples(6);
  ClsBatcher b(e.seqs, e.labels, options(4, false));
  EXPECT_THROW(b.set_state({0, 6}), InputError);
  EXPECT_NO_THROW(b.set_state({3, 5}));
  EXPECT_THROW(ClsBatcher(e.seqs, e.labels, options(0, false)), ConfigError);
  EXPECT_THROW(ClsBatcher(e.seqs, e.labels, options(4, false, 2, 2)), ConfigError);
  const std::vector<int32_t> short_labels(5, 0);
  EXPECT_THROW(ClsBatcher(e.seqs, short_labels, options(4, false)), InputError);
  ClsOptions o = options(4, false);
  o.class_weights = {1.0f, 1.0f};  // class 2 has none
  EXPECT_THROW(ClsBatcher(e.seqs, e.labels, o), InputError);
}

}  // namespace
}  // namespace linformer
