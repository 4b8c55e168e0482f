// How well one float32 product scales from 1 to 2 threads: oneDNN's own split of the product
// against a split of C's rows (each thread one single-threaded dnnl_sgemm, what kernels::matmul
// does for tall products). Shapes of a RoBERTa-base layer at n = 4096. Not part of the build:
//
//   g++ -O2 -fopenmp bench/sgemm_split.cpp -o /tmp/sgemm_split -ldnnl
//   OMP_WAIT_POLICY=passive /tmp/sgemm_split
//
// Prints GFLOP/s (median of 6 after a warm-up) and the speed-up over one thread.
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace {
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Shape {
  const char* what;
  bool transA, transB;
  int M, N, K;
};

// C = op(A) op(B), split by rows of C over the threads of a parallel region (or not).
void product(const Shape& s, const float* A, const float* B, float* C, bool split_rows) {
  const int lda = s.transA ? s.M : s.K, ldb = s.transB ? s.K : s.N;
  const char ta = s.transA ? 'T' : 'N', tb = s.transB ? 'T' : 'N';
  if (!split_rows) {
    dnnl_sgemm(ta, tb, s.M, s.N, s.K, 1.0f, A, lda, B, ldb, 0.0f, C, s.N);
    return;
  }
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int m0 = (int)((long)s.M * id / nt), m1 = (int)((long)s.M * (id + 1) / nt);
    dnnl_sgemm(ta, tb, m1 - m0, s.N, s.K, 1.0f, s.transA ? A + m0 : A + (size_t)m0 * lda, lda, B, ldb, 0.0f,
               C + (size_t)m0 * s.N, s.N);
  }
}

double gflops(const Shape& s, const float* A, const float* B, float* C, int threads, bool split_rows) {
  omp_set_num_threads(threads);
  std::vector<double> t;
  for (int r = 0; r < 7; ++r) {
    const double t0 = now_s();
    product(s, A, B, C, split_rows);
    if (r > 0) t.push_back(now_s() - t0);
  }
  std::sort(t.begin(), t.end());
  return 2.0 * s.M * s.N * s.K / t[t.size() / 2] / 1e9;
}
}  // namespace

int main() {
  const Shape shapes[] = {
      {"q/out maps", false, true, 4096, 768, 768},      {"FFN up", false, true, 4096, 3072, 768},
      {"FFN down", false, true, 4096, 768, 3072},       {"FFN up, 1024-row block", false, true, 1024, 3072, 768},
      {"FFN down, 1024-row block", false, true, 1024, 768, 3072}, {"dW of a map", true, false, 768, 768, 4096},
      {"dW of FFN down", true, false, 3072, 768, 4096},
  };
  std::printf("| product | M | N | K | 1 thread | 2 threads, oneDNN | 2 threads, rows | speed-ups |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const Shape& s : shapes) {
    const size_t a = (size_t)s.M * s.K, b = (size_t)s.K * s.N;
    std::vector<float> A(a, 0.5f), B(b, 0.25f), C((size_t)s.M * s.N);
    const double one = gflops(s, A.data(), B.data(), C.data(), 1, false);
    const double dnnl = gflops(s, A.data(), B.data(), C.data(), 2, false);
    const double rows = gflops(s, A.data(), B.data(), C.data(), 2, true);
    std::printf("| %s | %d | %d | %d | %.0f GFLOP/s | %.0f | %.0f | %.2fx / %.2fx |\n", s.what, s.M, s.N, s.K, one,
                dnnl, rows, dnnl / one, rows / one);
  }
}
