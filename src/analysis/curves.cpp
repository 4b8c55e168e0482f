// Training curves of a pretraining run (docs/analysis.md, "Training curves"): its metrics.jsonl's
// evaluation lines as an SVG, the unigram baseline beside the model.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "analysis/svg.hpp"
#include "core/fs.hpp"
#include "linformer/analysis.hpp"
#include "linformer/error.hpp"

namespace linformer {

namespace {

// A flat line across the steps: how a baseline that does not learn is drawn.
svg::Series level(const std::string& name, double x0, double x1, double y) { return {name, {x0, x1}, {y, y}}; }

}  // namespace

std::string write_pretraining_curves(const std::string& run, const std::string& out_svg) {
  namespace fs = std::filesystem;
  const fs::path metrics = fs::is_directory(run) ? fs::path(run) / "metrics.jsonl" : fs::path(run);
  std::ifstream in(metrics);
  if (!in) throw IoError(fmt::format("{}: cannot open (a pretraining run folder or its metrics.jsonl)", metrics.string()));
  svg::Series loss{"model", {}, {}}, top1{"model top-1", {}, {}}, top5{"model top-5", {}, {}};
  double unigram_loss = NAN, unigram_top1 = NAN, unigram_top5 = NAN;
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw IoError(fmt::format("{}:{}: not JSON ({})", metrics.string(), lineno, e.what()));
    }
    if (!j.contains("valid_loss") || !j.contains("step")) continue;  // a training line
    const double step = j.at("step").get<double>();
    loss.x.push_back(step);
    loss.y.push_back(j.at("valid_loss").get<double>());
    if (j.contains("valid_top1")) {
      top1.x.push_back(step);
      top1.y.push_back(100 * j.at("valid_top1").get<double>());
      top5.x.push_back(step);
      top5.y.push_back(100 * j.at("valid_top5").get<double>());
      unigram_loss = std::log(j.at("unigram_ppl").get<double>());
      unigram_top1 = 100 * j.at("unigram_top1").get<double>();
      unigram_top5 = 100 * j.at("unigram_top5").get<double>();
    }
  }
  if (loss.x.size() < 2)
    throw InputError(fmt::format("{}: fewer than two evaluations to draw (pretrain with --eval-every)", metrics.string()));
  const double x0 = loss.x.front(), x1 = loss.x.back();

  svg::Chart lc;
  lc.title = "Validation loss (masked tokens)";
  lc.xlabel = "step";
  lc.ylabel = "cross-entropy (nats)";
  lc.series.push_back(loss);
  if (!std::isnan(unigram_loss)) lc.series.push_back(level("unigram baseline", x0, x1, unigram_loss));
  lc.ymin = 0;
  lc.ymax = std::ceil(*std::max_element(loss.y.begin(), loss.y.end()));
  std::vector<svg::Chart> panels = {lc};
  if (!top1.x.empty()) {
    svg::Chart ac;
    ac.title = "Masked-token accuracy";
    ac.xlabel = "step";
    ac.ylabel = "% of masked tokens";
    ac.series = {top1, top5, level("unigram top-1", x0, x1, unigram_top1), level("unigram top-5", x0, x1, unigram_top5)};
    double top = 0;
    for (const svg::Series& s : ac.series) top = std::max(top, *std::max_element(s.y.begin(), s.y.end()));
    ac.ymin = 0;
    ac.ymax = std::min(100.0, 10 * std::ceil(top / 10 + 0.5));
    panels.push_back(ac);
  }
  core::write_file_atomic(out_svg, svg::charts(fmt::format("Pretraining: {}", run), panels, 2));
  return out_svg;
}

}  // namespace linformer
