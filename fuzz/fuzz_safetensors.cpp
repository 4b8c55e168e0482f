// read_safetensors on arbitrary bytes. Accepted files must survive a write/read round trip
// unchanged (same tensors in the same order, same metadata).
#include <cstddef>
#include <cstdint>

#include "fuzz_util.hpp"
#include "linformer/checkpoint.hpp"
#include "linformer/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_file("in.safetensors", {reinterpret_cast<const char*>(data), size});
  linformer::SafetensorsFile f;
  try {
    f = linformer::read_safetensors(path);
  } catch (const linformer::Error& e) {
    fuzz::rejected(e);
    return 0;
  }
  // Accepted: every tensor's bytes match its shape and dtype (the reader promises it).
  uint64_t total = 0;
  for (const auto& t : f.tensors) {
    FUZZ_CHECK(t.dtype == "F32" || t.dtype == "I32");
    uint64_t numel = 1;
    for (int64_t s : t.shape) {
      FUZZ_CHECK(s >= 0);
      numel *= static_cast<uint64_t>(s);
    }
    FUZZ_CHECK(numel * 4 == t.bytes.size());
    FUZZ_CHECK(f.find(t.name) == &t);
    total += t.bytes.size();
  }
  FUZZ_CHECK(total <= size);
  // Round trip.
  const std::string out = fuzz::scratch_dir() + "/out.safetensors";
  linformer::write_safetensors(out, f.tensors, f.metadata);
  const linformer::SafetensorsFile g = linformer::read_safetensors(out);
  FUZZ_CHECK(g.metadata == f.metadata);
  FUZZ_CHECK(g.tensors.size() == f.tensors.size());
  for (size_t i = 0; i < f.tensors.size(); ++i) {
    FUZZ_CHECK(g.tensors[i].name == f.tensors[i].name);
    FUZZ_CHECK(g.tensors[i].dtype == f.tensors[i].dtype);
    FUZZ_CHECK(g.tensors[i].shape == f.tensors[i].shape);
    FUZZ_CHECK(g.tensors[i].bytes == f.tensors[i].bytes);
  }
  return 0;
}
