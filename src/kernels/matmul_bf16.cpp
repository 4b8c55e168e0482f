// The bf16 path of matmul (linformer/precision.hpp): both operands are rounded to bfloat16 and
// multiplied by a oneDNN matmul primitive that accumulates in float32 (avx512_bf16 instructions),
// alpha and beta applied by the primitive (output scale, sum post-op).
//
// Primitives are created once per shape and cached per thread: matmul may be called from several
// OpenMP threads at once (attention runs one product per head inside a parallel region), and a
// per-thread cache needs no lock. Each thread also keeps its own bf16 operand buffers.
#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <atomic>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/kernels.hpp"
#include "linformer/error.hpp"

namespace linformer::kernels {

namespace {

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Rounds the [rows, cols] block of `src` (row stride ld) into the contiguous `dst`.
void convert_block(uint16_t* dst, const float* src, int rows, int cols, int ld) {
  const bool parallel = !omp_in_parallel() && (long)rows * cols >= (1 << 15);
#pragma omp parallel for schedule(static) if (parallel)
  for (int r = 0; r < rows; ++r) {
    const float* in = src + (size_t)r * ld;
    uint16_t* out = dst + (size_t)r * cols;
    for (int c = 0; c < cols; ++c) out[c] = to_bf16(in[c]);
  }
}

using Key = std::tuple<bool, bool, int, int, int, int, float, float>;  // transA, transB, M, N, K, ldc, alpha, beta

struct Primitive {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul matmul;
};

struct ThreadState {
  dnnl::stream stream{cpu_engine()};
  std::map<Key, Primitive> primitives;
  std::vector<uint16_t> a, b;
};

Primitive make_primitive(bool transA, bool transB, int M, int N, int K, int ldc, float alpha, float beta) {
  using dt = dnnl::memory::data_type;
  using dims = dnnl::memory::dims;
  // The bf16 copies keep the stored layout, so a transposed operand is a column-major view.
  const dnnl::memory::desc a_md(dims{M, K}, dt::bf16, transA ? dims{1, M} : dims{K, 1});
  const dnnl::memory::desc b_md(dims{K, N}, dt::bf16, transB ? dims{1, K} : dims{N, 1});
  const dnnl::memory::desc c_md(dims{M, N}, dt::f32, dims{ldc, 1});
  dnnl::primitive_attr attr;
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
  if (beta != 0.0f) {
    dnnl::post_ops ops;
    ops.append_sum(beta);
    attr.set_post_ops(ops);
  }
  try {
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, cpu_engine());
    return {pd, dnnl::matmul(pd)};
  } catch (const dnnl::error& e) {
    throw Error(std::string("oneDNN has no bf16 matmul for this shape on this CPU: ") + e.what());
  }
}

}  // namespace

uint16_t to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);  // NaN stays a (quiet) NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                               // round to nearest even
  return (uint16_t)(u >> 16);
}

float from_bf16(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

void matmul_bf16(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc) {
  thread_local ThreadState state;
  const int a_rows = transA ? K : M, a_cols = transA ? M : K;
  const int b_rows = transB ? N : K, b_cols = transB ? K : N;
  state.a.resize((size_t)a_rows * a_cols);
  state.b.resize((size_t)b_rows * b_cols);
  convert_block(state.a.data(), A, a_rows, a_cols, lda);
  convert_block(state.b.data(), B, b_rows, b_cols, ldb);

  const Key key{transA, transB, M, N, K, ldc, alpha, beta};
  auto it = state.primitives.find(key);
  if (it == state.primitives.end()) {
    if (state.primitives.size() >= 512) state.primitives.clear();  // many padded lengths: start over
    it = state.primitives.emplace(key, make_primitive(transA, transB, M, N, K, ldc, alpha, beta)).first;
  }
  const dnnl::matmul::primitive_desc& pd = it->second.pd;
  dnnl::memory a_mem(pd.src_desc(), cpu_engine(), state.a.data());
  dnnl::memory b_mem(pd.weights_desc(), cpu_engine(), state.b.data());
  dnnl::memory c_mem(pd.dst_desc(), cpu_engine(), C);
  it->second.matmul.execute(state.stream, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
  state.stream.wait();
}

}  // namespace linformer::kernels

namespace linformer {

namespace {
std::atomic<MatmulPrecision> g_precision{MatmulPrecision::f32};  // the process-wide setting
}

bool bf16_supported() {
  // avx512_core_bf16 and the AMX levels above it all have the bits of avx512_core_bf16.
  const unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
  return (isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) == (unsigned)dnnl_cpu_isa_avx512_core_bf16;
}

void set_matmul_precision(MatmulPrecision p) {
  if (p == MatmulPrecision::bf16 && !bf16_supported())
    throw ConfigError(
        "bf16 mode needs a CPU with native bfloat16 matrix instructions (AVX512_BF16: Intel Cooper Lake, Sapphire "
        "Rapids or later, AMD Zen 4 or later); this CPU has none, so the float32 path is the only one");
  g_precision.store(p);
}

MatmulPrecision matmul_precision() { return g_precision.load(); }

}  // namespace linformer

