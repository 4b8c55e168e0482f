// Masked-language-model batches: FULL-SENTENCES packing, per-epoch shuffling and RoBERTa masking
// (docs/data.md). All randomness comes from a counter-based generator keyed by (seed, purpose,
// epoch, sequence index), so any data position can be reproduced without replaying the run.
#include <algorithm>
#include <numeric>

#include <fmt/core.h>

#include "linformer/data.hpp"

#include "core/rng.hpp"
#include "core/slice.hpp"
#include "linformer/error.hpp"
#include "linformer/tokenizer.hpp"

namespace linformer {

namespace {

using core::splitmix64;

enum Stream : uint64_t { kShuffleStream = 1, kMaskStream = 2 };

// The generator of one (stream, epoch, index), keyed by nested splitmix64 of them.
core::Rng make_rng(uint64_t seed, uint64_t stream, uint64_t epoch, uint64_t index) {
  return core::Rng(splitmix64(seed ^ splitmix64(stream ^ splitmix64(epoch ^ splitmix64(index)))));
}

}  // namespace

MlmBatcher::MlmBatcher(const TokenFile& file, MlmOptions opt) : file_(file), opt_(opt) {
  if (opt_.seq_len < 3) throw ConfigError(fmt::format("mlm: seq_len {} is too short (at least 3)", opt_.seq_len));
  if (opt_.batch_size < 1) throw ConfigError(fmt::format("mlm: batch_size {} must be positive", opt_.batch_size));
  if (opt_.shards < 1 || opt_.shard < 0 || opt_.shard >= opt_.shards)
    throw ConfigError(fmt::format("mlm: shard {} of {} is not a valid slice", opt_.shard, opt_.shards));
  if (!(opt_.mask_prob > 0.0f && opt_.mask_prob <= 1.0f))
    throw ConfigError(fmt::format("mlm: mask_prob {} is outside (0, 1]", opt_.mask_prob));
  if (!(opt_.mask_token >= 0.0f && opt_.random_token >= 0.0f && opt_.mask_token + opt_.random_token <= 1.0f))
    throw ConfigError(fmt::format("mlm: mask_token {} and random_token {} must be >= 0 and sum to at most 1",
                                  opt_.mask_token, opt_.random_token));
  if (opt_.vocab_size <= kNumSpecial)
    throw ConfigError(fmt::format("mlm: vocab_size {} must exceed the {} special tokens", opt_.vocab_size, kNumSpecial));
  if (file.max_id() >= opt_.vocab_size)
    throw InputError(fmt::format("{}: token id {} is outside the vocabulary ({})", file.path(), file.max_id(),
                                 opt_.vocab_size));
  if (file.num_tokens() == 0) throw InputError(fmt::format("{}: the token file holds no tokens", file.path()));

  // Pack whole consecutive sentences into bodies of at most seq_len - 2 tokens; a longer
  // sentence is cut into full bodies and its tail starts the next body.
  const uint64_t cap = static_cast<uint64_t>(opt_.seq_len - 2);
  uint64_t begin = 0, end = 0;  // the body being filled
  const uint64_t* ends = file.sentence_ends();
  for (size_t s = 0; s < file.num_sentences(); ++s) {
    uint64_t a = s ? ends[s - 1] : 0;
    const uint64_t b = ends[s];
    if (end - begin + (b - a) <= cap) {
      end = b;
      continue;
    }
    if (end > begin) ranges_.emplace_back(begin, end);
    while (b - a > cap) {
      ranges_.emplace_back(a, a + cap);
      a += cap;
    }
    begin = a;
    end = b;
  }
  if (end > begin) ranges_.emplace_back(begin, end);
  if (ranges_.size() > UINT32_MAX)
    throw InputError(fmt::format("{}: {} sequences are more than this batcher indexes", file.path(), ranges_.size()));
  make_order();
}

size_t MlmBatcher::batches_per_epoch() const {
  const size_t global = (size_t)opt_.batch_size * (size_t)opt_.shards;
  return (ranges_.size() + global - 1) / global;
}

void MlmBatcher::set_state(State s) {
  if (s.cursor >= ranges_.size())
    throw InputError(fmt::format("{}: data position {} is past the {} sequences of this file at seq_len {} (was the "
                                 "checkpoint made with another token file or sequence length?)",
                                 file_.path(), s.cursor, ranges_.size(), opt_.seq_len));
  state_ = s;
  make_order();
}

void MlmBatcher::make_order() {
  order_.resize(ranges_.size());
  std::iota(order_.begin(), order_.end(), 0u);
  if (!opt_.shuffle) return;
  core::Rng rng = make_rng(opt_.seed, kShuffleStream, state_.epoch, 0);
  core::shuffle(order_, rng);
}

void MlmBatcher::next(Batch& batch, std::vector<int32_t>& labels) {
  const size_t N = ranges_.size();
  // The run's batch (all shards) may be short at the end of an epoch; this shard's slice of it.
  const size_t B = (size_t)opt_.batch_size;
  const size_t global = std::min<size_t>(B * (size_t)opt_.shards, N - state_.cursor);
  const core::Slice part = core::rank_slice(global, B, opt_.shard);
  const size_t start = state_.cursor + part.begin, count = part.count;
  int n = 0;
  for (size_t b = 0; b < count; ++b) {
    const auto& r = ranges_[order_[start + b]];
    n = std::max(n, static_cast<int>(r.second - r.first) + 2);
  }
  batch.B = static_cast<int>(count);
  batch.n = n;
  batch.ids.assign(count * n, kPadId);
  batch.mask.assign(count * n, 0);
  labels.assign(count * n, kIgnoreIndex);

  const int32_t* tokens = file_.tokens();
  const uint64_t n_random = static_cast<uint64_t>(opt_.vocab_size - kNumSpecial);
  std::vector<int> cand;
  for (size_t b = 0; b < count; ++b) {
    const uint32_t seq = order_[start + b];
    const auto& r = ranges_[seq];
    const int len = static_cast<int>(r.second - r.first) + 2;
    int32_t* ids = batch.ids.data() + b * n;
    int32_t* lab = labels.data() + b * n;
    ids[0] = kBosId;
    std::copy(tokens + r.first, tokens + r.second, ids + 1);
    ids[len - 1] = kEosId;
    std::fill(batch.mask.begin() + b * n, batch.mask.begin() + b * n + len, uint8_t{1});

    // Candidates: body tokens that are ordinary pieces or <unk> (never <s>, </s>, <pad>, <mask>).
    cand.clear();
    for (int p = 1; p < len - 1; ++p)
      if (ids[p] >= kNumSpecial || ids[p] == kUnkId) cand.push_back(p);
    if (cand.empty()) continue;
    core::Rng rng = make_rng(opt_.seed, kMaskStream, state_.epoch, seq);
    // round(mask_prob * c) with probabilistic rounding (unbiased), at least one.
    const size_t c = cand.size();
    size_t k = static_cast<size_t>(opt_.mask_prob * static_cast<double>(c) + rng.uniform());
    k = std::clamp<size_t>(k, 1, c);
    for (size_t i = 0; i < k; ++i) {  // partial Fisher-Yates: k distinct positions
      std::swap(cand[i], cand[i + rng.below(c - i)]);
      const int p = cand[i];
      lab[p] = ids[p];
      const double u = rng.uniform();
      if (u < opt_.mask_token) ids[p] = kMaskId;
      else if (u < opt_.mask_token + opt_.random_token) ids[p] = kNumSpecial + static_cast<int32_t>(rng.below(n_random));
      // else: kept as is (still predicted)
    }
  }

  if (state_.advance(global, N)) make_order();  // the epoch is over: the next call starts a new order
}

}  // namespace linformer
