// Bad input, end to end (docs/reliability.md, "Bad input"): one test per row of the table there.
// Every case runs the `linformer` binary (LINFORMER_BIN) and requires a non-zero exit, a message
// naming the culprit (file, field, value, line) and no file added, removed or changed in the
// working folder (CliTest::expect_failure; the files that a case could damage are also compared
// byte for byte).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "cli_test_util.hpp"
#include "finetune_test_util.hpp"
#include "linformer/checkpoint.hpp"
#include "pretrain_test_util.hpp"

namespace fs = std::filesystem;
using namespace cli_test;
using namespace pretrain_test;

namespace {

const std::string kFast = "--threads 1 --batch-size 4 --seq-len 32 --eval-batches 1 --log-every 1";

class CliBadInput : public CliTest {
 protected:
  CliBadInput() : CliTest("linformer_test_cli_bad_input_") {}

  // A model file, a tokenizer, token files, a task folder and a short pretraining run: every kind
  // of file the tool reads, in a good version that the cases then break one at a time.
  void make_files() const {
    write("cfg.json", tiny_config_json("linformer"));
    ok("init --config cfg.json --out model.safetensors --seed 1");
    write("train.txt", grammar_corpus(200, 1));
    write("valid.txt", grammar_corpus(40, 2));
    ok("tokenizer train --input train.txt --vocab-size " + std::to_string(kTokVocab) + " --out tok.model");
    ok("tokenizer encode --model tok.model --input train.txt --out train.tokens");
    ok("tokenizer encode --model tok.model --input valid.txt --out valid.tokens");
    write("ids.txt", "1 2 3\n4 5\n");
    finetune_test::write_has7_task(path("task"), 40, 10, 10);
    write("has7.json", finetune_test::has7_config_json());
    write("input.txt", "1 7 2\n3 4\n");
  }
  // run/: a pretraining run with a checkpoint at step 2.
  void make_run() const {
    ok("pretrain --config cfg.json --train train.tokens --valid valid.tokens --tokenizer tok.model --out run "
       "--steps 2 --save-every 2 " + kFast);
  }

  // All the files under the folder with their bytes, to check that a failure changed nothing.
  std::map<std::string, std::string> snapshot() const {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(dir_))
      if (e.is_regular_file()) files[fs::relative(e.path(), dir_).string()] = pretrain_test::read_bytes(e.path().string());
    return files;
  }
  void expect_unchanged(const std::map<std::string, std::string>& before) const {
    const auto after = snapshot();
    EXPECT_EQ(after.size(), before.size());
    for (const auto& [name, bytes] : before) {
      const auto it = after.find(name);
      if (it == after.end())
        ADD_FAILURE() << name << " was removed";
      else
        EXPECT_TRUE(it->second == bytes) << name << " was changed";
    }
  }
};

// ---------------------------------------------------------------- missing files

TEST_F(CliBadInput, MissingFiles) {
  make_files();
  const auto before = snapshot();
  expect_failure("init --config none.json --out m.safetensors", {"none.json"});
  expect_failure("forward --model none.safetensors --ids ids.txt --out o.safetensors", {"none.safetensors"});
  expect_failure("forward --model model.safetensors --ids none.txt --out o.safetensors", {"none.txt"});
  expect_failure("tokenizer train --input none.txt --vocab-size 40 --out t.model", {"none.txt"});
  expect_failure("tokenizer encode --model none.model --input train.txt --out t.tokens", {"none.model"});
  expect_failure("tokenizer encode --model tok.model --input none.txt --out t.tokens", {"none.txt"});
  expect_failure("pretrain --config cfg.json --train none.tokens --valid valid.tokens --out r", {"none.tokens"});
  expect_failure("pretrain --config cfg.json --train train.tokens --valid none.tokens --out r", {"none.tokens"});
  expect_failure("pretrain --config cfg.json --train train.tokens --valid valid.tokens --tokenizer none.model --out r",
                 {"none.model"});
  expect_failure("eval-mlm --model model.safetensors --data none.tokens", {"none.tokens"});
  expect_failure("eval-mlm --model none --data valid.tokens", {"none"});
  expect_failure("fill-mask --model model.safetensors --tokenizer none.model --text 'the <mask>'", {"none.model"});
  expect_failure("finetune --model none --config has7.json --task nowhere --out r", {"nowhere", "task.json"});
  expect_failure("finetune --model none.safetensors --task task --out r", {"none.safetensors"});
  expect_failure("task import --train none.tsv --format tsv --out t", {"none.tsv"});
  expect_failure("task info --dir nowhere", {"nowhere"});
  expect_failure("predict --model nowhere --input input.txt", {"nowhere"});
  expect_unchanged(before);
}

// ---------------------------------------------------------------- empty files

TEST_F(CliBadInput, EmptyFiles) {
  make_files();
  for (const char* f : {"empty.json", "empty.safetensors", "empty.txt", "empty.tokens", "empty.model", "empty.tsv"})
    write(f, "");
  const auto before = snapshot();
  expect_failure("init --config empty.json --out m.safetensors", {"empty.json"});
  expect_failure("forward --model empty.safetensors --ids ids.txt --out o.safetensors", {"empty.safetensors"});
  expect_failure("forward --model model.safetensors --ids empty.txt --out o.safetensors", {"empty.txt"});
  expect_failure("tokenizer train --input empty.txt --vocab-size 40 --out t.model", {"empty"});
  expect_failure("tokenizer encode --model empty.model --input train.txt --out t.tokens", {"empty.model"});
  expect_failure("pretrain --config cfg.json --train empty.tokens --valid valid.tokens --out r", {"empty.tokens"});
  expect_failure("eval-mlm --model model.safetensors --data empty.tokens", {"empty.tokens"});
  expect_failure("task import --train empty.tsv --format tsv --out t", {"empty.tsv"});
  write("task/train.tsv", "");
  expect_failure("finetune --model none --config has7.json --task task --out r", {"train.tsv"});
  write("task/task.json", "");
  expect_failure("finetune --model none --config has7.json --task task --out r", {"task.json"});
  finetune_test::write_has7_task(path("task"), 40, 10, 10);
  expect_unchanged(before);
}

// ---------------------------------------------------------------- unreadable files

// A folder where a file is expected (always), and a file without read permission (only when the
// test does not run as root: root reads it anyway).
TEST_F(CliBadInput, UnreadableFiles) {
  make_files();
  fs::create_directories(path("folder.json"));
  fs::create_directories(path("folder.safetensors"));
  fs::create_directories(path("folder.tokens"));
  fs::create_directories(path("folder.txt"));
  const auto before = snapshot();
  expect_failure("init --config folder.json --out m.safetensors", {"folder.json"});
  expect_failure("forward --model folder.safetensors --ids ids.txt --out o.safetensors", {"folder.safetensors"});
  expect_failure("forward --model model.safetensors --ids folder.txt --out o.safetensors", {"folder.txt"});
  expect_failure("pretrain --config cfg.json --train folder.tokens --valid valid.tokens --out r", {"folder.tokens"});
  expect_failure("eval-mlm --model model.safetensors --data folder.tokens", {"folder.tokens"});
  expect_failure("tokenizer encode --model folder.tokens --input train.txt --out t.tokens", {"folder.tokens"});
  expect_unchanged(before);

  if (geteuid() == 0) {
    std::printf("running as root: the permission half of this test is skipped (root reads any file)\n");
    return;
  }
  for (const char* f : {"cfg.json", "model.safetensors", "ids.txt", "train.tokens", "tok.model", "task/train.tsv"})
    fs::permissions(path(f), fs::perms::none);
  expect_failure("init --config cfg.json --out m.safetensors", {"cfg.json"});
  expect_failure("forward --model model.safetensors --ids input.txt --out o.safetensors", {"model.safetensors"});
  expect_failure("pretrain --config has7.json --train train.tokens --valid valid.tokens --out r", {"train.tokens"});
  expect_failure("tokenizer encode --model tok.model --input train.txt --out t.tokens", {"tok.model"});
  expect_failure("finetune --model none --config has7.json --task task --out r", {"train.tsv"});
  for (const char* f : {"cfg.json", "model.safetensors", "ids.txt", "train.tokens", "tok.model", "task/train.tsv"})
    fs::permissions(path(f), fs::perms::owner_read | fs::perms::owner_write);
}

// ---------------------------------------------------------------- non-UTF-8 text

TEST_F(CliBadInput, NonUtf8Text) {
  make_files();
  write("latin1.txt", grammar_corpus(20, 3) + "caf\xe9 au lait\n");
  write("latin1.tsv", "pos\tgood\nneg\tcaf\xe9\n");
  write("latin1.jsonl", "{\"text\": \"good\", \"label\": \"pos\"}\n{\"text\": \"caf\xe9\", \"label\": \"neg\"}\n");
  const auto before = snapshot();
  expect_failure("tokenizer train --input latin1.txt --vocab-size 40 --out t.model", {"latin1.txt", "UTF-8", "0xE9"});
  expect_failure("tokenizer encode --model tok.model --input latin1.txt --out t.tokens", {"latin1.txt", "UTF-8"});
  expect_failure("task import --train latin1.tsv --format tsv --out t", {"latin1.tsv:2", "UTF-8"});
  expect_failure("task import --train latin1.jsonl --format jsonl --out t", {"latin1.jsonl:2", "UTF-8"});
  write("task/valid.tsv", "yes\t7 1\nno\t1 \xff\n");
  expect_failure("finetune --model none --config has7.json --task task --out r", {"valid.tsv:2", "UTF-8"});
  finetune_test::write_has7_task(path("task"), 40, 10, 10);
  expect_failure("fill-mask --model model.safetensors --tokenizer tok.model --text \"$(printf 'caf\\351 <mask>')\"",
                 {"UTF-8", "0xE9"});
  expect_unchanged(before);
}

// ---------------------------------------------------------------- ids beyond the vocabulary

TEST_F(CliBadInput, IdsBeyondTheVocabulary) {
  make_files();
  write("big.txt", "1 2\n3 40 5\n");  // the model's vocab_size is 40
  write("neg.txt", "1 -2\n");
  write("huge.txt", "1 99999999999999999999\n");
  write("small.json", tiny_config_json("linformer", 20));  // the token files use ids up to 39
  const auto before = snapshot();
  const std::string fwd = "forward --model model.safetensors --out o.safetensors --ids ";
  expect_failure(fwd + "big.txt", {"big.txt:2", "40"});
  expect_failure(fwd + "neg.txt", {"neg.txt:1", "-2"});
  expect_failure(fwd + "huge.txt", {"huge.txt:1", "99999999999999999999"});
  expect_failure("pretrain --config small.json --train train.tokens --valid valid.tokens --out r",
                 {"train.tokens", "outside the model's vocabulary"});
  ok("init --config small.json --out small.safetensors");
  const auto with_small = snapshot();
  expect_failure("eval-mlm --model small.safetensors --data valid.tokens", {"valid.tokens", "vocabulary"});
  expect_unchanged(with_small);
  fs::remove(path("small.safetensors"));
  expect_unchanged(before);
}

// ---------------------------------------------------------------- sequences beyond N_max

TEST_F(CliBadInput, SequencesLongerThanMaxLen) {
  make_files();
  std::string line;
  for (int i = 0; i < 33; ++i) line += std::to_string(1 + i % 30) + " ";  // max_len is 32
  write("long.txt", "1 2\n" + line + "\n");
  write("long_digits.txt", "1 2\n1 2 3 4 5 6 1 2 3 4 5 6 1 2 3 4 5 6\n");  // has7: max_len 16
  const auto before = snapshot();
  expect_failure("forward --model model.safetensors --ids long.txt --out o.safetensors", {"long.txt:2", "33", "32"});
  expect_failure("pretrain --config cfg.json --train train.tokens --valid valid.tokens --out r --seq-len 64",
                 {"seq_len", "max_len 32"});
  expect_failure("eval-mlm --model model.safetensors --data valid.tokens --seq-len 64", {"64", "32"});
  write("task/train.tsv", "yes\t7 1\nno\t1 2 3 4 5 6 1 2 3 4 5 6 1 2 3 4 5 6\n");
  expect_failure("finetune --model none --config has7.json --task task --out r",
                 {"train.tsv:2", "sequence too long", "max_len 16"});
  finetune_test::write_has7_task(path("task"), 40, 10, 10);
  ok("finetune --model none --config has7.json --task task --out ft --steps 2 --threads 1 --batch-size 4");
  const auto with_run = snapshot();
  expect_failure("predict --model ft --input long_digits.txt", {"long_digits.txt:2", "too long", "--truncate"});
  expect_unchanged(with_run);
  fs::remove_all(path("ft"));
  expect_unchanged(before);
}

// ---------------------------------------------------------------- k > N_max

TEST_F(CliBadInput, ProjectionLongerThanMaxLen) {
  make_files();
  write("k64.json", R"({"vocab_size": 40, "max_len": 32, "d_model": 32, "n_heads": 2, "d_ff": 64, "n_layers": 2,
                       "attention": "linformer", "k": [64]})");
  write("k_layer.json", R"({"vocab_size": 40, "max_len": 32, "d_model": 32, "n_heads": 2, "d_ff": 64, "n_layers": 2,
                       "attention": "linformer", "sharing": "headwise", "k": [16, 33]})");
  // A model file whose metadata config claims k = 64 with max_len 32.
  linformer::SafetensorsFile f = linformer::read_safetensors(path("model.safetensors"));
  auto cfg = nlohmann::json::parse(f.metadata.at("linformer.config"));
  cfg["k"] = {64};
  f.metadata["linformer.config"] = cfg.dump();
  linformer::write_safetensors(path("k64.safetensors"), f.tensors, f.metadata);
  const auto before = snapshot();
  expect_failure("init --config k64.json --out m.safetensors", {"k64.json", "k[0] (64)", "max_len = 32"});
  expect_failure("init --config k_layer.json --out m.safetensors", {"k_layer.json", "k[1] (33)", "max_len = 32"});
  expect_failure("pretrain --config k64.json --train train.tokens --valid valid.tokens --out r", {"k[0] (64)"});
  expect_failure("finetune --model none --config k64.json --task task --out r", {"k[0] (64)"});
  expect_failure("forward --model k64.safetensors --ids ids.txt --out o.safetensors",
                 {"k64.safetensors", "k[0] (64)", "max_len = 32"});
  expect_unchanged(before);
}

// ---------------------------------------------------------------- invalid config values

TEST_F(CliBadInput, InvalidConfigValues) {
  make_files();
  // max_len 64: the default k (64) fits, so each case below has exactly one mistake.
  const std::string base = R"("vocab_size": 40, "max_len": 64, "d_model": 32, "n_heads": 2, "d_ff": 64)";
  // {config body, what the message must name}
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {R"({"vocab_size": 0, "max_len": 64, "d_model": 32, "n_heads": 2, "d_ff": 64})", {"vocab_size"}},
      {R"({"vocab_size": -5, "max_len": 64, "d_model": 32, "n_heads": 2, "d_ff": 64})", {"vocab_size", "-5"}},
      {"{" + base + R"(, "n_layers": 0})", {"n_layers"}},
      {R"({"vocab_size": 40, "max_len": 64, "d_model": 30, "n_heads": 4, "d_ff": 64})", {"n_heads", "d_model"}},
      {"{" + base + R"(, "dropout": 1.5})", {"dropout", "1.5"}},
      {"{" + base + R"(, "dropout": -0.1})", {"dropout"}},
      {"{" + base + R"(, "attention": "sparse"})", {"attention", "sparse"}},
      {"{" + base + R"(, "attention": "linformer", "sharing": "everything"})", {"sharing", "everything"}},
      {"{" + base + R"(, "attention": "linformer", "k": []})", {"k"}},
      {"{" + base + R"(, "attention": "linformer", "k": [0]})", {"k[0]"}},
      {"{" + base + R"(, "n_layers": 2, "attention": "linformer", "sharing": "headwise", "k": [8, 8, 8]})", {"k"}},
      {"{" + base + R"(, "n_layers": "two"})", {"n_layers", "two"}},
      {"{" + base + R"(, "n_layers": 2.5})", {"n_layers", "2.5"}},
      {"{" + base + R"(, "n_layers": 1e999})", {"cfg_bad.json"}},
      {"{" + base + R"(, "n_layer": 2})", {"n_layer"}},
      {R"({"vocab_size": 40, "max_len": 64, "d_model": 32, "n_heads": 2, "d_ff": 64)", {"cfg_bad.json"}},
      {"[1, 2, 3]", {"cfg_bad.json"}},
      {R"({"vocab_size": 40, "max_len": 99999999999, "d_model": 32, "n_heads": 2, "d_ff": 64})", {"max_len"}},
  };
  for (const auto& [body, needles] : cases) {
    SCOPED_TRACE(body);
    write("cfg_bad.json", body);
    const auto before = snapshot();
    std::vector<std::string> with_file = needles;
    with_file.push_back("cfg_bad.json");
    expect_failure("init --config cfg_bad.json --out m.safetensors", with_file);
    expect_failure("pretrain --config cfg_bad.json --train train.tokens --valid valid.tokens --out r", needles);
    expect_unchanged(before);
  }
  // Training options out of range are named too.
  const std::string pre = "pretrain --config cfg.json --train train.tokens --valid valid.tokens --out r ";
  expect_failure(pre + "--lr -1", {"lr"});
  expect_failure(pre + "--warmup -5", {"warmup"});
  expect_failure(pre + "--batch-size 0", {"--batch-size"});
  expect_failure(pre + "--seq-len 1", {"seq_len"});
  expect_failure(pre + "--clip -1", {"clip"});
  expect_failure(pre + "--threads -2", {"--threads"});
}

// ---------------------------------------------------------------- NaN weights

// A model file holding a NaN (or an infinity) is refused at load by every command that reads
// one, naming the tensor; a run whose latest checkpoint holds one is not resumed and keeps its files.
TEST_F(CliBadInput, NonFiniteWeights) {
  make_files();
  make_run();
  auto poison = [&](const std::string& file, float value) {
    linformer::SafetensorsFile f = linformer::read_safetensors(path(file));
    for (auto& t : f.tensors)
      if (t.name == "blk.0.attn_q.weight") std::memcpy(t.bytes.data() + 5 * sizeof(float), &value, sizeof value);
    linformer::write_safetensors(path(file), f.tensors, f.metadata);
  };
  fs::copy_file(path("model.safetensors"), path("nan.safetensors"));
  poison("nan.safetensors", std::nanf(""));
  fs::copy_file(path("model.safetensors"), path("inf.safetensors"));
  poison("inf.safetensors", -INFINITY);
  poison("run/ckpt-00000002/model.safetensors", std::nanf(""));
  const auto before = snapshot();
  const std::vector<std::string> named = {"blk.0.attn_q.weight", "non-finite", "element 5"};
  auto with = [&](std::string file) {
    std::vector<std::string> n = named;
    n.push_back(file);
    return n;
  };
  expect_failure("forward --model nan.safetensors --ids ids.txt --out o.safetensors", with("nan.safetensors"));
  expect_failure("forward --model inf.safetensors --ids ids.txt --out o.safetensors", with("inf.safetensors"));
  expect_failure("eval-mlm --model nan.safetensors --data valid.tokens", with("nan.safetensors"));
  expect_failure("fill-mask --model nan.safetensors --tokenizer tok.model --text 'the <mask>'", with("nan.safetensors"));
  expect_failure("finetune --model nan.safetensors --task task --out r", with("nan.safetensors"));
  expect_failure("pretrain --resume run --steps 4", with("ckpt-00000002"));
  expect_failure("eval-mlm --model run --data valid.tokens", with("ckpt-00000002"));
  expect_unchanged(before);
}

// ---------------------------------------------------------------- corrupt files

TEST_F(CliBadInput, CorruptFiles) {
  make_files();
  make_run();
  const std::string model = read("model.safetensors");
  const std::string tokens = read("train.tokens");
  write("half.safetensors", model.substr(0, model.size() / 2));
  write("garbage.model", "this is not a sentencepiece model\n");
  write("half.tokens", tokens.substr(0, tokens.size() / 2 + 3));
  write("text.tokens", "1 2 3 4\n");
  const auto before = snapshot();
  expect_failure("forward --model half.safetensors --ids ids.txt --out o.safetensors", {"half.safetensors"});
  expect_failure("tokenizer encode --model garbage.model --input train.txt --out t.tokens", {"garbage.model"});
  expect_failure("pretrain --config cfg.json --train half.tokens --valid valid.tokens --out r", {"half.tokens"});
  expect_failure("pretrain --config cfg.json --train text.tokens --valid valid.tokens --out r", {"text.tokens"});
  expect_failure("eval-mlm --model model.safetensors --data half.tokens", {"half.tokens"});
  expect_unchanged(before);

  // A run folder damaged by hand: each is refused with the file named, and nothing is written.
  const std::string state = read("run/ckpt-00000002/state.json");
  write("run/ckpt-00000002/state.json", "{\"step\": ");
  expect_failure("pretrain --resume run --steps 4", {"state.json"});
  write("run/ckpt-00000002/state.json", state);
  const std::string latest = read("run/latest");
  write("run/latest", "../../etc\n");
  expect_failure("pretrain --resume run --steps 4", {"latest", "../../etc"});
  write("run/latest", "ckpt-00000009\n");
  expect_failure("pretrain --resume run --steps 4", {"ckpt-00000009", "missing"});
  write("run/latest", latest);
  const std::string opt = read("run/ckpt-00000002/optimizer.safetensors");
  write("run/ckpt-00000002/optimizer.safetensors", opt.substr(0, opt.size() - 100));
  expect_failure("pretrain --resume run --steps 4", {"optimizer.safetensors"});
  write("run/ckpt-00000002/optimizer.safetensors", opt);
  const std::string train_json = read("run/train.json");
  write("run/train.json", "{\"steps\": \"many\"}");
  expect_failure("pretrain --resume run --steps 4", {"train.json"});
  write("run/train.json", train_json);
  expect_unchanged(before);
}

// ---------------------------------------------------------------- a full disk

// Writes that fail for lack of space (a file-size limit: ulimit -f, the tool ignores SIGXFSZ so the
// write fails with EFBIG like ENOSPC) leave the previous file intact and no temporary file behind.
// Checkpoints under a full disk: CliCrash.FullDiskKeepsTheExistingFiles.
TEST_F(CliBadInput, FullDisk) {
  make_files();
  std::string ids;  // 8 sequences of 30 tokens: about 70 kB of outputs
  for (int i = 0; i < 8; ++i) {
    for (int t = 0; t < 30; ++t) ids += std::to_string(1 + (i + t) % 39) + " ";
    ids += "\n";
  }
  write("ids.txt", ids);
  ok("forward --model model.safetensors --ids ids.txt --out out.safetensors --threads 1");
  ok("tokenizer encode --model tok.model --input train.txt --out big.tokens");
  ok("task listops --out lo --train 200 --valid 20 --test 20 --seed 1");
  const auto before = snapshot();
  auto full = [&](const std::string& args, const std::vector<std::string>& needles) {
    const RunResult r = run_with_file_size_limit(8, args);  // 4 kB
    EXPECT_NE(r.code, 0) << args << ":\n" << r.output;
    for (const std::string& n : needles)
      EXPECT_NE(r.output.find(n), std::string::npos) << args << ": no '" << n << "' in:\n" << r.output;
    expect_unchanged(before);
  };
  full("forward --model model.safetensors --ids ids.txt --out out.safetensors --threads 1",
       {"out.safetensors", "write failed"});
  full("tokenizer encode --model tok.model --input train.txt --out big.tokens", {"big.tokens", "write"});
  full("init --config cfg.json --out model.safetensors", {"model.safetensors", "write failed"});
  full("task listops --out lo --train 300 --valid 20 --test 20 --seed 2", {"lo", "write"});
}

}  // namespace
