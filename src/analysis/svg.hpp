// A small SVG writer for the analysis pictures (docs/analysis.md): line charts in panels and
// heat maps. Plain text, no dependencies; colours from a fixed palette so pictures are stable.
#pragma once
#include <string>
#include <vector>

namespace linformer::svg {

struct Series {
  std::string name;
  std::vector<double> x, y;
  bool bold = false;  // drawn thicker and black (e.g. a mean over the other curves)
};

// One chart: axes with ticks, the series as polylines, a legend. y is clipped to [ymin, ymax].
struct Chart {
  std::string title, xlabel, ylabel;
  std::vector<Series> series;
  double ymin = 0.0, ymax = 1.0;
  std::vector<double> vlines;  // dashed vertical markers (e.g. the index 128 of the heat map)
};

// Charts side by side, `columns` per row, each 420 x 300 pixels, under a title.
std::string charts(const std::string& title, const std::vector<Chart>& panels, int columns);

// A heat map of values [rows, cols] (row-major) on a white-to-blue scale from vmin to vmax, with a
// colour bar. Row/column labels are optional (empty: numbers every few cells); annotate writes
// each value in its cell (for small maps). Maps larger than max_cells x max_cells are shown
// averaged over blocks (the caption says so) to keep the file small.
struct Heatmap {
  std::string title, xlabel, ylabel;
  int rows = 0, cols = 0;
  std::vector<double> values;
  std::vector<std::string> row_labels, col_labels;
  double vmin = 0.0, vmax = 1.0;
  bool annotate = false;
  int max_cells = 256;
  double size = 600;       // pixels available for the map's longer side (before clamping cells to 1..48)
  bool colour_bar = true;
};
std::string heatmap(const Heatmap& h);
// Heat maps in a grid, `columns` per row, under a title (each drawn as heatmap() draws it).
std::string heatmap_grid(const std::string& title, const std::vector<Heatmap>& maps, int columns);

// Escapes &, <, >, " for text and attributes.
std::string escape(const std::string& s);

}  // namespace linformer::svg
