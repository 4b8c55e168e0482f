// load_model on arbitrary bytes: a safetensors file whose metadata holds the model config
// ("linformer.config", JSON) and whose tensors must match the model that config describes.
// A hostile config must not make the loader allocate a model the file cannot hold.
#include <cstddef>
#include <cstdint>

#include "fuzz_util.hpp"
#include "linformer/checkpoint.hpp"
#include "linformer/error.hpp"
#include "linformer/model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_file("model.safetensors", {reinterpret_cast<const char*>(data), size});
  try {
    auto model = linformer::load_model(path);
    // Accepted: the parameters came from the file, so they fit in it.
    FUZZ_CHECK(model->params().total() * sizeof(float) <= size);
  } catch (const linformer::Error& e) {
    fuzz::rejected(e);
  }
  return 0;
}
