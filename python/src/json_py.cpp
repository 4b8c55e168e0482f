// nlohmann::json <-> Python objects, for configs, options, metrics and evaluation results.
#include <cmath>
#include <string>

#include <fmt/format.h>

#include "common.hpp"
#include "linformer/error.hpp"

namespace linformer::python {

using json = nlohmann::json;

py::object to_python(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
    case json::value_t::discarded:
      return py::none();
    case json::value_t::boolean:
      return py::bool_(j.get<bool>());
    case json::value_t::number_integer:
      return py::int_(j.get<int64_t>());
    case json::value_t::number_unsigned:
      return py::int_(j.get<uint64_t>());
    case json::value_t::number_float:
      return py::float_(j.get<double>());
    case json::value_t::string:
      return py::str(j.get_ref<const std::string&>());
    case json::value_t::array: {
      py::list l;
      for (const json& v : j) l.append(to_python(v));
      return l;
    }
    case json::value_t::object: {
      py::dict d;
      for (auto it = j.begin(); it != j.end(); ++it) d[py::str(it.key())] = to_python(it.value());
      return d;
    }
    case json::value_t::binary:
      break;
  }
  throw Error("to_python: a binary JSON value has no Python form");
}

json from_python(py::handle obj, const std::string& what) {
  if (obj.is_none()) return nullptr;
  if (py::isinstance<py::bool_>(obj)) return obj.cast<bool>();
  // Python ints and numpy integers (anything with __index__ that is not a float).
  if (py::isinstance<py::int_>(obj) || (!py::isinstance<py::float_>(obj) && PyIndex_Check(obj.ptr()) &&
                                        !py::isinstance<py::str>(obj))) {
    const py::int_ v = py::reinterpret_steal<py::int_>(PyNumber_Index(obj.ptr()));
    if (!v) throw py::error_already_set();
    int overflow = 0;
    const long long x = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
    if (overflow > 0) {
      const unsigned long long u = PyLong_AsUnsignedLongLong(v.ptr());
      if (PyErr_Occurred()) {
        PyErr_Clear();
        throw ConfigError(fmt::format("{}: the integer {} is too large", what, py::str(obj).cast<std::string>()));
      }
      return u;
    }
    if (overflow < 0)
      throw ConfigError(fmt::format("{}: the integer {} is too small", what, py::str(obj).cast<std::string>()));
    return (int64_t)x;
  }
  if (py::isinstance<py::float_>(obj) || py::isinstance(obj, py::module_::import("numpy").attr("floating")))
    return obj.cast<double>();
  if (py::isinstance<py::str>(obj)) return obj.cast<std::string>();
  if (py::isinstance<py::dict>(obj)) {
    json j = json::object();
    for (auto item : py::reinterpret_borrow<py::dict>(obj)) {
      if (!py::isinstance<py::str>(item.first))
        throw ConfigError(fmt::format("{}: the key {} is not a str", what, py::repr(item.first).cast<std::string>()));
      const std::string key = item.first.cast<std::string>();
      j[key] = from_python(item.second, fmt::format("{}['{}']", what, key));
    }
    return j;
  }
  if (py::isinstance<py::list>(obj) || py::isinstance<py::tuple>(obj)) {
    json j = json::array();
    size_t i = 0;
    for (auto item : obj) j.push_back(from_python(item, fmt::format("{}[{}]", what, i++)));
    return j;
  }
  throw ConfigError(fmt::format("{}: a {} cannot be written as JSON (use dict, list, str, int, float, bool or None)",
                                what, py::type::of(obj).attr("__name__").cast<std::string>()));
}

}  // namespace linformer::python
