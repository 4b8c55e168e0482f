// read_ids_file (the `linformer forward --ids` text format, app/ids_file.hpp) on arbitrary bytes.
// The vocabulary size and max_len come from the first two input bytes so that both limits are
// exercised; accepted sequences must respect them.
#include <cstddef>
#include <cstdint>

#include "fuzz_util.hpp"
#include "ids_file.hpp"
#include "linformer/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int vocab = 1 + data[0] * 64;  // 1 .. 16321
  const int max_len = 1 + data[1] % 32;
  const std::string path = fuzz::write_file("ids.txt", {reinterpret_cast<const char*>(data) + 2, size - 2});
  try {
    const auto seqs = linformer::app::read_ids_file(path, vocab, max_len);
    FUZZ_CHECK(!seqs.empty());
    for (const auto& s : seqs) {
      FUZZ_CHECK(!s.empty() && static_cast<int>(s.size()) <= max_len);
      for (int32_t id : s) FUZZ_CHECK(id >= 0 && id < vocab);
    }
  } catch (const linformer::Error& e) {
    fuzz::rejected(e);
  }
  return 0;
}
