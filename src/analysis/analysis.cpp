// Spectrum of attention matrices (the paper's Figure 1) and attention maps (analysis.hpp,
// docs/analysis.md).
#include "linformer/analysis.hpp"

#include <algorithm>
#include <cmath>
#include <memory>

#include <fmt/format.h>

#include "analysis/svg.hpp"
#include "linformer/data.hpp"
#include "linformer/error.hpp"
#include "linformer/model.hpp"
#include "linformer/tokenizer.hpp"
#include "core/fs.hpp"

// LAPACK (Debian liblapack3): divide-and-conquer SVD. Fortran passes everything by reference;
// the trailing size_t is the hidden length of the character argument.
extern "C" void dgesdd_(const char* jobz, const int* m, const int* n, double* a, const int* lda, double* s, double* u,
                        const int* ldu, double* vt, const int* ldvt, double* work, const int* lwork, int* iwork,
                        int* info, size_t jobz_len);

namespace linformer {

std::vector<double> singular_values(const float* A, int rows, int cols) {
  if (rows <= 0 || cols <= 0) return {};
  // Row-major A is column-major A^T, which has the same singular values.
  const int m = cols, n = rows, lda = cols, one = 1;
  std::vector<double> a(A, A + (size_t)rows * cols), s(std::min(rows, cols));
  std::vector<int> iwork(8 * (size_t)std::min(rows, cols));
  double u = 0, vt = 0, query = 0;
  int lwork = -1, info = 0;
  dgesdd_("N", &m, &n, a.data(), &lda, s.data(), &u, &one, &vt, &one, &query, &lwork, iwork.data(), &info, 1);
  if (info != 0) throw Error(fmt::format("LAPACK dgesdd workspace query failed (info {})", info));
  lwork = (int)query;
  std::vector<double> work((size_t)std::max(lwork, 1));
  dgesdd_("N", &m, &n, a.data(), &lda, s.data(), &u, &one, &vt, &one, work.data(), &lwork, iwork.data(), &info, 1);
  if (info != 0)
    throw Error(fmt::format("LAPACK dgesdd failed on a {}x{} matrix (info {}{})", rows, cols, info,
                            info > 0 ? ": did not converge" : ": bad argument"));
  return s;  // descending
}

std::vector<double> normalized_cumsum(const std::vector<double>& s) {
  double total = 0;
  for (double v : s) total += v;
  std::vector<double> c(s.size(), 0.0);
  if (total <= 0) return c;
  double run = 0;
  for (size_t i = 0; i < s.size(); ++i) c[i] = (run += s[i]) / total;
  return c;
}

namespace {

// The exact kinds (attention_is_exact) as a message lists them: "full" or "tiled".
std::string exact_kinds() {
  std::string s;
  for (AttentionKind k : attention_kinds())
    if (attention_is_exact(k)) s += fmt::format("{}\"{}\"", s.empty() ? "" : " or ", to_string(k));
  return s;
}

// An exact kind that keeps no probabilities (tiled): the same tensors in a full-attention model
// give the same P (docs/model.md: "the same function as full attention").
std::unique_ptr<Model> as_full(const Model& m) {
  ModelConfig c = m.config();
  c.attention = AttentionKind::Full;
  auto f = std::make_unique<Model>(c);
  f->params().all_data() = m.params().all_data();
  return f;
}

// The model whose attention probabilities to read, in eval mode: `model` itself, or for an exact
// kind that keeps none (tiled) a full-attention copy held in `copy`.
Model& probs_model(Model& model, std::unique_ptr<Model>& copy) {
  model.eval();
  if (attention_keeps_probs(model.config().attention) || !attention_is_exact(model.config().attention)) return model;
  copy = as_full(model);
  copy->eval();
  return *copy;
}

}  // namespace

Spectrum attention_spectrum(Model& model, const std::vector<std::vector<int32_t>>& seqs, int batch) {
  const ModelConfig& cfg = model.config();
  if (!attention_is_exact(cfg.attention))
    throw ConfigError(fmt::format("spectrum: the model has attention \"{}\"; the spectrum is that of the n x n "
                                  "attention matrices of a model with full attention (attention {})",
                                  to_string(cfg.attention), exact_kinds()));
  if (seqs.empty()) throw InputError("spectrum: no sequences");
  const int n = (int)seqs[0].size();
  for (size_t i = 0; i < seqs.size(); ++i)
    if ((int)seqs[i].size() != n)
      throw InputError(fmt::format("spectrum: sequence {} has {} tokens, the first one {}; all need the same length",
                                   i, seqs[i].size(), n));
  if (n > cfg.max_len)
    throw InputError(fmt::format("spectrum: sequence length {} exceeds the model's max_len {}", n, cfg.max_len));
  std::unique_ptr<Model> full_copy;
  Model* m = &probs_model(model, full_copy);
  Spectrum s;
  s.layers = cfg.n_layers;
  s.heads = cfg.n_heads;
  s.n = n;
  s.sequences = (int)seqs.size();
  s.cum.assign((size_t)s.layers * s.heads * n, 0.0);
  batch = std::max(1, batch);
  for (size_t start = 0; start < seqs.size(); start += batch) {
    const std::vector<std::vector<int32_t>> part(seqs.begin() + start,
                                                 seqs.begin() + std::min(seqs.size(), start + batch));
    m->encode(Batch::from_sequences(part));
    for (int l = 0; l < s.layers; ++l) {
      const AttentionProbs p = m->attention_probs(l);
      const int jobs = p.B * p.heads;
      std::vector<std::vector<double>> cums(jobs);
      // Independent SVDs (LAPACK is reentrant); summed below in a fixed order.
#pragma omp parallel for schedule(dynamic)
      for (int j = 0; j < jobs; ++j) cums[j] = normalized_cumsum(singular_values(p.data + (size_t)j * n * n, n, n));
      for (int j = 0; j < jobs; ++j) {
        double* dst = s.cum.data() + ((size_t)l * s.heads + j % p.heads) * n;
        for (int i = 0; i < n; ++i) dst[i] += cums[j][i];
      }
    }
  }
  for (double& v : s.cum) v /= s.sequences;
  return s;
}

std::vector<std::vector<int32_t>> spectrum_sequences(const TokenFile& file, int n, int count, int vocab_size) {
  if (n < 3) throw InputError(fmt::format("spectrum: sequence length {} is too short (at least 3: <s>, a token, </s>)", n));
  const size_t body = (size_t)n - 2, total = file.num_tokens();
  if (total < body)
    throw InputError(fmt::format("{}: {} tokens, but sequences of length {} need at least {}", file.path(), total, n,
                                 body));
  if (file.max_id() >= vocab_size)
    throw InputError(fmt::format("{}: token id {} is outside the model's vocabulary [0, {})", file.path(),
                                 file.max_id(), vocab_size));
  std::vector<std::vector<int32_t>> out;
  for (int i = 0; i < count; ++i) {
    const size_t begin = count > 1 ? (size_t)((double)(total - body) * i / (count - 1)) : 0;
    std::vector<int32_t> seq{kBosId};
    seq.insert(seq.end(), file.tokens() + begin, file.tokens() + begin + body);
    seq.push_back(kEosId);
    out.push_back(std::move(seq));
  }
  return out;
}

std::vector<std::string> write_spectrum(const Spectrum& s, const std::string& prefix, int at) {
  if (at < 1 || at > s.n) throw InputError(fmt::format("spectrum: index {} is outside [1, n = {}]", at, s.n));
  std::string csv = "layer,head,index,cumulative\n";
  for (int l = 0; l < s.layers; ++l)
    for (int h = 0; h < s.heads; ++h)
      for (int i = 0; i < s.n; ++i) csv += fmt::format("{},{},{},{:.6f}\n", l, h, i + 1, s.at(l, h, i));
  // Curves: one panel per layer, a curve per head and their mean.
  std::vector<svg::Chart> panels;
  std::vector<double> x(s.n);
  for (int i = 0; i < s.n; ++i) x[i] = i + 1;
  double lowest = 1.0;
  for (double v : s.cum) lowest = std::min(lowest, v);
  for (int l = 0; l < s.layers; ++l) {
    svg::Chart c;
    c.title = fmt::format("layer {}", l);
    c.xlabel = "singular value index";
    c.ylabel = "cumulative share";
    c.ymin = std::floor(lowest * 10) / 10;
    c.ymax = 1.0;
    c.vlines = {(double)at};
    std::vector<double> mean(s.n, 0.0);
    for (int h = 0; h < s.heads; ++h) {
      svg::Series sr{fmt::format("head {}", h), x, std::vector<double>(s.n)};
      for (int i = 0; i < s.n; ++i) mean[i] += (sr.y[i] = s.at(l, h, i)) / s.heads;
      c.series.push_back(std::move(sr));
    }
    c.series.push_back(svg::Series{"mean", x, mean, true});
    panels.push_back(std::move(c));
  }
  const std::string title = fmt::format(
      "Normalised cumulative singular values of P (n = {}, mean of {} sequences)", s.n, s.sequences);
  svg::Heatmap hm;
  hm.title = fmt::format("Cumulative share of the largest {} of {} singular values", at, s.n);
  hm.xlabel = "head";
  hm.ylabel = "layer";
  hm.rows = s.layers;
  hm.cols = s.heads;
  for (int l = 0; l < s.layers; ++l) {
    hm.row_labels.push_back(fmt::format("layer {}", l));
    for (int h = 0; h < s.heads; ++h) hm.values.push_back(s.at(l, h, at - 1));
  }
  for (int h = 0; h < s.heads; ++h) hm.col_labels.push_back(std::to_string(h));
  hm.vmin = *std::min_element(hm.values.begin(), hm.values.end());
  hm.vmax = 1.0;
  if (hm.vmin >= hm.vmax) hm.vmin = hm.vmax - 0.1;
  hm.annotate = true;
  hm.size = 400;
  const std::vector<std::string> paths = {prefix + ".csv", prefix + "_curves.svg", prefix + "_heatmap.svg"};
  core::write_file_atomic(paths[0], csv);
  core::write_file_atomic(paths[1], svg::charts(title, panels, std::min(s.layers, 3)));
  core::write_file_atomic(paths[2], svg::heatmap(hm));
  return paths;
}

std::vector<std::string> write_attention_maps(Model& model, const std::vector<int32_t>& ids, const std::string& prefix) {
  const ModelConfig& cfg = model.config();
  std::unique_ptr<Model> full_copy;
  Model* m = &probs_model(model, full_copy);
  if (ids.empty()) throw InputError("attention-map: the input has no token");
  m->encode(Batch::from_sequences({ids}));  // InputError for ids outside the vocabulary or n > max_len
  const bool lin = !attention_is_exact(cfg.attention);  // columns: projected keys (Linformer), not positions
  std::vector<std::string> paths;
  std::vector<svg::Heatmap> grid;
  std::string csv = "layer,head,query,key,weight\n";
  for (int l = 0; l < cfg.n_layers; ++l) {
    const AttentionProbs p = m->attention_probs(l);
    for (int h = 0; h < p.heads; ++h) {
      const float* P = p.data + (size_t)h * p.n * p.cols;
      svg::Heatmap hm;
      hm.title = fmt::format("layer {}, head {}", l, h);
      hm.xlabel = lin ? fmt::format("projected key (k = {})", p.cols) : "key position";
      hm.ylabel = "query position";
      hm.rows = p.n;
      hm.cols = p.cols;
      hm.values.assign(P, P + (size_t)p.n * p.cols);
      hm.vmin = 0.0;
      hm.vmax = std::max(1e-6, *std::max_element(hm.values.begin(), hm.values.end()));
      for (int t = 0; t < p.n; ++t)
        for (int c = 0; c < p.cols; ++c) csv += fmt::format("{},{},{},{},{:.6g}\n", l, h, t, c, P[(size_t)t * p.cols + c]);
      const std::string path = fmt::format("{}_L{}_H{}.svg", prefix, l, h);
      core::write_file_atomic(path, svg::heatmap(hm));
      paths.push_back(path);
      hm.size = 160;
      hm.max_cells = 128;
      hm.colour_bar = false;
      grid.push_back(std::move(hm));
    }
  }
  const std::string grid_path = prefix + "_grid.svg";
  core::write_file_atomic(grid_path,
                    svg::heatmap_grid(fmt::format("Attention of one input (n = {}), rows: layers, columns: heads; "
                                                  "each map scaled to its own maximum",
                                                  ids.size()),
                                      grid, cfg.n_heads));
  paths.push_back(grid_path);
  core::write_file_atomic(prefix + ".csv", csv);
  paths.push_back(prefix + ".csv");
  return paths;
}

}  // namespace linformer
