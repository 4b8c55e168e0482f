// load_task on a task folder built from the input: the input is split at the byte 0x1E (ASCII
// record separator) into task.json, train.tsv, valid.tsv and test.tsv (a missing part means a
// missing file). Accepted tasks are then summarized and tokenized (ListOps and pixel tasks), and
// ListOps texts are evaluated, as the fine-tuning commands do.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "linformer/error.hpp"
#include "linformer/tasks.hpp"

namespace {

void check_split(const linformer::TaskData& t, const linformer::TaskSplit& s) {
  for (const linformer::TaskExample& ex : s.examples) {
    FUZZ_CHECK(ex.label >= 0 && static_cast<size_t>(ex.label) < t.info.labels.size());
    FUZZ_CHECK(!ex.text.empty());
    FUZZ_CHECK(ex.line >= 1);
    FUZZ_CHECK(linformer::unescape_text(linformer::escape_text(ex.text)) == ex.text);
  }
  if (t.info.tokenizer == linformer::TaskTokenizer::SentencePiece) return;
  for (bool truncate : {true, false}) {
    try {
      const auto seqs = linformer::tokenize_split(t.info, s, nullptr, 16, truncate);
      FUZZ_CHECK(seqs.size() == s.examples.size());
      const int32_t vocab = linformer::task_vocab_size(t.info.tokenizer);
      for (const auto& q : seqs) {
        FUZZ_CHECK(q.size() >= 2 && q.size() <= 16);
        for (int32_t id : q) FUZZ_CHECK(id >= 0 && id < vocab);
      }
    } catch (const linformer::InputError& e) {
      fuzz::rejected(e);
    }
  }
  if (t.info.tokenizer == linformer::TaskTokenizer::ListOps)
    for (const linformer::TaskExample& ex : s.examples) {
      try {
        const int v = linformer::listops_value(ex.text);
        FUZZ_CHECK(v >= 0 && v <= 9);
        const std::vector<int32_t> ids = linformer::encode_listops(ex.text);
        FUZZ_CHECK(linformer::encode_listops(linformer::decode_listops(ids)) == ids);
      } catch (const linformer::InputError& e) {
        fuzz::rejected(e);
      }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const char* const kFiles[4] = {"task.json", "train.tsv", "valid.tsv", "test.tsv"};
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (parts.size() < 4) {
    const size_t sep = in.find('\x1e', pos);
    if (sep == std::string_view::npos) {
      parts.push_back(in.substr(pos));
      break;
    }
    parts.push_back(in.substr(pos, sep - pos));
    pos = sep + 1;
  }
  for (size_t i = 0; i < 4; ++i) {
    if (i < parts.size()) fuzz::write_file(kFiles[i], parts[i]);
    else fuzz::remove_file(kFiles[i]);
  }
  linformer::TaskData t;
  try {
    t = linformer::load_task(fuzz::scratch_dir());
  } catch (const linformer::Error& e) {
    fuzz::rejected(e);
    return 0;
  }
  FUZZ_CHECK(!t.info.labels.empty());
  FUZZ_CHECK(!t.train.examples.empty());
  check_split(t, t.train);
  check_split(t, t.valid);
  check_split(t, t.test);
  try {
    const linformer::TaskSummary s = linformer::summarize_task(t);
    FUZZ_CHECK(s.train.examples == t.train.examples.size());
    FUZZ_CHECK(s.train.min_len <= s.train.median_len && s.train.median_len <= s.train.max_len);
  } catch (const linformer::InputError& e) {
    fuzz::rejected(e);
  }
  return 0;
}
