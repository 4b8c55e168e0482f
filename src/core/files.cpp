// include/linformer/files.hpp: the public whole-file writer and reader, forwarding to core/fs.hpp.
#include "linformer/files.hpp"

#include "core/fs.hpp"

namespace linformer {

void write_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
  core::write_file_atomic(path, bytes);
}
std::string read_file(const std::filesystem::path& path) { return core::read_file(path); }

}  // namespace linformer
