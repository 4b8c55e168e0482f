// ListOps (Long Range Arena): its fixed vocabulary and an evaluator. The generator of the dataset
// is src/datasets/listops.cpp.
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

namespace task_detail {

int listops_apply(int op, int* v, int n) {
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

}  // namespace task_detail

namespace {

int32_t token_id(std::string_view t) {
  if (t.size() == 1 && t[0] >= '0' && t[0] <= '9') return kListOpsFirstDigit + (t[0] - '0');
  if (t == "]") return kListOpsClose;
  for (int i = 0; i < 4; ++i)
    if (t == kListOpsOpNames[i]) return kListOpsFirstOp + i;
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
    if (id >= kListOpsFirstOp && id < kListOpsFirstDigit) out += kListOpsOpNames[id - kListOpsFirstOp];
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
      const int v = listops_apply(f.op, f.args.data(), (int)f.args.size());
      if (stack.empty()) result = v;
      else stack.back().args.push_back(v);
    }
  });
  if (!stack.empty()) throw InputError(fmt::format("{} operator(s) not closed with \"]\"", stack.size()));
  if (result < 0) throw InputError("empty ListOps expression");
  return result;
}


}  // namespace linformer
