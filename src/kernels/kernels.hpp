// CPU kernels, forward and backward, llm.c style: outputs first, sizes last, a shape comment
// on every pointer. All matrices are row-major float32. Each kernel has a plain reference
// twin in reference.hpp (templated, so tests can run it in double); the tests check that the
// two agree and that every backward matches finite differences of its forward.
//
// Threading: the kernels open their own OpenMP parallel regions, except where noted. They must
// not be called from inside another parallel region unless noted (oneDNN's sgemm detects
// a surrounding region and runs single-threaded, so matmul may be).
#pragma once
#include <cstddef>
#include <cstdint>

#include "linformer/precision.hpp"

namespace linformer::kernels {

// C[M,N] = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T.
// A is [M,K] (or [K,M] when transA), B is [K,N] (or [N,K] when transB); lda/ldb/ldc are row strides.
// Backed by oneDNN's dnnl_sgemm (float32), or by matmul_bf16 in bf16 mode (below).
void matmul(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
            const float* B, int ldb, float beta, float* C, int ldc);

// Precision of every matmul: include/linformer/precision.hpp (float32, or bf16 operands with
// float32 accumulation). In bf16 mode matmul runs matmul_bf16.
using linformer::MatmulPrecision;
using linformer::matmul_precision;
using linformer::set_matmul_precision;
using linformer::bf16_supported;
// The bf16 path itself (what matmul runs in bf16 mode); same contract as matmul. Primitives are
// cached per thread and shape (src/kernels/matmul_bf16.cpp).
void matmul_bf16(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc);
// float32 -> bfloat16 bits, rounded to nearest even (NaN stays NaN), and back (exact).
uint16_t to_bf16(float x);
float from_bf16(uint16_t h);

// y[T,out] = x[T,in] * W[out,in]^T + b[out]   (b may be null). PyTorch's nn.Linear layout.
void linear_forward(float* y, const float* x, const float* W, const float* b, int T, int in, int out);
// dx[T,in] = dy[T,out] * W[out,in]  (overwritten; or added when accumulate_dx; skipped if null)
// dW[out,in] += dy^T * x;  db[out] += sum over rows of dy  (db may be null)
void linear_backward(float* dx, float* dW, float* db, const float* dy, const float* x, const float* W,
                     int T, int in, int out, bool accumulate_dx = false);

// y[i] += x[i] for i < n (residual sums and their gradients), split over the threads.
void add_inplace(float* y, const float* x, size_t n);

// y[T,C] += b[C] for every row.
void bias_add_forward(float* y, const float* b, int T, int C);
// db[C] += sum over the T rows of dy[T,C].
void bias_add_backward(float* db, const float* dy, int T, int C);

// out[B,n,d] = tok[ids[b,t], :] + pos[t, :]. ids must be in [0, V) (checked by the caller).
void embedding_forward(float* out, const int32_t* ids, const float* tok, const float* pos, int B, int n,
                       int d);
// dtok[V,d] += scattered dout rows; dpos[n_max,d] += dout summed over the batch (first n rows).
void embedding_backward(float* dtok, float* dpos, const float* dout, const int32_t* ids, int B, int n,
                        int d);

// out[T,d] = (x - mean) * rstd * w + b, per row; saves mean[T], rstd[T] for backward.
void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b,
                       int T, int d, float eps);
// out = LayerNorm(a + r): the residual sum and the normalisation in one pass over each row (the
// sum is not kept, so this is for inference; mean and rstd are written as by layernorm_forward).
// out may alias a or r.
void residual_layernorm_forward(float* out, float* mean, float* rstd, const float* a, const float* r,
                                const float* w, const float* b, int T, int d, float eps);
// dx[T,d] is overwritten; dw[d], db[d] are accumulated.
void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* mean,
                        const float* rstd, const float* w, int T, int d);

// GELU, exact erf form: 0.5 x (1 + erf(x / sqrt 2)). out may alias x.
void gelu_forward(float* out, const float* x, size_t N);
// y[T,C] += b[C] (y keeps the pre-activation for backward) and out = GELU(y), in one pass: the
// bias and the activation of the FFN's first map. out may alias y (then y is not kept).
void bias_gelu_forward(float* out, float* y, const float* b, int T, int C);
// dx = dout * gelu'(x). dx may alias dout.
void gelu_backward(float* dx, const float* x, const float* dout, size_t N);

// Row softmax: P[rows,cols] = softmax(S[rows,cols] + mask), where key_mask[cols] (nullable) is
// 1 for real keys and 0 for padding (padding gets probability 0). P may alias S.
// Single-threaded: callers parallelise over (batch, head) blocks; safe inside a parallel region.
void softmax_forward(float* P, const float* S, int rows, int cols, const uint8_t* key_mask);
// dS = P * (dP - rowsum(dP * P)). dS may alias dP. Single-threaded, like softmax_forward.
void softmax_backward(float* dS, const float* P, const float* dP, int rows, int cols);

// Inverted dropout: out = in * keep / (1 - p), keep[i] = uniform(seed, i) >= p, deterministic in
// (seed, i) whatever the thread count. keep[N] is saved for backward. p == 0 copies.
// out may alias in.
void dropout_forward(float* out, uint8_t* keep, const float* in, size_t N, float p, uint64_t seed);
// din = dout * keep / (1 - p). din may alias dout.
void dropout_backward(float* din, const float* dout, const uint8_t* keep, size_t N, float p);
// The uniform [0,1) number dropout uses for element i (exposed for tests).
float dropout_uniform(uint64_t seed, uint64_t i);

// Cross-entropy per row: losses[T] = logsumexp(logits[t]) - logits[t, target[t]]; rows whose
// target == ignore_index get loss 0. Returns the number of counted rows.
// Targets outside [0, V) other than ignore_index are the caller's bug (checked in debug builds).
int cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int T, int V,
                          int ignore_index);
// dlogits[T,V] = scale * (softmax(logits) - onehot(target)), 0 on ignored rows (overwritten).
void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, int T, int V,
                            int ignore_index, float scale);

// Pooling along the sequence in windows (Linformer's "mean" and "max" projections, docs/model.md).
// Window j (0 <= j < k) of sequence b covers positions [j*w, (j+1)*w) that are < n; only real
// tokens (mask[b,t] = 1) count. out[B,k,d]: "mean" is the average of those rows, "max" their
// per-channel maximum, with arg[B,k,d] its position (the first one on ties; arg is unused for
// mean and may be null then). A window without a real token gives 0 (arg -1).
// win_mask[B,k] (nullable): 1 where the window holds a real token, else 0.
void seq_pool_forward(float* out, int32_t* arg, uint8_t* win_mask, const float* in, const uint8_t* mask, int B, int n,
                      int d, int k, int w, bool max);
// din[B,n,d] (overwritten) = the gradient of sum(out * dout): mean spreads dout[b,j] evenly over
// the window's real tokens, max sends it to arg; 0 at padding and at positions no window covers.
void seq_pool_backward(float* din, const float* dout, const int32_t* arg, const uint8_t* mask, int B, int n, int d,
                       int k, int w, bool max);

// The [k, ld] matrix of a convolution along the sequence with kernel size = stride = w and one
// kernel for every channel ("conv" projection): E[j, j*w + u] = kernel[u] (u < w), 0 elsewhere.
// ld >= k*w. Projecting with E[:, :n] equals the strided convolution of the zero-padded sequence.
void conv_matrix_forward(float* E, const float* kernel, int k, int w, int ld);
// dkernel[w] += sum over j of dE[j, j*w + u]: the kernel's gradient from the matrix's.
void conv_matrix_backward(float* dkernel, const float* dE, int k, int w, int ld);

}  // namespace linformer::kernels
