// Whole files, as the library writes and reads them: the atomic writer (the file appears under its
// final name complete or not at all, even after a crash or a full disk) and the whole-file reader.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>

namespace linformer {

// `bytes` as the file `path`: written under a temporary name beside it, flushed, fsynced and
// renamed onto it. IoError "PATH: write failed: REASON" (e.g. a missing folder, a full disk).
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);
// The whole file. IoError "PATH: cannot open: REASON" or "PATH: read error".
std::string read_file(const std::filesystem::path& path);

}  // namespace linformer
