// Fashion-MNIST (Debian dataset-fashion-mnist) as pixel sequences: IDX reading and the task folder.
#include <filesystem>

#include <fmt/core.h>

#include "data/tasks_detail.hpp"
#include "linformer/error.hpp"
#include "linformer/datasets.hpp"

namespace fs = std::filesystem;

namespace linformer {

using namespace task_detail;

IdxArray read_idx(const std::string& path) {
  std::string bytes = core::read_file(path);
  if (bytes.size() >= 2 && (unsigned char)bytes[0] == 0x1F && (unsigned char)bytes[1] == 0x8B)
    bytes = core::run_program_output({"gzip", "-dc", "--", path}, fmt::format("{}: gzip data", path));
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 4) throw IoError(fmt::format("{}: too short for an IDX file ({} bytes)", path, bytes.size()));
  if (p[0] != 0 || p[1] != 0)
    throw IoError(fmt::format("{}: bad magic {:02x} {:02x} {:02x} {:02x} (an IDX file starts with 00 00 08 NDIMS)",
                              path, p[0], p[1], p[2], p[3]));
  if (p[2] != 0x08)
    throw IoError(fmt::format("{}: IDX element type 0x{:02x} is not supported (only 0x08, unsigned bytes)", path, p[2]));
  const int nd = p[3];
  if (nd < 1 || nd > 4) throw IoError(fmt::format("{}: IDX with {} dimensions (expected 1 to 4)", path, nd));
  const size_t header = 4 + 4 * (size_t)nd;
  if (bytes.size() < header)
    throw IoError(fmt::format("{}: truncated header ({} bytes, {} needed for {} dimensions)", path, bytes.size(), header,
                              nd));
  IdxArray a;
  uint64_t total = 1;
  for (int d = 0; d < nd; ++d) {
    const unsigned char* q = p + 4 + 4 * d;
    const uint32_t v = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
    a.dims.push_back(v);
    total *= v;
    if (total > (uint64_t)1 << 40) throw IoError(fmt::format("{}: implausible dimensions", path));
  }
  const uint64_t have = bytes.size() - header;
  if (have < total)
    throw IoError(fmt::format("{}: truncated: the dimensions need {} data bytes, the file has {}", path, total, have));
  if (have > total)
    throw IoError(fmt::format("{}: {} bytes after the data that the dimensions describe", path, have - total));
  a.data.assign(bytes.begin() + (std::ptrdiff_t)header, bytes.end());
  return a;
}

namespace {

const char* kFashionLabels[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                  "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

std::string find_idx(const std::string& dir, const std::string& stem) {
  std::error_code ec;
  for (const std::string& name : {stem + ".gz", stem})
    if (fs::is_regular_file(fs::path(dir) / name, ec)) return (fs::path(dir) / name).string();
  throw IoError(fmt::format("{}: no {}.gz or {} (Debian: apt-get install dataset-fashion-mnist, or pass --source)",
                            dir, stem, stem));
}

struct Images {
  IdxArray images, labels;
  size_t n = 0, pixels = 0;
};

Images load_pair(const std::string& dir, const std::string& prefix) {
  Images s;
  const std::string ip = find_idx(dir, prefix + "-images-idx3-ubyte");
  const std::string lp = find_idx(dir, prefix + "-labels-idx1-ubyte");
  s.images = read_idx(ip);
  s.labels = read_idx(lp);
  if (s.images.dims.size() != 3) throw IoError(fmt::format("{}: {} dimensions, expected 3 (N, rows, columns)", ip,
                                                            s.images.dims.size()));
  if (s.labels.dims.size() != 1) throw IoError(fmt::format("{}: {} dimensions, expected 1", lp, s.labels.dims.size()));
  if (s.images.dims[0] != s.labels.dims[0])
    throw IoError(fmt::format("{} holds {} images but {} holds {} labels", ip, s.images.dims[0], lp, s.labels.dims[0]));
  s.n = s.images.dims[0];
  s.pixels = (size_t)s.images.dims[1] * s.images.dims[2];
  for (size_t i = 0; i < s.n; ++i)
    if (s.labels.data[i] >= 10) throw IoError(fmt::format("{}: label {} of item {} is not 0..9", lp, s.labels.data[i], i));
  return s;
}

}  // namespace

void prepare_fashion_mnist(const std::string& out_dir, const FashionMnistOptions& opt) {
  const Images train = load_pair(opt.source, "train");
  const Images test = load_pair(opt.source, "t10k");
  if (train.images.dims[1] != test.images.dims[1] || train.images.dims[2] != test.images.dims[2])
    throw IoError(fmt::format("{}: training images are {}x{}, test images {}x{}", opt.source, train.images.dims[1],
                              train.images.dims[2], test.images.dims[1], test.images.dims[2]));
  if (opt.valid >= train.n)
    throw ConfigError(fmt::format("fashion-mnist: --valid {} leaves no training image (of {})", opt.valid, train.n));

  TaskInfo info;
  info.name = "fashion-mnist";
  info.labels.assign(std::begin(kFashionLabels), std::end(kFashionLabels));
  info.tokenizer = TaskTokenizer::Pixels;
  info.source = fmt::format("Fashion-MNIST (Zalando Research, https://github.com/zalandoresearch/fashion-mnist), "
                            "Debian package dataset-fashion-mnist, read from {}",
                            opt.source);
  info.licence = "MIT (Expat), Copyright 2017 Zalando SE";
  TaskWriter w(out_dir, info, false);
  std::string text;
  auto write = [&](const Images& s, size_t i, int split) {
    text.clear();
    const uint8_t* px = s.images.data.data() + i * s.pixels;
    for (size_t k = 0; k < s.pixels; ++k) {
      if (k) text += ' ';
      const unsigned v = px[k];
      if (v >= 100) text += char('0' + v / 100);
      if (v >= 10) text += char('0' + v / 10 % 10);
      text += char('0' + v % 10);
    }
    w.add(split, s.labels.data[i], text);
  };
  const size_t n_train = train.n - opt.valid;
  for (size_t i = 0; i < train.n; ++i) write(train, i, i < n_train ? 0 : 1);
  for (size_t i = 0; i < test.n; ++i) write(test, i, 2);
  nlohmann::json extra;
  extra["image"] = {{"rows", train.images.dims[1]}, {"columns", train.images.dims[2]}};
  extra["split"] = fmt::format("train: the first {} training images; valid: the last {}; test: the {} test images",
                               n_train, opt.valid, test.n);
  extra["text"] = "row-major pixel intensities 0..255 separated by spaces; token id = 5 + intensity";
  w.commit(extra);
}

}  // namespace linformer
