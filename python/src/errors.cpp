// The exceptions of the package: linformer.Error (the base of all, an Exception), ConfigError (and
// ValueError), IoError (and OSError), InputError (and ValueError), each carrying the C++ message,
// and the translation of the library's exceptions (linformer/error.hpp) into them. The extra
// builtin bases let callers catch them as the builtin errors they are (`except OSError`).
#include <filesystem>
#include <string>

#include "common.hpp"
#include "linformer/error.hpp"

namespace linformer::python {

namespace {

PyObject* g_error = nullptr;
PyObject* g_config_error = nullptr;
PyObject* g_io_error = nullptr;
PyObject* g_input_error = nullptr;

// A new exception class linformer.NAME with these bases, added to the module.
PyObject* add_exception(py::module_& m, const char* name, const char* doc, py::tuple bases) {
  const std::string qualified = std::string("linformer.") + name;
  PyObject* type = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases.ptr(), nullptr);
  if (!type) throw py::error_already_set();
  m.add_object(name, py::handle(type));  // the module keeps a reference; so does g_* (never freed)
  return type;
}

}  // namespace

void register_errors(py::module_& m) {
  g_error = add_exception(m, "Error", "Base class of every error the linformer library raises.",
                          py::make_tuple(py::handle(PyExc_Exception)));
  g_config_error = add_exception(
      m, "ConfigError",
      "A configuration value or option is invalid, or the model cannot answer the request (the message names the "
      "field and value).",
      py::make_tuple(py::handle(g_error), py::handle(PyExc_ValueError)));
  g_io_error = add_exception(m, "IoError",
                             "A file could not be read or written, or its content is malformed (the message names the "
                             "file).",
                             py::make_tuple(py::handle(g_error), py::handle(PyExc_OSError)));
  g_input_error = add_exception(
      m, "InputError",
      "Input data is inconsistent with the model: wrong array type or shape, token ids outside the vocabulary, a "
      "sequence longer than max_len without truncate, text that is not UTF-8 (the message names the argument).",
      py::make_tuple(py::handle(g_error), py::handle(PyExc_ValueError)));

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InputError& e) {
      PyErr_SetString(g_input_error, e.what());
    } catch (const ConfigError& e) {
      PyErr_SetString(g_config_error, e.what());
    } catch (const IoError& e) {
      PyErr_SetString(g_io_error, e.what());
    } catch (const Error& e) {
      PyErr_SetString(g_error, e.what());
    } catch (const std::filesystem::filesystem_error& e) {
      PyErr_SetString(g_io_error, e.what());
    }
  });
}

}  // namespace linformer::python
