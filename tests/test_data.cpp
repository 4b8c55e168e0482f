// Data pipeline tests: tokenizer (train, encode, decode, fixed special ids, errors), token files
// (round trip and every malformed case), MLM packing and masking (coverage, statistics,
// determinism, resume), corpus splitting, the SOTU corpus (needs npm and its registry; skipped
// when unavailable) and the `linformer data|tokenizer` commands.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "data/token_file.hpp"
#include "linformer/datasets.hpp"
#include "linformer/data.hpp"
#include "linformer/error.hpp"
#include "linformer/tokenizer.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace linformer;
using test_util::expect_throw;
using test_util::TempDir;

namespace {


void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fixed vocabulary: common words plus made-up ones built from syllables (so that a unigram
// model of a few hundred pieces has enough to learn).
const std::vector<std::string>& words() {
  static const std::vector<std::string> w = [] {
    std::vector<std::string> out = {"the", "union", "state", "congress", "people", "nation", "law", "peace",
                                    "war", "trade", "treaty", "revenue", "public", "credit", "citizens", "country",
                                    "and", "of", "to", "in", "for", "with", "we", "our", "shall", "must", "will"};
    const char* syl[] = {"ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ber", "dan", "gol", "ist", "mon", "pra",
                         "sel", "tur", "wen", "zo", "qua", "fy"};
    std::mt19937 rng(12345);
    while (out.size() < 300) {
      std::string word;
      const int n = 1 + rng() % 3;
      for (int k = 0; k < n; ++k) word += syl[rng() % 20];
      out.push_back(word);
    }
    return out;
  }();
  return w;
}

// Sentences of random words; documents of 3-12 lines separated by empty lines.
std::string make_corpus(int lines, uint32_t seed, std::vector<std::string>* sentences = nullptr) {
  const std::vector<std::string>& vocab = words();
  std::mt19937 rng(seed);
  std::string text;
  int in_doc = 0, doc_len = 3 + rng() % 10;
  for (int i = 0; i < lines; ++i) {
    std::string s;
    const int n = 4 + rng() % 12;
    for (int w = 0; w < n; ++w) {
      if (w) s += ' ';
      s += vocab[rng() % vocab.size()];
    }
    s += rng() % 4 == 0 ? "?" : ".";
    text += s + "\n";
    if (sentences) sentences->push_back(s);
    if (++in_doc == doc_len) {
      text += "\n";
      in_doc = 0;
      doc_len = 3 + rng() % 10;
    }
  }
  return text;
}

// One tokenizer (vocab 200) trained once for all the tests that only need one.
const std::string& shared_model() {
  static std::string path = [] {
    const fs::path dir = fs::temp_directory_path() / ("linformer_test_data_tok_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    write_file((dir / "corpus.txt").string(), make_corpus(3000, 1));
    Tokenizer::train({(dir / "corpus.txt").string()}, 200, (dir / "tok.model").string(), 0);
    std::atexit([] { fs::remove_all(fs::temp_directory_path() / ("linformer_test_data_tok_" + std::to_string(::getpid()))); });
    return (dir / "tok.model").string();
  }();
  return path;
}


// Writes a token file directly: sentences given by their lengths, tokens given.
void write_token_file(const std::string& path, const std::vector<int32_t>& tokens, const std::vector<uint64_t>& ends,
                      uint64_t docs = 0) {
  data_detail::TokenHeader h{};
  std::memcpy(h.magic, "LFTOKENS", 8);
  h.version = 1;
  h.dtype = 1;
  h.num_tokens = tokens.size();
  h.num_sentences = ends.size();
  h.num_documents = docs;
  h.max_id = tokens.empty() ? -1 : *std::max_element(tokens.begin(), tokens.end());
  std::string bytes(reinterpret_cast<const char*>(&h), sizeof h);
  bytes.append(reinterpret_cast<const char*>(tokens.data()), tokens.size() * 4);
  bytes.resize(data_detail::token_ends_offset(tokens.size()), '\0');
  bytes.append(reinterpret_cast<const char*>(ends.data()), ends.size() * 8);
  write_file(path, bytes);
}

// A synthetic corpus for the batcher: token i has id kNumSpecial + i (so positions are
// recoverable), sentences of random lengths (some longer than the sequence), and document ends
// (a lone kEosId) every few sentences.
struct Synthetic {
  std::vector<int32_t> tokens;
  std::vector<uint64_t> ends;
  uint64_t docs = 0;
};
Synthetic make_synthetic(int sentences, int max_len, int long_every, uint32_t seed) {
  std::mt19937 rng(seed);
  Synthetic s;
  int32_t next = kNumSpecial;
  for (int i = 0; i < sentences; ++i) {
    int len = 1 + rng() % max_len;
    if (long_every && i % long_every == long_every - 1) len = 3 * max_len + rng() % max_len;
    for (int k = 0; k < len; ++k) s.tokens.push_back(next++);
    s.ends.push_back(s.tokens.size());
    if (rng() % 5 == 0) {
      s.tokens.push_back(kEosId);
      s.ends.push_back(s.tokens.size());
      ++s.docs;
    }
  }
  return s;
}

struct SeqView {
  std::vector<int32_t> ids, labels;
};
// The sequences of one batch, without padding.
std::vector<SeqView> split_batch(const Batch& b, const std::vector<int32_t>& labels) {
  std::vector<SeqView> out;
  for (int i = 0; i < b.B; ++i) {
    SeqView v;
    for (int p = 0; p < b.n; ++p) {
      if (!b.mask[i * b.n + p]) {
        EXPECT_EQ(b.ids[i * b.n + p], kPadId);
        EXPECT_EQ(labels[i * b.n + p], kIgnoreIndex);
        continue;
      }
      EXPECT_EQ(p, (int)v.ids.size()) << "padding before a real token";
      v.ids.push_back(b.ids[i * b.n + p]);
      v.labels.push_back(labels[i * b.n + p]);
    }
    out.push_back(v);
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------- tokenizer

TEST(Tokenizer, TrainEncodeDecodeRoundTrip) {
  Tokenizer tok(shared_model());
  EXPECT_EQ(tok.vocab_size(), 200);
  const char* specials[] = {"<pad>", "<s>", "</s>", "<unk>", "<mask>"};
  for (int id = 0; id < kNumSpecial; ++id) {
    EXPECT_EQ(tok.piece(id), specials[id]);
    EXPECT_EQ(tok.piece_to_id(specials[id]), id);
  }
  std::vector<std::string> sentences;
  make_corpus(200, 99, &sentences);  // unseen sentences of the same words
  for (const std::string& s : sentences) {
    const std::vector<int32_t> ids = tok.encode(s);
    ASSERT_FALSE(ids.empty());
    EXPECT_NE(ids.front(), kBosId);
    EXPECT_NE(ids.back(), kEosId);
    for (int32_t id : ids) {
      EXPECT_GE(id, kNumSpecial) << s;  // no <unk>: every character was seen
      EXPECT_LT(id, 200);
    }
    EXPECT_EQ(tok.decode(ids), s);
  }
  // <mask> is a user-defined piece: it survives encoding as id 4.
  const std::vector<int32_t> m = tok.encode("the <mask> of the union");
  EXPECT_EQ(std::count(m.begin(), m.end(), kMaskId), 1);
  EXPECT_EQ(tok.decode(m), "the <mask> of the union");
  EXPECT_THROW(tok.decode({0, 200}), InputError);
  EXPECT_THROW(tok.piece(-1), InputError);
}

TEST(Tokenizer, TrainingIsDeterministicAndAcceptsFolders) {
  TempDir d;
  fs::create_directories(d.path() / "corpus" / "sub");
  write_file(d / "corpus/a.txt", make_corpus(800, 5));
  write_file(d / "corpus/sub/b.txt", make_corpus(800, 6));
  write_file(d / "corpus/.hidden", "\xff\xfe not text\n");  // skipped: hidden
  Tokenizer::train({d / "corpus"}, 150, d / "one.model", 7);
  Tokenizer::train({d / "corpus/a.txt", d / "corpus/sub/b.txt"}, 150, d / "two.model", 7);
  EXPECT_EQ(read_bytes(d / "one.model"), read_bytes(d / "two.model"));
  Tokenizer tok(d / "one.model");
  EXPECT_EQ(tok.vocab_size(), 150);
  EXPECT_EQ(tok.piece_to_id("<mask>"), kMaskId);
  // Nothing left behind but the two models and the corpus.
  int files = 0;
  for (auto& e : fs::directory_iterator(d.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 2);
}

TEST(Tokenizer, BadInputGivesClearErrors) {
  TempDir d;
  std::string msg = expect_throw<IoError>([&] { Tokenizer::train({d / "missing.txt"}, 100, d / "t.model"); });
  EXPECT_NE(msg.find("missing.txt"), std::string::npos) << msg;

  write_file(d / "empty.txt", "\n   \n\t\n");
  msg = expect_throw<InputError>([&] { Tokenizer::train({d / "empty.txt"}, 100, d / "t.model"); });
  EXPECT_NE(msg.find("empty"), std::string::npos) << msg;
  EXPECT_NE(msg.find("empty.txt"), std::string::npos) << msg;

  write_file(d / "latin1.txt", "good line\nanother good line\ncaf\xe9 au lait\n");
  msg = expect_throw<InputError>([&] { Tokenizer::train({d / "latin1.txt"}, 100, d / "t.model"); });
  EXPECT_NE(msg.find("latin1.txt:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("UTF-8"), std::string::npos) << msg;
  EXPECT_NE(msg.find("0xE9"), std::string::npos) << msg;

  write_file(d / "small.txt", "a tiny corpus\n");
  msg = expect_throw<InputError>([&] { Tokenizer::train({d / "small.txt"}, 5000, d / "t.model"); });
  EXPECT_NE(msg.find("vocab"), std::string::npos) << msg;
  EXPECT_THROW(Tokenizer::train({d / "small.txt"}, 3, d / "t.model"), ConfigError);
  EXPECT_FALSE(fs::exists(d / "t.model"));

  write_file(d / "junk.model", "not a model");
  msg = expect_throw<IoError>([&] { Tokenizer tok(d / "junk.model"); });
  EXPECT_NE(msg.find("junk.model"), std::string::npos) << msg;
  EXPECT_THROW(Tokenizer tok(d / "none.model"), IoError);
}

// ---------------------------------------------------------------- token files

TEST(TokenFile, EncodeCorpusRoundTrip) {
  TempDir d;
  Tokenizer tok(shared_model());
  std::vector<std::string> s1, s2;
  write_file(d / "a.txt", "\n\n" + make_corpus(300, 11, &s1) + "\n\n\n");
  write_file(d / "b.txt", make_corpus(100, 12, &s2));  // no final empty line: the file end ends the document
  const size_t n = encode_corpus(tok, {d / "a.txt", d / "b.txt"}, d / "x.tokens");
  TokenFile f(d / "x.tokens");
  EXPECT_EQ(f.num_tokens(), n);
  EXPECT_LT(f.max_id(), tok.vocab_size());
  EXPECT_EQ(f.sentence_ends()[f.num_sentences() - 1], n);

  // Read the sentences back: text lines in order, each document closed by a lone </s>.
  std::vector<std::string> lines = s1;
  lines.insert(lines.end(), s2.begin(), s2.end());
  size_t line = 0, docs = 0;
  uint64_t begin = 0;
  for (size_t s = 0; s < f.num_sentences(); ++s) {
    const uint64_t end = f.sentence_ends()[s];
    std::vector<int32_t> ids(f.tokens() + begin, f.tokens() + end);
    begin = end;
    if (ids.size() == 1 && ids[0] == kEosId) {
      ++docs;
      continue;
    }
    ASSERT_LT(line, lines.size());
    EXPECT_EQ(ids, tok.encode(lines[line]));
    ++line;
  }
  EXPECT_EQ(line, lines.size());
  EXPECT_GT(docs, 20u);
  EXPECT_EQ(f.tokens()[n - 1], kEosId);
  // Header counts match.
  data_detail::TokenHeader h;
  std::ifstream(d / "x.tokens", std::ios::binary).read(reinterpret_cast<char*>(&h), sizeof h);
  EXPECT_EQ(h.num_documents, docs);
  EXPECT_EQ(h.vocab_size, 200);
  // No scratch files left.
  for (auto& e : fs::directory_iterator(d.path()))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();

  write_file(d / "blank.txt", "\n \n");
  EXPECT_THROW(encode_corpus(tok, {d / "blank.txt"}, d / "y.tokens"), InputError);
  write_file(d / "bad.txt", "fine\n\xc3\x28\n");
  const std::string msg = expect_throw<InputError>([&] { encode_corpus(tok, {d / "bad.txt"}, d / "y.tokens"); });
  EXPECT_NE(msg.find("bad.txt:2"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(d / "y.tokens"));
}

TEST(TokenFile, MalformedFilesAreRejected) {
  TempDir d;
  const std::vector<int32_t> toks{5, 6, 7, 2, 8, 9, 10};  // odd count: the offsets need padding
  const std::vector<uint64_t> ends{3, 4, 7};
  write_token_file(d / "ok.tokens", toks, ends, 1);
  {
    TokenFile f(d / "ok.tokens");
    EXPECT_EQ(f.num_tokens(), 7u);
    EXPECT_EQ(f.num_sentences(), 3u);
    EXPECT_EQ(f.max_id(), 10);
    EXPECT_EQ(std::vector<int32_t>(f.tokens(), f.tokens() + 7), toks);
    EXPECT_EQ(std::vector<uint64_t>(f.sentence_ends(), f.sentence_ends() + 3), ends);
  }
  const std::string good = read_bytes(d / "ok.tokens");
  ASSERT_EQ(good.size(), 64u + 28 + 4 + 24);

  auto expect_bad = [&](const std::string& name, const std::string& bytes, const std::string& why) {
    write_file(d / name, bytes);
    const std::string msg = expect_throw<IoError>([&] { TokenFile f(d / name); });
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
    EXPECT_NE(msg.find(why), std::string::npos) << name << ": " << msg;
  };
  auto patch = [&](size_t at, const void* v, size_t n) {
    std::string b = good;
    std::memcpy(b.data() + at, v, n);
    return b;
  };
  expect_bad("magic.tokens", "LFTOKENZ" + good.substr(8), "magic");
  const uint32_t v2 = 2, dt = 7;
  expect_bad("version.tokens", patch(8, &v2, 4), "version");
  expect_bad("dtype.tokens", patch(12, &dt, 4), "dtype");
  expect_bad("short.tokens", good.substr(0, 40), "header");
  expect_bad("truncated.tokens", good.substr(0, good.size() - 5), "truncated");
  expect_bad("longer.tokens", good + "extra", "implies");
  const uint64_t many = 1000, eight = 8, huge = ~0ULL / 2;
  expect_bad("count.tokens", patch(16, &many, 8), "inconsistent");
  expect_bad("hugecount.tokens", patch(24, &huge, 8), "inconsistent");
  expect_bad("order.tokens", patch(64 + 32, &eight, 8), "not ascending");  // ends {8, 4, 7}
  const uint64_t six = 6;
  expect_bad("last.tokens", patch(64 + 32 + 16, &six, 8), "last sentence");
  const int32_t neg = -3, big = 11;
  expect_bad("negative.tokens", patch(64 + 4, &neg, 4), "id -3");
  expect_bad("maxid.tokens", patch(64 + 8, &big, 4), "id 11");
  const uint64_t docs = 9;
  expect_bad("docs.tokens", patch(32, &docs, 8), "documents");
  expect_bad("empty.tokens", "", "header");
  const std::string msg = expect_throw<IoError>([&] { TokenFile f(d / "missing.tokens"); });
  EXPECT_NE(msg.find("missing.tokens"), std::string::npos) << msg;
}

// ---------------------------------------------------------------- packing and masking

TEST(MlmBatcher, PackingCoversEveryTokenOnceAndKeepsSentences) {
  TempDir d;
  const int seq_len = 64;
  const Synthetic syn = make_synthetic(400, 30, 37, 3);
  write_token_file(d / "p.tokens", syn.tokens, syn.ends, syn.docs);
  TokenFile f(d / "p.tokens");
  MlmOptions o;
  o.seq_len = seq_len;
  o.batch_size = 7;
  o.vocab_size = 100000;
  o.seed = 5;
  MlmBatcher batcher(f, o);
  EXPECT_EQ(batcher.batches_per_epoch(), (batcher.num_sequences() + 6) / 7);

  // token index -> (sequence number in this epoch, position)
  std::vector<std::pair<int, int>> where(syn.tokens.size(), {-1, -1});
  size_t eos_seen = 0, seqs = 0, full_batches = 0;
  Batch b;
  std::vector<int32_t> labels;
  for (size_t i = 0; i < batcher.batches_per_epoch(); ++i) {
    batcher.next(b, labels);
    ASSERT_EQ(b.ids.size(), (size_t)b.B * b.n);
    ASSERT_LE(b.n, seq_len);
    full_batches += b.B == 7;
    for (const SeqView& s : split_batch(b, labels)) {
      const int len = (int)s.ids.size();
      ASSERT_GE(len, 3);
      ASSERT_LE(len, seq_len);
      EXPECT_EQ(s.ids[0], kBosId);
      EXPECT_EQ(s.ids[len - 1], kEosId);
      EXPECT_EQ(s.labels[0], kIgnoreIndex);
      EXPECT_EQ(s.labels[len - 1], kIgnoreIndex);
      for (int p = 1; p < len - 1; ++p) {
        const int32_t orig = s.labels[p] != kIgnoreIndex ? s.labels[p] : s.ids[p];
        if (orig == kEosId) {
          EXPECT_EQ(s.labels[p], kIgnoreIndex) << "a document end was selected";
          EXPECT_EQ(s.ids[p], kEosId);
          ++eos_seen;
          continue;
        }
        const size_t idx = (size_t)(orig - kNumSpecial);
        ASSERT_LT(idx, syn.tokens.size());
        ASSERT_EQ(where[idx].first, -1) << "token " << idx << " seen twice";
        where[idx] = {(int)seqs, p};
      }
      ++seqs;
    }
  }
  EXPECT_EQ(seqs, batcher.num_sequences());
  EXPECT_EQ(full_batches, batcher.batches_per_epoch() - (seqs % 7 != 0));
  EXPECT_EQ(eos_seen, syn.docs);
  EXPECT_EQ(batcher.state().epoch, 1u);
  EXPECT_EQ(batcher.state().cursor, 0u);
  // Every text token was seen; a sentence that fits stays whole and contiguous.
  uint64_t begin = 0;
  size_t split = 0;
  for (uint64_t end : std::vector<uint64_t>(syn.ends)) {
    if (syn.tokens[begin] == kEosId) {
      begin = end;
      continue;
    }
    auto at = [&](uint64_t t) { return where[syn.tokens[t] - kNumSpecial]; };  // file position -> place seen
    for (uint64_t t = begin; t < end; ++t) ASSERT_NE(at(t).first, -1) << "token " << t << " never seen";
    if (end - begin <= (uint64_t)seq_len - 2) {
      for (uint64_t t = begin + 1; t < end; ++t) {
        EXPECT_EQ(at(t).first, at(begin).first) << "sentence split";
        EXPECT_EQ(at(t).second, at(t - 1).second + 1);
      }
    } else {
      ++split;
    }
    begin = end;
  }
  EXPECT_GT(split, 5u);  // the long sentences were exercised
}

TEST(MlmBatcher, MaskingStatistics) {
  TempDir d;
  // ~400k tokens; a sprinkle of literal <mask> and <unk> tokens in the text.
  Synthetic syn = make_synthetic(20000, 40, 0, 4);
  const int V = 5000;
  std::mt19937 rng(8);
  for (int32_t& t : syn.tokens) {
    if (t == kEosId) continue;
    t = kNumSpecial + (t % (V - kNumSpecial));
    if (rng() % 200 == 0) t = rng() % 2 ? kMaskId : kUnkId;
  }
  write_token_file(d / "m.tokens", syn.tokens, syn.ends, syn.docs);
  TokenFile f(d / "m.tokens");
  MlmOptions o;
  o.seq_len = 128;
  o.batch_size = 32;
  o.vocab_size = V;
  o.seed = 1;
  MlmBatcher batcher(f, o);
  size_t candidates = 0, selected = 0, masked = 0, random = 0, kept = 0, unk_selected = 0;
  size_t seqs_with_candidates = 0, seqs_with_selection = 0;
  Batch b;
  std::vector<int32_t> labels;
  for (size_t i = 0; i < batcher.batches_per_epoch(); ++i) {
    batcher.next(b, labels);
    for (const SeqView& s : split_batch(b, labels)) {
      size_t c = 0, sel = 0;
      for (size_t p = 0; p < s.ids.size(); ++p) {
        const bool is_sel = s.labels[p] != kIgnoreIndex;
        const int32_t orig = is_sel ? s.labels[p] : s.ids[p];
        const bool candidate = p > 0 && p + 1 < s.ids.size() && (orig >= kNumSpecial || orig == kUnkId);
        c += candidate;
        if (!is_sel) continue;
        ASSERT_TRUE(candidate) << "selected a special token " << orig << " at " << p;
        ++sel;
        unk_selected += orig == kUnkId;
        if (s.ids[p] == kMaskId) ++masked;
        else if (s.ids[p] == orig) ++kept;
        else {
          ++random;
          EXPECT_GE(s.ids[p], kNumSpecial);
          EXPECT_LT(s.ids[p], V);
        }
      }
      candidates += c;
      selected += sel;
      seqs_with_candidates += c > 0;
      seqs_with_selection += sel > 0;
    }
  }
  const double rate = (double)selected / candidates;
  const double pm = (double)masked / selected, pr = (double)random / selected, pk = (double)kept / selected;
  std::printf("masking over %zu candidate tokens: selected %.4f, of which <mask> %.4f random %.4f kept %.4f\n",
              candidates, rate, pm, pr, pk);
  EXPECT_GT(candidates, 300000u);
  EXPECT_NEAR(rate, 0.15, 0.005);
  EXPECT_NEAR(pm, 0.80, 0.015);
  EXPECT_NEAR(pr, 0.10, 0.015);
  EXPECT_NEAR(pk, 0.10, 0.015);
  EXPECT_GT(unk_selected, 0u);
  EXPECT_EQ(seqs_with_selection, seqs_with_candidates);
}

TEST(MlmBatcher, AtLeastOneSelectionPerShortSequence) {
  TempDir d;
  write_token_file(d / "s.tokens", {10, 11, 2, 12, 13, 14, 2}, {2, 3, 6, 7}, 2);
  TokenFile f(d / "s.tokens");
  MlmOptions o;
  o.seq_len = 4;  // bodies of 2 tokens
  o.batch_size = 8;
  o.vocab_size = 20;
  MlmBatcher batcher(f, o);
  for (int epoch = 0; epoch < 20; ++epoch) {
    Batch b;
    std::vector<int32_t> labels;
    batcher.next(b, labels);
    for (const SeqView& s : split_batch(b, labels)) {
      bool has_text = false;
      int sel = 0;
      for (size_t p = 1; p + 1 < s.ids.size(); ++p) {
        const int32_t orig = s.labels[p] != kIgnoreIndex ? s.labels[p] : s.ids[p];
        has_text |= orig >= kNumSpecial;
        sel += s.labels[p] != kIgnoreIndex;
      }
      EXPECT_EQ(sel > 0, has_text);
    }
  }
}

namespace {
std::vector<std::vector<int32_t>> take(MlmBatcher& batcher, int batches) {
  std::vector<std::vector<int32_t>> out;
  Batch b;
  std::vector<int32_t> labels;
  for (int i = 0; i < batches; ++i) {
    batcher.next(b, labels);
    std::vector<int32_t> v = b.ids;
    v.insert(v.end(), labels.begin(), labels.end());
    v.push_back(b.B);
    v.push_back(b.n);
    out.push_back(v);
  }
  return out;
}
}  // namespace

TEST(MlmBatcher, DeterministicResumableAndFreshEachEpoch) {
  TempDir d;
  const Synthetic syn = make_synthetic(300, 20, 0, 9);
  write_token_file(d / "r.tokens", syn.tokens, syn.ends, syn.docs);
  TokenFile f(d / "r.tokens");
  MlmOptions o;
  o.seq_len = 32;
  o.batch_size = 5;
  o.vocab_size = 10000;
  o.seed = 42;
  MlmBatcher a(f, o), b(f, o);
  const int per_epoch = (int)a.batches_per_epoch();
  ASSERT_GT(per_epoch, 10);
  const auto run_a = take(a, 4 * per_epoch);
  EXPECT_EQ(run_a, take(b, 4 * per_epoch));  // same seed, same batches
  o.seed = 43;
  MlmBatcher other(f, o);
  EXPECT_NE(take(other, 1)[0], run_a[0]);
  o.seed = 42;

  // Resume from any position, including mid-epoch and just after an epoch boundary.
  for (int stop : {1, per_epoch / 2, per_epoch, per_epoch + 3}) {
    MlmBatcher first(f, o);
    take(first, stop);
    const MlmBatcher::State st = first.state();
    MlmBatcher resumed(f, o);
    resumed.set_state(st);
    const auto rest = take(resumed, 2 * per_epoch);
    EXPECT_EQ(rest, std::vector<std::vector<int32_t>>(run_a.begin() + stop, run_a.begin() + stop + 2 * per_epoch))
        << "resume after " << stop;
  }
  EXPECT_THROW(a.set_state({0, a.num_sequences()}), InputError);

  // Without shuffling, epochs visit sequences in the same order but draw new masks.
  o.shuffle = false;
  MlmBatcher fixed(f, o);
  const auto e0 = take(fixed, per_epoch);
  const auto e1 = take(fixed, per_epoch);
  size_t same_masks = 0;
  Batch bb;
  for (int i = 0; i < per_epoch; ++i) same_masks += e0[i] == e1[i];
  EXPECT_LT(same_masks, 2u);
  EXPECT_EQ(e0[0][1], kNumSpecial);  // first sequence starts at the first token (if not masked) ...
  // ... and with shuffling, epochs differ in order.
  o.shuffle = true;
  MlmBatcher shuffled(f, o);
  const auto s0 = take(shuffled, per_epoch);
  const auto s1 = take(shuffled, per_epoch);
  EXPECT_NE(s0, s1);
}

// Data parallelism: the shards' batches are the single batcher's batch of batch_size x shards
// sequences cut in rank order, sequence for sequence with the same masks (whatever the padding),
// and every shard keeps the same (global) data position, including at an epoch's end where the
// last shards get fewer sequences or none.
TEST(MlmBatcher, ShardsSplitTheBatchOfOneBatcher) {
  TempDir d;
  const Synthetic syn = make_synthetic(300, 20, 0, 9);
  write_token_file(d / "sh.tokens", syn.tokens, syn.ends, syn.docs);
  TokenFile f(d / "sh.tokens");
  MlmOptions o;
  o.seq_len = 32;
  o.vocab_size = 10000;
  o.seed = 7;
  const int shards = 3, per_shard = 4;
  o.batch_size = per_shard * shards;
  MlmBatcher whole(f, o);
  const size_t N = whole.num_sequences();
  ASSERT_NE(N % o.batch_size, 0u);
  ASSERT_LE(N % o.batch_size, (size_t)per_shard) << "pick data whose last batch leaves a shard empty";
  o.batch_size = per_shard;
  o.shards = shards;
  std::vector<MlmBatcher> parts;
  for (int s = 0; s < shards; ++s) {
    o.shard = s;
    parts.emplace_back(f, o);
  }
  EXPECT_EQ(parts[0].batches_per_epoch(), whole.batches_per_epoch());
  // One sequence of a batch: its ids and labels without padding.
  auto row = [](const Batch& b, const std::vector<int32_t>& lab, int i) {
    std::vector<int32_t> v;
    for (int t = 0; t < b.n; ++t)
      if (b.mask[(size_t)i * b.n + t]) {
        v.push_back(b.ids[(size_t)i * b.n + t]);
        v.push_back(lab[(size_t)i * b.n + t]);
      }
    return v;
  };
  Batch wb, pb;
  std::vector<int32_t> wl, pl;
  int empty_shards = 0;
  for (size_t step = 0; step < 2 * whole.batches_per_epoch() + 1; ++step) {
    whole.next(wb, wl);
    int i = 0;
    for (int s = 0; s < shards; ++s) {
      parts[s].next(pb, pl);
      empty_shards += pb.B == 0;
      for (int j = 0; j < pb.B; ++j, ++i) {
        ASSERT_LT(i, wb.B) << "step " << step << ", shard " << s;
        ASSERT_EQ(row(pb, pl, j), row(wb, wl, i)) << "step " << step << ", shard " << s << ", sequence " << j;
      }
      EXPECT_EQ(parts[s].state().epoch, whole.state().epoch);
      EXPECT_EQ(parts[s].state().cursor, whole.state().cursor);
    }
    EXPECT_EQ(i, wb.B) << "step " << step << ": the shards do not cover the batch";
  }
  EXPECT_EQ(empty_shards, 4) << "the last batch of each of the two epochs leaves shards 1 and 2 empty";
  o.shard = shards;
  EXPECT_THROW(MlmBatcher(f, o), ConfigError);
}

TEST(MlmBatcher, RejectsBadOptions) {
  TempDir d;
  write_token_file(d / "o.tokens", {10, 11, 12}, {3});
  TokenFile f(d / "o.tokens");
  MlmOptions o;
  o.vocab_size = 100;
  o.seq_len = 2;
  EXPECT_THROW(MlmBatcher(f, o), ConfigError);
  o.seq_len = 16;
  o.batch_size = 0;
  EXPECT_THROW(MlmBatcher(f, o), ConfigError);
  o.batch_size = 2;
  o.mask_token = 0.95f;
  EXPECT_THROW(MlmBatcher(f, o), ConfigError);
  o.mask_token = 0.8f;
  o.vocab_size = 12;  // token 12 is outside
  const std::string msg = expect_throw<InputError>([&] { MlmBatcher bt(f, o); });
  EXPECT_NE(msg.find("o.tokens"), std::string::npos) << msg;
  write_token_file(d / "z.tokens", {}, {});
  TokenFile z(d / "z.tokens");
  o.vocab_size = 100;
  EXPECT_THROW(MlmBatcher(z, o), InputError);
}

// ---------------------------------------------------------------- corpora

TEST(Corpus, SplitSentences) {
  const auto s = split_sentences(
      "Fellow-Citizens:  I meet you. Mr. Smith and Gen. Jackson of the U.S. Army arrived!  \"Is it so?\" "
      "He said \xe2\x80\x9cyes.\xe2\x80\x9d Then J. Q. Adams spoke, i.e. nothing. The rate is 3.5 percent. End");
  const std::vector<std::string> want = {"Fellow-Citizens: I meet you.",
                                         "Mr. Smith and Gen. Jackson of the U.S. Army arrived!",
                                         "\"Is it so?\"",
                                         "He said \xe2\x80\x9cyes.\xe2\x80\x9d",
                                         "Then J. Q. Adams spoke, i.e. nothing.",
                                         "The rate is 3.5 percent.",
                                         "End"};
  EXPECT_EQ(s, want);
  EXPECT_TRUE(split_sentences("  \n ").empty());
}

TEST(Corpus, SplitTextFilesByDocument) {
  TempDir d;
  std::string text;
  for (int doc = 0; doc < 25; ++doc) {
    text += "doc " + std::to_string(doc) + " line one\n";
    text += "doc " + std::to_string(doc) + " line two\n\n\n";
  }
  write_file(d / "in.txt", text);
  const CorpusSplit s = split_text_files({d / "in.txt"}, d / "out", 5);
  EXPECT_EQ(s.train_docs, 20u);
  EXPECT_EQ(s.valid_docs, 5u);
  EXPECT_EQ(s.train_lines, 40u);
  const std::string valid = read_bytes(s.valid_path), train = read_bytes(s.train_path);
  EXPECT_EQ(valid.size(), s.valid_bytes);
  EXPECT_NE(valid.find("doc 4 line one\ndoc 4 line two\n\ndoc 9 line one"), std::string::npos) << valid;
  EXPECT_EQ(train.find("doc 4 "), std::string::npos);
  EXPECT_NE(train.find("doc 3 line two\n\ndoc 5 line one\n"), std::string::npos);
  EXPECT_THROW(split_text_files({d / "nope.txt"}, d / "out2", 5), IoError);
}

namespace {
bool have_program(const char* name) {
  const std::string cmd = std::string("command -v ") + name + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}
}  // namespace

// Sets an environment variable for the scope of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_) ::setenv(name_, old_.c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

TEST(Corpus, PrepareSotuReportsNpmProblems) {
  TempDir d;
  {
    ScopedEnv path("PATH", (d.path() / "empty-bin").string());
    const std::string msg = expect_throw<IoError>([&] { prepare_sotu(d / "data"); });
    EXPECT_NE(msg.find("npm is not installed"), std::string::npos) << msg;
  }
  if (!have_program("npm")) return;
  ScopedEnv registry("npm_config_registry", "http://127.0.0.1:9/");  // nothing listens there
  ScopedEnv retries("npm_config_fetch_retries", "0");
  const std::string msg = expect_throw<IoError>([&] { prepare_sotu(d / "data"); });
  EXPECT_NE(msg.find("npm install"), std::string::npos) << msg;
  EXPECT_NE(msg.find("failed"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(d.path() / "data" / "sotu" / "train.txt"));
}

TEST(Corpus, PrepareSotu) {
  if (!have_program("npm")) GTEST_SKIP() << "npm is not installed";
  // Kept in the test's working folder (the build tree) so the npm install happens once.
  const std::string dir = (fs::current_path() / "sotu_test_data").string();
  CorpusSplit s;
  try {
    s = prepare_sotu(dir);
  } catch (const IoError& e) {
    if (std::string(e.what()).find("npm install") != std::string::npos) GTEST_SKIP() << "offline? " << e.what();
    throw;
  }
  EXPECT_EQ(s.train_docs + s.valid_docs, 233u);
  EXPECT_EQ(s.valid_docs, 23u);
  EXPECT_GT(s.train_bytes, 9'000'000u);
  EXPECT_GT(s.valid_bytes, 500'000u);
  EXPECT_TRUE(fs::exists(fs::path(dir) / "sotu" / "README.md"));
  // No address in both: compare whole addresses.
  auto documents = [](const std::string& path) {
    std::ifstream in(path);
    std::set<std::string> out;
    std::string line, doc;
    while (std::getline(in, line)) {
      if (line.empty()) {
        if (!doc.empty()) out.insert(doc);
        doc.clear();
      } else {
        doc += line + "\n";
      }
    }
    return out;
  };
  const auto tr = documents(s.train_path), va = documents(s.valid_path);
  EXPECT_EQ(tr.size(), 210u);
  EXPECT_EQ(va.size(), 23u);
  for (const std::string& doc : va) EXPECT_EQ(tr.count(doc), 0u) << doc.substr(0, 200);
  // Every line is short enough for SentencePiece's trainer.
  std::ifstream in(s.train_path);
  std::string line;
  size_t longest = 0;
  while (std::getline(in, line)) longest = std::max(longest, line.size());
  EXPECT_LT(longest, 4192u);
}

// ---------------------------------------------------------------- command line

namespace {
struct RunResult {
  int code = -1;
  std::string output;
};
// The linformer binary: LINFORMER_BIN, else the one next to the tests folder of this build; "" if none.
std::string cli_binary() {
  if (const char* bin = std::getenv("LINFORMER_BIN")) return bin;
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec).parent_path().parent_path() / "linformer";
  return !ec && fs::exists(p) ? p.string() : "";
}
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

TEST(DataCli, TokenizerTrainEncodeDecode) {
  if (cli_binary().empty()) GTEST_SKIP() << "the linformer binary is not built (or set LINFORMER_BIN)";
  TempDir d;
  write_file(d / "train.txt", make_corpus(1500, 21));
  write_file(d / "valid.txt", make_corpus(200, 22));
  RunResult r = run_cli("tokenizer train --input " + (d / "train.txt") + " --vocab-size 120 --out " + (d / "tok.model"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(d / "tok.model"));
  r = run_cli("tokenizer encode --model " + (d / "tok.model") + " --input " + (d / "valid.txt") + " --out " +
              (d / "valid.tokens"));
  ASSERT_EQ(r.code, 0) << r.output;
  TokenFile f(d / "valid.tokens");
  EXPECT_NE(r.output.find(std::to_string(f.num_tokens()) + " tokens"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(std::to_string(f.num_sentences()) + " sentences"), std::string::npos) << r.output;
  r = run_cli("tokenizer decode --model " + (d / "tok.model") + " --ids \"1 5 6 7 2\"");
  EXPECT_EQ(r.code, 0) << r.output;
  r = run_cli("tokenizer encode --model " + (d / "tok.model") + " --input " + (d / "missing.txt") + " --out " +
              (d / "m.tokens"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("missing.txt"), std::string::npos) << r.output;
}
