// The library's matrix product as a public entry point, for benchmarks and programs that want to
// measure the rate the model's products run at (`linformer bench --ceiling`).
#pragma once

namespace linformer::ops {

// C[M,N] = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T; row-major float32, lda/ldb/ldc are
// row strides; A is [M,K] (or [K,M] when transA), B is [K,N] (or [N,K] when transB). In the
// process's matmul precision (linformer/precision.hpp): oneDNN sgemm, or the bf16 path.
void matmul(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
            int ldb, float beta, float* C, int ldc);
// The bf16 path itself (bf16 operands, float32 accumulation, conversion included), whatever the
// process's precision; same contract. Needs bf16_supported().
void matmul_bf16(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc);

}  // namespace linformer::ops
