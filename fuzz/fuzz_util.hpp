// Helpers shared by the libFuzzer targets (fuzz/README in docs/reliability.md).
//
// The parsers under test read files by path, so each target writes its input to a scratch file
// in a per-process folder (on /dev/shm when it exists: no disk traffic, fsync is free) and calls
// the real entry point on it. Errors the library documents (linformer::Error and its subclasses)
// are the expected outcome for malformed input and are swallowed; anything else escapes and
// libFuzzer reports it as a crash (an uncaught exception aborts), as it does for sanitizer reports.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>

namespace fuzz {

// The scratch folder of this process, created on first use and removed at exit.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    std::string base = "/dev/shm";
    if (::access(base.c_str(), W_OK) != 0) {
      const char* t = std::getenv("TMPDIR");
      base = t && *t ? t : "/tmp";
    }
    std::string tmpl = base + "/linformer-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    static std::string keep = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
    });
    return tmpl;
  }();
  return dir;
}

// Writes bytes to scratch_dir()/name (replacing it); returns the path. Aborts on I/O failure
// (that is the harness failing, not the parser).
inline std::string write_file(const std::string& name, std::string_view bytes) {
  const std::string path = scratch_dir() + "/" + name;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror(path.c_str());
    std::abort();
  }
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) {
      std::perror(path.c_str());
      std::abort();
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return path;
}

// Called for input the library rejected (an expected outcome); prints the message when the
// environment variable FUZZ_VERBOSE is set, to see why a seed or a reproducer is rejected.
inline void rejected(const std::exception& e) {
  static const bool verbose = std::getenv("FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "rejected: %s\n", e.what());
}

inline void remove_file(const std::string& name) { ::unlink((scratch_dir() + "/" + name).c_str()); }

// A property the target checks on accepted input; failing it is a bug, reported as a crash.
#define FUZZ_CHECK(cond)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

}  // namespace fuzz
