// The unigram baseline of masked-language-model evaluation (include/linformer/data.hpp).
#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/core.h>

#include "linformer/data.hpp"
#include "linformer/error.hpp"

namespace linformer {

UnigramBaseline::UnigramBaseline(const TokenFile& train, int vocab_size) {
  if (vocab_size <= 0) throw ConfigError(fmt::format("unigram baseline: vocab_size {} must be positive", vocab_size));
  if (train.max_id() >= vocab_size)
    throw InputError(fmt::format("{}: token id {} is outside the vocabulary ({})", train.path(), train.max_id(),
                                 vocab_size));
  std::vector<uint64_t> counts((size_t)vocab_size, 0);
  const int32_t* t = train.tokens();
  for (size_t i = 0; i < train.num_tokens(); ++i) ++counts[(size_t)t[i]];
  const double total = (double)train.num_tokens() + vocab_size;  // add-one smoothing
  log_prob_.resize((size_t)vocab_size);
  for (int v = 0; v < vocab_size; ++v) log_prob_[(size_t)v] = std::log((counts[(size_t)v] + 1.0) / total);
  std::vector<int> order((size_t)vocab_size);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return counts[(size_t)a] > counts[(size_t)b]; });
  rank_.resize((size_t)vocab_size);
  for (int r = 0; r < vocab_size; ++r) rank_[(size_t)order[(size_t)r]] = r;
}

}  // namespace linformer
