// Model configuration: a plain struct, read from and written to JSON, validated.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace linformer {

enum class AttentionKind {
  Full,       // exact softmax attention, keeps the n x n probabilities
  Linformer,  // sequence projections E/F to k rows: O(n k)
  Tiled,      // exact attention in tiles with an online softmax: same result as Full, O(n) memory
};

// How Linformer's sequence projections E (keys) and F (values) are shared (paper section 4).
enum class Sharing {
  None,       // separate E_i, F_i for every head of every layer: [heads, k, max_len] each
  Headwise,   // one E and one F per layer, shared by its heads: [k, max_len] each
  KeyValue,   // one projection per layer used as both E and F: [k, max_len]
  Layerwise,  // one projection for all layers, heads, keys and values: [k, max_len]
};

// Where the projection E applies (PAPER.md, "Where E applies").
enum class ProjOrder {
  InputFirst,   // K = (E X) W_k^T + b_k: project the layer input, then the key/value maps (fairseq; cheaper)
  LinearFirst,  // K = E (X W_k^T + b_k): the paper's formula
};

// What E and F are (PAPER.md, "Other projections"; docs/model.md). Window kinds (mean, max, conv)
// cut the max_len positions into k windows of w = max_len / k positions each.
enum class ProjKind {
  Learned,  // a learned [k, max_len] matrix (the paper's default)
  Mean,     // mean over the real tokens of each window; no tensors
  Max,      // maximum over the real tokens of each window, per channel; no tensors
  Conv,     // learned convolution, kernel = stride = w, one kernel for all channels: [w] tensors
  Random,   // a fixed random [k, max_len] matrix, N(0, 1/k) from the init seed; saved, never trained
};

enum class Pooling { First, Mean };

struct ModelConfig {
  int vocab_size = 8000;
  int max_len = 512;  // N_max: longest sequence the model accepts; E/F have max_len columns
  int d_model = 256;
  int n_heads = 4;
  int d_ff = 1024;
  int n_layers = 4;
  AttentionKind attention = AttentionKind::Linformer;
  std::vector<int> k = {64};  // projected length; one value for all layers, or one per layer
  Sharing sharing = Sharing::Headwise;
  ProjOrder proj_order = ProjOrder::InputFirst;
  ProjKind projection = ProjKind::Learned;
  float dropout = 0.1f;            // on embeddings, attention output and FFN output
  float attention_dropout = 0.1f;  // on the attention probabilities
  float layer_norm_eps = 1e-5f;
  float init_std = 0.02f;  // N(0, init_std) for every matrix, E/F included (BERT init)
  int num_labels = 0;      // > 0 adds a sequence-classification head
  Pooling pooling = Pooling::First;

  int head_dim() const { return d_model / n_heads; }
  // Projected length of layer `layer` (k.size() is 1 or n_layers after validation).
  int k_of(int layer) const { return k.size() == 1 ? k[0] : k[layer]; }
  // Window kinds (mean, max, conv): positions per window, max_len / k_of(layer).
  int window_of(int layer) const { return max_len / k_of(layer); }

  // Throws ConfigError naming the first invalid field.
  void validate() const;

  nlohmann::json to_json() const;
  // Unknown keys are an error (catches typos); missing keys take the defaults above.
  static ModelConfig from_json(const nlohmann::json& j);
  static ModelConfig from_file(const std::string& path);
};

// Attention kinds, from their one registration table (src/nn/attention/registry.cpp).
const char* to_string(AttentionKind v);  // the name in config files: "full", "linformer", "tiled"
std::vector<AttentionKind> attention_kinds();  // every kind, in the order of the enum
// The kind of a name; ConfigError listing the known names if there is none.
AttentionKind attention_kind_from_string(const std::string& name);
// Whether Model::attention_probs gives the probabilities of the last forward.
bool attention_keeps_probs(AttentionKind v);
// Softmax over all n keys with the q/k/v/out maps only: the function of "full" with the same
// tensors (so its probabilities are those of a "full" model with its weights: n x n matrices).
bool attention_is_exact(AttentionKind v);
// The config fields of cfg's attention kind beyond the common ones, for logs
// (" k=64 sharing=headwise proj_order=input_first projection=learned"; "" for none).
std::string attention_config_summary(const ModelConfig& cfg);
const char* to_string(Sharing v);
const char* to_string(ProjOrder v);
const char* to_string(Pooling v);
const char* to_string(ProjKind v);
// Whether the projection kind cuts the sequence into windows (mean, max, conv).
inline bool is_window_kind(ProjKind v) { return v == ProjKind::Mean || v == ProjKind::Max || v == ProjKind::Conv; }

}  // namespace linformer
