// Attention kernels, forward and backward, in the style of kernels.hpp: outputs first, sizes
// last, a shape comment on every pointer; each has a plain reference twin in reference.hpp and
// op-level tests in tests/test_attention_ops.cpp (fast vs reference over shape grids, finite
// differences, tiled == full).
//
// Layouts: a multi-head activation is row-major [B, rows, h*dh], head i being the column slice
// [i*dh, (i+1)*dh) (so the per-head matmuls read it in place with leading dimension h*dh). A
// probability tensor is [B*h, n, cols]: one [n, cols] block per (batch element b, head i), block
// index bh = b*h + i. Scores are scaled by 1/sqrt(dh).
#pragma once
#include <cstddef>
#include <cstdint>

namespace linformer::kernels {

// Attention dropout, the one definition of its masks. Element (bh, t, c) of a [B*h, n, n_cols]
// probability tensor is kept when dropout_uniform(seed, (bh*n + t)*n_cols + c) >= p and then
// scaled by 1/(1-p): a function of the element's place only, so full attention (whole rows),
// the tiled kernel (one key tile of a row at a time, in forward and again in backward) draw
// the same mask for the same seed, and the backward can regenerate it instead of storing it.
// out[cols] = in[cols] * keep / (1-p) for row t of block bh, columns col0 .. col0+cols-1;
// keep[cols] (nullable) receives the mask. out may alias in. Single-threaded (safe inside a
// parallel region).
void attention_dropout_row(float* out, uint8_t* keep, const float* in, int cols, uint64_t seed, float p, int bh,
                           int n, int n_cols, int t, int col0);

// Multi-head attention against kk "context" keys and values (full attention: the n keys;
// Linformer: the k projected keys). Per block bh: S = Q_i C_i^T / sqrt(dh), P = softmax over the
// real keys, Pd = dropout(P), ctx_i = Pd V_i.
// ctx[B,n,h*dh] (written).
// P[B*h,n,kk]: the probabilities before dropout (kept for backward), when P_blocks == B*h. With
//   P_blocks < B*h (inference: no backward follows) P is scratch of P_blocks >= the number of
//   threads blocks, one per thread, and its content is unspecified afterwards.
// Pd[B*h,n,kk], keep[B*h,n,kk]: the dropped-out probabilities and their mask; written when p > 0,
//   else unused (may be null) and the context uses P.
// q[B,n,h*dh]; kc[B,kk,h*dh], vc[B,kk,h*dh]: context keys and values.
// key_mask[B,kk] (nullable: all real): 1 = real key, 0 = padding (probability 0; a row without a
//   real key is all 0, and so is its context).
// p in [0, 1): attention dropout (0: none), seed: its seed (attention_dropout_row).
// One parallel loop over the B*h blocks (its own region), single-threaded matmuls inside.
void attention_forward(float* ctx, float* P, float* Pd, uint8_t* keep, const float* q, const float* kc,
                       const float* vc, const uint8_t* key_mask, int B, int n, int kk, int h, int dh, float p,
                       uint64_t seed, int P_blocks);
// dq[B,n,h*dh], dkc[B,kk,h*dh], dvc[B,kk,h*dh] (overwritten); dP[B*h,n,kk]: scratch.
// dctx[B,n,h*dh]: gradient of ctx; q, kc, vc, P (all B*h blocks), Pd, keep, p: as in the forward
// (Pd and keep unused when p == 0).
void attention_backward(float* dq, float* dkc, float* dvc, float* dP, const float* dctx, const float* q,
                        const float* kc, const float* vc, const float* P, const float* Pd, const uint8_t* keep,
                        int B, int n, int kk, int h, int dh, float p);

// Exact attention in tiles with an online softmax (flash-attention style): the function of
// attention_forward with kk = n and key_mask = mask, without ever holding an [n, n] block.
// Memory is O(n * d): the forward keeps the output and one log-sum-exp per query row; the
// backward recomputes each score tile from Q and K (and the dropout mask from the seed).
// Tiles: kFlashQueryTile queries x kFlashKeyTile keys (a 128 x 256 score tile, 128 KB, stays in
// the L2 cache; 64 x 128 tiles ran the inference at n = 2048 about 25% slower: more, smaller
// sgemm calls).
constexpr int kFlashQueryTile = 128;
constexpr int kFlashKeyTile = 256;
// ctx[B,n,h*dh] (written); lse[B*h,n]: log of the softmax denominator of each query row,
// m + log(sum exp(s - m)) over its real keys (INFINITY for a row without one; its ctx is 0).
// q, k, v [B,n,h*dh]; mask[B,n] (required): 1 = real key. p, seed: as attention_forward.
// One parallel loop over the B*h blocks (its own region).
void flash_attention_forward(float* ctx, float* lse, const float* q, const float* k, const float* v,
                             const uint8_t* mask, int B, int n, int h, int dh, float p, uint64_t seed);
// dq[B,n,h*dh], dk[B,n,h*dh], dv[B,n,h*dh] (overwritten). dctx[B,n,h*dh]: gradient of ctx;
// ctx[B,n,h*dh], lse[B*h,n]: the forward's; q, k, v, mask, p, seed: as in the forward.
void flash_attention_backward(float* dq, float* dk, float* dv, const float* dctx, const float* ctx, const float* lse,
                              const float* q, const float* k, const float* v, const uint8_t* mask, int B, int n,
                              int h, int dh, float p, uint64_t seed);

}  // namespace linformer::kernels
