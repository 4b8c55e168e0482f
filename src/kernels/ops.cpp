// include/linformer/ops.hpp: the public matrix products, forwarding to the kernels.
#include "linformer/ops.hpp"

#include "kernels/kernels.hpp"

namespace linformer::ops {

void matmul(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
            int ldb, float beta, float* C, int ldc) {
  kernels::matmul(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void matmul_bf16(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc) {
  kernels::matmul_bf16(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace linformer::ops
