// Where a call computes: the thread count (linformer.set_num_threads) and the matrix-product
// precision (linformer.set_precision, a model's or a call's precision=), see ComputeScope in
// common.hpp.
#include <omp.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include <fmt/format.h>

#include "common.hpp"
#include "linformer/error.hpp"

namespace linformer::python {

namespace {

std::atomic<int> g_threads{0};  // 0: leave each thread's OpenMP setting alone
std::atomic<MatmulPrecision> g_default{MatmulPrecision::f32};

// Calls of one precision run together; a call of the other waits until none runs.
std::mutex g_gate_mutex;
std::condition_variable g_gate_cv;
int g_running = 0;

}  // namespace

MatmulPrecision precision_from_name(const std::string& name, const char* arg) {
  if (name == "float32" || name == "f32" || name == "fp32") return MatmulPrecision::f32;
  if (name == "bf16" || name == "bfloat16") return MatmulPrecision::bf16;
  throw ConfigError(fmt::format("{}: unknown precision '{}' (float32 or bf16)", arg, name));
}

const char* precision_name(MatmulPrecision p) { return p == MatmulPrecision::bf16 ? "bf16" : "float32"; }

MatmulPrecision default_precision() { return g_default.load(); }

void check_precision_supported(MatmulPrecision p, const char* arg) {
  if (p == MatmulPrecision::bf16 && !bf16_supported())
    throw ConfigError(fmt::format("{}: bf16 needs a CPU with native bf16 instructions (AVX512_BF16: Intel Cooper "
                                  "Lake, Sapphire Rapids or later, AMD Zen 4 or later); this one has none: use "
                                  "float32",
                                  arg));
}

ComputeScope::ComputeScope(MatmulPrecision precision) {
  const int threads = g_threads.load();
  if (threads > 0) omp_set_num_threads(threads);
  std::unique_lock<std::mutex> lock(g_gate_mutex);
  g_gate_cv.wait(lock, [&] { return g_running == 0 || matmul_precision() == precision; });
  if (matmul_precision() != precision) set_matmul_precision(precision);  // none runs now
  ++g_running;
}

ComputeScope::~ComputeScope() {
  {
    std::lock_guard<std::mutex> lock(g_gate_mutex);
    --g_running;
  }
  g_gate_cv.notify_all();
}

// ---- result buffers
// A fresh page costs ~12 us to touch on these machines (DESIGN notes), so the storage of a freed
// result array is kept for the next call instead of going back to the system: a loop of forward
// calls then writes into warm memory, as the C++ API's forward(ids, opt, out) does. At most
// kPoolSize buffers are kept (the memory of a few results of the largest batch seen).
namespace {
constexpr size_t kPoolSize = 4;
std::mutex g_pool_mutex;
std::vector<std::vector<float>> g_pool;
}  // namespace

std::vector<float> recycled_buffer(size_t floats) {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (g_pool.empty()) return {};
  // The smallest buffer that is large enough, else the largest.
  size_t best = g_pool.size();
  for (size_t i = 0; i < g_pool.size(); ++i) {
    const size_t cap = g_pool[i].capacity();
    if (cap >= floats && (best == g_pool.size() || cap < g_pool[best].capacity())) best = i;
  }
  if (best == g_pool.size())
    for (size_t i = 0; i < g_pool.size(); ++i)
      if (best == g_pool.size() || g_pool[i].capacity() > g_pool[best].capacity()) best = i;
  std::vector<float> v = std::move(g_pool[best]);
  g_pool.erase(g_pool.begin() + (std::ptrdiff_t)best);
  return v;
}

py::array_t<float> to_numpy(std::vector<float>&& data, std::vector<py::ssize_t> shape) {
  auto* owned = new std::vector<float>(std::move(data));
  py::capsule free_when_done(owned, [](void* p) {
    std::unique_ptr<std::vector<float>> v(static_cast<std::vector<float>*>(p));
    std::lock_guard<std::mutex> lock(g_pool_mutex);
    if (v->capacity() > 0 && g_pool.size() < kPoolSize) g_pool.push_back(std::move(*v));
  });
  return py::array_t<float>(shape, owned->data(), free_when_done);
}

void register_compute(py::module_& m) {
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1) throw ConfigError(fmt::format("set_num_threads: n = {} must be at least 1", n));
        g_threads = n;
        omp_set_num_threads(n);
      },
      py::arg("n"),
      "Sets the number of OpenMP threads every later call (from any Python thread) computes with.\n\n"
      "OpenMP's setting is per thread and a new thread starts from OMP_NUM_THREADS or all cores, so the\n"
      "package applies this count at the start of each call. Several Python threads calling at once each\n"
      "use n threads: keep callers x n at most the number of cores.");
  m.def(
      "get_num_threads", [] { return g_threads.load() > 0 ? g_threads.load() : omp_get_max_threads(); },
      "The number of OpenMP threads a call made now would use.");
  m.def(
      "set_precision",
      [](const std::string& name) {
        const MatmulPrecision p = precision_from_name(name, "set_precision");
        check_precision_supported(p, "set_precision");
        g_default = p;
      },
      py::arg("precision"),
      "Sets the default matrix-product precision of every call: 'float32' (the default) or 'bf16'\n"
      "(bfloat16 operands, float32 accumulation: about twice as fast, slightly less accurate; needs a\n"
      "CPU with AVX512_BF16, else ConfigError). A model's precision and a call's precision= come first.");
  m.def(
      "get_precision", [] { return std::string(precision_name(g_default.load())); },
      "The default matrix-product precision: 'float32' or 'bf16'.");
  m.def("bf16_supported", &bf16_supported, "Whether this CPU has native bf16 instructions (AVX512_BF16).");
}

}  // namespace linformer::python
