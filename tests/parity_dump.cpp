// parity_dump: runs one forward + backward of linformer::Model and writes everything the PyTorch
// twin (tests/reference/linformer_ref.py) needs to check it, for tests/reference/parity_test.py.
//
//   parity_dump --config C.json --seed S --ids IDS.txt --out OUT.safetensors [--task mlm|cls]
//
// IDS.txt: one sequence per line, token ids separated by whitespace (blank lines are skipped).
// Labels are deterministic: mlm: every 3rd real position (t % 3 == 0) gets (id*7+1) % vocab,
// the others kIgnoreIndex; cls: label of sequence b is b % num_labels.
// Output tensors: every parameter (its name), every gradient ("grad." + name), "ids" I32 [B,n],
// "mask" I32 [B,n], "labels" I32 ([B,n] or [B]), "hidden" F32 [B,n,d], "logits" F32
// ([B,n,V] or [B,C]), "loss" F32 [1]; metadata "config" = the model config as JSON.
// With --activations: also every activation of the forward by name ("act." + the activation
// table's name, Model::activations: "act.blk.1.ffn_up" F32 [B*n, d_ff]; the MLM head's over all
// B*n positions), and metadata "activations" = their names in forward order.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "linformer/checkpoint.hpp"
#include "linformer/config.hpp"
#include "linformer/model.hpp"

namespace {

using linformer::NamedTensor;

template <typename T>
NamedTensor make_tensor(const std::string& name, const char* dtype, std::vector<int64_t> shape,
                        const T* data) {
  NamedTensor t;
  t.name = name;
  t.dtype = dtype;
  t.shape = std::move(shape);
  size_t numel = 1;
  for (int64_t s : t.shape) numel *= static_cast<size_t>(s);
  t.bytes.resize(numel * sizeof(T));
  if (numel) std::memcpy(t.bytes.data(), data, numel * sizeof(T));  // x86-64: little-endian
  return t;
}

std::vector<std::vector<int32_t>> read_ids(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open ids file " + path);
  std::vector<std::vector<int32_t>> seqs;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    std::istringstream ls(line);
    std::vector<int32_t> seq;
    long long v;
    while (ls >> v) seq.push_back(static_cast<int32_t>(v));
    if (!ls.eof()) throw std::runtime_error(path + ":" + std::to_string(lineno) + ": not an integer");
    if (!seq.empty()) seqs.push_back(std::move(seq));
  }
  if (seqs.empty()) throw std::runtime_error("no sequences in " + path);
  return seqs;
}

int usage() {
  std::fprintf(stderr,
               "usage: parity_dump --config C.json --seed S --ids IDS.txt --out OUT.safetensors "
               "[--task mlm|cls] [--activations 1]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, ids_path, out_path, task = "mlm";
  bool activations = false;
  uint64_t seed = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string v = argv[++i];
    if (a == "--config") config_path = v;
    else if (a == "--seed") seed = std::stoull(v);
    else if (a == "--ids") ids_path = v;
    else if (a == "--out") out_path = v;
    else if (a == "--task") task = v;
    else if (a == "--activations") activations = v == "1";
    else return usage();
  }
  if (config_path.empty() || ids_path.empty() || out_path.empty() ||
      (task != "mlm" && task != "cls"))
    return usage();

  try {
    const linformer::ModelConfig cfg = linformer::ModelConfig::from_file(config_path);
    linformer::Model model(cfg);
    model.init(seed);
    model.eval();

    const auto seqs = read_ids(ids_path);
    const linformer::Batch batch = linformer::Batch::from_sequences(seqs);
    const int B = batch.B, n = batch.n, d = cfg.d_model;

    std::vector<int32_t> labels;
    std::vector<int64_t> label_shape;
    if (task == "mlm") {
      labels.assign(static_cast<size_t>(B) * n, linformer::kIgnoreIndex);
      for (int b = 0; b < B; ++b)
        for (int t = 0; t < batch.length(b); ++t)
          if (t % 3 == 0) {
            const size_t i = static_cast<size_t>(b) * n + t;
            labels[i] = (batch.ids[i] * 7 + 1) % cfg.vocab_size;
          }
      label_shape = {B, n};
    } else {
      if (cfg.num_labels <= 0) throw std::runtime_error("--task cls needs num_labels > 0");
      for (int b = 0; b < B; ++b) labels.push_back(b % cfg.num_labels);
      label_shape = {B};
    }

    // The first forward's activations (the MLM head's on every position), in forward order.
    std::vector<NamedTensor> acts;
    std::string act_names;
    if (activations)
      model.set_activation_dump([&](const linformer::ActivationInfo& a, const float* data, int64_t rows) {
        acts.push_back(make_tensor("act." + a.name, "F32", {rows, a.cols}, data));
        act_names += (act_names.empty() ? "" : ",") + a.name;
      });

    model.zero_grad();
    float loss = 0.0f;
    std::vector<float> logits;
    std::vector<int64_t> logits_shape;
    if (task == "mlm") {
      // Logits at every position first (forward_mlm runs the head on labelled rows only).
      const float* p = model.forward_mlm_logits(batch);
      logits.assign(p, p + static_cast<size_t>(B) * n * cfg.vocab_size);
      model.set_activation_dump({});
      loss = model.forward_mlm(batch, labels);
      logits_shape = {B, n, cfg.vocab_size};
    } else {
      loss = model.forward_cls(batch, labels);
      model.set_activation_dump({});
      const float* p = model.cls_logits();
      logits.assign(p, p + static_cast<size_t>(B) * cfg.num_labels);
      logits_shape = {B, cfg.num_labels};
    }
    // Copy the forward's outputs before backward (it may reuse buffers).
    const float* hp = model.hidden();
    const std::vector<float> hidden(hp, hp + static_cast<size_t>(B) * n * d);
    model.backward();

    std::vector<int32_t> mask32(batch.mask.begin(), batch.mask.end());
    std::vector<NamedTensor> out;
    const auto& params = model.params();
    for (int i = 0; i < params.size(); ++i)
      out.push_back(make_tensor(params.info(i).name, "F32", params.info(i).shape, params.data(i)));
    for (int i = 0; i < params.size(); ++i)
      out.push_back(make_tensor("grad." + params.info(i).name, "F32", params.info(i).shape,
                                params.grad(i)));
    out.push_back(make_tensor("ids", "I32", {B, n}, batch.ids.data()));
    out.push_back(make_tensor("mask", "I32", {B, n}, mask32.data()));
    out.push_back(make_tensor("labels", "I32", label_shape, labels.data()));
    out.push_back(make_tensor("hidden", "F32", {B, n, d}, hidden.data()));
    out.push_back(make_tensor("logits", "F32", logits_shape, logits.data()));
    out.push_back(make_tensor("loss", "F32", {1}, &loss));
    out.insert(out.end(), acts.begin(), acts.end());
    std::map<std::string, std::string> meta = {{"config", cfg.to_json().dump()}, {"task", task}};
    if (activations) meta["activations"] = act_names;
    linformer::write_safetensors(out_path, out, meta);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "parity_dump: %s\n", e.what());
    return 1;
  }
  return 0;
}
