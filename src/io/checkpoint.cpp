// Model <-> safetensors file (docs/format.md).
#include <cmath>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "linformer/checkpoint.hpp"
#include "linformer/error.hpp"
#include "linformer/model.hpp"
#include "linformer/version.hpp"
#include "nn/attention/attention.hpp"

namespace linformer {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

constexpr const char* kFormat = "linformer";
constexpr const char* kFormatVersion = kModelFileFormatVersion;  // linformer/version.hpp

// "format" and "format_version" may be absent (files written by other tools); when present they
// must be ours.
void check_format(const SafetensorsFile& f, const std::string& path) {
  auto fm = f.metadata.find("format");
  if (fm != f.metadata.end() && fm->second != kFormat)
    throw IoError(fmt::format("{}: metadata format is '{}', expected '{}'", path, fm->second, kFormat));
  auto fv = f.metadata.find("format_version");
  if (fv != f.metadata.end() && fv->second != kFormatVersion)
    throw IoError(fmt::format("{}: format_version '{}' is not supported (this build reads version {})", path,
                              fv->second, kFormatVersion));
}

ModelConfig config_of(const SafetensorsFile& f, const std::string& path) {
  check_format(f, path);
  auto it = f.metadata.find("linformer.config");
  if (it == f.metadata.end())
    throw IoError(fmt::format("{}: no model config in the metadata (key 'linformer.config'); not a linformer model?", path));
  try {
    return ModelConfig::from_json(nlohmann::json::parse(it->second));
  } catch (const nlohmann::json::exception& e) {
    throw IoError(fmt::format("{}: model config in the metadata ('linformer.config') is not valid JSON: {}", path,
                              e.what()));
  } catch (const ConfigError& e) {
    throw IoError(fmt::format("{}: {}", path, e.what()));
  }
}

// Copies every model tensor from the file, except (when skip_prefix is not empty) those whose
// name starts with skip_prefix: the file's tensors under it are ignored, the model's keep their values.
void copy_weights(Model& model, const SafetensorsFile& f, const std::string& path, const std::string& skip_prefix = "") {
  ParamTable& pt = model.params();
  auto skipped = [&](const std::string& name) { return !skip_prefix.empty() && name.starts_with(skip_prefix); };
  for (const auto& t : f.tensors)
    if (!skipped(t.name) && pt.find(t.name) < 0)
      throw IoError(fmt::format("{}: unknown tensor '{}' (the model of this config has no such parameter)", path, t.name));
  for (int i = 0; i < pt.size(); ++i) {
    const ParamInfo& p = pt.info(i);
    if (skipped(p.name)) continue;
    const NamedTensor* t = f.find(p.name);
    if (!t) throw IoError(fmt::format("{}: tensor '{}' is missing", path, p.name));
    if (t->dtype != "F32") throw IoError(fmt::format("{}: tensor '{}' has dtype {}, expected F32", path, p.name, t->dtype));
    if (t->shape != p.shape)
      throw IoError(fmt::format("{}: tensor '{}' has shape {}, expected {} for this model config", path, p.name,
                                shape_str(t->shape), shape_str(p.shape)));
    // A NaN or infinite weight would only show up later as a NaN loss or NaN outputs far from
    // its cause; the file is what is wrong, so say so here.
    for (size_t j = 0; j < p.numel; ++j) {
      float v;
      std::memcpy(&v, t->bytes.data() + j * sizeof(float), sizeof v);
      if (!std::isfinite(v))
        throw IoError(fmt::format("{}: tensor '{}' holds a non-finite value ({}) at element {}: the weights are broken",
                                  path, p.name, v, j));
    }
  }
  // Copy only once everything matched, so a failed load leaves the model as it was.
  for (int i = 0; i < pt.size(); ++i)
    if (!skipped(pt.info(i).name))
      std::memcpy(pt.data(i), f.find(pt.info(i).name)->bytes.data(), pt.info(i).numel * sizeof(float));
}

// A lower bound of the number of parameters of the model of `c` (the token and position
// embeddings, each layer's two FFN matrices and every attention tensor, the MLM head's dense map
// and bias; LayerNorms and the other biases left out), in double so that it cannot overflow.
// Every one of those tensors must be in the file, so a file whose tensors hold fewer bytes
// cannot match. load_model checks this (loosely: files that miss by a tensor or two still get
// copy_weights' precise message) before building the model, so that a hostile or corrupt config
// cannot make it allocate (or fail to allocate: std::length_error, std::bad_alloc) a model far
// larger than the file. The attention's share is counted from its registration (what the model
// will declare, src/nn/attention/), layer by layer until the count passes stop_above.
double min_params(const ModelConfig& c, double stop_above) {
  const double V = c.vocab_size, N = c.max_len, d = c.d_model, f = c.d_ff, L = c.n_layers;
  const double n = V * d + N * d + L * (2 * d * f) + d * d + V;
  return n > stop_above ? n : n + attention_param_count(c, stop_above - n);
}

}  // namespace

void save_model(const Model& model, const std::string& path) {
  const ParamTable& pt = model.params();
  std::vector<NamedTensor> tensors;
  tensors.reserve(pt.size());
  for (int i = 0; i < pt.size(); ++i) {
    const ParamInfo& p = pt.info(i);
    NamedTensor t{p.name, "F32", p.shape, {}};
    t.bytes.resize(p.numel * sizeof(float));
    std::memcpy(t.bytes.data(), pt.data(i), t.bytes.size());
    tensors.push_back(std::move(t));
  }
  write_safetensors(path, tensors,
                    {{"format", kFormat}, {"format_version", kFormatVersion},
                     {"linformer.config", model.config().to_json().dump()}});
}

std::unique_ptr<Model> load_model(const std::string& path) {
  SafetensorsFile f = read_safetensors(path);
  const ModelConfig cfg = config_of(f, path);
  uint64_t file_bytes = 0;
  for (const auto& t : f.tensors)
    if (t.dtype == "F32") file_bytes += t.bytes.size();
  const double limit = 2.0 * static_cast<double>(file_bytes) + (1 << 20);
  const double need = 4.0 * min_params(cfg, limit / 4.0);
  if (need > limit)
    throw IoError(fmt::format("{}: the model config in the metadata needs at least {:.0f} bytes of F32 tensors, the "
                              "file holds only {}: the config does not match the tensors (corrupt file?)",
                              path, need, file_bytes));
  auto model = std::make_unique<Model>(cfg);
  copy_weights(*model, f, path);
  return model;
}

void load_weights(Model& model, const std::string& path) {
  SafetensorsFile f = read_safetensors(path);
  check_format(f, path);
  copy_weights(model, f, path);
}

void load_weights_except(Model& model, const std::string& path, const std::string& skip_prefix) {
  if (skip_prefix.empty()) throw ConfigError("load_weights_except: the prefix of the tensors to skip is empty");
  SafetensorsFile f = read_safetensors(path);
  check_format(f, path);
  copy_weights(model, f, path, skip_prefix);
}

}  // namespace linformer
