// Memory-mapped, validated reading of token files (layout in docs/data.md and token_file.hpp).
#include "data/token_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#include "linformer/data.hpp"
#include "linformer/error.hpp"

static_assert(std::endian::native == std::endian::little, "token files are little-endian; big-endian hosts unsupported");

namespace linformer {

using data_detail::TokenHeader;

TokenFile::TokenFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(fmt::format("{}: cannot open token file: {}", path, std::strerror(errno)));
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw IoError(fmt::format("{}: cannot stat: {}", path, std::strerror(errno)));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < sizeof(TokenHeader)) {
    ::close(fd);
    throw IoError(fmt::format("{}: not a token file ({} bytes, shorter than the 64-byte header)", path, size));
  }
  map_ = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw IoError(fmt::format("{}: cannot map: {}", path, std::strerror(errno)));
  }
  map_size_ = size;
  ::madvise(map_, map_size_, MADV_SEQUENTIAL);
  try {
    TokenHeader h;
    std::memcpy(&h, map_, sizeof h);
    if (std::memcmp(h.magic, data_detail::kTokenMagic, 8) != 0)
      throw IoError(fmt::format("{}: not a token file (bad magic; expected \"LFTOKENS\")", path));
    if (h.version != data_detail::kTokenVersion)
      throw IoError(fmt::format("{}: token file version {} is not supported (expected {})", path, h.version,
                                data_detail::kTokenVersion));
    if (h.dtype != data_detail::kDtypeInt32)
      throw IoError(fmt::format("{}: token dtype code {} is not supported (expected 1 = int32)", path, h.dtype));
    // Sizes: guard against overflow before computing the expected file size.
    if (h.num_tokens > (size / 4) || h.num_sentences > (size / 8))
      throw IoError(fmt::format("{}: counts (tokens {}, sentences {}) are inconsistent with the file size {} "
                                "(truncated or corrupt)",
                                path, h.num_tokens, h.num_sentences, size));
    const uint64_t ends_at = data_detail::token_ends_offset(h.num_tokens);
    const uint64_t expected = ends_at + 8 * h.num_sentences;
    if (expected != size)
      throw IoError(fmt::format("{}: file is {} bytes but its header (tokens {}, sentences {}) implies {}{}", path,
                                size, h.num_tokens, h.num_sentences, expected,
                                size < expected ? " (truncated)" : ""));
    if ((h.num_tokens == 0) != (h.num_sentences == 0))
      throw IoError(fmt::format("{}: {} tokens in {} sentences is inconsistent", path, h.num_tokens, h.num_sentences));
    if (h.num_documents > h.num_sentences)
      throw IoError(fmt::format("{}: {} documents but only {} sentences", path, h.num_documents, h.num_sentences));
    const auto* base = static_cast<const char*>(map_);
    tokens_ = reinterpret_cast<const int32_t*>(base + sizeof(TokenHeader));
    sentence_ends_ = reinterpret_cast<const uint64_t*>(base + ends_at);
    num_tokens_ = h.num_tokens;
    num_sentences_ = h.num_sentences;

    uint64_t prev = 0;
    for (size_t s = 0; s < num_sentences_; ++s) {
      if (sentence_ends_[s] <= prev)
        throw IoError(fmt::format("{}: sentence end offsets are not ascending (sentence {} ends at {}, after {})", path,
                                  s, sentence_ends_[s], prev));
      prev = sentence_ends_[s];
    }
    if (num_sentences_ && prev != num_tokens_)
      throw IoError(fmt::format("{}: the last sentence ends at {}, not at the token count {}", path, prev, num_tokens_));
    int32_t mx = -1;
    for (size_t i = 0; i < num_tokens_; ++i) {
      const int32_t t = tokens_[i];
      if (t < 0 || t > h.max_id)
        throw IoError(fmt::format("{}: token {} has id {}, outside [0, {}] (the header's max_id)", path, i, t,
                                  h.max_id));
      mx = std::max(mx, t);
    }
    max_id_ = mx;
  } catch (...) {
    ::munmap(map_, map_size_);
    map_ = nullptr;
    throw;
  }
}

TokenFile::~TokenFile() {
  if (map_) ::munmap(map_, map_size_);
}

}  // namespace linformer
