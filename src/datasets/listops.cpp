// ListOps (Long Range Arena): our own generator written from the published spec (PAPER.md,
// docs/tasks.md), and the task folder it writes.
#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <unordered_set>

#include <fmt/core.h>

#include "data/tasks_detail.hpp"
#include "linformer/datasets.hpp"
#include "linformer/error.hpp"

namespace linformer {

using namespace task_detail;

namespace {

constexpr uint8_t kCodeDigit = kListOpsCodeDigit, kCodeClose = kListOpsCodeClose;

struct Hash128 {
  uint64_t a, b;
  bool operator==(const Hash128& o) const { return a == o.a && b == o.b; }
};
struct Hash128Hasher {
  size_t operator()(const Hash128& h) const { return (size_t)h.a; }
};

}  // namespace

// ------------------------------------------------------------------------------------------------
// generator

struct ListOpsGenerator::Impl {
  ListOpsOptions opt;
  std::mt19937_64 rng;
  ListOpsStats stats;
  std::unordered_set<Hash128, Hash128Hasher> seen;
  std::vector<uint8_t> toks;               // the tree being drawn (token codes)
  std::vector<std::vector<int>> values;    // children's values, per depth
  uint64_t ops[4];
  int depth_seen = 0;
  bool aborted = false;

  // Uniform integer in [0, n): rejection, no modulo bias, no std:: distribution (their output is
  // implementation-defined; ours is the same on every machine).
  uint32_t below(uint32_t n) {
    const uint64_t threshold = (0 - (uint64_t)n) % n;  // 2^64 mod n
    for (;;) {
      const uint64_t x = rng();
      if (x >= threshold) return (uint32_t)(x % n);
    }
  }
  double uniform() { return (double)(rng() >> 11) * 0x1.0p-53; }  // [0, 1)

  // Draws a subtree at `depth` (root: 1) into toks; returns its value. Sets `aborted` (and stops
  // drawing) as soon as the tree reaches max_len tokens: it would be rejected anyway, and the
  // trees that are kept have exactly the distribution of the full process.
  int draw(int depth) {
    depth_seen = std::max(depth_seen, depth);
    const bool leaf = depth >= opt.max_depth || uniform() < opt.leaf_prob;
    if (leaf) {
      const int v = (int)below(10);
      toks.push_back((uint8_t)(kCodeDigit + v));
      if (toks.size() >= (size_t)opt.max_len) aborted = true;
      return v;
    }
    const int n = 2 + (int)below((uint32_t)(opt.max_args - 1));  // randint(2, max_args), inclusive
    const int op = (int)below(4);
    ++ops[op];
    toks.push_back((uint8_t)op);
    for (int i = 0; i < n && !aborted; ++i) {
      const int v = draw(depth + 1);
      values[depth].push_back(v);
    }
    if (aborted) return 0;
    std::vector<int>& vals = values[depth];
    const int v = listops_apply(op, vals.data() + vals.size() - n, n);
    vals.resize(vals.size() - n);
    toks.push_back(kCodeClose);
    if (toks.size() >= (size_t)opt.max_len) aborted = true;
    return v;
  }
};

ListOpsGenerator::ListOpsGenerator(const ListOpsOptions& opt) : impl_(std::make_unique<Impl>()) {
  if (opt.max_depth < 1 || opt.max_depth > 64)
    throw ConfigError(fmt::format("listops: max_depth {} must be in [1, 64]", opt.max_depth));
  if (opt.max_args < 2 || opt.max_args > 1000)
    throw ConfigError(fmt::format("listops: max_args {} must be in [2, 1000]", opt.max_args));
  if (!(opt.leaf_prob >= 0 && opt.leaf_prob <= 1))
    throw ConfigError(fmt::format("listops: leaf_prob {} must be in [0, 1]", opt.leaf_prob));
  if (opt.min_len < 0 || opt.max_len < opt.min_len + 2)
    throw ConfigError(fmt::format("listops: no length fits min_len {} < length < max_len {}", opt.min_len, opt.max_len));
  impl_->opt = opt;
  impl_->rng.seed(opt.seed);
  impl_->values.resize((size_t)opt.max_depth + 2);
  impl_->toks.reserve((size_t)opt.max_len + 1);
}

ListOpsGenerator::~ListOpsGenerator() = default;  // here, where Impl is complete

const ListOpsStats& ListOpsGenerator::stats() const { return impl_->stats; }

void ListOpsGenerator::next(std::string& text, int& value, int& length, int& depth) {
  Impl& m = *impl_;
  for (uint64_t tries = 0;; ++tries) {
    if (tries == 100000000ULL)
      throw Error(fmt::format("listops: no new tree with {} < length < {} in 10^8 attempts (after {} trees); "
                              "widen the length bounds or ask for fewer trees",
                              m.opt.min_len, m.opt.max_len, m.seen.size()));
    ++m.stats.attempts;
    m.toks.clear();
    for (auto& v : m.values) v.clear();
    std::fill(std::begin(m.ops), std::end(m.ops), 0);
    m.depth_seen = 0;
    m.aborted = false;
    const int v = m.draw(1);
    if (m.aborted) {
      ++m.stats.too_long;
      continue;
    }
    const int len = (int)m.toks.size();
    if (len <= m.opt.min_len) {
      ++m.stats.too_short;
      continue;
    }
    const std::string_view bytes(reinterpret_cast<const char*>(m.toks.data()), m.toks.size());
    if (!m.seen.insert({core::hash_string(bytes, 11), core::hash_string(bytes, 12)}).second) {
      ++m.stats.duplicates;
      continue;
    }
    for (int i = 0; i < 4; ++i) m.stats.op_count[i] += m.ops[i];
    m.stats.max_depth_seen = std::max(m.stats.max_depth_seen, m.depth_seen);
    text.clear();
    text.reserve(m.toks.size() * 3);
    for (size_t i = 0; i < m.toks.size(); ++i) {
      if (i) text += ' ';
      const uint8_t c = m.toks[i];
      if (c < kCodeDigit) text += kListOpsOpNames[c];
      else if (c < kCodeClose) text += char('0' + c - kCodeDigit);
      else text += ']';
    }
    value = v;
    length = len;
    depth = m.depth_seen;
    return;
  }
}

ListOpsStats prepare_listops(const std::string& out_dir, const ListOpsOptions& opt) {
  if (opt.train == 0) throw ConfigError("listops: the training split needs at least one tree");
  ListOpsGenerator gen(opt);
  TaskInfo info;
  info.name = "listops";
  for (int v = 0; v < 10; ++v) info.labels.push_back(std::to_string(v));
  info.tokenizer = TaskTokenizer::ListOps;
  info.source = "generated by `linformer task listops` (our own generator from the LRA ListOps spec, "
                "Tay et al. 2020, data/listops.py)";
  info.licence = "generated data, no licence restrictions";
  TaskWriter w(out_dir, info, false);
  const size_t counts[3] = {opt.train, opt.valid, opt.test};
  nlohmann::json split_stats = nlohmann::json::object();
  std::string text;
  int value = 0, length = 0, depth = 0;
  for (int s = 0; s < 3; ++s) {
    double sum = 0;
    int lo = 0, hi = 0;
    std::vector<size_t> per_label(10, 0);
    for (size_t i = 0; i < counts[s]; ++i) {
      gen.next(text, value, length, depth);
      w.add(s, value, text);
      sum += length;
      lo = i ? std::min(lo, length) : length;
      hi = std::max(hi, length);
      ++per_label[value];
    }
    split_stats[kSplitNames[s]] = {{"examples", counts[s]},
                                   {"mean_length", counts[s] ? std::round(sum / (double)counts[s] * 10) / 10 : 0.0},
                                   {"min_length", lo},
                                   {"max_length", hi},
                                   {"per_label", per_label}};
  }
  const ListOpsStats& st = gen.stats();
  nlohmann::json extra;
  extra["generator"] = {{"seed", opt.seed},         {"min_len_exclusive", opt.min_len},
                        {"max_len_exclusive", opt.max_len}, {"max_depth", opt.max_depth},
                        {"max_args", opt.max_args}, {"leaf_prob", opt.leaf_prob},
                        {"rng", "std::mt19937_64"}, {"length", "operators + digits + closing brackets"}};
  extra["stats"] = split_stats;
  extra["stats"]["attempts"] = st.attempts;
  extra["stats"]["rejected_too_short"] = st.too_short;
  extra["stats"]["rejected_too_long"] = st.too_long;
  extra["stats"]["rejected_duplicate"] = st.duplicates;
  extra["stats"]["operators"] = {{"MIN", st.op_count[0]}, {"MAX", st.op_count[1]}, {"MED", st.op_count[2]},
                                 {"SM", st.op_count[3]}};
  extra["stats"]["max_depth"] = st.max_depth_seen;
  w.commit(extra);
  return st;
}

}  // namespace linformer
