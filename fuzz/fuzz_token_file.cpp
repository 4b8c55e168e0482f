// TokenFile (memory-mapped, validated binary token file) on arbitrary bytes. An accepted file
// must keep the promises of data.hpp: ascending sentence ends, the last one == num_tokens, ids in
// [0, max_id]; and an MlmBatcher over it must run an epoch without touching memory out of bounds.
#include <cstddef>
#include <algorithm>
#include <climits>
#include <cstdint>
#include <vector>

#include "fuzz_util.hpp"
#include "linformer/data.hpp"
#include "linformer/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_file("in.tokens", {reinterpret_cast<const char*>(data), size});
  try {
    linformer::TokenFile f(path);
    uint64_t prev = 0;
    for (size_t s = 0; s < f.num_sentences(); ++s) {
      FUZZ_CHECK(f.sentence_ends()[s] > prev);
      prev = f.sentence_ends()[s];
    }
    FUZZ_CHECK(f.num_sentences() == 0 || prev == f.num_tokens());
    int32_t mx = -1;
    for (size_t i = 0; i < f.num_tokens(); ++i) {
      FUZZ_CHECK(f.tokens()[i] >= 0);
      mx = std::max(mx, f.tokens()[i]);
    }
    FUZZ_CHECK(mx == f.max_id());
    if (f.num_tokens() > 0 && f.num_tokens() < 4096 && f.max_id() < INT32_MAX) {
      linformer::MlmOptions opt;
      opt.seq_len = 8;
      opt.batch_size = 3;
      opt.vocab_size = f.max_id() + 1 > 16 ? f.max_id() + 1 : 16;
      linformer::MlmBatcher b(f, opt);
      linformer::Batch batch;
      std::vector<int32_t> labels;
      const size_t n = b.batches_per_epoch();
      for (size_t i = 0; i < n && i < 64; ++i) b.next(batch, labels);
    }
  } catch (const linformer::Error& e) {
    fuzz::rejected(e);
  }
  return 0;
}
