// Typed exceptions thrown by the library. The CLI prints what() and exits non-zero;
// library code never calls exit().
#pragma once
#include <stdexcept>
#include <string>

namespace linformer {

// Base class: every error the library raises derives from this.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A configuration value is invalid (the message names the field and value).
struct ConfigError : Error {
  using Error::Error;
};
// A file could not be read or written, or its content is malformed (names the file).
struct IoError : Error {
  using Error::Error;
};
// Input data (token ids, batch shapes) is inconsistent with the model.
struct InputError : Error {
  using Error::Error;
};

}  // namespace linformer
