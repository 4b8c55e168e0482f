// linformer tokenizer train | encode | decode: SentencePiece tokenizer and token files (docs/data.md).
#include <chrono>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "linformer/data.hpp"
#include "linformer/error.hpp"
#include "linformer/tokenizer.hpp"
#include "registry.hpp"

namespace linformer::app {

namespace {

// linformer tokenizer train --input FILES|DIR... --vocab-size V --out tok.model [--seed S]
// linformer tokenizer encode --model tok.model --input FILES|DIR... --out X.tokens
// linformer tokenizer decode --model tok.model --ids "1 5 6 2"
struct TokenizerOptions {
  CLI::App *train = nullptr, *encode = nullptr, *decode = nullptr;
  std::vector<std::string> inputs;
  std::string model, out, ids;
  int vocab_size = 8000;
  uint64_t seed = 0;
};

CLI::App* add_tokenizer_command(CLI::App& app, TokenizerOptions& o) {
  CLI::App* cmd = app.add_subcommand("tokenizer", "Train a SentencePiece tokenizer; encode text into token files");
  cmd->require_subcommand(1);

  o.train = cmd->add_subcommand("train", "Train a unigram SentencePiece model (fixed special ids, docs/data.md)");
  o.train->add_option("--input", o.inputs, "Text files or folders (UTF-8, one sentence or paragraph per line)")
      ->required()
      ->type_name("FILES|DIR");
  o.train->add_option("--vocab-size", o.vocab_size, "Vocabulary size, special tokens included")
      ->capture_default_str()
      ->type_name("V");
  o.train->add_option("--out", o.out, "Model file to write")->required()->type_name("FILE");
  o.train->add_option("--seed", o.seed, "Seed of the sentence sampling (corpora over 1M lines)")->capture_default_str();

  o.encode = cmd->add_subcommand("encode", "Encode text into a token file (for pretrain --train/--valid)");
  o.encode->add_option("--model", o.model, "Tokenizer model")->required()->type_name("FILE");
  o.encode->add_option("--input", o.inputs, "Text files or folders (an empty line ends a document)")
      ->required()
      ->type_name("FILES|DIR");
  o.encode->add_option("--out", o.out, "Token file to write")->required()->type_name("FILE");

  o.decode = cmd->add_subcommand("decode", "Print the text and pieces of token ids");
  o.decode->add_option("--model", o.model, "Tokenizer model")->required()->type_name("FILE");
  o.decode->add_option("--ids", o.ids, "Token ids separated by spaces or commas")->required();
  return cmd;
}

void run_tokenizer(const TokenizerOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  if (o.train->parsed()) {
    Tokenizer::train(o.inputs, o.vocab_size, o.out, o.seed);
    fmt::print("tokenizer: vocab {} (unigram; <pad>=0 <s>=1 </s>=2 <unk>=3 <mask>=4) in {:.1f} s -> {}\n",
               Tokenizer(o.out).vocab_size(), seconds(), o.out);
  } else if (o.encode->parsed()) {
    Tokenizer tok(o.model);
    encode_corpus(tok, o.inputs, o.out);
    TokenFile f(o.out);
    size_t docs = 0;
    for (size_t s = 0; s < f.num_sentences(); ++s) {
      const uint64_t b = s ? f.sentence_ends()[s - 1] : 0;
      docs += f.sentence_ends()[s] - b == 1 && f.tokens()[b] == kEosId;
    }
    fmt::print("encode: {} tokens, {} sentences, {} documents, max id {} in {:.1f} s -> {}\n", f.num_tokens(),
               f.num_sentences(), docs, f.max_id(), seconds(), o.out);
  } else {
    Tokenizer tok(o.model);
    std::string s = o.ids;
    for (char& c : s)
      if (c == ',') c = ' ';
    std::istringstream in(s);
    std::vector<int32_t> ids;
    std::string word;
    while (in >> word) {
      size_t used = 0;
      long v = 0;
      try {
        v = std::stol(word, &used);
      } catch (const std::exception&) {
      }
      if (used != word.size() || v < INT32_MIN || v > INT32_MAX)
        throw InputError(fmt::format("--ids: '{}' is not an integer", word));
      ids.push_back(static_cast<int32_t>(v));
    }
    std::string pieces;
    for (int32_t id : ids) pieces += (pieces.empty() ? "" : " ") + tok.piece(id);
    fmt::print("{}\npieces: {}\n", tok.decode(ids), pieces);
  }
}

}  // namespace

void register_tokenizer(CLI::App& app, Context& ctx) {
  auto o = std::make_shared<TokenizerOptions>();
  ctx.on_run(add_tokenizer_command(app, *o), [o] { run_tokenizer(*o); });
}

}  // namespace linformer::app
