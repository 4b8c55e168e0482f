#include "requests.hpp"

#include <fmt/core.h>

#include "api_error.hpp"
#include "linformer/tokenizer.hpp"  // find_invalid_utf8

namespace linformer::serve {

using json = nlohmann::json;

bool valid_utf8(const std::string& s) { return find_invalid_utf8(s) == std::string_view::npos; }

namespace {
// `s` with each byte that does not start or continue a valid UTF-8 sequence replaced by '?'.
std::string replace_invalid_utf8(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    const unsigned char c = (unsigned char)s[i];
    if (c >= 0x80) len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len > 0 && i + len <= s.size() && valid_utf8(s.substr(i, len))) {
      out.append(s, i, len);
      i += len;
    } else {
      out += '?';
      ++i;
    }
  }
  return out;
}
}  // namespace

json parse_body(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    // Valid JSON but for invalid UTF-8 in it (a text in Latin-1, say) is a 422; anything else
    // (truncated, binary garbage) a 400. e.byte is where the parser stopped.
    if (!valid_utf8(body) && json::accept(replace_invalid_utf8(body)))
      throw validation("the request body is not valid UTF-8 (texts must be UTF-8)");
    throw malformed(fmt::format("the request body is not valid JSON (at byte {} of {})", e.byte, body.size()));
  }
  if (!j.is_object()) throw malformed(fmt::format("the request body must be a JSON object, not {}", j.type_name()));
  return j;
}

namespace {

// A text's own checks: not empty (nothing but whitespace counts as empty).
void check_text(const std::string& s, const std::string& where) {
  if (s.find_first_not_of(" \t\r\n") == std::string::npos) throw empty_input(fmt::format("{} is empty", where));
}

const json* get(const json& j, const std::string& field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string one_text(const json& j, const std::string& field) {
  const json* v = get(j, field);
  if (!v) throw malformed(fmt::format("\"{}\" is missing (a string)", field));
  if (!v->is_string()) throw malformed(fmt::format("\"{}\" must be a string, not {}", field, v->type_name()));
  std::string s = v->get<std::string>();
  check_text(s, "\"" + field + "\"");
  return s;
}

}  // namespace

std::vector<std::string> texts_field(const json& j, const std::string& field, int max_inputs) {
  const json* v = get(j, field);
  if (!v) throw malformed(fmt::format("\"{}\" is missing (a string or a list of strings)", field));
  std::vector<std::string> out;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
    check_text(out.back(), "\"" + field + "\"");
    return out;
  }
  if (!v->is_array())
    throw malformed(fmt::format("\"{}\" must be a string or a list of strings, not {}", field, v->type_name()));
  if (v->empty()) throw empty_input(fmt::format("\"{}\" is an empty list", field));
  if ((int)v->size() > max_inputs)
    throw too_large(fmt::format("\"{}\" holds {} inputs; at most {} per request (--max-client-batch-size)", field,
                                v->size(), max_inputs));
  for (size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    if (!e.is_string()) throw malformed(fmt::format("\"{}\"[{}] must be a string, not {}", field, i, e.type_name()));
    out.push_back(e.get<std::string>());
    check_text(out.back(), fmt::format("\"{}\"[{}]", field, i));
  }
  return out;
}

bool bool_field(const json& j, const std::string& field, bool dflt) {
  const json* v = get(j, field);
  if (!v) return dflt;
  if (!v->is_boolean()) throw malformed(fmt::format("\"{}\" must be true or false, not {}", field, v->dump()));
  return v->get<bool>();
}

int int_field(const json& j, const std::string& field, int dflt, int min, int max) {
  const json* v = get(j, field);
  if (!v) return dflt;
  if (!v->is_number_integer()) throw malformed(fmt::format("\"{}\" must be an integer, not {}", field, v->dump()));
  const long long x = v->get<long long>();
  if (x < min || x > max) throw validation(fmt::format("\"{}\" must be in {}..{}, not {}", field, min, max, x));
  return (int)x;
}

std::string string_field(const json& j, const std::string& field, const std::string& dflt) {
  const json* v = get(j, field);
  if (!v) return dflt;
  if (!v->is_string()) throw malformed(fmt::format("\"{}\" must be a string, not {}", field, v->dump()));
  return v->get<std::string>();
}

EmbedRequest parse_embed(const json& j, int max_inputs) {
  EmbedRequest r;
  r.inputs = texts_field(j, "inputs", max_inputs);
  r.normalize = bool_field(j, "normalize", r.normalize);
  r.truncate = bool_field(j, "truncate", r.truncate);
  const std::string pooling = string_field(j, "pooling", "mean");
  if (pooling == "mean") r.pooling = Pooling::Mean;
  else if (pooling == "first" || pooling == "cls") r.pooling = Pooling::First;
  else throw validation(fmt::format("\"pooling\" must be \"mean\" or \"first\", not \"{}\"", pooling));
  return r;
}

OpenAiEmbedRequest parse_openai_embed(const json& j, int max_inputs) {
  OpenAiEmbedRequest r;
  r.inputs = texts_field(j, "input", max_inputs);
  r.model = string_field(j, "model", "");
  const std::string format = string_field(j, "encoding_format", "float");
  if (format != "float") throw validation(fmt::format("\"encoding_format\" must be \"float\", not \"{}\"", format));
  return r;
}

PredictRequest parse_predict(const json& j, int max_inputs, bool default_truncate) {
  PredictRequest r;
  r.inputs = texts_field(j, "inputs", max_inputs);
  r.truncate = bool_field(j, "truncate", default_truncate);
  return r;
}

FillMaskRequest parse_fill_mask(const json& j) {
  FillMaskRequest r;
  r.input = one_text(j, "inputs");
  r.top_k = int_field(j, "top_k", r.top_k, 1, 1000);
  return r;
}

TokenizeRequest parse_tokenize(const json& j, int max_inputs) {
  TokenizeRequest r;
  r.inputs = texts_field(j, "inputs", max_inputs);
  r.add_special_tokens = bool_field(j, "add_special_tokens", r.add_special_tokens);
  return r;
}

AttentionRequest parse_attention(const json& j) {
  AttentionRequest r;
  r.input = one_text(j, "inputs");
  r.layer = int_field(j, "layer", 0, 0, 1 << 20);
  r.head = int_field(j, "head", 0, 0, 1 << 20);
  r.truncate = bool_field(j, "truncate", r.truncate);
  return r;
}

}  // namespace linformer::serve
