// Model files in the safetensors format (docs/format.md): 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then raw data.
// The model config is stored as a JSON string in __metadata__["linformer.config"].
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "linformer/config.hpp"

namespace linformer {

class Model;

// One tensor for writing or as read. Only float32 ("F32") and int32 ("I32") are used here.
struct NamedTensor {
  std::string name;
  std::string dtype;              // "F32" or "I32"
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;     // little-endian raw data, numel * dtype size
};

// Writes tensors (in the given order) and string metadata atomically: a temporary file in the
// same folder, flushed, then renamed over `path`. Throws IoError.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata);

// Reads and validates a whole file: header length within the file, valid JSON, known dtypes,
// shape * dtype size == byte range, ranges in bounds, contiguous and non-overlapping, no
// duplicate names, data ends exactly at end of file. Throws IoError naming the file and tensor.
struct SafetensorsFile {
  std::vector<NamedTensor> tensors;
  std::map<std::string, std::string> metadata;
  const NamedTensor* find(const std::string& name) const;
};
SafetensorsFile read_safetensors(const std::string& path);

// Model <-> file. save_model writes every parameter (ParamTable order) plus the config.
// load_model reads the config from the metadata, builds the model and checks that the file holds
// exactly the model's tensors with the right dtype and shape (missing/unknown/mismatched: IoError)
// and finite values (a NaN or infinity: IoError naming the tensor; the same for load_weights*).
void save_model(const Model& model, const std::string& path);
std::unique_ptr<Model> load_model(const std::string& path);
// Copies the file's tensors into an existing model of the same config.
void load_weights(Model& model, const std::string& path);
// The same, except for the tensors whose name starts with skip_prefix (e.g. "cls." to start
// fine-tuning from a pretrained MLM model): the model's tensors under the prefix keep their values
// (they need not be in the file), the file's are ignored (a head of another size). Every other
// model tensor must be in the file with the right dtype and shape, and the file may hold no other
// tensor (IoError naming the file and tensor; the model is unchanged then).
void load_weights_except(Model& model, const std::string& path, const std::string& skip_prefix);

}  // namespace linformer
