// The extension module linformer._core: the package's compiled part (python/linformer/__init__.py
// re-exports it). Each file registers one part of the API; errors first, so that the exception
// classes exist before anything that could raise them.
#include "common.hpp"
#include "linformer/version.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "Linformer and Transformer encoders on the CPU: inference, tokenizers and training (docs/python.md).";
  m.attr("__version__") = linformer::kVersion;
  linformer::python::register_errors(m);
  linformer::python::register_compute(m);
  linformer::python::register_model(m);
  linformer::python::register_tokenizer(m);
  linformer::python::register_training(m);
  linformer::python::register_trainable(m);
}
