// SentencePiece unigram tokenizer with the tool's fixed special ids (docs/data.md).
#include "linformer/tokenizer.hpp"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <string_view>
#include <unordered_map>

#include <fmt/core.h>

#include "core/rng.hpp"
#include "data/text_io.hpp"
#include "linformer/error.hpp"

namespace linformer {

using data_detail::expand_inputs;
using data_detail::is_blank;
using data_detail::LineReader;

namespace {

// At most this many lines feed the trainer (SentencePiece keeps them all in memory); a larger
// corpus is subsampled by a seeded hash of the line number.
constexpr uint64_t kMaxTrainSentences = 1'000'000;
// SentencePiece skips lines longer than max_sentence_length (4192 bytes): we cut longer lines
// at a space (or a character boundary) into pieces of at most this many bytes.
constexpr size_t kMaxPieceBytes = 4000;
// Fixed thread count: the unigram EM sums per-thread counts, so the model depends on it.
constexpr int kTrainThreads = 4;

using core::splitmix64;

// Feeds the non-blank lines of the input files to the trainer, one pass, in file order.
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  LineIterator(const std::vector<std::string>& files, uint64_t keep_below, uint64_t seed)
      : files_(files), keep_below_(keep_below), seed_(seed) {
    Next();
  }
  bool done() const override { return done_; }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }
  void Next() override {
    while (true) {
      if (pos_ < line_.size()) {  // the next piece of a long line
        size_t end = std::min(line_.size(), pos_ + kMaxPieceBytes);
        if (end < line_.size()) {
          size_t sp = line_.rfind(' ', end);
          if (sp != std::string::npos && sp > pos_) end = sp;
          else
            while (end > pos_ && (static_cast<unsigned char>(line_[end]) & 0xC0) == 0x80) --end;  // UTF-8 boundary
        }
        value_.assign(line_, pos_, end - pos_);
        pos_ = end;
        while (pos_ < line_.size() && line_[pos_] == ' ') ++pos_;
        if (!is_blank(value_)) return;
        continue;
      }
      if (!reader_) {
        if (file_ >= files_.size()) {
          done_ = true;
          return;
        }
        reader_ = std::make_unique<LineReader>(files_[file_++]);
      }
      if (!reader_->next(line_)) {
        reader_.reset();
        line_.clear();
        pos_ = 0;
        continue;
      }
      pos_ = 0;
      if (is_blank(line_)) {
        pos_ = line_.size();
        continue;
      }
      // Subsample a large corpus: keep the line when its hash falls below the threshold.
      if (splitmix64(seed_ ^ splitmix64(line_index_++)) > keep_below_) pos_ = line_.size();
    }
  }

 private:
  const std::vector<std::string>& files_;
  uint64_t keep_below_, seed_;
  size_t file_ = 0;
  std::unique_ptr<LineReader> reader_;
  std::string line_, value_;
  size_t pos_ = 0;
  uint64_t line_index_ = 0;
  bool done_ = false;
};

// Checks that a loaded model has the tool's special pieces at their fixed ids.
void check_specials(const sentencepiece::SentencePieceProcessor& sp, const std::string& where) {
  static const char* kPieces[kNumSpecial] = {"<pad>", "<s>", "</s>", "<unk>", "<mask>"};
  if (sp.GetPieceSize() <= kNumSpecial)
    throw IoError(fmt::format("{}: tokenizer has only {} pieces", where, sp.GetPieceSize()));
  for (int id = 0; id < kNumSpecial; ++id)
    if (sp.IdToPiece(id) != kPieces[id])
      throw IoError(fmt::format("{}: not a linformer tokenizer: id {} is '{}', expected '{}'", where, id,
                                sp.IdToPiece(id), kPieces[id]));
}

}  // namespace

struct Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
  std::string path;
};

void Tokenizer::train(const std::vector<std::string>& inputs, int vocab_size, const std::string& out_model,
                      uint64_t seed) {
  if (vocab_size < 16 || vocab_size > (1 << 24))
    throw ConfigError(fmt::format("tokenizer: vocab_size {} is out of range [16, 16777216]", vocab_size));
  const std::vector<std::string> files = expand_inputs(inputs);

  // First pass: count the lines (and check every byte is UTF-8) before the trainer starts.
  uint64_t lines = 0;
  std::string line;
  for (const std::string& f : files) {
    LineReader r(f);
    while (r.next(line)) lines += !is_blank(line);
  }
  if (lines == 0) {
    std::string names = files.size() == 1 ? files[0] : fmt::format("{} files starting with {}", files.size(), files[0]);
    throw InputError(fmt::format("tokenizer: the corpus is empty (no non-blank line in {})", names));
  }
  // Keep each line with probability cap/lines (all of them below the cap).
  const uint64_t keep_below =
      lines <= kMaxTrainSentences ? ~0ULL
                                  : static_cast<uint64_t>(static_cast<double>(kMaxTrainSentences) / lines * 18446744073709551615.0);

  const std::unordered_map<std::string, std::string> args = {
      {"model_type", "unigram"},
      {"vocab_size", std::to_string(vocab_size)},
      // Every character of the training text gets a piece (SentencePiece's advice for small
      // alphabets; the default 0.9995 turned '(', ')' and '?' of English text into <unk>).
      {"character_coverage", "1.0"},
      {"pad_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"unk_id", "3"},
      {"pad_piece", "<pad>"},
      {"bos_piece", "<s>"},
      {"eos_piece", "</s>"},
      {"unk_piece", "<unk>"},
      {"user_defined_symbols", "<mask>"},
      {"input_sentence_size", "0"},  // we subsample ourselves (deterministically)
      {"shuffle_input_sentence", "false"},
      {"num_threads", std::to_string(kTrainThreads)},
      {"minloglevel", "1"},
  };
  LineIterator it(files, keep_below, seed);
  std::string proto;  // the model comes back serialized (no model_prefix): we write it ourselves
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &proto);
  if (!status.ok()) {
    const std::string msg = status.ToString();
    if (msg.find("Vocabulary size") != std::string::npos)
      throw InputError(fmt::format("tokenizer: the corpus is too small for vocab_size {} ({}); choose a smaller "
                                   "--vocab-size",
                                   vocab_size, msg));
    throw InputError(fmt::format("tokenizer: training failed: {}", msg));
  }
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.LoadFromSerializedProto(proto).ok()) throw IoError("tokenizer: the trained model does not load");
  check_specials(sp, out_model);

  core::AtomicFile out(out_model, core::kCreateParents);
  out.write(proto);
  out.commit();
}

Tokenizer::Tokenizer(const std::string& model_path) : impl_(std::make_unique<Impl>()) {
  impl_->path = model_path;
  // SentencePiece reads through std::ifstream, which throws its own exceptions for some unreadable
  // paths (a folder); report every failure as an IoError naming the file.
  std::error_code ec;
  if (std::filesystem::exists(model_path, ec) && !std::filesystem::is_regular_file(model_path, ec))
    throw IoError(fmt::format("{}: cannot load tokenizer: not a regular file", model_path));
  sentencepiece::util::Status status;
  try {
    status = impl_->sp.Load(model_path);
  } catch (const std::exception& e) {
    throw IoError(fmt::format("{}: cannot load tokenizer: {}", model_path, e.what()));
  }
  if (!status.ok()) throw IoError(fmt::format("{}: cannot load tokenizer: {}", model_path, status.ToString()));
  check_specials(impl_->sp, model_path);
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;

std::vector<int32_t> Tokenizer::encode(const std::string& text) const {
  // SentencePiece would silently map invalid bytes to <unk>; say what is wrong instead.
  const size_t bad = data_detail::find_invalid_utf8(text);
  if (bad != std::string::npos)
    throw InputError(fmt::format("text is not valid UTF-8 (byte 0x{:02X} at byte {})", (unsigned)(unsigned char)text[bad],
                                 bad + 1));
  const std::vector<int> ids = impl_->sp.EncodeAsIds(text);
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  const int n = vocab_size();
  std::vector<int> v(ids.begin(), ids.end());
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] < 0 || v[i] >= n)
      throw InputError(fmt::format("{}: token id {} (position {}) is outside the vocabulary [0, {})", impl_->path, v[i],
                                   i, n));
  std::string out;
  const auto status = impl_->sp.Decode(v, &out);
  if (!status.ok()) throw InputError(fmt::format("{}: decode failed: {}", impl_->path, status.ToString()));
  return out;
}

std::string Tokenizer::piece(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw InputError(fmt::format("{}: token id {} is outside the vocabulary [0, {})", impl_->path, id, vocab_size()));
  return impl_->sp.IdToPiece(id);
}

int32_t Tokenizer::piece_to_id(const std::string& piece) const { return impl_->sp.PieceToId(piece); }

int Tokenizer::vocab_size() const { return impl_->sp.GetPieceSize(); }

}  // namespace linformer
