// adamw_dump: runs linformer::AdamW with a warm-up + decay schedule and global-norm clipping for a
// few steps over a small ParamTable and writes everything tests/reference/adamw_parity.py needs to
// replay the run with torch.optim.AdamW and compare.
//
//   adamw_dump --out OUT.safetensors [--steps N]      (N defaults to 10)
//
// Output (safetensors, all F32):
//   "init.<name>"            parameters before the first step (tensor shape)
//   "grad.<s>.<name>"        gradients given at step s (0-based), before clipping
//   "final.<name>"           parameters after the last step
//   "m.<name>", "v.<name>"   AdamW moments after the last step
//   "lr" [N]                 the schedule's lr used at each step
//   "norm" [N]               clip_grad_norm's return value (norm before clipping) at each step
// Metadata: "names" (JSON list, table order), "decay" (JSON list of 0/1), hyperparameters
// "lr.peak", "lr.warmup", "lr.total", "lr.end", "lr.power", "beta1", "beta2", "eps",
// "weight_decay", "max_norm", "steps" (floats printed with %.9g, so they round-trip exactly).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "linformer/checkpoint.hpp"
#include "linformer/optimizer.hpp"
#include "linformer/params.hpp"

namespace {

using linformer::NamedTensor;
using linformer::ParamInfo;
using linformer::ParamTable;

NamedTensor f32(const std::string& name, std::vector<int64_t> shape, const float* data) {
  NamedTensor t;
  t.name = name;
  t.dtype = "F32";
  t.shape = std::move(shape);
  size_t numel = 1;
  for (int64_t s : t.shape) numel *= static_cast<size_t>(s);
  t.bytes.resize(numel * sizeof(float));
  if (numel) std::memcpy(t.bytes.data(), data, numel * sizeof(float));  // x86-64: little-endian
  return t;
}

// Deterministic pseudo-random float in [-1, 1) (splitmix64).
float hash_float(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return static_cast<float>((x >> 40) * (1.0 / 8388608.0) - 1.0);
}

std::string g9(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

int usage() {
  std::fprintf(stderr, "usage: adamw_dump --out OUT.safetensors [--steps N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out;
  int steps = 10;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string v = argv[++i];
    if (a == "--out") out = v;
    else if (a == "--steps") steps = std::stoi(v);
    else return usage();
  }
  if (out.empty() || steps < 1) return usage();

  try {
    ParamTable t;
    t.add("enc.w", {7, 13}, true);
    t.add("enc.b", {13}, false);
    t.add("big.w", {70, 70}, true);  // larger than one 4096-float chunk of the optimizer loops
    t.add("ln.weight", {29}, false);
    t.add("ln.bias", {29}, false);
    t.add("head.w", {5, 3, 4}, true);
    t.add("emb", {40, 8}, false);
    t.finalize();

    for (int i = 0; i < t.size(); ++i)
      for (size_t k = 0; k < t.info(i).numel; ++k) t.data(i)[k] = 0.1f * hash_float(1000003ULL * (i + 1) + k);

    linformer::AdamWOptions o;
    o.beta1 = 0.9f;
    o.beta2 = 0.98f;
    o.eps = 1e-6f;
    o.weight_decay = 0.1f;  // large enough that decay visibly matters over 10 steps
    const linformer::Schedule sched{1e-2f, 3, steps, 1e-4f, 2.0f};
    const float max_norm = 1.0f;

    std::vector<NamedTensor> tensors;
    nlohmann::json names = nlohmann::json::array(), decay = nlohmann::json::array();
    for (int i = 0; i < t.size(); ++i) {
      tensors.push_back(f32("init." + t.info(i).name, t.info(i).shape, t.data(i)));
      names.push_back(t.info(i).name);
      decay.push_back(t.info(i).decay ? 1 : 0);
    }

    linformer::AdamW opt(t, o);
    std::vector<float> lrs, norms;
    for (int s = 0; s < steps; ++s) {
      // Gradient scale varies by step so that clipping is active on some steps and not others
      // (the global norm of unit-scale gradients here is about 40).
      const float scale = (s % 3 == 0) ? 0.2f : 0.005f;
      for (int i = 0; i < t.size(); ++i) {
        for (size_t k = 0; k < t.info(i).numel; ++k)
          t.grad(i)[k] = scale * hash_float(7919ULL * (s + 1) * 131 + 104729ULL * (i + 1) + k) *
                         (1.0f + 0.5f * static_cast<float>(i));
        tensors.push_back(f32("grad." + std::to_string(s) + "." + t.info(i).name, t.info(i).shape, t.grad(i)));
      }
      norms.push_back(linformer::clip_grad_norm(t, max_norm));
      lrs.push_back(sched.lr(s));
      opt.step(lrs.back());
    }
    for (int i = 0; i < t.size(); ++i) {
      const ParamInfo& p = t.info(i);
      tensors.push_back(f32("final." + p.name, p.shape, t.data(i)));
      tensors.push_back(f32("m." + p.name, p.shape, opt.m().data() + p.offset));
      tensors.push_back(f32("v." + p.name, p.shape, opt.v().data() + p.offset));
    }
    tensors.push_back(f32("lr", {steps}, lrs.data()));
    tensors.push_back(f32("norm", {steps}, norms.data()));

    std::map<std::string, std::string> meta{
        {"names", names.dump()},
        {"decay", decay.dump()},
        {"lr.peak", g9(sched.peak_lr)},
        {"lr.warmup", std::to_string(sched.warmup_steps)},
        {"lr.total", std::to_string(sched.total_steps)},
        {"lr.end", g9(sched.end_lr)},
        {"lr.power", g9(sched.power)},
        {"beta1", g9(o.beta1)},
        {"beta2", g9(o.beta2)},
        {"eps", g9(o.eps)},
        {"weight_decay", g9(o.weight_decay)},
        {"max_norm", g9(max_norm)},
        {"steps", std::to_string(steps)},
    };
    linformer::write_safetensors(out, tensors, meta);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "adamw_dump: %s\n", e.what());
    return 1;
  }
  return 0;
}
