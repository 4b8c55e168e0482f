// The ground floor (src/core): atomic files, whole-file readers, the RNG, hashing, processes.
#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "core/buffers.hpp"
#include "core/fs.hpp"
#include "core/hash.hpp"
#include "core/process.hpp"
#include "core/rng.hpp"
#include "linformer/error.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace linformer;
using test_util::expect_throw;

namespace {

class Core : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("linformer_test_core_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::vector<std::string> listing() const {
    std::vector<std::string> out;
    for (auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  fs::path dir_;
};


TEST_F(Core, AtomicFileReplacesOnlyOnCommit) {
  const fs::path p = dir_ / "a.txt";
  core::write_file_atomic(p, "first\n");
  EXPECT_EQ(core::read_file(p), "first\n");
  {
    core::AtomicFile f(p.string());
    f.write("second\n");
    EXPECT_TRUE(core::is_atomic_temp_name(fs::path(f.temp_path()).filename().string())) << f.temp_path();
    EXPECT_EQ(core::read_file(p), "first\n") << "the old file stays until commit";
  }  // not committed: thrown away
  EXPECT_EQ(core::read_file(p), "first\n");
  EXPECT_EQ(listing(), std::vector<std::string>{"a.txt"}) << "no temporary file left";
  core::write_file_atomic(p, "second\n");
  EXPECT_EQ(core::read_file(p), "second\n");
  EXPECT_EQ(listing(), std::vector<std::string>{"a.txt"});
}

TEST_F(Core, AtomicFileMissingFolderIsAnErrorUnlessAsked) {
  const fs::path p = dir_ / "no" / "such" / "f.txt";
  const std::string msg = expect_throw<IoError>([&] { core::write_file_atomic(p, "x"); });
  EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(dir_ / "no"));
  core::AtomicFile f(p.string(), core::kCreateParents);
  f.write("x");
  f.commit();
  EXPECT_EQ(core::read_file(p), "x");
}

// A full disk (simulated with a file-size limit): "write failed" with the reason, old file kept.
TEST_F(Core, AtomicFileFullDiskKeepsTheOldFile) {
  const fs::path p = dir_ / "big.bin";
  core::write_file_atomic(p, "old");
  rlimit old{};
  getrlimit(RLIMIT_FSIZE, &old);
  rlimit lim = old;
  lim.rlim_cur = 4096;
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  setrlimit(RLIMIT_FSIZE, &lim);
  const std::string big(3 << 20, 'x');
  const std::string msg = expect_throw<IoError>([&] { core::write_file_atomic(p, big); });
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_NE(msg.find("write failed"), std::string::npos) << msg;
  EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
  EXPECT_EQ(core::read_file(p), "old");
  EXPECT_EQ(listing(), std::vector<std::string>{"big.bin"});
}

TEST_F(Core, TemporaryNamesAreRecognised) {
  for (const char* yes : {"state.json.tmp.123", "latest.tmp.77.0", "m.safetensors.tmp.4242.15"})
    EXPECT_TRUE(core::is_atomic_temp_name(yes)) << yes;
  for (const char* no : {"state.json", ".tmp.1", "a.tmp.", "a.tmp.x1", "a.tmp.1.", "a.tmp.1.2.3", "ckpt-00000004.tmp"})
    EXPECT_FALSE(core::is_atomic_temp_name(no)) << no;
}

TEST_F(Core, ReadersNameTheFile) {
  const fs::path missing = dir_ / "missing.json";
  std::string msg = expect_throw<IoError>([&] { core::read_file(missing); });
  EXPECT_NE(msg.find(missing.string()), std::string::npos) << msg;
  core::write_file_atomic(dir_ / "bad.json", "{\"a\": 1e999}");
  msg = expect_throw<IoError>([&] { core::read_json(dir_ / "bad.json"); });
  EXPECT_NE(msg.find("invalid JSON"), std::string::npos) << msg;
  core::write_file_atomic(dir_ / "ok.json", "{\"a\": [1, 2]}");
  EXPECT_EQ(core::read_json(dir_ / "ok.json").at("a").at(1).get<int>(), 2);
  core::copy_file_atomic(dir_ / "ok.json", dir_ / "copy.json");
  EXPECT_EQ(core::read_file(dir_ / "copy.json"), "{\"a\": [1, 2]}");
  msg = expect_throw<IoError>([&] { core::copy_file_atomic(missing, dir_ / "x.json"); });
  EXPECT_NE(msg.find("x.json"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(dir_ / "x.json"));
}

// splitmix64's published first outputs for state 0 (Vigna's reference implementation).
TEST(CoreRng, SplitMix64MatchesTheReference) {
  uint64_t state = 0;
  const uint64_t expected[3] = {0xe220a8397b1dcdafULL, 0x6e789e6aa1b965f4ULL, 0x06c45d188009454fULL};
  for (uint64_t e : expected) {
    EXPECT_EQ(core::mix64(state += core::kGoldenGamma), e);
  }
  EXPECT_EQ(core::splitmix64(0), expected[0]);
}

TEST(CoreRng, ShuffleIsAPermutationAndDeterministic) {
  std::vector<int> a(1000), b;
  for (int i = 0; i < 1000; ++i) a[i] = i;
  b = a;
  core::Rng r1(42), r2(42), r3(43);
  core::shuffle(a, r1);
  core::shuffle(b, r2);
  EXPECT_EQ(a, b);
  std::set<int> seen(a.begin(), a.end());
  EXPECT_EQ(seen.size(), 1000u);
  std::vector<int> c(1000);
  for (int i = 0; i < 1000; ++i) c[i] = i;
  core::shuffle(c, r3);
  EXPECT_NE(a, c);
  int fixed = 0;
  for (int i = 0; i < 1000; ++i) fixed += a[i] == i;
  EXPECT_LT(fixed, 10) << "a shuffle leaves about one element in place";
  // below(n) stays in range and uniform() in [0, 1).
  core::Rng r(7);
  for (int i = 0; i < 10000; ++i) {
    EXPECT_LT(r.below(3), 3u);
    const double u = r.uniform();
    EXPECT_TRUE(u >= 0.0 && u < 1.0);
  }
}

// FNV-1a's published test vectors.
TEST(CoreHash, Fnv1aMatchesTheReference) {
  EXPECT_EQ(core::fnv1a("", 0), 0xcbf29ce484222325ULL);
  EXPECT_EQ(core::fnv1a("a", 1), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(core::fnv1a("foobar", 6), 0x85944171f73967e8ULL);
  EXPECT_NE(core::hash_string("abc", 1), core::hash_string("abc", 2));
  EXPECT_EQ(core::hash_string("abc", 1), core::hash_string("abc", 1));
  const uint32_t words[2] = {1, 2};
  EXPECT_NE(core::fnv1a_words(words, 2), core::fnv1a_words(words, 1));
}

TEST(CoreProcess, RunsProgramsAndReportsMissingOnes) {
  EXPECT_EQ(core::run_program({"true"}), 0);
  EXPECT_EQ(core::run_program({"false"}), 1);
  EXPECT_EQ(core::run_program_output({"printf", "a%sb", "-"}, "printf"), "a-b");
  std::string msg = expect_throw<IoError>([] { core::run_program({"no-such-program-xyz"}, "(install it)"); });
  EXPECT_NE(msg.find("no-such-program-xyz is not installed or not on PATH (install it)"), std::string::npos) << msg;
  msg = expect_throw<IoError>([] { core::run_program_output({"false"}, "probe"); });
  EXPECT_NE(msg.find("probe: `false` failed (exit status 1)"), std::string::npos) << msg;
}

TEST(CoreBuffers, GrowNeverShrinks) {
  std::vector<float> v;
  float* p = core::grow(v, 10);
  EXPECT_EQ(v.size(), 10u);
  EXPECT_EQ(core::grow(v, 5), p);
  EXPECT_EQ(v.size(), 10u);
}

}  // namespace
