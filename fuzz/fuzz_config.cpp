// ModelConfig::from_file on arbitrary bytes (JSON parse + from_json + validate). An accepted
// config must be valid and survive to_json -> dump -> parse -> from_json unchanged.
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "fuzz_util.hpp"
#include "linformer/config.hpp"
#include "linformer/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_file("config.json", {reinterpret_cast<const char*>(data), size});
  linformer::ModelConfig c;
  try {
    c = linformer::ModelConfig::from_file(path);
  } catch (const linformer::Error& e) {
    fuzz::rejected(e);
    return 0;
  }
  c.validate();  // must not throw: from_file validated it
  const nlohmann::json j = c.to_json();
  const linformer::ModelConfig d = linformer::ModelConfig::from_json(nlohmann::json::parse(j.dump()));
  FUZZ_CHECK(d.to_json() == j);
  return 0;
}
