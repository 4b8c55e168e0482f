// The safetensors format: u64 little-endian header length N, N bytes of JSON, then raw data.
// Reading validates everything before trusting any size (docs/format.md).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "linformer/checkpoint.hpp"
#include "linformer/error.hpp"

using json = nlohmann::json;

namespace linformer {

namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // 100 MB: far above any real header

size_t dtype_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  return 0;
}

}  // namespace

const NamedTensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Header in the given order (nlohmann::ordered_json keeps insertion order).
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::set<std::string> names;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__" || !names.insert(t.name).second)
      throw IoError(fmt::format("{}: duplicate or reserved tensor name '{}'", path, t.name));
    size_t es = dtype_size(t.dtype);
    if (es == 0) throw IoError(fmt::format("{}: tensor '{}' has unsupported dtype '{}'", path, t.name, t.dtype));
    uint64_t numel = 1;
    for (int64_t s : t.shape) numel *= (uint64_t)s;
    if (numel * es != t.bytes.size())
      throw IoError(fmt::format("{}: tensor '{}' has {} bytes, its shape needs {}", path, t.name, t.bytes.size(),
                                numel * es));
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h.push_back(' ');

  namespace fs = std::filesystem;
  const std::string tmp = fmt::format("{}.tmp.{}", path, getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw IoError(fmt::format("{}: cannot create file: {}", tmp, std::strerror(errno)));
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = (uint8_t)((uint64_t)h.size() >> (8 * i));
  bool ok = std::fwrite(len, 1, 8, f) == 8 && std::fwrite(h.data(), 1, h.size(), f) == h.size();
  for (const auto& t : tensors)
    ok = ok && (t.bytes.empty() || std::fwrite(t.bytes.data(), 1, t.bytes.size(), f) == t.bytes.size());
  ok = std::fflush(f) == 0 && ok;
  ok = fsync(fileno(f)) == 0 && ok;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    throw IoError(fmt::format("{}: write failed (disk full?)", path));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw IoError(fmt::format("{}: cannot move the new file into place: {}", path, why));
  }
}

SafetensorsFile read_safetensors(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw IoError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct Closer {
    FILE* f;
    ~Closer() { std::fclose(f); }
  } closer{f};
  if (std::fseek(f, 0, SEEK_END) != 0) throw IoError(fmt::format("{}: cannot seek", path));
  const long file_size_l = std::ftell(f);
  if (file_size_l < 0) throw IoError(fmt::format("{}: cannot tell size", path));
  const uint64_t file_size = (uint64_t)file_size_l;
  std::rewind(f);
  if (file_size < 8) throw IoError(fmt::format("{}: file is {} bytes, too short for a safetensors header", path, file_size));
  uint8_t len[8];
  if (std::fread(len, 1, 8, f) != 8) throw IoError(fmt::format("{}: cannot read the header length", path));
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= (uint64_t)len[i] << (8 * i);
  if (hlen > kMaxHeader) throw IoError(fmt::format("{}: header length {} is absurd (limit {})", path, hlen, kMaxHeader));
  if (hlen > file_size - 8)
    throw IoError(fmt::format("{}: header length {} runs past the end of the file ({} bytes): truncated?", path, hlen,
                              file_size));
  std::string h(hlen, '\0');
  if (std::fread(h.data(), 1, hlen, f) != hlen) throw IoError(fmt::format("{}: cannot read the header", path));

  // Parse, rejecting duplicate keys (nlohmann would silently keep the last one).
  std::vector<std::set<std::string>> open_objects;  // keys seen in each object being parsed
  std::string duplicate;
  json header;
  try {
    header = json::parse(h, [&](int, json::parse_event_t ev, json& parsed) {
      if (ev == json::parse_event_t::object_start) {
        open_objects.emplace_back();
      } else if (ev == json::parse_event_t::object_end) {
        if (!open_objects.empty()) open_objects.pop_back();
      } else if (ev == json::parse_event_t::key && !open_objects.empty()) {
        if (!open_objects.back().insert(parsed.get<std::string>()).second && duplicate.empty())
          duplicate = parsed.get<std::string>();
      }
      return true;
    });
  } catch (const json::exception& e) {
    throw IoError(fmt::format("{}: header is not valid JSON: {}", path, e.what()));
  }
  if (!duplicate.empty()) throw IoError(fmt::format("{}: header names '{}' twice", path, duplicate));
  if (!header.is_object()) throw IoError(fmt::format("{}: header is not a JSON object", path));

  const uint64_t data_start = 8 + hlen, data_size = file_size - data_start;
  SafetensorsFile out;
  struct Range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw IoError(fmt::format("{}: __metadata__ is not an object", path));
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          throw IoError(fmt::format("{}: metadata value of '{}' is not a string", path, m.key()));
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& why) { return IoError(fmt::format("{}: tensor '{}': {}", path, name, why)); };
    if (!v.is_object()) throw bad("entry is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) throw bad("missing or invalid 'dtype'");
    if (!v.contains("shape") || !v["shape"].is_array()) throw bad("missing or invalid 'shape'");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      throw bad("missing or invalid 'data_offsets'");
    NamedTensor t;
    t.name = name;
    t.dtype = v["dtype"].get<std::string>();
    const size_t es = dtype_size(t.dtype);
    if (es == 0) throw bad(fmt::format("unsupported dtype '{}' (this tool reads F32 and I32)", t.dtype));
    uint64_t numel = 1;
    for (const json& s : v["shape"]) {
      if (!s.is_number_unsigned()) throw bad(fmt::format("shape entry {} is not a non-negative integer", s.dump()));
      const uint64_t dim = s.get<uint64_t>();
      if (dim != 0 && numel > data_size / dim) throw bad("shape is larger than the file");
      numel *= dim;
      t.shape.push_back((int64_t)dim);
    }
    const json& off = v["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned()) throw bad("data_offsets are not integers");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > data_size)
      throw bad(fmt::format("data_offsets [{}, {}] out of range (data is {} bytes): truncated?", b, e, data_size));
    if (e - b != numel * es)
      throw bad(fmt::format("data_offsets cover {} bytes, shape and dtype need {}", e - b, numel * es));
    ranges.push_back({b, e, name});
    out.tensors.push_back(std::move(t));
  }
  // Ranges must tile the data exactly: no overlap, no gap, nothing after the last one.
  std::vector<size_t> order(ranges.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a].begin < ranges[b].begin; });
  uint64_t pos = 0;
  for (size_t i : order) {
    if (ranges[i].begin != pos)
      throw IoError(fmt::format("{}: tensor '{}' starts at {} but the previous data ends at {} (overlap or gap)", path,
                                ranges[i].name, ranges[i].begin, pos));
    pos = ranges[i].end;
  }
  if (pos != data_size)
    throw IoError(fmt::format("{}: {} bytes of data but the tensors cover {}", path, data_size, pos));
  // Read the data.
  for (size_t i = 0; i < ranges.size(); ++i) {
    NamedTensor& t = out.tensors[i];
    t.bytes.resize(ranges[i].end - ranges[i].begin);
    if (std::fseek(f, (long)(data_start + ranges[i].begin), SEEK_SET) != 0 ||
        (!t.bytes.empty() && std::fread(t.bytes.data(), 1, t.bytes.size(), f) != t.bytes.size()))
      throw IoError(fmt::format("{}: cannot read the data of tensor '{}'", path, t.name));
  }
  return out;
}

}  // namespace linformer
