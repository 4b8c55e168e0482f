// Streams text through the tokenizer into a token file (docs/data.md), in bounded memory: tokens go
// straight to the output's temporary file, sentence end offsets to a second temporary file that is
// appended at the end; the header is written last and the file renamed into place.
#include <cstring>

#include <fmt/core.h>

#include "data/text_io.hpp"
#include "data/token_file.hpp"
#include "linformer/data.hpp"
#include "linformer/error.hpp"
#include "linformer/tokenizer.hpp"

namespace linformer {

using namespace data_detail;

size_t encode_corpus(const Tokenizer& tok, const std::vector<std::string>& inputs, const std::string& out_path) {
  const std::vector<std::string> files = expand_inputs(inputs);
  core::AtomicFile out(out_path, core::kCreateParents);
  core::AtomicFile ends(out_path + ".ends", core::kCreateParents);  // scratch, never committed (removed when done)

  TokenHeader h{};
  std::memcpy(h.magic, kTokenMagic, 8);
  h.version = kTokenVersion;
  h.dtype = kDtypeInt32;
  h.vocab_size = tok.vocab_size();
  h.max_id = -1;
  out.write(&h, sizeof h);  // placeholder, rewritten at the end

  uint64_t doc_sentences = 0;  // sentences in the current document
  auto add_sentence = [&](const std::vector<int32_t>& ids) {
    out.write(ids.data(), ids.size() * sizeof(int32_t));
    h.num_tokens += ids.size();
    const uint64_t end = h.num_tokens;
    ends.write(&end, sizeof end);
    ++h.num_sentences;
    for (int32_t t : ids) h.max_id = std::max(h.max_id, t);
  };
  const std::vector<int32_t> doc_end{kEosId};
  auto end_document = [&]() {
    if (doc_sentences == 0) return;
    add_sentence(doc_end);
    ++h.num_documents;
    doc_sentences = 0;
  };

  std::string line;
  for (const std::string& f : files) {
    LineReader r(f);
    while (r.next(line)) {
      if (is_blank(line)) {
        end_document();
        continue;
      }
      const std::vector<int32_t> ids = tok.encode(line);
      if (ids.empty()) continue;  // nothing left after normalisation
      add_sentence(ids);
      ++doc_sentences;
    }
    end_document();  // a file ends its last document
  }
  if (h.num_documents == 0)
    throw InputError(fmt::format("encode: the corpus is empty (no non-blank line in {}{})", files[0],
                                 files.size() > 1 ? fmt::format(" and {} more files", files.size() - 1) : ""));

  // Pad the tokens to 8 bytes, append the sentence ends, then write the real header.
  const uint64_t pad = token_ends_offset(h.num_tokens) - (64 + 4 * h.num_tokens);
  const char zeros[8] = {};
  out.write(zeros, pad);
  if (std::fflush(ends.get()) != 0 || std::fseek(ends.get(), 0, SEEK_SET) != 0)
    throw IoError(fmt::format("{}: cannot read back the sentence offsets", ends.path()));
  std::vector<char> buf(1 << 20);
  size_t got;
  while ((got = std::fread(buf.data(), 1, buf.size(), ends.get())) > 0) out.write(buf.data(), got);
  if (std::ferror(ends.get())) throw IoError(fmt::format("{}: cannot read back the sentence offsets", ends.path()));
  if (std::fseek(out.get(), 0, SEEK_SET) != 0) throw IoError(fmt::format("{}: seek failed", out_path));
  out.write(&h, sizeof h);
  out.commit();
  return h.num_tokens;
}

}  // namespace linformer
