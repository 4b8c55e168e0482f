// SVG pictures for the analysis commands (svg.hpp).
#include "analysis/svg.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace linformer::svg {

namespace {

// Matplotlib's "tab10" colours.
const char* const kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string header(double w, double h) {
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      w, h);
}

std::string num(double v) { return fmt::format("{:.4g}", v); }

// White to dark blue.
std::string colour(double t) {
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0);
  auto mix = [&](int a, int b) { return (int)std::lround(a + (b - a) * t); };
  return fmt::format("#{:02x}{:02x}{:02x}", mix(255, 8), mix(255, 48), mix(255, 107));
}

std::string chart_panel(const Chart& c, double ox, double oy) {
  const double W = 420, H = 300, left = 55, right = 15, top = 30, bottom = 45;
  const double pw = W - left - right, ph = H - top - bottom;
  double xmin = INFINITY, xmax = -INFINITY;
  for (const Series& s : c.series)
    for (double x : s.x) xmin = std::min(xmin, x), xmax = std::max(xmax, x);
  if (!(xmin < xmax)) xmin = 0, xmax = 1;
  const double ymin = c.ymin, ymax = c.ymax > c.ymin ? c.ymax : c.ymin + 1;
  auto X = [&](double x) { return ox + left + (x - xmin) / (xmax - xmin) * pw; };
  auto Y = [&](double y) { return oy + top + (1 - (std::clamp(y, ymin, ymax) - ymin) / (ymax - ymin)) * ph; };
  std::string o;
  o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">{}</text>\n", ox + left + pw / 2,
                   oy + 18, escape(c.title));
  o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n", ox + left,
                   oy + top, pw, ph);
  for (int i = 0; i <= 4; ++i) {  // ticks and grid
    const double xv = xmin + (xmax - xmin) * i / 4, yv = ymin + (ymax - ymin) * i / 4;
    o += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#ddd\"/>\n", X(xv), oy + top,
                     oy + top + ph);
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", X(xv), oy + top + ph + 14,
                     num(xv));
    o += fmt::format("<line x1=\"{1}\" y1=\"{0}\" x2=\"{2}\" y2=\"{0}\" stroke=\"#ddd\"/>\n", Y(yv), ox + left,
                     ox + left + pw);
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", ox + left - 4, Y(yv) + 4, num(yv));
  }
  for (double v : c.vlines)
    if (v >= xmin && v <= xmax)
      o += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>\n",
                       X(v), oy + top, oy + top + ph);
  o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", ox + left + pw / 2, oy + H - 8,
                   escape(c.xlabel));
  o += fmt::format("<text x=\"{0}\" y=\"{1}\" text-anchor=\"middle\" transform=\"rotate(-90 {0} {1})\">{2}</text>\n",
                   ox + 12, oy + top + ph / 2, escape(c.ylabel));
  int colour_index = 0;
  for (size_t si = 0; si < c.series.size(); ++si) {
    const Series& s = c.series[si];
    const std::string col = s.bold ? "#000000" : kPalette[colour_index++ % 10];
    std::string pts;
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) pts += fmt::format("{:.2f},{:.2f} ", X(s.x[i]), Y(s.y[i]));
    o += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" points=\"{}\"/>\n", col,
                     s.bold ? 2.5 : 1.2, pts);
    if (c.series.size() <= 16) {  // legend, bottom right inside the plot
      const double ly = oy + top + ph - 8 - 13.0 * (double)(c.series.size() - 1 - si);
      o += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"/>\n",
                       ox + left + pw - 90, ly - 4, ox + left + pw - 72, ly - 4, col);
      o += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", ox + left + pw - 68, ly, escape(s.name));
    }
  }
  return o;
}

}  // namespace

std::string escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    switch (ch) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += ch;
    }
  }
  return o;
}

std::string charts(const std::string& title, const std::vector<Chart>& panels, int columns) {
  columns = std::max(1, std::min(columns, (int)std::max<size_t>(panels.size(), 1)));
  const int rows = ((int)panels.size() + columns - 1) / columns;
  const double W = 420.0 * columns, H = 30 + 300.0 * std::max(rows, 1);
  std::string o = header(W, H);
  o += fmt::format("<text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n", W / 2, escape(title));
  for (size_t i = 0; i < panels.size(); ++i)
    o += chart_panel(panels[i], 420.0 * (double)(i % columns), 30 + 300.0 * (double)(i / columns));
  return o + "</svg>\n";
}

namespace {

// The body of a heat map drawn at (ox, oy); sets its width and height.
std::string heatmap_body(const Heatmap& h, double ox, double oy, double* width, double* height);

}  // namespace

std::string heatmap(const Heatmap& h) {
  double W = 0, H = 0;
  const std::string body = heatmap_body(h, 0, 0, &W, &H);
  return header(W, H) + body + "</svg>\n";
}

std::string heatmap_grid(const std::string& title, const std::vector<Heatmap>& maps, int columns) {
  columns = std::max(1, columns);
  std::string body;
  double x = 0, y = 30, row_h = 0, W = 0;
  for (size_t i = 0; i < maps.size(); ++i) {
    if (i > 0 && i % columns == 0) x = 0, y += row_h, row_h = 0;
    double w = 0, h = 0;
    body += heatmap_body(maps[i], x, y, &w, &h);
    x += w;
    W = std::max(W, x);
    row_h = std::max(row_h, h);
  }
  const double H = y + row_h;
  return header(std::max(W, 200.0), H) +
         fmt::format("<text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
                     std::max(W, 200.0) / 2, escape(title)) +
         body + "</svg>\n";
}

namespace {

std::string heatmap_body(const Heatmap& h, double ox, double oy, double* width, double* height) {
  // Block-average maps larger than max_cells in either direction.
  const int fr = std::max(1, (h.rows + h.max_cells - 1) / h.max_cells);
  const int fc = std::max(1, (h.cols + h.max_cells - 1) / h.max_cells);
  const int R = (h.rows + fr - 1) / fr, C = (h.cols + fc - 1) / fc;
  std::vector<double> v((size_t)R * C, 0.0);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      double s = 0;
      int cnt = 0;
      for (int i = r * fr; i < std::min(h.rows, (r + 1) * fr); ++i)
        for (int j = c * fc; j < std::min(h.cols, (c + 1) * fc); ++j, ++cnt) s += h.values[(size_t)i * h.cols + j];
      v[(size_t)r * C + c] = cnt ? s / cnt : 0.0;
    }
  const double cell_w = std::clamp(h.size / std::max(C, 1), 1.0, 48.0);
  const double cell_h = std::clamp(h.size / std::max(R, 1), 1.0, 48.0);
  const bool row_text = !h.row_labels.empty() && fr == 1 && cell_h >= 10;
  const bool col_text = !h.col_labels.empty() && fc == 1 && cell_w >= 14;
  const double mw = cell_w * C, mh = cell_h * R;
  // Wide enough for the title too (about 7 pixels per character at 13 px).
  *width = std::max((row_text ? 80 : 55) + mw + (h.colour_bar ? 90 : 20), 7.0 * (double)h.title.size() + 20);
  *height = 40 + mh + 60;
  const double left = ox + (row_text ? 80 : 55), top = oy + 40;
  std::string o;
  o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">{}</text>\n", ox + *width / 2,
                   oy + 20, escape(h.title));
  const double span = h.vmax > h.vmin ? h.vmax - h.vmin : 1.0;
  o += "<g shape-rendering=\"crispEdges\">\n";
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      const double t = (v[(size_t)r * C + c] - h.vmin) / span;
      o += fmt::format("<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"{}\"/>\n",
                       left + c * cell_w, top + r * cell_h, cell_w, cell_h, colour(t));
      if (h.annotate && cell_w >= 28 && cell_h >= 14)
        o += fmt::format("<text x=\"{:.2f}\" y=\"{:.2f}\" text-anchor=\"middle\" fill=\"{}\" font-size=\"10\">{:.2f}</text>\n",
                         left + (c + 0.5) * cell_w, top + (r + 0.5) * cell_h + 3.5, t > 0.6 ? "white" : "black",
                         v[(size_t)r * C + c]);
    }
  o += "</g>\n";
  o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n", left, top,
                   mw, mh);
  // Row and column labels: the given ones when they fit, else indices at a few ticks.
  const int rstep = row_text ? 1 : std::max(1, (int)std::ceil(R / 8.0));
  for (int r = 0; r < R; r += rstep)
    o += fmt::format("<text x=\"{:.2f}\" y=\"{:.2f}\" text-anchor=\"end\">{}</text>\n", left - 4,
                     top + (r + 0.5) * cell_h + 4,
                     row_text ? escape(h.row_labels[r]) : std::to_string(r * fr));
  const int cstep = col_text ? 1 : std::max(1, (int)std::ceil(C / 8.0));
  for (int c = 0; c < C; c += cstep)
    o += fmt::format("<text x=\"{:.2f}\" y=\"{:.2f}\" text-anchor=\"middle\">{}</text>\n", left + (c + 0.5) * cell_w,
                     top + mh + 14, col_text ? escape(h.col_labels[c]) : std::to_string(c * fc));
  o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", left + mw / 2, top + mh + 32,
                   escape(h.xlabel));
  o += fmt::format("<text x=\"{0}\" y=\"{1}\" text-anchor=\"middle\" transform=\"rotate(-90 {0} {1})\">{2}</text>\n",
                   ox + 14, top + mh / 2, escape(h.ylabel));
  if (fr > 1 || fc > 1)
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#666\">({}x{} shown as {}x{}: block means)</text>\n",
                     left + mw / 2, top + mh + 48, h.rows, h.cols, R, C);
  if (!h.colour_bar) return o;
  // Colour bar (the gradient's id is unique per position, so several maps can share a file).
  const std::string id = fmt::format("bar{}_{}", (long)ox, (long)oy);
  const double bx = left + mw + 20, bh = std::min(mh, 200.0);
  o += "<defs><linearGradient id=\"" + id + "\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">"
       "<stop offset=\"0\" stop-color=\"" + colour(0) + "\"/><stop offset=\"1\" stop-color=\"" + colour(1) +
       "\"/></linearGradient></defs>\n";
  o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"{}\" fill=\"url(#{})\" stroke=\"#444\"/>\n", bx, top,
                   bh, id);
  o += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", bx + 18, top + 9, num(h.vmax));
  o += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", bx + 18, top + bh, num(h.vmin));
  return o;
}

}  // namespace

}  // namespace linformer::svg
