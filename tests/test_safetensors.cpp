// safetensors: bitwise round trip, the exact byte layout, every malformed-file case (crafted by
// hand) rejected with an IoError that names the file and the problem, truncation at every byte,
// and atomic writes (a failed write leaves no file and keeps the previous one).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "linformer/checkpoint.hpp"
#include "linformer/error.hpp"

using namespace linformer;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}
std::vector<uint8_t> i32_bytes(const std::vector<int32_t>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_all(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), (std::streamsize)bytes.size());
}

std::string u64le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = (char)(uint8_t)(v >> (8 * i));
  return s;
}

// A file from a header text and data, with the header length written as given (default: true length).
std::string craft(const std::string& header, const std::string& data,
                  uint64_t hlen = std::numeric_limits<uint64_t>::max()) {
  return u64le(hlen == std::numeric_limits<uint64_t>::max() ? header.size() : hlen) + header + data;
}

template <class E>
void expect_throw_msg(const std::function<void()>& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one mentioning '" << needles.front() << "'";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("linformer_test_st_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, ec);
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes `bytes` to a file and expects read_safetensors to fail naming the file and each needle.
  void expect_bad(const std::string& bytes, const std::vector<std::string>& needles) {
    const std::string p = path("bad.safetensors");
    write_all(p, bytes);
    std::vector<std::string> all = needles;
    all.push_back(p);
    expect_throw_msg<IoError>([&] { read_safetensors(p); }, all);
  }
  // One F32 tensor "w" of shape [2] (8 bytes of data) with the entry text given.
  void expect_bad_entry(const std::string& entry, const std::vector<std::string>& needles,
                        const std::string& data = std::string(8, '\0')) {
    expect_bad(craft("{\"w\":" + entry + "}", data), needles);
  }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  fs::path dir_;
};

std::vector<NamedTensor> sample_tensors() {
  const float inf = std::numeric_limits<float>::infinity();
  float nan_payload;
  const uint32_t bits = 0x7fc12345u;
  std::memcpy(&nan_payload, &bits, 4);
  std::vector<NamedTensor> t;
  t.push_back({"tok_emb.weight", "F32", {2, 3}, f32_bytes({1.5f, -0.0f, inf, -inf, nan_payload, 1e-45f})});
  t.push_back({"blk.0.attn_q.bias", "F32", {3}, f32_bytes({0.1f, 0.2f, 0.3f})});
  t.push_back({"ids", "I32", {2, 2}, i32_bytes({0, -1, 2147483647, -2147483647 - 1})});
  t.push_back({"scalar", "F32", {}, f32_bytes({42.0f})});  // rank 0: one element
  t.push_back({"empty", "F32", {0, 5}, {}});                // zero elements
  t.push_back({"a_last_alphabetically_first", "I32", {1}, i32_bytes({7})});
  return t;
}

void expect_same_tensors(const std::vector<NamedTensor>& a, const std::vector<NamedTensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].dtype, b[i].dtype) << a[i].name;
    EXPECT_EQ(a[i].shape, b[i].shape) << a[i].name;
    EXPECT_EQ(a[i].bytes, b[i].bytes) << a[i].name;  // bitwise
  }
}

}  // namespace

// ---------------------------------------------------------------- round trip and layout

TEST_F(Safetensors, RoundTripBitwiseInOrder) {
  const auto tensors = sample_tensors();
  const std::map<std::string, std::string> meta = {
      {"format", "linformer"}, {"linformer.config", "{\"d_model\": 8}"}, {"empty", ""}, {"utf8", "h\xc3\xa9llo"}};
  write_safetensors(path("a.safetensors"), tensors, meta);
  const SafetensorsFile f = read_safetensors(path("a.safetensors"));
  expect_same_tensors(f.tensors, tensors);  // file (write) order, not alphabetical
  EXPECT_EQ(f.metadata, meta);
  EXPECT_EQ(files(), std::vector<std::string>{"a.safetensors"});  // no temporary file left behind
}

TEST_F(Safetensors, RoundTripNoTensorsNoMetadata) {
  write_safetensors(path("e.safetensors"), {}, {});
  const SafetensorsFile f = read_safetensors(path("e.safetensors"));
  EXPECT_TRUE(f.tensors.empty());
  EXPECT_TRUE(f.metadata.empty());
}

TEST_F(Safetensors, OverwritesExistingFile) {
  write_safetensors(path("a.safetensors"), sample_tensors(), {{"v", "1"}});
  write_safetensors(path("a.safetensors"), {{"x", "F32", {1}, f32_bytes({3.0f})}}, {{"v", "2"}});
  const SafetensorsFile f = read_safetensors(path("a.safetensors"));
  ASSERT_EQ(f.tensors.size(), 1u);
  EXPECT_EQ(f.metadata.at("v"), "2");
}

TEST_F(Safetensors, Find) {
  write_safetensors(path("a.safetensors"), sample_tensors(), {});
  const SafetensorsFile f = read_safetensors(path("a.safetensors"));
  ASSERT_NE(f.find("ids"), nullptr);
  EXPECT_EQ(f.find("ids")->dtype, "I32");
  EXPECT_EQ(f.find("nope"), nullptr);
}

TEST_F(Safetensors, ByteLayout) {
  write_safetensors(path("a.safetensors"),
                    {{"b", "F32", {2}, f32_bytes({1.0f, 2.0f})}, {"a", "I32", {1}, i32_bytes({-1})}}, {{"k", "v"}});
  const std::string raw = read_all(path("a.safetensors"));
  ASSERT_GE(raw.size(), 8u);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= (uint64_t)(uint8_t)raw[i] << (8 * i);
  EXPECT_EQ(n % 8, 0u) << "header padded to a multiple of 8";
  ASSERT_EQ(raw.size(), 8 + n + 12);
  const std::string header = raw.substr(8, n);
  const std::string expected = R"({"__metadata__":{"k":"v"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                               R"("a":{"dtype":"I32","shape":[1],"data_offsets":[8,12]}})";
  EXPECT_EQ(header.substr(0, expected.size()), expected);
  EXPECT_EQ(header.find_first_not_of(' ', expected.size()), std::string::npos) << "padding is spaces";
  // Data: little-endian, in the given order, right after the header.
  const std::string data = raw.substr(8 + n);
  const std::string want = std::string("\x00\x00\x80\x3f\x00\x00\x00\x40\xff\xff\xff\xff", 12);
  EXPECT_EQ(data, want);
}

TEST_F(Safetensors, ReadsHandWrittenFile) {
  // Entries in any order, extra whitespace, no metadata, data order differing from header order.
  const std::string header = R"( { "y" : {"shape":[1],"data_offsets":[4,8],"dtype":"I32"},
                                   "x" : {"dtype":"F32","data_offsets":[0,4],"shape":[]} } )";
  const std::string data = std::string("\x00\x00\x80\x3f", 4) + std::string("\x05\x00\x00\x00", 4);
  write_all(path("h.safetensors"), craft(header, data));
  const SafetensorsFile f = read_safetensors(path("h.safetensors"));
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].name, "x");  // file order
  EXPECT_EQ(f.tensors[0].shape, std::vector<int64_t>{});
  float x;
  std::memcpy(&x, f.tensors[0].bytes.data(), 4);
  EXPECT_EQ(x, 1.0f);
  EXPECT_EQ(f.tensors[1].name, "y");
  int32_t y;
  std::memcpy(&y, f.tensors[1].bytes.data(), 4);
  EXPECT_EQ(y, 5);
  EXPECT_TRUE(f.metadata.empty());
}

// ---------------------------------------------------------------- malformed files

TEST_F(Safetensors, MissingFile) {
  expect_throw_msg<IoError>([&] { read_safetensors(path("nope.safetensors")); },
                            {path("nope.safetensors"), "cannot open"});
}

TEST_F(Safetensors, NotARegularFile) {
  expect_throw_msg<IoError>([&] { read_safetensors(dir_.string()); }, {dir_.string(), "not a regular file"});
}

TEST_F(Safetensors, ShorterThan8Bytes) {
  for (size_t n : {0, 1, 7}) expect_bad(std::string(n, '\0'), {"too short"});
}

TEST_F(Safetensors, HeaderSizeLargerThanFile) {
  expect_bad(craft("{}", "", 3), {"header length 3", "past the end"});
  expect_bad(u64le(1000) + "{}", {"header length 1000", "past the end"});
}

TEST_F(Safetensors, HeaderSizeAbsurd) {
  expect_bad(u64le(200ull << 20) + "{}", {"absurd"});
  expect_bad(u64le(~0ull) + "{}", {"absurd"});
}

TEST_F(Safetensors, HeaderNotJson) {
  expect_bad(craft("", ""), {"not valid JSON"});
  expect_bad(craft("{\"w\": {\"dtype\": \"F32\",", ""), {"not valid JSON"});
  expect_bad(craft("{} trailing", ""), {"not valid JSON"});
  expect_bad(craft(std::string("{}\0garbage", 10), ""), {"not valid JSON", "NUL"});
  expect_bad(craft(std::string("{}\0\0\0\0\0\0", 8), ""), {"not valid JSON"});  // NUL padding is not allowed
}

TEST_F(Safetensors, HeaderNotUtf8) {
  expect_bad(craft("{\"__metadata__\":{\"a\":\"\xff\xfe\"}}", ""), {"UTF-8"});
  expect_bad(craft("{\"w\xc3\":{}}", ""), {"UTF-8"});  // truncated 2-byte sequence in a key
}

TEST_F(Safetensors, HeaderNotAnObject) {
  expect_bad(craft("[1, 2]", ""), {"expected an object", "array"});
  expect_bad(craft("\"str\"", ""), {"expected an object"});
}

TEST_F(Safetensors, HeaderNestsTooDeep) {
  expect_bad(craft(R"({"w":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}})", std::string(8, '\0')),
             {"nests deeper"});
  expect_bad(craft(std::string(1000, '[') + std::string(1000, ']'), ""), {"nests deeper"});
}

TEST_F(Safetensors, EntryNotAnObject) { expect_bad_entry("5", {"tensor 'w'", "expected an object"}); }

TEST_F(Safetensors, EntryMissingFields) {
  expect_bad_entry(R"({"shape":[2],"data_offsets":[0,8]})", {"tensor 'w'", "missing field 'dtype'"});
  expect_bad_entry(R"({"dtype":"F32","data_offsets":[0,8]})", {"tensor 'w'", "missing field 'shape'"});
  expect_bad_entry(R"({"dtype":"F32","shape":[2]})", {"tensor 'w'", "missing field 'data_offsets'"});
}

TEST_F(Safetensors, EntryWrongTypes) {
  expect_bad_entry(R"({"dtype":32,"shape":[2],"data_offsets":[0,8]})", {"tensor 'w'", "'dtype'", "string"});
  expect_bad_entry(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})", {"tensor 'w'", "'shape'", "list"});
  expect_bad_entry(R"({"dtype":"F32","shape":[2],"data_offsets":"0-8"})", {"tensor 'w'", "'data_offsets'"});
  expect_bad_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0]})", {"tensor 'w'", "'data_offsets'"});
  expect_bad_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8,8]})", {"tensor 'w'", "'data_offsets'"});
  expect_bad_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8.0]})", {"tensor 'w'", "'data_offsets'"});
  expect_bad_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[-8,0]})", {"tensor 'w'", "'data_offsets'"});
}

TEST_F(Safetensors, UnknownDtype) {
  expect_bad_entry(R"({"dtype":"F33","shape":[2],"data_offsets":[0,8]})", {"tensor 'w'", "unknown dtype 'F33'"});
  expect_bad_entry(R"({"dtype":"f32","shape":[2],"data_offsets":[0,8]})", {"tensor 'w'", "unknown dtype 'f32'"});
  expect_bad_entry(R"({"dtype":"F16","shape":[4],"data_offsets":[0,8]})", {"tensor 'w'", "unsupported dtype 'F16'"});
}

TEST_F(Safetensors, BadShapeDims) {
  expect_bad_entry(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})", {"tensor 'w'", "shape", "-2"});
  expect_bad_entry(R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})", {"tensor 'w'", "shape"});
  expect_bad_entry(R"({"dtype":"F32","shape":["2"],"data_offsets":[0,8]})", {"tensor 'w'", "shape"});
  // 2^32 * 2^32 * 16 overflows 64 bits.
  expect_bad_entry(R"({"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]})",
                   {"tensor 'w'", "overflows"});
  // 2^62 elements of 4 bytes overflow the byte count.
  expect_bad_entry(R"({"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]})",
                   {"tensor 'w'", "overflows"});
  expect_bad_entry(R"({"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]})",
                   {"tensor 'w'", "huge"}, "");
  // Above 2^64: nlohmann reads it as a float, so it is not an integer.
  expect_bad_entry(R"({"dtype":"F32","shape":[99999999999999999999999],"data_offsets":[0,8]})",
                   {"tensor 'w'", "shape"});
}

TEST_F(Safetensors, OffsetsNotMatchingShape) {
  expect_bad_entry(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", {"tensor 'w'", "cover 8 bytes", "needs 12"});
  expect_bad_entry(R"({"dtype":"I32","shape":[1],"data_offsets":[0,8]})", {"tensor 'w'", "cover 8 bytes", "needs 4"});
  expect_bad_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[8,0]})", {"tensor 'w'", "end before they begin"});
}

TEST_F(Safetensors, OffsetsOutOfBounds) {
  expect_bad_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[4,12]})", {"tensor 'w'", "out of bounds"});
  expect_bad_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", {"tensor 'w'", "out of bounds"},
                   std::string(4, '\0'));
  expect_bad_entry(R"({"dtype":"F32","shape":[0],"data_offsets":[1000,1000]})", {"tensor 'w'", "out of bounds"}, "");
}

TEST_F(Safetensors, OverlappingTensors) {
  expect_bad(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                   R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                   std::string(12, '\0')),
             {"tensor 'b'", "overlaps tensor 'a'"});
  // Two tensors on the same bytes.
  expect_bad(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                   R"("b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})",
                   std::string(8, '\0')),
             {"overlaps"});
}

TEST_F(Safetensors, GapBetweenTensors) {
  expect_bad(craft(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                   R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                   std::string(12, '\0')),
             {"gap of 4", "tensor 'b'"});
  expect_bad(craft(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0')),
             {"gap of 4", "tensor 'a'"});
}

TEST_F(Safetensors, DataNotEndingAtEndOfFile) {
  expect_bad_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", {"3 trailing bytes"}, std::string(11, '\0'));
  expect_bad(craft("{}", "x"), {"1 trailing bytes"});
}

TEST_F(Safetensors, DuplicateTensorNames) {
  expect_bad(craft(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                   R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                   std::string(8, '\0')),
             {"duplicate tensor name 'w'"});
  expect_bad_entry(R"({"dtype":"F32","dtype":"I32","shape":[2],"data_offsets":[0,8]})", {"duplicate key 'dtype'"});
  expect_bad(craft(R"({"__metadata__":{"a":"1","a":"2"}})", ""), {"duplicate key 'a'"});
  expect_bad(craft(R"({"__metadata__":{},"__metadata__":{}})", ""), {"duplicate", "__metadata__"});
}

TEST_F(Safetensors, MetadataNotStrings) {
  expect_bad(craft(R"({"__metadata__":{"format_version":1}})", ""), {"__metadata__", "'format_version'", "string"});
  expect_bad(craft(R"({"__metadata__":{"a":null}})", ""), {"__metadata__", "'a'", "string"});
  expect_bad(craft(R"({"__metadata__":["a"]})", ""), {"__metadata__", "expected an object"});
}

TEST_F(Safetensors, TruncatedAtEveryByte) {
  write_safetensors(path("good.safetensors"), sample_tensors(), {{"format", "linformer"}});
  const std::string good = read_all(path("good.safetensors"));
  ASSERT_NO_THROW(read_safetensors(path("good.safetensors")));
  for (size_t cut = 0; cut < good.size(); ++cut) {
    write_all(path("cut.safetensors"), good.substr(0, cut));
    EXPECT_THROW(read_safetensors(path("cut.safetensors")), IoError) << "cut at " << cut << " of " << good.size();
  }
  // The messages say what is wrong at a few typical points.
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= (uint64_t)(uint8_t)good[i] << (8 * i);
  write_all(path("cut.safetensors"), good.substr(0, 5));
  expect_throw_msg<IoError>([&] { read_safetensors(path("cut.safetensors")); }, {"too short"});
  write_all(path("cut.safetensors"), good.substr(0, 8 + n / 2));
  expect_throw_msg<IoError>([&] { read_safetensors(path("cut.safetensors")); }, {"past the end", "truncated"});
  write_all(path("cut.safetensors"), good.substr(0, good.size() - 1));
  expect_throw_msg<IoError>([&] { read_safetensors(path("cut.safetensors")); }, {"out of bounds", "truncated"});
}

TEST_F(Safetensors, AppendedBytesAreRejected) {
  write_safetensors(path("good.safetensors"), sample_tensors(), {});
  write_all(path("long.safetensors"), read_all(path("good.safetensors")) + std::string(4, '\0'));
  expect_throw_msg<IoError>([&] { read_safetensors(path("long.safetensors")); }, {"4 trailing bytes"});
}

// ---------------------------------------------------------------- writing: validation and atomicity

TEST_F(Safetensors, WriterRejectsBadInput) {
  const std::string p = path("w.safetensors");
  expect_throw_msg<IoError>([&] { write_safetensors(p, {{"a", "F16", {1}, {0, 0}}}, {}); }, {p, "'a'", "dtype"});
  expect_throw_msg<IoError>([&] { write_safetensors(p, {{"a", "F32", {3}, f32_bytes({1, 2})}}, {}); },
                            {p, "'a'", "8 bytes", "need 12"});
  expect_throw_msg<IoError>([&] { write_safetensors(p, {{"a", "F32", {-1}, {}}}, {}); }, {p, "'a'", "negative"});
  expect_throw_msg<IoError>(
      [&] { write_safetensors(p, {{"a", "F32", {1}, f32_bytes({1})}, {"a", "F32", {1}, f32_bytes({1})}}, {}); },
      {p, "duplicate tensor name 'a'"});
  expect_throw_msg<IoError>([&] { write_safetensors(p, {{"__metadata__", "F32", {1}, f32_bytes({1})}}, {}); },
                            {p, "__metadata__"});
  expect_throw_msg<IoError>([&] { write_safetensors(p, {}, {{"k", "\xff"}}); }, {p, "UTF-8"});
  EXPECT_TRUE(files().empty()) << "a rejected write creates no file";
}

TEST_F(Safetensors, FailedWriteToMissingFolderLeavesNoFile) {
  const std::string p = path("no/such/folder/m.safetensors");
  expect_throw_msg<IoError>([&] { write_safetensors(p, sample_tensors(), {}); }, {p});
  EXPECT_TRUE(files().empty());
}

TEST_F(Safetensors, FailedRenameLeavesNoTemporary) {
  // The target is a non-empty folder: the data is written, the rename fails, the temporary goes.
  fs::create_directories(dir_ / "target" / "inside");
  const std::string p = path("target");
  expect_throw_msg<IoError>([&] { write_safetensors(p, sample_tensors(), {}); }, {p});
  EXPECT_EQ(files(), std::vector<std::string>{"target"});
  EXPECT_TRUE(fs::is_directory(p));
}

TEST_F(Safetensors, FailedWriteMidwayKeepsExistingFile) {
  // A file-size limit makes the data write itself fail after the temporary file exists (this
  // works as root, where folder permissions do not stop a write).
  const std::string p = path("m.safetensors");
  write_safetensors(p, sample_tensors(), {{"v", "good"}});
  const std::string before = read_all(p);

  std::vector<float> big(1 << 16, 1.0f);  // 256 KiB
  struct rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old;
  lim.rlim_cur = 64 * 1024;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
  bool threw = false;
  std::string msg;
  try {
    write_safetensors(p, {{"big", "F32", {(int64_t)big.size()}, f32_bytes(big)}}, {{"v", "bad"}});
  } catch (const IoError& e) {
    threw = true;
    msg = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_TRUE(threw);
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("write failed"), std::string::npos) << msg;
  EXPECT_EQ(read_all(p), before) << "the existing file is unchanged";
  EXPECT_EQ(files(), std::vector<std::string>{"m.safetensors"}) << "no temporary file left";
  EXPECT_EQ(read_safetensors(p).metadata.at("v"), "good");
}

TEST_F(Safetensors, UnwritableFolderKeepsExistingFile) {
  const std::string p = path("m.safetensors");
  write_safetensors(p, sample_tensors(), {{"v", "good"}});
  const std::string before = read_all(p);
  fs::permissions(dir_, fs::perms::owner_read | fs::perms::owner_exec);
  if (access(dir_.c_str(), W_OK) == 0) {  // root ignores folder permissions
    fs::permissions(dir_, fs::perms::owner_all);
    GTEST_SKIP() << "running with privileges that ignore folder permissions (FailedWriteMidway covers this)";
  }
  expect_throw_msg<IoError>([&] { write_safetensors(p, {{"x", "F32", {1}, f32_bytes({1})}}, {}); }, {p});
  fs::permissions(dir_, fs::perms::owner_all);
  EXPECT_EQ(read_all(p), before);
  EXPECT_EQ(files(), std::vector<std::string>{"m.safetensors"});
}
