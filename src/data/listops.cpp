// ListOps (Long Range Arena): our own generator written from the published spec (PAPER.md,
// docs/tasks.md), its fixed vocabulary, and an evaluator.
#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <unordered_set>

#include <fmt/core.h>

#include "data/tasks_detail.hpp"
#include "linformer/error.hpp"
#include "linformer/tasks.hpp"

namespace linformer {

using namespace task_detail;

namespace {

constexpr const char* kOpNames[4] = {"[MIN", "[MAX", "[MED", "[SM"};

// Token codes inside the generator: 0-3 operators, 4-13 digits, 14 the closing bracket. Adding
// kListOpsFirstOp gives the vocabulary id.
constexpr uint8_t kCodeDigit = 4, kCodeClose = 14;
static_assert(kListOpsFirstOp + kCodeDigit == kListOpsFirstDigit && kListOpsFirstOp + kCodeClose == kListOpsClose);

int apply_op(int op, int* v, int n) {
  switch (op) {
    case 0: return *std::min_element(v, v + n);
    case 1: return *std::max_element(v, v + n);
    case 2: {
      std::sort(v, v + n);
      return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;  // mean of the middle two, truncated
    }
    default: {
      int s = 0;
      for (int i = 0; i < n; ++i) s += v[i];
      return s % 10;
    }
  }
}

int32_t token_id(std::string_view t) {
  if (t.size() == 1 && t[0] >= '0' && t[0] <= '9') return kListOpsFirstDigit + (t[0] - '0');
  if (t == "]") return kListOpsClose;
  for (int i = 0; i < 4; ++i)
    if (t == kOpNames[i]) return kListOpsFirstOp + i;
  return -1;
}

template <class F>
void for_each_token(std::string_view text, F&& f) {
  size_t i = 0;
  const size_t n = text.size();
  size_t k = 0;
  while (i < n) {
    while (i < n && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) ++i;
    if (i == n) break;
    size_t e = i;
    while (e < n && !(text[e] == ' ' || text[e] == '\t' || text[e] == '\n' || text[e] == '\r')) ++e;
    f(text.substr(i, e - i), ++k);
    i = e;
  }
}

struct Hash128 {
  uint64_t a, b;
  bool operator==(const Hash128& o) const { return a == o.a && b == o.b; }
};
struct Hash128Hasher {
  size_t operator()(const Hash128& h) const { return (size_t)h.a; }
};

}  // namespace

std::vector<int32_t> encode_listops(std::string_view text) {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 2 + 1);
  for_each_token(text, [&](std::string_view t, size_t k) {
    const int32_t id = token_id(t);
    if (id < 0)
      throw InputError(fmt::format("unknown ListOps token \"{}\" (token {}; known: [MIN [MAX [MED [SM 0-9 ])",
                                   std::string(t.substr(0, 40)), k));
    ids.push_back(id);
  });
  return ids;
}

std::string decode_listops(const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (i) out += ' ';
    if (id >= kListOpsFirstOp && id < kListOpsFirstDigit) out += kOpNames[id - kListOpsFirstOp];
    else if (id >= kListOpsFirstDigit && id < kListOpsClose) out += char('0' + id - kListOpsFirstDigit);
    else if (id == kListOpsClose) out += ']';
    else throw InputError(fmt::format("id {} at position {} is not a ListOps token (5..19)", id, i));
  }
  return out;
}

int listops_value(std::string_view text) {
  struct Frame {
    int op;
    std::vector<int> args;
  };
  std::vector<Frame> stack;
  int result = -1;
  for_each_token(text, [&](std::string_view t, size_t k) {
    const int32_t id = token_id(t);
    if (id < 0) throw InputError(fmt::format("unknown ListOps token \"{}\" (token {})", std::string(t.substr(0, 40)), k));
    if (result >= 0) throw InputError(fmt::format("token {} \"{}\" after the end of the expression", k, std::string(t)));
    if (id < kListOpsFirstDigit) {
      stack.push_back({id - kListOpsFirstOp, {}});
    } else if (id < kListOpsClose) {
      const int v = id - kListOpsFirstDigit;
      if (stack.empty()) result = v;
      else stack.back().args.push_back(v);
    } else {
      if (stack.empty()) throw InputError(fmt::format("token {} \"]\" closes nothing", k));
      Frame f = std::move(stack.back());
      stack.pop_back();
      if (f.args.empty()) throw InputError(fmt::format("token {} \"]\" closes an operator without arguments", k));
      const int v = apply_op(f.op, f.args.data(), (int)f.args.size());
      if (stack.empty()) result = v;
      else stack.back().args.push_back(v);
    }
  });
  if (!stack.empty()) throw InputError(fmt::format("{} operator(s) not closed with \"]\"", stack.size()));
  if (result < 0) throw InputError("empty ListOps expression");
  return result;
}

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
    const int v = apply_op(op, vals.data() + vals.size() - n, n);
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
      if (c < kCodeDigit) text += kOpNames[c];
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
