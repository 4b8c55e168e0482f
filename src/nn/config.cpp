// ModelConfig: validation and JSON (keys are the field names; docs/format.md lists them).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "linformer/config.hpp"

#include "core/fs.hpp"
#include "linformer/error.hpp"

using json = nlohmann::json;

namespace linformer {

// to_string(AttentionKind): src/nn/attention/registry.cpp (the registration table).
const char* to_string(Sharing v) {
  switch (v) {
    case Sharing::None: return "none";
    case Sharing::Headwise: return "headwise";
    case Sharing::KeyValue: return "kv";
    case Sharing::Layerwise: return "layerwise";
  }
  return "?";
}
const char* to_string(ProjOrder v) { return v == ProjOrder::InputFirst ? "input_first" : "linear_first"; }
const char* to_string(Pooling v) { return v == Pooling::First ? "first" : "mean"; }
const char* to_string(ProjKind v) {
  switch (v) {
    case ProjKind::Learned: return "learned";
    case ProjKind::Mean: return "mean";
    case ProjKind::Max: return "max";
    case ProjKind::Conv: return "conv";
    case ProjKind::Random: return "random";
  }
  return "?";
}

namespace {

// The JSON keys, in the order to_json writes them.
constexpr const char* kKeys[] = {"vocab_size", "max_len",    "d_model",    "n_heads", "d_ff",
                                 "n_layers",   "attention",  "k",          "sharing", "proj_order", "projection",
                                 "dropout",    "attention_dropout", "layer_norm_eps", "init_std",
                                 "num_labels", "pooling"};

std::string k_str(const std::vector<int>& k) {
  std::string s = "[";
  for (size_t i = 0; i < k.size(); ++i) s += (i ? ", " : "") + std::to_string(k[i]);
  return s + "]";
}

// A float as the JSON number with the fewest digits that reads back as the same float
// ("dropout": 0.1 rather than 0.10000000149011612). Falls back to the exact value if the
// shortest decimal would not survive the trip through double.
json float_json(float f) {
  if (!std::isfinite(f)) return json(static_cast<double>(f));  // dumps as null; validate() rejects it anyway
  const std::string s = fmt::format("{}", f);
  const double d = std::strtod(s.c_str(), nullptr);
  return json(static_cast<float>(d) == f ? d : static_cast<double>(f));
}

}  // namespace

void ModelConfig::validate() const {
  auto positive = [](const char* field, long v) {
    if (v <= 0) throw ConfigError(fmt::format("config: {} ({}) must be positive", field, v));
  };
  positive("vocab_size", vocab_size);
  positive("max_len", max_len);
  positive("d_model", d_model);
  positive("n_heads", n_heads);
  positive("d_ff", d_ff);
  positive("n_layers", n_layers);
  if (d_model % n_heads != 0)
    throw ConfigError(fmt::format("config: d_model ({}) is not divisible by n_heads ({})", d_model, n_heads));
  // k has one value or one per layer whatever the attention (k_of relies on it).
  if (k.size() != 1 && k.size() != static_cast<size_t>(n_layers))
    throw ConfigError(fmt::format("config: k has {} values {}; give one value or one per layer (n_layers = {})",
                                  k.size(), k_str(k), n_layers));
  if (attention == AttentionKind::Linformer) {
    for (size_t i = 0; i < k.size(); ++i)
      if (k[i] < 1 || k[i] > max_len)
        throw ConfigError(fmt::format("config: k[{}] ({}) must be in [1, max_len = {}]", i, k[i], max_len));
    // Window kinds need whole windows: w = max_len / k positions each (docs/model.md).
    if (is_window_kind(projection))
      for (size_t i = 0; i < k.size(); ++i)
        if (max_len % k[i] != 0)
          throw ConfigError(fmt::format("config: projection \"{}\" cuts max_len ({}) into k windows of equal size, "
                                        "so k{} ({}) must divide max_len",
                                        to_string(projection), max_len, k.size() == 1 ? std::string() : fmt::format("[{}]", i), k[i]));
    if (sharing == Sharing::Layerwise)
      for (int v : k)
        if (v != k[0])
          throw ConfigError(fmt::format("config: k {} differs between layers, but sharing 'layerwise' uses one "
                                        "projection for all layers, so k must be the same for every layer",
                                        k_str(k)));
  }
  if (!(dropout >= 0.0f && dropout < 1.0f))
    throw ConfigError(fmt::format("config: dropout ({}) must be in [0, 1)", dropout));
  if (!(attention_dropout >= 0.0f && attention_dropout < 1.0f))
    throw ConfigError(fmt::format("config: attention_dropout ({}) must be in [0, 1)", attention_dropout));
  if (!(layer_norm_eps > 0.0f && std::isfinite(layer_norm_eps)))
    throw ConfigError(fmt::format("config: layer_norm_eps ({}) must be a finite number > 0", layer_norm_eps));
  if (!(init_std > 0.0f && std::isfinite(init_std)))
    throw ConfigError(fmt::format("config: init_std ({}) must be a finite number > 0", init_std));
  if (num_labels < 0) throw ConfigError(fmt::format("config: num_labels ({}) must be >= 0", num_labels));
}

json ModelConfig::to_json() const {
  json kj = k.size() == 1 ? json(k[0]) : json(k);
  return json{{"vocab_size", vocab_size},
              {"max_len", max_len},
              {"d_model", d_model},
              {"n_heads", n_heads},
              {"d_ff", d_ff},
              {"n_layers", n_layers},
              {"attention", to_string(attention)},
              {"k", kj},
              {"sharing", to_string(sharing)},
              {"proj_order", to_string(proj_order)},
              {"projection", to_string(projection)},
              {"dropout", float_json(dropout)},
              {"attention_dropout", float_json(attention_dropout)},
              {"layer_norm_eps", float_json(layer_norm_eps)},
              {"init_std", float_json(init_std)},
              {"num_labels", num_labels},
              {"pooling", to_string(pooling)}};
}

namespace {

// A JSON value for an error message: compact JSON as dump() writes it for small values, cut to
// about 80 characters, with arrays and objects nested deeper than 4 levels written [...] / {...}.
// dump() itself recurses once per nesting level, so a hostile, deeply nested value ("[[[[...",
// a few hundred kB) would overflow the stack while the error message is being built.
void brief_into(std::string& out, const json& j, int depth) {
  constexpr size_t kMax = 80;
  if (out.size() > kMax) return;
  if (j.is_array() || j.is_object()) {
    const bool arr = j.is_array();
    if (depth >= 4 && !j.empty()) {
      out += arr ? "[...]" : "{...}";
      return;
    }
    out += arr ? '[' : '{';
    bool first = true;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!first) out += ',';
      first = false;
      if (out.size() > kMax) {
        out += "...";
        break;
      }
      if (!arr) out += json(it.key()).dump(-1, ' ', false, json::error_handler_t::replace) + ':';
      brief_into(out, *it, depth + 1);
    }
    out += arr ? ']' : '}';
    return;
  }
  std::string v = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (v.size() > kMax) {
    size_t cut = kMax;
    while (cut > 0 && (static_cast<unsigned char>(v[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
    v = v.substr(0, cut) + "...";
  }
  out += v;
}

std::string brief(const json& j) {
  std::string out;
  brief_into(out, j, 0);
  return out;
}

template <class E>
E parse_enum(const json& j, const char* field, const std::vector<std::pair<const char*, E>>& options) {
  std::string allowed;
  for (auto& [name, v] : options) allowed += fmt::format("{}\"{}\"", allowed.empty() ? "" : ", ", name);
  if (!j.is_string())
    throw ConfigError(fmt::format("config: {} must be a string, one of {} (got {})", field, allowed, brief(j)));
  const std::string s = j.get<std::string>();
  for (auto& [name, v] : options)
    if (s == name) return v;
  throw ConfigError(fmt::format("config: {} \"{}\" is unknown; allowed values: {}", field, s, allowed));
}

int get_int(const json& j, const std::string& field) {
  if (!j.is_number_integer())
    throw ConfigError(fmt::format("config: {} must be an integer (got {})", field, brief(j)));
  if (j.is_number_unsigned() ? j.get<uint64_t>() > static_cast<uint64_t>(INT32_MAX)
                             : (j.get<int64_t>() < INT32_MIN || j.get<int64_t>() > INT32_MAX))
    throw ConfigError(fmt::format("config: {} ({}) is out of range for a 32-bit integer", field, brief(j)));
  return static_cast<int>(j.get<int64_t>());
}

float get_float(const json& j, const char* field) {
  if (!j.is_number()) throw ConfigError(fmt::format("config: {} must be a number (got {})", field, brief(j)));
  return static_cast<float>(j.get<double>());
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& j) {
  if (!j.is_object())
    throw ConfigError(fmt::format("config: expected a JSON object, got {} ({})", j.type_name(), brief(j)));
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const char* key : kKeys) known = known || it.key() == key;
    if (!known) {
      std::string allowed;
      for (const char* key : kKeys) allowed += fmt::format("{}{}", allowed.empty() ? "" : ", ", key);
      throw ConfigError(fmt::format("config: unknown key \"{}\" (known keys: {})", it.key(), allowed));
    }
  }
  ModelConfig c;
  auto has = [&](const char* key) { return j.contains(key); };
  if (has("vocab_size")) c.vocab_size = get_int(j["vocab_size"], "vocab_size");
  if (has("max_len")) c.max_len = get_int(j["max_len"], "max_len");
  if (has("d_model")) c.d_model = get_int(j["d_model"], "d_model");
  if (has("n_heads")) c.n_heads = get_int(j["n_heads"], "n_heads");
  if (has("d_ff")) c.d_ff = get_int(j["d_ff"], "d_ff");
  if (has("n_layers")) c.n_layers = get_int(j["n_layers"], "n_layers");
  if (has("attention")) {
    std::vector<std::pair<const char*, AttentionKind>> kinds;  // from the registration table
    for (AttentionKind kind : attention_kinds()) kinds.emplace_back(to_string(kind), kind);
    c.attention = parse_enum<AttentionKind>(j["attention"], "attention", kinds);
  }
  if (has("k")) {
    const json& kj = j["k"];
    c.k.clear();
    if (kj.is_array()) {
      if (kj.empty()) throw ConfigError("config: k is an empty list; give one value or one per layer");
      for (size_t i = 0; i < kj.size(); ++i) c.k.push_back(get_int(kj[i], fmt::format("k[{}]", i)));
    } else if (kj.is_number_integer()) {
      c.k.push_back(get_int(kj, "k"));
    } else {
      throw ConfigError(fmt::format("config: k must be an integer or a list of integers (got {})", brief(kj)));
    }
  }
  if (has("sharing"))
    c.sharing = parse_enum<Sharing>(j["sharing"], "sharing",
                                    {{"none", Sharing::None}, {"headwise", Sharing::Headwise},
                                     {"kv", Sharing::KeyValue}, {"layerwise", Sharing::Layerwise}});
  if (has("proj_order"))
    c.proj_order = parse_enum<ProjOrder>(j["proj_order"], "proj_order",
                                         {{"input_first", ProjOrder::InputFirst}, {"linear_first", ProjOrder::LinearFirst}});
  if (has("projection"))
    c.projection = parse_enum<ProjKind>(j["projection"], "projection",
                                        {{"learned", ProjKind::Learned}, {"mean", ProjKind::Mean}, {"max", ProjKind::Max},
                                         {"conv", ProjKind::Conv}, {"random", ProjKind::Random}});
  if (has("dropout")) c.dropout = get_float(j["dropout"], "dropout");
  if (has("attention_dropout")) c.attention_dropout = get_float(j["attention_dropout"], "attention_dropout");
  if (has("layer_norm_eps")) c.layer_norm_eps = get_float(j["layer_norm_eps"], "layer_norm_eps");
  if (has("init_std")) c.init_std = get_float(j["init_std"], "init_std");
  if (has("num_labels")) c.num_labels = get_int(j["num_labels"], "num_labels");
  if (has("pooling"))
    c.pooling = parse_enum<Pooling>(j["pooling"], "pooling", {{"first", Pooling::First}, {"mean", Pooling::Mean}});
  c.validate();
  return c;
}

ModelConfig ModelConfig::from_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw IoError(fmt::format("{}: cannot read config file: it is a directory", path));
  const std::string text = core::read_file(path);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    // e.what() gives nlohmann's position: "parse error at line 3, column 5: ..."; a number too
    // large for a double ("1e999") is an out_of_range error (406), not a parse_error.
    throw ConfigError(fmt::format("{}: invalid JSON: {}", path, e.what()));
  }
  try {
    return from_json(j);
  } catch (const ConfigError& e) {
    throw ConfigError(fmt::format("{}: {}", path, e.what()));
  }
}

}  // namespace linformer
