// The library's version and the versions of the files it writes. CMakeLists.txt reads the
// numbers from here (one place), for the shared library's SONAME, the CMake package and the
// pkg-config file; `linformer --version` prints them.
#pragma once

#define LINFORMER_VERSION_MAJOR 0
#define LINFORMER_VERSION_MINOR 2
#define LINFORMER_VERSION_PATCH 0

namespace linformer {

inline constexpr const char* kVersion = "0.2.0";
// Model files (docs/format.md): the "format_version" metadata value written and accepted.
inline constexpr const char* kModelFileFormatVersion = "1";

}  // namespace linformer
