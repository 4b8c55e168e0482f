// Loads a model (a model file or a run folder) once through linformer's inference API, runs it on
// the token ids of a text file (one sequence per line, as `linformer forward --ids` reads them) and
// prints the hidden states: one line per real token, "b t v0 v1 ... v(d-1)" with every value
// written exactly (%.9g round-trips a float).
//
//   hidden_states MODEL IDS.txt
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "linformer/error.hpp"
#include "linformer/inference.hpp"
#include "linformer/version.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL IDS.txt\n", argv[0]);
    return 2;
  }
  try {
    std::vector<std::vector<int32_t>> ids;
    std::ifstream in(argv[2]);
    if (!in) throw linformer::IoError(std::string(argv[2]) + ": cannot open");
    for (std::string line; std::getline(in, line);) {
      std::istringstream words(line);
      std::vector<int32_t> seq;
      for (int32_t id; words >> id;) seq.push_back(id);
      if (!seq.empty()) ids.push_back(seq);
    }
    const linformer::InferenceModel model = linformer::InferenceModel::load(argv[1]);
    linformer::ForwardOptions opt;
    opt.logits = false;
    const linformer::ForwardResult r = model.forward(ids, opt);
    std::printf("# linformer %s; B=%d n=%d d_model=%d\n", linformer::kVersion, r.B, r.n, r.d_model);
    for (int b = 0; b < r.B; ++b)
      for (int t = 0; t < r.n; ++t) {
        if (!r.mask[(size_t)b * r.n + t]) continue;
        std::printf("%d %d", b, t);
        const float* h = r.hidden.data() + ((size_t)b * r.n + t) * r.d_model;
        for (int c = 0; c < r.d_model; ++c) std::printf(" %.9g", h[c]);
        std::printf("\n");
      }
  } catch (const linformer::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
