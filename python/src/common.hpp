// What the files of the extension module linformer._core share: the registration function of each
// file (module.cpp calls them in order), JSON <-> Python conversion (json_py.cpp), input checking
// (inputs.cpp) and the compute settings of a call (compute.cpp: threads, precision).
//
// Conventions of every binding: Python objects are read and checked while the GIL is held, then
// the C++ call runs with the GIL released (py::gil_scoped_release) inside a ComputeScope, and its
// results become Python objects once the GIL is back. linformer::Error and its subclasses become
// linformer.Error / ConfigError / IoError / InputError (errors.cpp).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "linformer/precision.hpp"

namespace linformer::python {

namespace py = pybind11;

// ---- registration (one per file)
void register_errors(py::module_& m);
void register_compute(py::module_& m);
void register_model(py::module_& m);
void register_tokenizer(py::module_& m);
void register_training(py::module_& m);
void register_trainable(py::module_& m);

// ---- json_py.cpp
// A JSON value as Python objects (dict, list, str, int, float, bool, None).
py::object to_python(const nlohmann::json& j);
// Python objects as JSON: dict (str keys), list/tuple, str, int, float, bool, None, numpy scalars.
// Anything else is a linformer.ConfigError naming `what` and the key path ("config['k'][0]").
nlohmann::json from_python(py::handle obj, const std::string& what);

// ---- inputs.cpp
// Token-id sequences from a list of lists of ints (or tuples, or 1-D integer arrays) or a 2-D
// integer numpy array, optionally cut by a mask of the same shape (1 = token, 0 = padding, each
// row's ones first). linformer.InputError naming `arg` (and row/column) for a wrong type, dtype,
// shape, a value outside int32, or a mask that is not of that form.
std::vector<std::vector<int32_t>> ids_from_python(py::handle ids, py::handle mask, const char* arg);
// One sequence of token ids (a list of ints or a 1-D integer array); InputError naming `arg`.
std::vector<int32_t> sequence_from_python(py::handle ids, const char* arg);
// A list (or tuple) of str; a lone str, bytes or a non-str item is an InputError naming `arg`.
std::vector<std::string> texts_from_python(py::handle texts, const char* arg);
// Whether `obj` looks like token ids rather than texts (an array, or a sequence whose first item
// is not a str).
bool looks_like_ids(py::handle obj);

// ---- compute.cpp
// The precision of a call: the call's, else the model's, else the process default
// (linformer.set_precision). Names: "float32" ("f32", "fp32") and "bf16" ("bfloat16").
MatmulPrecision precision_from_name(const std::string& name, const char* arg);
const char* precision_name(MatmulPrecision p);
MatmulPrecision default_precision();

// Held for the whole of one C++ computation, with the GIL released:
// - sets the calling thread's OpenMP thread count to linformer.set_num_threads's (OpenMP's count
//   is per thread, and Python threads start from OMP_NUM_THREADS or all cores);
// - enters the precision gate: the matrix-product precision is one process-wide setting, so
//   calls of the same precision run together and a call of the other precision waits until none
//   runs, then switches it (bf16 on a CPU without AVX512_BF16: linformer.ConfigError first).
class ComputeScope {
 public:
  explicit ComputeScope(MatmulPrecision precision);
  ~ComputeScope();
  ComputeScope(const ComputeScope&) = delete;
  ComputeScope& operator=(const ComputeScope&) = delete;
};
// Throws ConfigError when bf16 is asked for on a CPU without it (called with the GIL held, before
// a computation starts).
void check_precision_supported(MatmulPrecision p, const char* arg);

// Numpy float32 array of `shape` owning `data` (moved in: no copy). When the array is freed its
// storage goes to a small pool of buffers (compute.cpp) that recycled_buffer hands out again.
py::array_t<float> to_numpy(std::vector<float>&& data, std::vector<py::ssize_t> shape);
// A buffer of a freed result (warm memory) for about `floats` floats, or an empty vector.
std::vector<float> recycled_buffer(size_t floats);

}  // namespace linformer::python
