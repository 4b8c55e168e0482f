// Checking and converting the inputs of the bindings: token ids (lists of lists, 2-D numpy
// arrays, masks) and texts. Every problem is a linformer.InputError naming the argument and the
// place ("ids[1][3]: 2.5 is a float, not a token id"), raised before any computation starts.
#include <climits>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "common.hpp"
#include "linformer/error.hpp"

namespace linformer::python {

namespace {

std::string type_name(py::handle obj) { return py::type::of(obj).attr("__name__").cast<std::string>(); }

// One Python int (or numpy integer) as an int32; InputError naming `where` otherwise.
int32_t int32_of(py::handle v, const std::string& where) {
  if (py::isinstance<py::bool_>(v) || py::isinstance<py::float_>(v) || py::isinstance<py::str>(v) ||
      !PyIndex_Check(v.ptr()))
    throw InputError(fmt::format("{}: {} is a {}, not an integer", where, py::repr(v).cast<std::string>(),
                                 type_name(v)));
  const py::object idx = py::reinterpret_steal<py::object>(PyNumber_Index(v.ptr()));
  if (!idx) throw py::error_already_set();
  int overflow = 0;
  const long long x = PyLong_AsLongLongAndOverflow(idx.ptr(), &overflow);
  if (overflow != 0 || x < INT32_MIN || x > INT32_MAX)
    throw InputError(fmt::format("{}: {} is outside the 32-bit integer range", where, py::str(v).cast<std::string>()));
  return (int32_t)x;
}

// A numpy array of an integer dtype (bool too when `allow_bool`) with `ndim` dimensions, as int64
// values in C order; InputError naming `arg` for another dtype or shape.
py::array_t<int64_t, py::array::c_style> int_array(const py::array& a, int ndim, const char* arg, bool allow_bool) {
  const char kind = a.dtype().kind();
  if (!(kind == 'i' || kind == 'u' || (allow_bool && kind == 'b')))
    throw InputError(fmt::format("{}: an array of dtype {} (expected an integer dtype{})", arg,
                                 py::str(a.dtype()).cast<std::string>(), allow_bool ? " or bool" : ""));
  if (a.ndim() != ndim)
    throw InputError(fmt::format("{}: a {}-D array of shape {} (expected {})", arg, a.ndim(),
                                 py::str(a.attr("shape")).cast<std::string>(),
                                 ndim == 2 ? "2-D: [batch, length]" : "1-D: [length]"));
  if (kind == 'u' && a.dtype().itemsize() == 8) {  // uint64 beyond int64 would wrap in the cast below
    const py::object too_big = py::module_::import("numpy").attr("any")(a.attr("__gt__")(py::int_(INT64_MAX)));
    if (too_big.cast<bool>()) throw InputError(fmt::format("{}: values outside the 32-bit integer range", arg));
  }
  return py::array_t<int64_t, py::array::c_style>::ensure(a.attr("astype")("int64"));
}

// The rows of a 2-D integer array (or a list of rows) as int32 sequences.
std::vector<std::vector<int32_t>> rows_of(py::handle obj, const char* arg, bool is_mask) {
  std::vector<std::vector<int32_t>> out;
  if (py::isinstance<py::array>(obj)) {
    const auto a = int_array(py::reinterpret_borrow<py::array>(obj), 2, arg, is_mask);
    const py::ssize_t B = a.shape(0), n = a.shape(1);
    const int64_t* p = a.data();
    out.resize((size_t)B);
    for (py::ssize_t b = 0; b < B; ++b) {
      out[b].resize((size_t)n);
      for (py::ssize_t t = 0; t < n; ++t) {
        const int64_t v = p[b * n + t];
        if (v < INT32_MIN || v > INT32_MAX)
          throw InputError(fmt::format("{}[{}][{}]: {} is outside the 32-bit integer range", arg, b, t, v));
        out[b][t] = (int32_t)v;
      }
    }
    return out;
  }
  if (py::isinstance<py::str>(obj) || py::isinstance<py::bytes>(obj) || !py::isinstance<py::sequence>(obj))
    throw InputError(fmt::format("{}: a {} (expected a list of lists of {} or a 2-D numpy array)", arg, type_name(obj),
                                 is_mask ? "0/1" : "token ids"));
  const py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  out.resize(seq.size());
  for (size_t b = 0; b < seq.size(); ++b) {
    const py::object row = seq[b];
    const std::string where = fmt::format("{}[{}]", arg, b);
    if (py::isinstance<py::array>(row)) {
      const auto a = int_array(py::reinterpret_borrow<py::array>(row), 1, where.c_str(), is_mask);
      for (py::ssize_t t = 0; t < a.shape(0); ++t) {
        const int64_t v = a.data()[t];
        if (v < INT32_MIN || v > INT32_MAX)
          throw InputError(fmt::format("{}[{}]: {} is outside the 32-bit integer range", where, t, v));
        out[b].push_back((int32_t)v);
      }
      continue;
    }
    if (py::isinstance<py::str>(row) || !py::isinstance<py::sequence>(row))
      throw InputError(fmt::format("{}: a {} (expected a list of {})", where, type_name(row),
                                   is_mask ? "0/1" : "token ids"));
    const py::sequence r = py::reinterpret_borrow<py::sequence>(row);
    out[b].reserve(r.size());
    for (size_t t = 0; t < r.size(); ++t) {
      const py::object v = r[t];
      if (is_mask && py::isinstance<py::bool_>(v)) {
        out[b].push_back(v.cast<bool>() ? 1 : 0);
        continue;
      }
      out[b].push_back(int32_of(v, fmt::format("{}[{}]", where, t)));
    }
  }
  return out;
}

}  // namespace

std::vector<std::vector<int32_t>> ids_from_python(py::handle ids, py::handle mask, const char* arg) {
  std::vector<std::vector<int32_t>> seqs = rows_of(ids, arg, false);
  if (mask.is_none()) return seqs;
  const std::vector<std::vector<int32_t>> m = rows_of(mask, "mask", true);
  if (m.size() != seqs.size())
    throw InputError(fmt::format("mask: {} rows but {} has {}", m.size(), arg, seqs.size()));
  for (size_t b = 0; b < seqs.size(); ++b) {
    if (m[b].size() != seqs[b].size())
      throw InputError(fmt::format("mask[{}]: {} values but {}[{}] has {}", b, m[b].size(), arg, b, seqs[b].size()));
    size_t len = 0;
    while (len < m[b].size() && m[b][len] == 1) ++len;
    for (size_t t = len; t < m[b].size(); ++t)
      if (m[b][t] != 0)
        throw InputError(fmt::format("mask[{}][{}]: {} (a mask holds 1 for each token, then 0 for the padding after "
                                     "them)",
                                     b, t, m[b][t]));
    seqs[b].resize(len);
  }
  return seqs;
}

std::vector<int32_t> sequence_from_python(py::handle ids, const char* arg) {
  if (py::isinstance<py::array>(ids)) {
    const auto a = int_array(py::reinterpret_borrow<py::array>(ids), 1, arg, false);
    std::vector<int32_t> out;
    for (py::ssize_t t = 0; t < a.shape(0); ++t) {
      const int64_t v = a.data()[t];
      if (v < INT32_MIN || v > INT32_MAX)
        throw InputError(fmt::format("{}[{}]: {} is outside the 32-bit integer range", arg, t, v));
      out.push_back((int32_t)v);
    }
    return out;
  }
  if (py::isinstance<py::str>(ids) || !py::isinstance<py::sequence>(ids))
    throw InputError(fmt::format("{}: a {} (expected a list of token ids)", arg, type_name(ids)));
  const py::sequence s = py::reinterpret_borrow<py::sequence>(ids);
  std::vector<int32_t> out;
  out.reserve(s.size());
  for (size_t t = 0; t < s.size(); ++t) out.push_back(int32_of(s[t], fmt::format("{}[{}]", arg, t)));
  return out;
}

std::vector<std::string> texts_from_python(py::handle texts, const char* arg) {
  if (py::isinstance<py::str>(texts))
    throw InputError(fmt::format("{}: a str (expected a list of texts: pass [text] for one)", arg));
  if (py::isinstance<py::bytes>(texts) || !py::isinstance<py::sequence>(texts))
    throw InputError(fmt::format("{}: a {} (expected a list of str)", arg, type_name(texts)));
  const py::sequence s = py::reinterpret_borrow<py::sequence>(texts);
  std::vector<std::string> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const py::object t = s[i];
    if (!py::isinstance<py::str>(t))
      throw InputError(fmt::format("{}[{}]: a {} (expected a str)", arg, i, type_name(t)));
    out.push_back(t.cast<std::string>());
  }
  return out;
}

bool looks_like_ids(py::handle obj) {
  if (py::isinstance<py::array>(obj)) return true;
  if (py::isinstance<py::str>(obj) || !py::isinstance<py::sequence>(obj)) return false;
  const py::sequence s = py::reinterpret_borrow<py::sequence>(obj);
  return s.size() > 0 && !py::isinstance<py::str>(s[0]);
}

}  // namespace linformer::python
