// Token files and the masked-language-modelling data pipeline.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "linformer/batch.hpp"

namespace linformer {

class Tokenizer;

// A binary token file (docs/data.md): a 64-byte header ("LFTOKENS", version, dtype, counts), the
// token ids (int32), then the sentence end offsets (uint64). Every document ends with a
// one-token sentence [kEosId]. Little-endian.
// Opened read-only and memory-mapped; the header, sizes, offsets and ids are validated
// (IoError naming the file).
class TokenFile {
 public:
  explicit TokenFile(const std::string& path);
  ~TokenFile();
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;
  size_t num_tokens() const { return num_tokens_; }
  const int32_t* tokens() const { return tokens_; }
  size_t num_sentences() const { return num_sentences_; }
  const uint64_t* sentence_ends() const { return sentence_ends_; }  // ascending, last == num_tokens
  int32_t max_id() const { return max_id_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const int32_t* tokens_ = nullptr;
  const uint64_t* sentence_ends_ = nullptr;
  size_t num_tokens_ = 0, num_sentences_ = 0;
  int32_t max_id_ = -1;
};

// Streams text files (a folder: all its files, sorted) through the tokenizer into a token file,
// written atomically. Each non-empty line is a sentence; an empty line or the end of a file ends a
// document (a lone kEosId sentence is appended). Returns the number of tokens. Memory use does not
// grow with the corpus. InputError for non-UTF-8 text (file:line) or an empty corpus.
size_t encode_corpus(const Tokenizer& tok, const std::vector<std::string>& inputs, const std::string& out_path);

// Where a batcher (MlmBatcher, ClsBatcher) is in its data: epochs completed, and items of this
// epoch's order already returned (always less than the number of items). A checkpoint saves it
// (state.json), so that a resumed run continues with the same batches.
struct DataPosition {
  uint64_t epoch = 0;
  uint64_t cursor = 0;
  // Moves past a batch of `items` in an epoch of `n` items; true when the batch ended the epoch
  // (the cursor is then back at 0 of the next one).
  bool advance(size_t items, size_t n) {
    cursor += items;
    if (cursor != n) return false;
    ++epoch;
    cursor = 0;
    return true;
  }
};

struct MlmOptions {
  int seq_len = 128;       // n, including <s> and </s>
  int batch_size = 16;
  float mask_prob = 0.15f;     // share of tokens selected for prediction
  float mask_token = 0.8f;     // of those: replaced by <mask>
  float random_token = 0.1f;   //           replaced by a random non-special token (rest kept)
  int vocab_size = 0;          // for random replacements
  uint64_t seed = 0;
  bool shuffle = true;         // shuffle sequence order every epoch (false for validation)
  // Data parallelism (docs/distributed.md): a batch of the run is batch_size x shards consecutive
  // sequences of the epoch order, and this batcher returns slice `shard` of it (sequences
  // [shard * batch_size, (shard + 1) * batch_size)), so the shards' batches together are exactly
  // the batch of a single batcher with batch_size x shards. Masks depend on the sequence, not
  // the shard.
  int shards = 1;
  int shard = 0;
};

// RoBERTa FULL-SENTENCES packing: each sequence is <s> + whole consecutive sentences (possibly
// crossing documents) + </s>, at most seq_len tokens; a sentence longer than seq_len - 2 is
// split. The last sequence may be short (padded and masked in the batch). Masking is drawn
// afresh every time a sequence is seen, from (seed, epoch, sequence index); never on
// <s>, </s> or padding.
class MlmBatcher {
 public:
  MlmBatcher(const TokenFile& file, MlmOptions opt);
  // The next batch: ids/mask in `batch` (B = batch_size, fewer for the last batch of an epoch;
  // n = the longest sequence in it, <= seq_len), labels [B*n] (original id where selected, else
  // kIgnoreIndex). After the last batch of an epoch the next call starts a new epoch. With
  // shards > 1 the last batch of an epoch can leave a shard nothing: then B = n = 0.
  void next(Batch& batch, std::vector<int32_t>& labels);
  size_t num_sequences() const { return ranges_.size(); }
  size_t batches_per_epoch() const;  // batches of batch_size x shards sequences

  // Data position, for checkpoints and resume (cursor: sequences of this epoch already returned).
  using State = DataPosition;
  State state() const { return state_; }
  void set_state(State s);

 private:
  const TokenFile& file_;
  MlmOptions opt_;
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;  // token [begin, end) of each sequence's body
  std::vector<uint32_t> order_;
  State state_;
  void make_order();
};

// The baseline a masked language model must beat: the token frequencies of a (training) token
// file, which predict every masked token from its frequency alone, whatever the context.
// Probabilities are add-one smoothed over the vocabulary, so every id has one.
class UnigramBaseline {
 public:
  UnigramBaseline(const TokenFile& train, int vocab_size);  // InputError for an id outside the vocabulary
  double log_prob(int32_t id) const { return log_prob_.at((size_t)id); }
  // 0 for the most frequent id, 1 for the next, ... (ties: the lower id first), as a top-k guess ranks it.
  int rank(int32_t id) const { return rank_.at((size_t)id); }
  int vocab_size() const { return (int)rank_.size(); }

 private:
  std::vector<double> log_prob_;
  std::vector<int> rank_;
};

}  // namespace linformer
