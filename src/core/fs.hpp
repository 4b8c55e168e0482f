// Files: the project's one atomic writer (every file the library writes goes through it, so that
// a crash or a full disk never leaves a half-written file under the final name), whole-file
// readers, and folder fsync.
#pragma once
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace linformer::core {

// A file written under a temporary name next to `path` (NAME.tmp.PID.N, so leftovers of a killed
// process can be recognised) and renamed onto it by commit(), after fflush and fsync; the folder is
// fsynced after the rename. Removed if never committed. A missing parent folder is an error
// (IoError naming the file), or is created with kCreateParents (the data commands' output folders).
// Errors: IoError "PATH: write failed: REASON" (REASON is strerror, e.g. "File too large").
inline constexpr bool kCreateParents = true;
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path, bool create_parents = false);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  FILE* get() const { return f_; }  // readable too (a writer may read its own output back)
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_; }
  void write(const void* data, size_t bytes);
  void write(std::string_view s) { write(s.data(), s.size()); }
  void commit();

 private:
  std::string path_, tmp_;
  FILE* f_ = nullptr;
  int err_ = 0;  // first errno of a failed write
};

// The whole of `bytes` as the file `path`, atomically.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);
// A copy of `from` as `to`, atomically (IoError naming both).
void copy_file_atomic(const std::filesystem::path& from, const std::filesystem::path& to);

// The whole file (IoError "PATH: cannot open: REASON" or "PATH: read error").
std::string read_file(const std::filesystem::path& path);
// The file parsed as JSON (IoError "PATH: invalid JSON: ..." also for numbers out of range).
nlohmann::json read_json(const std::filesystem::path& path);

// Makes a rename inside `dir` durable (best effort: some file systems refuse to fsync a folder).
void fsync_dir(const std::filesystem::path& dir);

// Whether a file name is one of AtomicFile's temporary names (NAME.tmp.PID or NAME.tmp.PID.N).
bool is_atomic_temp_name(std::string_view filename);

}  // namespace linformer::core
