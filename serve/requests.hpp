// Parsing and checking the JSON bodies of the routes (docs/serving.md): every problem is an
// ApiError naming the field and the value: 400 for a body that is not JSON or a field of the wrong
// type, 413 for too many inputs, 422 for an empty input, invalid UTF-8 or a bad value.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "linformer/config.hpp"

namespace linformer::serve {

// The body as a JSON object. Invalid UTF-8 anywhere in it is a 422 (the JSON parser would call
// it malformed); anything else that does not parse, or is not an object, is a 400.
nlohmann::json parse_body(const std::string& body);

// Whether `s` is well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool valid_utf8(const std::string& s);

// `field` as one text or a list of 1..max_inputs texts (a list longer than that: 413; an empty
// list or an empty text: 422; not a string or a list of strings: 400).
std::vector<std::string> texts_field(const nlohmann::json& j, const std::string& field, int max_inputs);

// Optional fields: absent or null gives `dflt`; the wrong type is a 400 naming the field.
bool bool_field(const nlohmann::json& j, const std::string& field, bool dflt);
int int_field(const nlohmann::json& j, const std::string& field, int dflt, int min, int max);  // out of range: 422
std::string string_field(const nlohmann::json& j, const std::string& field, const std::string& dflt);

struct EmbedRequest {
  std::vector<std::string> inputs;
  bool normalize = true;  // TEI's default
  bool truncate = false;
  Pooling pooling = Pooling::Mean;
};
EmbedRequest parse_embed(const nlohmann::json& j, int max_inputs);
// POST /v1/embeddings (OpenAI): "input" (str | [str]), "model" (any string, echoed), "encoding_format"
// "float" only. Vectors are L2-normalised mean poolings, as OpenAI's are unit length.
struct OpenAiEmbedRequest {
  std::vector<std::string> inputs;
  std::string model;
};
OpenAiEmbedRequest parse_openai_embed(const nlohmann::json& j, int max_inputs);

struct PredictRequest {
  std::vector<std::string> inputs;
  bool truncate = false;
};
PredictRequest parse_predict(const nlohmann::json& j, int max_inputs, bool default_truncate);

struct FillMaskRequest {
  std::string input;
  int top_k = 5;
};
FillMaskRequest parse_fill_mask(const nlohmann::json& j);

struct TokenizeRequest {
  std::vector<std::string> inputs;
  bool add_special_tokens = true;
};
TokenizeRequest parse_tokenize(const nlohmann::json& j, int max_inputs);

struct AttentionRequest {
  std::string input;
  int layer = 0;
  int head = 0;
  bool truncate = true;  // the page shows the first max_len tokens of a long text
};
AttentionRequest parse_attention(const nlohmann::json& j);

}  // namespace linformer::serve
