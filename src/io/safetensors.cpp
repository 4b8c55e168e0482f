// The safetensors format (docs/format.md): u64 little-endian header length N, N bytes of JSON
// (padded with spaces to a multiple of 8), then the raw little-endian tensor data.
// Writing is atomic (core::AtomicFile). Reading validates every
// size and offset before trusting it and never allocates more than the file holds.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/fs.hpp"
#include "linformer/checkpoint.hpp"
#include "linformer/error.hpp"

using json = nlohmann::json;

namespace linformer {

namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // 100 MB: far above any real header
constexpr int kMaxDepth = 2;                     // root object > entry object > shape array

size_t dtype_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  return 0;
}

// Dtypes of the safetensors format that this library does not read (for a clearer message).
bool known_foreign_dtype(const std::string& dtype) {
  static const char* names[] = {"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
                                "U32",  "I64", "U64", "F64"};
  for (const char* n : names)
    if (dtype == n) return true;
  return false;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Thrown from the parse callback to stop parsing at the first structural problem.
struct HeaderProblem {
  std::string what;
};

}  // namespace

const NamedTensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Header in the given order (ordered_json keeps insertion order); data in the same order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::set<std::string> names;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__") throw IoError(fmt::format("{}: '__metadata__' is not a valid tensor name", path));
    if (!names.insert(t.name).second) throw IoError(fmt::format("{}: duplicate tensor name '{}'", path, t.name));
    const size_t es = dtype_size(t.dtype);
    if (es == 0)
      throw IoError(fmt::format("{}: tensor '{}' has unsupported dtype '{}' (F32 or I32)", path, t.name, t.dtype));
    uint64_t numel = 1;
    for (int64_t s : t.shape) {
      if (s < 0) throw IoError(fmt::format("{}: tensor '{}' has a negative dimension in shape {}", path, t.name,
                                           shape_str(t.shape)));
      if (__builtin_mul_overflow(numel, static_cast<uint64_t>(s), &numel))
        throw IoError(fmt::format("{}: tensor '{}': shape {} overflows", path, t.name, shape_str(t.shape)));
    }
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(es), &nbytes) || nbytes != t.bytes.size())
      throw IoError(fmt::format("{}: tensor '{}' has {} bytes, its shape {} and dtype {} need {}", path, t.name,
                                t.bytes.size(), shape_str(t.shape), t.dtype, numel * es));
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string h;
  try {
    h = header.dump();  // throws for names or metadata that are not valid UTF-8
  } catch (const nlohmann::json::exception& e) {
    throw IoError(fmt::format("{}: cannot encode the header (tensor names and metadata must be UTF-8): {}", path,
                              e.what()));
  }
  while (h.size() % 8 != 0) h.push_back(' ');
  if (h.size() > kMaxHeader)
    throw IoError(fmt::format("{}: header would be {} bytes, over the {} byte limit", path, h.size(), kMaxHeader));

  core::AtomicFile f(path);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(h.size()) >> (8 * i));
  f.write(len, 8);
  f.write(h);
  for (const auto& t : tensors) f.write(t.bytes.data(), t.bytes.size());
  f.commit();
}

SafetensorsFile read_safetensors(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw IoError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct Closer {
    FILE* f;
    ~Closer() { std::fclose(f); }
  } closer{f};
  struct stat st{};
  if (fstat(fileno(f), &st) != 0) throw IoError(fmt::format("{}: cannot stat: {}", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) throw IoError(fmt::format("{}: not a regular file", path));
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8)
    throw IoError(fmt::format("{}: file is {} bytes, too short for a safetensors header (8-byte length first)", path,
                              file_size));
  uint8_t len[8];
  if (std::fread(len, 1, 8, f) != 8) throw IoError(fmt::format("{}: cannot read the header length", path));
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= static_cast<uint64_t>(len[i]) << (8 * i);
  if (hlen > kMaxHeader)
    throw IoError(fmt::format("{}: header length {} is absurd (limit {} bytes); not a safetensors file?", path, hlen,
                              kMaxHeader));
  if (hlen > file_size - 8)
    throw IoError(fmt::format("{}: header length {} runs past the end of the file ({} bytes): truncated?", path, hlen,
                              file_size));
  std::string h(hlen, '\0');
  if (std::fread(h.data(), 1, hlen, f) != hlen) throw IoError(fmt::format("{}: cannot read the header", path));

  // nlohmann's lexer takes a NUL byte for the end of input and would ignore what follows; JSON
  // has no place for a raw NUL, so reject it here.
  if (const size_t z = h.find('\0'); z != std::string::npos)
    throw IoError(fmt::format("{}: header is not valid JSON: NUL byte at header offset {}", path, z));

  // Parse. nlohmann keeps only one of two equal keys, so duplicates are caught here; nesting is
  // limited so that a hostile header cannot build a deep tree. The lexer rejects invalid UTF-8.
  std::vector<std::set<std::string>> open_objects;  // keys seen in each object being parsed
  json header;
  try {
    header = json::parse(h, [&](int depth, json::parse_event_t ev, json& parsed) {
      switch (ev) {
        case json::parse_event_t::object_start:
        case json::parse_event_t::array_start:
          if (depth > kMaxDepth)
            throw HeaderProblem{fmt::format("header nests deeper than a safetensors header does (depth {})", depth + 1)};
          if (ev == json::parse_event_t::object_start) open_objects.emplace_back();
          break;
        case json::parse_event_t::object_end:
          if (!open_objects.empty()) open_objects.pop_back();
          break;
        case json::parse_event_t::key:
          if (!open_objects.empty() && !open_objects.back().insert(parsed.get<std::string>()).second)
            throw HeaderProblem{depth == 1 ? fmt::format("duplicate tensor name '{}' in the header",
                                                         parsed.get<std::string>())
                                           : fmt::format("duplicate key '{}' in the header",
                                                         parsed.get<std::string>())};
          break;
        default:
          break;
      }
      return true;
    });
  } catch (const HeaderProblem& p) {
    throw IoError(fmt::format("{}: {}", path, p.what));
  } catch (const json::exception& e) {
    throw IoError(fmt::format("{}: header is not valid JSON (or not UTF-8): {}", path, e.what()));
  }
  if (!header.is_object())
    throw IoError(fmt::format("{}: header is a JSON {}, expected an object", path, header.type_name()));

  const uint64_t data_start = 8 + hlen, data_size = file_size - data_start;
  SafetensorsFile out;
  struct Range {
    uint64_t begin, end;
    size_t index;  // into out.tensors
  };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object())
        throw IoError(fmt::format("{}: __metadata__ is a JSON {}, expected an object of strings", path, v.type_name()));
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          throw IoError(fmt::format("{}: __metadata__ value of '{}' is a JSON {}, expected a string", path, m.key(),
                                    m.value().type_name()));
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& why) { return IoError(fmt::format("{}: tensor '{}': {}", path, name, why)); };
    if (!v.is_object()) throw bad(fmt::format("entry is a JSON {}, expected an object", v.type_name()));
    if (!v.contains("dtype")) throw bad("missing field 'dtype'");
    if (!v["dtype"].is_string()) throw bad(fmt::format("field 'dtype' is {}, expected a string", v["dtype"].dump()));
    if (!v.contains("shape")) throw bad("missing field 'shape'");
    if (!v["shape"].is_array()) throw bad(fmt::format("field 'shape' is {}, expected a list", v["shape"].dump()));
    if (!v.contains("data_offsets")) throw bad("missing field 'data_offsets'");
    const json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw bad(fmt::format("field 'data_offsets' is {}, expected [begin, end] (non-negative integers)", off.dump()));
    NamedTensor t;
    t.name = name;
    t.dtype = v["dtype"].get<std::string>();
    const size_t es = dtype_size(t.dtype);
    if (es == 0)
      throw bad(known_foreign_dtype(t.dtype)
                    ? fmt::format("unsupported dtype '{}' (this library reads F32 and I32)", t.dtype)
                    : fmt::format("unknown dtype '{}'", t.dtype));
    uint64_t numel = 1;
    for (const json& s : v["shape"]) {
      if (!s.is_number_unsigned())
        throw bad(fmt::format("shape {} has entry {}, expected non-negative integers", v["shape"].dump(), s.dump()));
      const uint64_t dim = s.get<uint64_t>();
      if (dim > static_cast<uint64_t>(INT64_MAX))
        throw bad(fmt::format("shape {} has a huge dimension", v["shape"].dump()));
      if (__builtin_mul_overflow(numel, dim, &numel) || numel > static_cast<uint64_t>(INT64_MAX))
        throw bad(fmt::format("shape {} overflows (too many elements)", v["shape"].dump()));
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(es), &nbytes))
      throw bad(fmt::format("shape {} overflows (too many bytes)", v["shape"].dump()));
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e) throw bad(fmt::format("data_offsets [{}, {}] end before they begin", b, e));
    if (e - b != nbytes)
      throw bad(fmt::format("data_offsets [{}, {}] cover {} bytes, shape {} of {} needs {}", b, e, e - b,
                            shape_str(t.shape), t.dtype, nbytes));
    if (e > data_size)
      throw bad(fmt::format("data_offsets [{}, {}] out of bounds: the data section has {} bytes (truncated file?)", b,
                            e, data_size));
    ranges.push_back({b, e, out.tensors.size()});
    out.tensors.push_back(std::move(t));
  }
  // Ranges must tile the data exactly: no overlap, no gap, nothing after the last one.
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  const std::string* prev = nullptr;
  for (const Range& r : ranges) {
    const std::string& name = out.tensors[r.index].name;
    if (r.begin < pos)
      throw IoError(fmt::format("{}: tensor '{}' (bytes {}..{}) overlaps tensor '{}' (ending at {})", path, name,
                                r.begin, r.end, prev ? *prev : std::string(), pos));
    if (r.begin > pos)
      throw IoError(fmt::format("{}: gap of {} unused bytes before tensor '{}' (data offset {})", path,
                                r.begin - pos, name, pos));
    pos = r.end;
    prev = &name;
  }
  if (pos != data_size)
    throw IoError(fmt::format("{}: {} trailing bytes after the last tensor (the data section has {} bytes, the "
                              "tensors cover {})",
                              path, data_size - pos, data_size, pos));
  // Read the data, in file order; out.tensors ends up in file order too.
  std::vector<NamedTensor> ordered;
  ordered.reserve(ranges.size());
  for (const Range& r : ranges) {
    NamedTensor& t = out.tensors[r.index];
    t.bytes.resize(r.end - r.begin);
    if (!t.bytes.empty() && std::fread(t.bytes.data(), 1, t.bytes.size(), f) != t.bytes.size())
      throw IoError(fmt::format("{}: cannot read the data of tensor '{}' (file changed while reading?)", path, t.name));
    ordered.push_back(std::move(t));
  }
  out.tensors = std::move(ordered);
  return out;
}

}  // namespace linformer
