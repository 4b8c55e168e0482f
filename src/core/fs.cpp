// See fs.hpp.
#include "core/fs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "linformer/error.hpp"

namespace fs = std::filesystem;

namespace linformer::core {

namespace {

// Read once: umask() is the only way to read it and it sets it meanwhile, which would race with
// other threads creating files.
mode_t current_umask() {
  static const mode_t mask = [] {
    const mode_t m = ::umask(022);
    ::umask(m);
    return m;
  }();
  return mask;
}

std::atomic<uint64_t> g_temp_counter{0};

}  // namespace

AtomicFile::AtomicFile(const std::string& path, bool create_parents) : path_(path) {
  const fs::path parent = fs::path(path).parent_path();
  std::error_code ec;
  if (create_parents && !parent.empty()) fs::create_directories(parent, ec);
  if (ec) throw IoError(fmt::format("{}: cannot create folder {}: {}", path, parent.string(), ec.message()));
  int fd = -1;
  for (int attempt = 0; fd < 0 && attempt < 100; ++attempt) {  // O_EXCL: never reuse a name in use
    tmp_ = fmt::format("{}.tmp.{}.{}", path, (long)::getpid(), g_temp_counter.fetch_add(1));
    fd = ::open(tmp_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666 & ~current_umask());
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) throw IoError(fmt::format("{}: cannot create temporary file {}: {}", path, tmp_, std::strerror(errno)));
  f_ = ::fdopen(fd, "w+b");
  if (!f_) {
    ::close(fd);
    ::unlink(tmp_.c_str());
    throw IoError(fmt::format("{}: cannot open a temporary file: {}", path, std::strerror(errno)));
  }
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
}

AtomicFile::~AtomicFile() {
  if (f_) {
    std::fclose(f_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t bytes) {
  errno = 0;
  if (bytes && std::fwrite(data, 1, bytes, f_) != bytes) {
    err_ = errno ? errno : EIO;
    throw IoError(fmt::format("{}: write failed: {}", path_, std::strerror(err_)));
  }
}

void AtomicFile::commit() {
  errno = 0;
  int err = 0;
  auto check = [&](bool ok) {
    if (!ok && err == 0) err = errno ? errno : EIO;
    return ok;
  };
  bool ok = check(std::fflush(f_) == 0);
  ok = check(::fsync(fileno(f_)) == 0) && ok;
  ok = check(std::fclose(f_) == 0) && ok;
  f_ = nullptr;
  if (!ok) {
    ::unlink(tmp_.c_str());
    throw IoError(fmt::format("{}: write failed: {}", path_, std::strerror(err)));
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp_.c_str());
    throw IoError(fmt::format("{}: cannot move the new file into place: {}", path_, why));
  }
  fs::path dir = fs::path(path_).parent_path();
  fsync_dir(dir.empty() ? fs::path(".") : dir);
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  AtomicFile f(path.string());
  f.write(bytes);
  f.commit();
}

void copy_file_atomic(const fs::path& from, const fs::path& to) {
  std::string bytes;
  try {
    bytes = read_file(from);
  } catch (const IoError& e) {
    throw IoError(fmt::format("{}: cannot copy to {}: {}", from.string(), to.string(), e.what()));
  }
  write_file_atomic(to, bytes);
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError(fmt::format("{}: read error", path.string()));
  return ss.str();
}

nlohmann::json read_json(const fs::path& path) {
  const std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for numbers like 1e999
    throw IoError(fmt::format("{}: invalid JSON: {}", path.string(), e.what()));
  }
}

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
}

bool is_atomic_temp_name(std::string_view name) {
  const size_t at = name.rfind(".tmp.");
  if (at == std::string_view::npos || at == 0) return false;
  std::string_view rest = name.substr(at + 5);  // PID or PID.N
  if (rest.empty()) return false;
  int dots = 0;
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '.') {
      if (i == 0 || i + 1 == rest.size() || ++dots > 1) return false;
    } else if (rest[i] < '0' || rest[i] > '9') {
      return false;
    }
  }
  return true;
}

}  // namespace linformer::core
