// Looking inside a model (docs/analysis.md): the spectrum of the attention matrices, the
// paper's Figure 1 (`linformer spectrum`), and attention maps (`linformer attention-map`).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace linformer {

class Model;
class TokenFile;

// Singular values of a row-major [rows, cols] matrix, largest first, computed in double by
// LAPACK (dgesdd, values only). Throws Error if LAPACK reports a failure.
std::vector<double> singular_values(const float* A, int rows, int cols);

// cumsum(s) / sum(s): the normalised cumulative singular values (all 0 if s sums to 0).
std::vector<double> normalized_cumsum(const std::vector<double>& s);

// Mean normalised cumulative singular values of every layer's and head's attention matrix P
// (n x n) over a set of sequences.
struct Spectrum {
  int layers = 0, heads = 0, n = 0, sequences = 0;
  std::vector<double> cum;  // [layers, heads, n]: cum[(l*heads + h)*n + i] = mean of (cumsum(s)/sum(s))[i]
  double at(int layer, int head, int i) const { return cum[((size_t)layer * heads + head) * n + i]; }
};

// Runs `model` (full attention; "tiled" is run as "full", the same tensors) in eval mode over
// `seqs`, which must all have the same length n <= max_len, `batch` sequences at a time, and
// averages the normalised cumulative singular values of each P. The model is left in eval mode.
// Throws ConfigError for a model without full attention, InputError for bad sequences.
Spectrum attention_spectrum(Model& model, const std::vector<std::vector<int32_t>>& seqs, int batch = 4);

// `count` sequences of exactly n tokens from a token file: <s>, n - 2 consecutive tokens, </s>,
// taken at evenly spaced places of the file (they overlap when the file is short). InputError
// naming the file when it has fewer than n - 2 tokens or ids >= vocab_size, or n < 3.
std::vector<std::vector<int32_t>> spectrum_sequences(const TokenFile& file, int n, int count, int vocab_size);

// Files: `prefix`.csv (layer,head,index,cumulative; index 1-based: the fraction of the sum of
// singular values in the largest `index` of them), `prefix`_curves.svg (a panel per layer, a
// curve per head and their mean) and `prefix`_heatmap.svg (the value at index `at` per layer and
// head). Written atomically. Returns the paths written.
std::vector<std::string> write_spectrum(const Spectrum& s, const std::string& prefix, int at);

// The attention probabilities of one sequence, per layer and head: files `prefix`_L<l>_H<h>.svg
// (rows: the n queries, columns: the keys, n of them for full attention or the k projected keys
// for Linformer), `prefix`_grid.svg (all of them, small) and `prefix`.csv (layer,head,query,key,
// weight). Model in eval mode; tiled attention is run as full. InputError for a bad sequence.
// Returns the paths written.
std::vector<std::string> write_attention_maps(Model& model, const std::vector<int32_t>& ids, const std::string& prefix);

// The validation curves of a pretraining run (a run folder or its metrics.jsonl): loss, and the
// masked-token accuracy top-1 / top-5, against steps, the unigram baseline as flat lines. Written
// atomically to out_svg, which is returned. InputError for fewer than two evaluations.
std::string write_pretraining_curves(const std::string& run, const std::string& out_svg);

}  // namespace linformer
