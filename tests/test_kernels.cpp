// Kernel tests, in three kinds (as ggml's test-backend-ops):
//   1. Fast vs reference: each fast float kernel (kernels.hpp) against its plain twin
//      (reference.hpp) run in double on the same inputs, over grids of shapes with odd sizes,
//      every flag, nullable pointer and allowed alias.
//   2. Gradients: each double reference backward against central differences of the double
//      reference forward, objective = sum(out * random weights). Together with (1) on the
//      backward kernels this ties the fast backward to the true derivative.
//   3. Properties: masking, numerical stability, ignore_index, dropout statistics/determinism.
// Every comparison prints the worst error it saw and fails when it exceeds its bound.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/kernels.hpp"
#include "kernel_test_util.hpp"
#include "kernels/reference.hpp"
#include "linformer/error.hpp"

namespace fast = linformer::kernels;
namespace ref = linformer::ref;

namespace {

using namespace kernel_test;

// Extracts the [rows, cols] block of a matrix stored with row stride ld.
template <class T>
std::vector<T> block(const std::vector<T>& m, int rows, int cols, int ld) {
  std::vector<T> out;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) out.push_back(m[(size_t)r * ld + c]);
  return out;
}

// Keys mask for softmax tests: kind 0 none, 1 random (at least one real key), 2 all padding,
// 3 a single real key.
std::vector<uint8_t> make_mask(Rng& rng, int cols, int kind) {
  std::vector<uint8_t> m(cols, 1);
  if (kind == 1) {
    for (auto& x : m) x = rng.integer(0, 3) != 0;
    m[rng.integer(0, cols - 1)] = 1;
  } else if (kind == 2) {
    std::fill(m.begin(), m.end(), 0);
  } else if (kind == 3) {
    std::fill(m.begin(), m.end(), 0);
    m[rng.integer(0, cols - 1)] = 1;
  }
  return m;
}

const int kSizes[] = {1, 3, 7, 33, 65, 129};

// ---------------------------------------------------------------------------------------------
// matmul

// Every transpose combination, alpha, beta and padded leading dimension over kSizes^3 shapes.
// bf16: the fast result is checked against the double product of the bf16-rounded operands (what
// bf16 mode promises: float32 accumulation, so the float32 bound holds) in `worst`, and against
// the double product of the unrounded ones in `exact` (the cost of rounding).
void check_matmul_cases(Worst& worst, bool bf16, Worst* exact = nullptr) {
  auto round = [](Vf v) {
    for (float& x : v) x = fast::from_bf16(fast::to_bf16(x));
    return v;
  };
  Rng rng(1);
  const float alphas[] = {1.0f, 0.5f, -2.0f}, betas[] = {0.0f, 1.0f, 0.3f};
  int case_id = 0;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int M : kSizes)
        for (int N : kSizes)
          for (int K : kSizes) {
            ++case_id;
            const float alpha = alphas[case_id % 3], beta = betas[(case_id / 3) % 3];
            const int pad = case_id % 2 ? 0 : 1 + case_id % 5;  // leading dims larger than the rows
            const int arows = ta ? K : M, acols = ta ? M : K, lda = acols + pad;
            const int brows = tb ? N : K, bcols = tb ? K : N, ldb = bcols + pad;
            const int ldc = N + pad;
            // Padding of A and B is NaN (reading it poisons C); padding of C must stay untouched.
            Vf A = rng.vec((size_t)arows * lda), B = rng.vec((size_t)brows * ldb), C = rng.vec((size_t)M * ldc);
            for (int r = 0; r < arows; ++r)
              for (int c = acols; c < lda; ++c) A[(size_t)r * lda + c] = kNaN;
            for (int r = 0; r < brows; ++r)
              for (int c = bcols; c < ldb; ++c) B[(size_t)r * ldb + c] = kNaN;
            for (int r = 0; r < M; ++r)
              for (int c = N; c < ldc; ++c) C[(size_t)r * ldc + c] = 12345.0f;

            Vd Cd = to_d(C), Ad = to_d(bf16 ? round(A) : A), Bd = to_d(bf16 ? round(B) : B);
            ref::matmul<double>(ta, tb, M, N, K, alpha, Ad.data(), lda, Bd.data(), ldb, beta, Cd.data(), ldc);
            Vd Ce = to_d(C), Ae = to_d(A), Be = to_d(B);
            if (exact)
              ref::matmul<double>(ta, tb, M, N, K, alpha, Ae.data(), lda, Be.data(), ldb, beta, Ce.data(), ldc);
            if (bf16)
              fast::matmul_bf16(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
            else
              fast::matmul(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);

            const std::string where = cat("transA=", ta, " transB=", tb, " M=", M, " N=", N, " K=", K,
                                          " alpha=", alpha, " beta=", beta, " pad=", pad);
            worst.add(rel_err(block(C, M, N, ldc), block(Cd, M, N, ldc), kTerm), where);
            if (exact) exact->add(rel_err(block(C, M, N, ldc), block(Ce, M, N, ldc), kTerm), where);
            for (int r = 0; r < M; ++r)
              for (int c = N; c < ldc; ++c)
                if (C[(size_t)r * ldc + c] != 12345.0f) ADD_FAILURE() << "C padding written at " << where;
          }
}

TEST(Matmul, MatchesReference) {
  Worst worst("matmul", kSumTol);
  check_matmul_cases(worst, false);
}

// Tall products run split by rows, one single-threaded sgemm per thread (kernels.cpp): every
// transpose, odd row counts, padded leading dimensions and beta != 0, with 2 and 3 threads, against
// the double reference; and the same rows as one single-threaded product would give.
TEST(Matmul, TallProductsSplitByRowsMatchReference) {
  Worst worst("matmul split by rows", kSumTol);
  Rng rng(9);
  const int old_threads = omp_get_max_threads();
  for (int threads : {2, 3})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const int M = 1031 + 512 * (threads - 2), N = 70, K = 45, pad = 3;
        const float alpha = 0.5f, beta = ta ? 0.3f : 0.0f;
        const int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
        Vf A = rng.vec((size_t)(ta ? K : M) * lda), B = rng.vec((size_t)(tb ? N : K) * ldb);
        const Vf C0 = rng.vec((size_t)M * ldc);
        Vf C = C0, C1 = C0;
        Vd Cd = to_d(C0), Ad = to_d(A), Bd = to_d(B);
        ref::matmul<double>(ta, tb, M, N, K, alpha, Ad.data(), lda, Bd.data(), ldb, beta, Cd.data(), ldc);
        omp_set_num_threads(threads);
        fast::matmul(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
        omp_set_num_threads(1);
        fast::matmul(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C1.data(), ldc);
        const std::string where = cat("threads=", threads, " transA=", ta, " transB=", tb, " M=", M);
        worst.add(rel_err(block(C, M, N, ldc), block(Cd, M, N, ldc), kTerm), where);
        worst.add(rel_err(block(C, M, N, ldc), block(C1, M, N, ldc), kTerm), where + " vs 1 thread");
        for (int r = 0; r < M; ++r)
          for (int c = N; c < ldc; ++c) ASSERT_EQ(C[(size_t)r * ldc + c], C0[(size_t)r * ldc + c]) << where;
      }
  omp_set_num_threads(old_threads);
}

// bf16 mode (kernels.hpp "Precision"): float32 accumulation of bf16-rounded operands.
TEST(MatmulBf16, MatchesTheProductOfRoundedOperands) {
  if (!fast::bf16_supported()) GTEST_SKIP() << "this CPU has no avx512_bf16: bf16 mode is refused here";
  Worst worst("matmul bf16 vs double product of the rounded operands", kSumTol);
  // Rounding each operand costs up to 2^-9 relative, so a sum of K terms of random sign errs by
  // about 2^-8 of the terms' scale (kTerm).
  Worst exact("matmul bf16 vs double product of the exact operands", 2e-2);
  check_matmul_cases(worst, true, &exact);
}

TEST(MatmulBf16, PrecisionSwitchRoutesMatmulAndIsRefusedWithoutHardware) {
  if (!fast::bf16_supported()) {
    EXPECT_THROW(fast::set_matmul_precision(fast::MatmulPrecision::bf16), linformer::ConfigError);
    EXPECT_EQ(fast::matmul_precision(), fast::MatmulPrecision::f32);
    return;
  }
  Rng rng(4);
  const int M = 37, N = 29, K = 300;
  Vf A = rng.vec((size_t)M * K), B = rng.vec((size_t)K * N), C1((size_t)M * N), C2((size_t)M * N), C3((size_t)M * N);
  fast::matmul_bf16(false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, C1.data(), N);
  fast::set_matmul_precision(fast::MatmulPrecision::bf16);
  fast::matmul(false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, C2.data(), N);
  fast::set_matmul_precision(fast::MatmulPrecision::f32);
  fast::matmul(false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, C3.data(), N);
  EXPECT_EQ(C1, C2) << "bf16 mode must run matmul_bf16";
  EXPECT_NE(C2, C3) << "float32 mode must not round the operands";
}

TEST(MatmulBf16, RoundingToNearestEven) {
  using fast::from_bf16;
  using fast::to_bf16;
  EXPECT_EQ(to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(to_bf16(1.0f + 0x1p-8f), 0x3f80);         // halfway, ties to the even 1.0
  EXPECT_EQ(to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);     // halfway, ties to the even 1 + 2^-6
  EXPECT_EQ(to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);  // above halfway: up
  EXPECT_EQ(to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(to_bf16(INFINITY), 0x7f80);
  EXPECT_EQ(to_bf16(3.4e38f), 0x7f80);  // beyond the largest bf16: rounds to infinity
  EXPECT_TRUE(std::isnan(from_bf16(to_bf16(kNaN))));
  uint32_t low_nan_bits = 0x7f800001u;  // a NaN whose payload is only in the dropped bits
  float low_nan;
  std::memcpy(&low_nan, &low_nan_bits, 4);
  EXPECT_TRUE(std::isnan(from_bf16(to_bf16(low_nan))));
  EXPECT_EQ(from_bf16(0x3f81), 1.0f + 0x1p-7f);
}

// beta == 0 must overwrite C without reading it (BLAS convention; linear_forward relies on it
// for uninitialised outputs), so NaN garbage in C must not survive.
TEST(Matmul, BetaZeroIgnoresGarbageInC) {
  Worst worst("matmul beta=0 over NaN", kSumTol);
  Rng rng(2);
  for (int M : {1, 7, 65})
    for (int N : {3, 33})
      for (int K : {1, 129}) {
        Vf A = rng.vec((size_t)M * K), B = rng.vec((size_t)K * N), C((size_t)M * N, kNaN);
        Vd Ad = to_d(A), Bd = to_d(B), Cd((size_t)M * N, 0.0);
        fast::matmul(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N);
        ref::matmul<double>(false, false, M, N, K, 1.0, Ad.data(), K, Bd.data(), N, 0.0, Cd.data(), N);
        worst.add(rel_err(C, Cd, kTerm), cat("M=", M, " N=", N, " K=", K));
      }
}

// K == 0: the product is empty, C = beta * C.
TEST(Matmul, EmptyInnerDimension) {
  Rng rng(3);
  const int M = 3, N = 5;
  Vf C = rng.vec(M * N), C0 = C;
  float dummy = 0.0f;
  fast::matmul(false, false, M, N, 0, 1.0f, &dummy, 1, &dummy, N, 0.5f, C.data(), N);
  for (int i = 0; i < M * N; ++i) EXPECT_FLOAT_EQ(C[i], 0.5f * C0[i]);
  fast::matmul(false, false, M, N, 0, 1.0f, &dummy, 1, &dummy, N, 0.0f, C.data(), N);
  for (int i = 0; i < M * N; ++i) EXPECT_EQ(C[i], 0.0f);
}

// ---------------------------------------------------------------------------------------------
// linear

TEST(Linear, ForwardMatchesReference) {
  Worst worst("linear_forward", kSumTol);
  Rng rng(10);
  for (int T : {1, 3, 7, 33, 65})
    for (int in : {1, 3, 7, 33, 129})
      for (int out : {1, 3, 7, 65})
        for (bool bias : {false, true}) {
          Vf x = rng.vec((size_t)T * in), W = rng.vec((size_t)out * in), b = rng.vec(out);
          Vf y((size_t)T * out, kNaN);  // overwritten
          Vd xd = to_d(x), Wd = to_d(W), bd = to_d(b), yd(y.size());
          fast::linear_forward(y.data(), x.data(), W.data(), bias ? b.data() : nullptr, T, in, out);
          ref::linear_forward(yd.data(), xd.data(), Wd.data(), bias ? bd.data() : nullptr, T, in, out);
          worst.add(rel_err(y, yd, kTerm), cat("T=", T, " in=", in, " out=", out, " bias=", bias));
        }
}

TEST(Linear, BackwardMatchesReference) {
  Worst wdx("linear_backward dx", kSumTol), wdw("linear_backward dW", kSumTol),
      wdb("linear_backward db", kSumTol);
  Rng rng(11);
  for (int T : {1, 3, 7, 33, 65})
    for (int in : {1, 3, 7, 33, 129})
      for (int out : {1, 3, 7, 65})
        for (int dx_mode : {0, 1, 2})  // 0: dx null, 1: overwrite, 2: accumulate
          for (bool with_db : {false, true}) {
            Vf x = rng.vec((size_t)T * in), W = rng.vec((size_t)out * in), dy = rng.vec((size_t)T * out);
            Vf dx = dx_mode == 2 ? rng.vec(x.size()) : Vf(x.size(), kNaN);
            Vf dW = rng.vec(W.size()), db = rng.vec(out);  // accumulated into
            Vd xd = to_d(x), Wd = to_d(W), dyd = to_d(dy), dxd = to_d(dx), dWd = to_d(dW), dbd = to_d(db);
            fast::linear_backward(dx_mode ? dx.data() : nullptr, dW.data(), with_db ? db.data() : nullptr, dy.data(),
                               x.data(), W.data(), T, in, out, dx_mode == 2);
            ref::linear_backward(dx_mode ? dxd.data() : nullptr, dWd.data(), with_db ? dbd.data() : nullptr,
                               dyd.data(), xd.data(), Wd.data(), T, in, out, dx_mode == 2);
            const std::string where = cat("T=", T, " in=", in, " out=", out, " dx_mode=", dx_mode, " db=", with_db);
            if (dx_mode) wdx.add(rel_err(dx, dxd, kTerm), where);
            wdw.add(rel_err(dW, dWd, kTerm), where);
            wdb.add(rel_err(db, dbd, kTerm), where);  // unchanged when null: still equal
          }
}

TEST(Linear, ReferenceGradientMatchesFiniteDifferences) {
  Worst worst("linear ref grad vs FD", kFdTol);
  Rng rng(12);
  for (int T : {1, 3})
    for (int in : {1, 3, 7})
      for (int out : {1, 2, 5})
        for (bool bias : {false, true}) {
          Vd x = rng.dvec((size_t)T * in), W = rng.dvec((size_t)out * in), b = rng.dvec(out);
          Vd wy = rng.dvec((size_t)T * out), y(wy.size());
          auto f = [&] {
            ref::linear_forward(y.data(), x.data(), W.data(), bias ? b.data() : nullptr, T, in, out);
            return dot(y, wy);
          };
          Vd dx(x.size()), dW(W.size(), 0.0), db(out, 0.0);
          ref::linear_backward(dx.data(), dW.data(), db.data(), wy.data(), x.data(), W.data(), T, in, out);
          const std::string where = cat("T=", T, " in=", in, " out=", out, " bias=", bias);
          worst.add(rel_err(dx, fd_grad(x, f), kFdFloor), where + " dx");
          worst.add(rel_err(dW, fd_grad(W, f), kFdFloor), where + " dW");
          if (bias) worst.add(rel_err(db, fd_grad(b, f), kFdFloor), where + " db");
        }
}

// ---------------------------------------------------------------------------------------------
// bias_add

TEST(BiasAdd, MatchesReference) {
  Worst wf("bias_add_forward", kElemTol), wb("bias_add_backward", kSumTol);
  Rng rng(20);
  for (int T : kSizes)
    for (int C : kSizes) {
      Vf y = rng.vec((size_t)T * C), b = rng.vec(C), dy = rng.vec((size_t)T * C), db = rng.vec(C);
      Vd yd = to_d(y), bd = to_d(b), dyd = to_d(dy), dbd = to_d(db);
      fast::bias_add_forward(y.data(), b.data(), T, C);
      ref::bias_add_forward(yd.data(), bd.data(), T, C);
      fast::bias_add_backward(db.data(), dy.data(), T, C);
      ref::bias_add_backward(dbd.data(), dyd.data(), T, C);
      wf.add(rel_err(y, yd, kTerm), cat("T=", T, " C=", C));
      wb.add(rel_err(db, dbd, kTerm), cat("T=", T, " C=", C));
    }
}

TEST(BiasAdd, ReferenceGradientMatchesFiniteDifferences) {
  Worst worst("bias_add ref grad vs FD", kFdTol);
  Rng rng(21);
  for (int T : {1, 3})
    for (int C : {1, 4, 7}) {
      Vd y0 = rng.dvec((size_t)T * C), b = rng.dvec(C), wy = rng.dvec(y0.size()), y;
      auto f = [&] {
        y = y0;
        ref::bias_add_forward(y.data(), b.data(), T, C);
        return dot(y, wy);
      };
      Vd db(C, 0.0);
      ref::bias_add_backward(db.data(), wy.data(), T, C);
      worst.add(rel_err(db, fd_grad(b, f), kFdFloor), cat("T=", T, " C=", C, " db"));
      worst.add(rel_err(wy, fd_grad(y0, f), kFdFloor), cat("T=", T, " C=", C, " dy (identity)"));
    }
}

// ---------------------------------------------------------------------------------------------
// embedding

TEST(Embedding, MatchesReference) {
  Worst wf("embedding_forward", kElemTol), wt("embedding_backward dtok", kSumTol),
      wp("embedding_backward dpos", kSumTol);
  Rng rng(30);
  for (int B : {1, 2, 3})
    for (int n : {1, 7, 33})
      for (int d : {1, 3, 65})
        for (int V : {1, 5, 50}) {
          const int n_max = n + 2;  // dpos has more rows than the sequence: the extra ones stay untouched
          Vi ids = rng.ids((size_t)B * n, V);
          Vf tok = rng.vec((size_t)V * d), pos = rng.vec((size_t)n_max * d), out((size_t)B * n * d, kNaN);
          Vf dout = rng.vec(out.size()), dtok = rng.vec(tok.size()), dpos = rng.vec(pos.size());
          Vd tokd = to_d(tok), posd = to_d(pos), outd(out.size()), doutd = to_d(dout), dtokd = to_d(dtok),
             dposd = to_d(dpos);
          const Vf dpos0 = dpos;
          fast::embedding_forward(out.data(), ids.data(), tok.data(), pos.data(), B, n, d);
          ref::embedding_forward(outd.data(), ids.data(), tokd.data(), posd.data(), B, n, d);
          fast::embedding_backward(dtok.data(), dpos.data(), dout.data(), ids.data(), B, n, d);
          ref::embedding_backward(dtokd.data(), dposd.data(), doutd.data(), ids.data(), B, n, d);
          const std::string where = cat("B=", B, " n=", n, " d=", d, " V=", V);
          wf.add(rel_err(out, outd, kTerm), where);
          wt.add(rel_err(dtok, dtokd, kTerm), where);
          wp.add(rel_err(dpos, dposd, kTerm), where);
          for (size_t i = (size_t)n * d; i < dpos.size(); ++i)
            if (dpos[i] != dpos0[i]) ADD_FAILURE() << "dpos row >= n written at " << where;
        }
}

TEST(Embedding, BackwardAccumulatesRepeatedIds) {
  const int B = 2, n = 5, d = 3, V = 4;
  Vi ids(B * n, 1);  // every position is token 1
  ids[3] = 2;        // except one
  Vf dout((size_t)B * n * d, 1.0f), dtok((size_t)V * d, 0.5f), dpos((size_t)n * d, 0.0f);
  fast::embedding_backward(dtok.data(), dpos.data(), dout.data(), ids.data(), B, n, d);
  for (int c = 0; c < d; ++c) {
    EXPECT_EQ(dtok[0 * d + c], 0.5f);                  // untouched, kept its old value
    EXPECT_EQ(dtok[1 * d + c], 0.5f + (B * n - 1));    // 9 occurrences accumulated onto 0.5
    EXPECT_EQ(dtok[2 * d + c], 1.5f);                  // one occurrence
    EXPECT_EQ(dtok[3 * d + c], 0.5f);
    for (int t = 0; t < n; ++t) EXPECT_EQ(dpos[t * d + c], (float)B);  // summed over the batch
  }
}

TEST(Embedding, ReferenceGradientMatchesFiniteDifferences) {
  Worst worst("embedding ref grad vs FD", kFdTol);
  Rng rng(31);
  for (int B : {1, 2})
    for (int n : {1, 3})
      for (int d : {1, 3}) {
        const int V = 3;  // fewer tokens than positions: repeated ids
        Vi ids = rng.ids((size_t)B * n, V);
        Vd tok = rng.dvec((size_t)V * d), pos = rng.dvec((size_t)n * d), wy = rng.dvec((size_t)B * n * d),
           out(wy.size());
        auto f = [&] {
          ref::embedding_forward(out.data(), ids.data(), tok.data(), pos.data(), B, n, d);
          return dot(out, wy);
        };
        Vd dtok(tok.size(), 0.0), dpos(pos.size(), 0.0);
        ref::embedding_backward(dtok.data(), dpos.data(), wy.data(), ids.data(), B, n, d);
        const std::string where = cat("B=", B, " n=", n, " d=", d);
        worst.add(rel_err(dtok, fd_grad(tok, f), kFdFloor), where + " dtok");
        worst.add(rel_err(dpos, fd_grad(pos, f), kFdFloor), where + " dpos");
      }
}

// ---------------------------------------------------------------------------------------------
// layernorm

TEST(LayerNorm, MatchesReference) {
  Worst wo("layernorm_forward out", kSumTol), ws("layernorm_forward mean/rstd", kSumTol),
      wdx("layernorm_backward dx", kSumTol), wdw("layernorm_backward dw/db", kSumTol);
  Rng rng(40);
  const float eps = 1e-5f;
  for (int T : kSizes)
    for (int d : kSizes) {
      Vf x = rng.normal((size_t)T * d, 2.0f);
      for (int t = 0; t < T; ++t)  // a different offset per row
        for (int c = 0; c < d; ++c) x[(size_t)t * d + c] += (float)(t % 5) - 2.0f;
      Vf w = rng.vec(d, 0.5f, 1.5f), b = rng.vec(d), out(x.size(), kNaN), mean(T, kNaN), rstd(T, kNaN);
      Vd xd = to_d(x), wd = to_d(w), bd = to_d(b), outd(x.size()), meand(T), rstdd(T);
      fast::layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), T, d, eps);
      ref::layernorm_forward(outd.data(), meand.data(), rstdd.data(), xd.data(), wd.data(), bd.data(), T, d, eps);
      const std::string where = cat("T=", T, " d=", d);
      wo.add(rel_err(out, outd, kTerm), where);
      ws.add(rel_err(mean, meand, kTerm), where + " mean");
      ws.add(rel_err(rstd, rstdd), where + " rstd");

      // Backward from the same saved statistics (the reference's, rounded to float for the fast one).
      Vf dout = rng.vec(x.size()), dx(x.size(), kNaN), dw = rng.vec(d), db = rng.vec(d);
      Vf meanf = to_f(meand), rstdf = to_f(rstdd);
      Vd doutd = to_d(dout), dxd(x.size()), dwd = to_d(dw), dbd = to_d(db);
      fast::layernorm_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), meanf.data(), rstdf.data(),
                            w.data(), T, d);
      ref::layernorm_backward(dxd.data(), dwd.data(), dbd.data(), doutd.data(), xd.data(), meand.data(),
                            rstdd.data(), wd.data(), T, d);
      wdx.add(rel_err(dx, dxd, *std::max_element(rstdd.begin(), rstdd.end()) * kTerm), where);
      wdw.add(rel_err(dw, dwd, kTerm), where + " dw");
      wdw.add(rel_err(db, dbd, kTerm), where + " db");
    }
}

TEST(LayerNorm, ReferenceGradientMatchesFiniteDifferences) {
  Worst worst("layernorm ref grad vs FD", kFdTol);
  Rng rng(41);
  const double eps = 1e-5;
  for (int T : {1, 2, 3})
    for (int d : {1, 2, 3, 7, 33}) {
      Vd x = rng.dvec((size_t)T * d), w = rng.dvec(d), b = rng.dvec(d), wy = rng.dvec(x.size());
      Vd out(x.size()), mean(T), rstd(T);
      auto f = [&] {
        ref::layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), T, d, eps);
        return dot(out, wy);
      };
      f();  // saves mean and rstd of the unperturbed x
      Vd dx(x.size()), dw(d, 0.0), db(d, 0.0);
      ref::layernorm_backward(dx.data(), dw.data(), db.data(), wy.data(), x.data(), mean.data(), rstd.data(),
                            w.data(), T, d);
      const std::string where = cat("T=", T, " d=", d);
      worst.add(rel_err(dx, fd_grad(x, f), kFdFloor), where + " dx");
      worst.add(rel_err(dw, fd_grad(w, f), kFdFloor), where + " dw");
      worst.add(rel_err(db, fd_grad(b, f), kFdFloor), where + " db");
    }
}

// The inference path's fused residual + LayerNorm: LN(a + r) against the reference LayerNorm of
// the sum in double, with out aliasing a, r or neither.
TEST(LayerNorm, ResidualLayerNormMatchesReference) {
  Worst worst("residual_layernorm_forward", kSumTol);
  Rng rng(43);
  for (int T : {1, 3, 17})
    for (int d : {1, 8, 65, 768})
      for (int alias : {0, 1, 2}) {
        Vf a = rng.normal((size_t)T * d, 2.0f), r = rng.normal((size_t)T * d, 2.0f);
        Vf w = rng.vec(d, 0.5f, 1.5f), b = rng.vec(d);
        Vd sum((size_t)T * d), outd(sum.size()), md(T), rd(T);
        for (size_t i = 0; i < sum.size(); ++i) sum[i] = (double)(a[i] + r[i]);
        ref::layernorm_forward(outd.data(), md.data(), rd.data(), sum.data(), to_d(w).data(), to_d(b).data(), T, d,
                               1e-5);
        Vf out(sum.size(), kNaN), mean(T), rstd(T);
        float* o = alias == 1 ? a.data() : alias == 2 ? r.data() : out.data();
        fast::residual_layernorm_forward(o, mean.data(), rstd.data(), a.data(), r.data(), w.data(), b.data(), T, d,
                                         1e-5f);
        const std::string where = cat("T=", T, " d=", d, " alias=", alias);
        worst.add(rel_err(o, outd.data(), sum.size()), where);
        worst.add(rel_err(mean.data(), md.data(), T), where + " mean");
      }
}

TEST(LayerNorm, StableOnHugeAndConstantRows) {
  Rng rng(42);
  const int d = 65;
  const float eps = 1e-5f;
  Vf w = rng.vec(d, 0.5f, 1.5f), b = rng.vec(d);
  Vd wd = to_d(w), bd = to_d(b);
  // Row 0: values of size 1e4. Row 1: constant. Row 2: 1e4 + N(0, 1), a large common offset
  // (a one-pass E[x^2] - E[x]^2 in float loses everything there).
  Vf x = rng.normal(3 * d, 1e4f);
  for (int c = 0; c < d; ++c) {
    x[d + c] = 7.0f;
    x[2 * d + c] = 1e4f + rng.normal(1)[0];
  }
  Vf out(x.size()), mean(3), rstd(3);
  fast::layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), 3, d, eps);
  Vd xd = to_d(x), outd(x.size()), meand(3), rstdd(3);
  ref::layernorm_forward(outd.data(), meand.data(), rstdd.data(), xd.data(), wd.data(), bd.data(), 3, d, eps);
  for (float v : out) ASSERT_TRUE(std::isfinite(v));
  double e0 = rel_err(out.data(), outd.data(), d);
  // At 1e4 a float's spacing is 1e-3: the float mean alone is off by up to 5e-4 of a unit
  // standard deviation, so row 2 is held to 2e-3 rather than kSumTol.
  double e2 = rel_err(out.data() + 2 * d, outd.data() + 2 * d, d);
  std::printf("[layernorm huge] rel err %.3g (values 1e4), %.3g (offset 1e4)\n", e0, e2);
  EXPECT_LE(e0, kSumTol);
  EXPECT_LE(e2, 2e-3);
  for (int c = 0; c < d; ++c) EXPECT_EQ(out[d + c], b[c]) << "constant row must give the bias";

  Vf dout = rng.vec(x.size()), dx(x.size()), dw(d, 0.0f), db(d, 0.0f);
  fast::layernorm_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), mean.data(), rstd.data(),
                        w.data(), 3, d);
  for (float v : dx) EXPECT_TRUE(std::isfinite(v));
  for (int c = 0; c < d; ++c) EXPECT_TRUE(std::isfinite(dw[c]) && std::isfinite(db[c]));
}

// ---------------------------------------------------------------------------------------------
// GELU

TEST(Gelu, MatchesReference) {
  Worst wf("gelu_forward", kElemTol), wb("gelu_backward", kElemTol);
  Rng rng(50);
  for (size_t N : {1, 3, 7, 33, 65, 129, 100003})
    for (bool alias : {false, true}) {
      Vf x = rng.normal(N, 3.0f);
      if (N > 4) x[0] = -12.0f, x[1] = 12.0f, x[2] = 0.0f, x[3] = -0.0f;  // tails and zero
      Vd xd = to_d(x), outd(N), dout_d(N), dxd(N);
      Vf dout = rng.vec(N);
      for (size_t i = 0; i < N; ++i) dout_d[i] = dout[i];
      ref::gelu_forward(outd.data(), xd.data(), N);
      ref::gelu_backward(dxd.data(), xd.data(), dout_d.data(), N);
      const std::string where = cat("N=", N, " alias=", alias);
      if (alias) {
        Vf buf = x;  // out aliases x
        fast::gelu_forward(buf.data(), buf.data(), N);
        wf.add(rel_err(buf, outd, kTerm), where);
        Vf g = dout;  // dx aliases dout
        fast::gelu_backward(g.data(), x.data(), g.data(), N);
        wb.add(rel_err(g, dxd, kTerm), where);
      } else {
        Vf out(N, kNaN), dx(N, kNaN);
        fast::gelu_forward(out.data(), x.data(), N);
        fast::gelu_backward(dx.data(), x.data(), dout.data(), N);
        wf.add(rel_err(out, outd, kTerm), where);
        wb.add(rel_err(dx, dxd, kTerm), where);
      }
    }
}

// The fused FFN step: y += b (kept for backward) and out = GELU(y), against the reference GELU
// of y + b in double; aliased (inference) and separate (training) outputs.
TEST(Gelu, BiasGeluMatchesReference) {
  Worst worst("bias_gelu_forward", kElemTol);
  Rng rng(52);
  for (int T : {1, 5, 33})
    for (int C : {1, 7, 64, 3072})
      for (bool alias : {false, true}) {
        Vf y = rng.normal((size_t)T * C, 3.0f), b = rng.vec(C);
        Vd pre((size_t)T * C), outd((size_t)T * C);
        for (int t = 0; t < T; ++t)
          for (int c = 0; c < C; ++c) pre[(size_t)t * C + c] = (double)(y[(size_t)t * C + c] + b[c]);
        ref::gelu_forward(outd.data(), pre.data(), pre.size());
        const std::string where = cat("T=", T, " C=", C, " alias=", alias);
        if (alias) {
          fast::bias_gelu_forward(y.data(), y.data(), b.data(), T, C);
          worst.add(rel_err(y, outd, kTerm), where);
        } else {
          Vf out(y.size(), kNaN);
          fast::bias_gelu_forward(out.data(), y.data(), b.data(), T, C);
          worst.add(rel_err(out, outd, kTerm), where);
          worst.add(rel_err(y, pre, kTerm), where + " (kept pre-activation)");
        }
      }
}

// A diverged model hands GELU and softmax NaN and infinities: they must come out as NaN (so the
// trainer sees the NaN loss and stops) and never go through an undefined float-to-int conversion
// (the sanitizer build checks that part).
TEST(Gelu, NonFiniteInputsGiveNanOrTheLimit) {
  const float inf = std::numeric_limits<float>::infinity();
  Vf x = {kNaN, -kNaN, inf, -inf, 1e30f, -1e30f, 3e38f, -3e38f, 1.0f};
  Vf out(x.size()), dx(x.size()), dout(x.size(), 1.0f);
  fast::gelu_forward(out.data(), x.data(), x.size());
  fast::gelu_backward(dx.data(), x.data(), dout.data(), x.size());
  EXPECT_TRUE(std::isnan(out[0]) && std::isnan(out[1]));
  EXPECT_TRUE(std::isnan(dx[0]) && std::isnan(dx[1]));
  EXPECT_EQ(out[4], 1e30f);  // GELU(x) = x for large x
  EXPECT_EQ(out[5], 0.0f);   // and 0 for very negative x
  EXPECT_EQ(out[6], 3e38f);
  EXPECT_NEAR(out[8], 0.8413447f, 1e-6f);
  for (size_t i = 4; i < x.size(); ++i) EXPECT_TRUE(std::isfinite(dx[i])) << "x=" << x[i];
}

TEST(Softmax, NanScoresGiveNanRows) {
  const int cols = 5;
  Vf S = {0.0f, 1.0f, kNaN, 2.0f, 3.0f, /* second row is finite */ 0.0f, 1.0f, 2.0f, 3.0f, 4.0f};
  Vf P(S.size());
  fast::softmax_forward(P.data(), S.data(), 2, cols, nullptr);
  bool any_nan = false;
  for (int c = 0; c < cols; ++c) any_nan |= std::isnan(P[c]);
  EXPECT_TRUE(any_nan) << "a NaN score must not vanish from its row";
  float sum = 0.0f;
  for (int c = 0; c < cols; ++c) sum += P[cols + c];
  EXPECT_NEAR(sum, 1.0f, 1e-6f);
}

TEST(Gelu, ReferenceGradientMatchesFiniteDifferences) {
  Worst worst("gelu ref grad vs FD", kFdTol);
  Rng rng(51);
  for (size_t N : {1, 7, 50}) {
    Vd x = rng.dvec(N), wy = rng.dvec(N), out(N);
    for (double& v : x) v *= 4.0;
    auto f = [&] {
      ref::gelu_forward(out.data(), x.data(), N);
      return dot(out, wy);
    };
    Vd dx(N);
    ref::gelu_backward(dx.data(), x.data(), wy.data(), N);
    worst.add(rel_err(dx, fd_grad(x, f), kFdFloor), cat("N=", N));
  }
}

// ---------------------------------------------------------------------------------------------
// softmax

TEST(Softmax, MatchesReference) {
  Worst wf("softmax_forward", kSumTol), wb("softmax_backward", kSumTol);
  Rng rng(60);
  for (int rows : {1, 3, 7, 33})
    for (int cols : kSizes)
      for (int mask_kind : {0, 1, 2, 3})
        for (bool alias : {false, true}) {
          Vf S = rng.normal((size_t)rows * cols, 3.0f), dP = rng.vec(S.size());
          std::vector<uint8_t> mask = make_mask(rng, cols, mask_kind);
          const uint8_t* m = mask_kind ? mask.data() : nullptr;
          Vd Sd = to_d(S), Pd(S.size()), dPd = to_d(dP), dSd(S.size());
          ref::softmax_forward(Pd.data(), Sd.data(), rows, cols, m);
          ref::softmax_backward(dSd.data(), Pd.data(), dPd.data(), rows, cols);
          Vf Pf = to_f(Pd);  // backward from the same probabilities
          Vf P(S.size(), kNaN), dS(S.size(), kNaN);
          if (alias) {
            P = S;
            fast::softmax_forward(P.data(), P.data(), rows, cols, m);
            dS = dP;
            fast::softmax_backward(dS.data(), Pf.data(), dS.data(), rows, cols);
          } else {
            fast::softmax_forward(P.data(), S.data(), rows, cols, m);
            fast::softmax_backward(dS.data(), Pf.data(), dP.data(), rows, cols);
          }
          const std::string where = cat("rows=", rows, " cols=", cols, " mask=", mask_kind, " alias=", alias);
          wf.add(rel_err(P, Pd), where);
          wb.add(rel_err(dS, dSd, *std::max_element(Pd.begin(), Pd.end()) * kTerm), where);
        }
}

TEST(Softmax, ReferenceGradientMatchesFiniteDifferences) {
  Worst worst("softmax ref grad vs FD", kFdTol);
  Rng rng(61);
  for (int rows : {1, 2})
    for (int cols : {1, 2, 3, 7, 33})
      for (int mask_kind : {0, 1, 3}) {
        Vd S = rng.dvec((size_t)rows * cols), wy = rng.dvec(S.size()), P(S.size());
        for (double& v : S) v *= 3.0;
        std::vector<uint8_t> mask = make_mask(rng, cols, mask_kind);
        const uint8_t* m = mask_kind ? mask.data() : nullptr;
        auto f = [&] {
          ref::softmax_forward(P.data(), S.data(), rows, cols, m);
          return dot(P, wy);
        };
        f();
        Vd dS(S.size());
        ref::softmax_backward(dS.data(), P.data(), wy.data(), rows, cols);
        worst.add(rel_err(dS, fd_grad(S, f), kFdFloor), cat("rows=", rows, " cols=", cols, " mask=", mask_kind));
      }
}

TEST(Softmax, MaskedKeysGetZeroAndRowsSumToOne) {
  Rng rng(62);
  double worst_sum = 0.0;
  for (int cols : kSizes) {
    const int rows = 5;
    // Masked keys hold the largest scores: a kernel that lets them into the max would
    // underflow every real key to 0 and divide 0 by 0.
    Vf S = rng.normal((size_t)rows * cols, 3.0f), P(S.size(), kNaN);
    std::vector<uint8_t> mask = make_mask(rng, cols, 1);
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c)
        if (!mask[c]) S[(size_t)r * cols + c] = 1e4f;
    fast::softmax_forward(P.data(), S.data(), rows, cols, mask.data());
    for (int r = 0; r < rows; ++r) {
      double sum = 0.0;
      for (int c = 0; c < cols; ++c) {
        float p = P[(size_t)r * cols + c];
        if (!mask[c]) {
          EXPECT_EQ(p, 0.0f) << "masked key, cols=" << cols;
        }
        EXPECT_TRUE(p >= 0.0f && p <= 1.0f) << p;
        sum += p;
      }
      worst_sum = std::max(worst_sum, std::fabs(sum - 1.0));
    }
  }
  std::printf("[softmax masked] worst |row sum - 1| %.3g\n", worst_sum);
  EXPECT_LE(worst_sum, 1e-5);

  // Every key masked: the row is all zeros (no NaN).
  Vf S = rng.vec(4), P(4, kNaN);
  std::vector<uint8_t> none(4, 0);
  fast::softmax_forward(P.data(), S.data(), 1, 4, none.data());
  for (float p : P) EXPECT_EQ(p, 0.0f);
}

TEST(Softmax, StableOnHugeLogitsAndConstantRows) {
  Rng rng(63);
  const int cols = 129;
  // Rows: N(0, 1e4); constant +1e4; constant -1e4; alternating +-1e4.
  Vf S = rng.normal(4 * cols, 1e4f);
  for (int c = 0; c < cols; ++c) {
    S[cols + c] = 1e4f;
    S[2 * cols + c] = -1e4f;
    S[3 * cols + c] = c % 2 ? 1e4f : -1e4f;
  }
  Vf P(S.size());
  fast::softmax_forward(P.data(), S.data(), 4, cols, nullptr);
  Vd Sd = to_d(S), Pd(S.size());
  ref::softmax_forward(Pd.data(), Sd.data(), 4, cols, nullptr);
  for (float p : P) ASSERT_TRUE(std::isfinite(p));
  const double err = rel_err(P, Pd);
  std::printf("[softmax huge] rel err %.3g\n", err);
  EXPECT_LE(err, kSumTol);
  for (int c = 0; c < cols; ++c) {
    EXPECT_NEAR(P[cols + c], 1.0 / cols, 1e-7);
    EXPECT_NEAR(P[2 * cols + c], 1.0 / cols, 1e-7);
    EXPECT_NEAR(P[3 * cols + c], c % 2 ? 1.0 / (cols / 2) : 0.0, 1e-7);
  }
}

// softmax is single-threaded and documented as safe inside a parallel region.
TEST(Softmax, SafeInsideParallelRegion) {
  Rng rng(64);
  const int blocks = 8, rows = 7, cols = 33;
  Vf S = rng.normal((size_t)blocks * rows * cols), Pserial(S.size()), Ppar(S.size());
  for (int b = 0; b < blocks; ++b)
    fast::softmax_forward(Pserial.data() + (size_t)b * rows * cols, S.data() + (size_t)b * rows * cols, rows, cols,
                       nullptr);
#pragma omp parallel for
  for (int b = 0; b < blocks; ++b)
    fast::softmax_forward(Ppar.data() + (size_t)b * rows * cols, S.data() + (size_t)b * rows * cols, rows, cols,
                       nullptr);
  EXPECT_EQ(0, std::memcmp(Pserial.data(), Ppar.data(), S.size() * sizeof(float)));
}

// ---------------------------------------------------------------------------------------------
// dropout

TEST(Dropout, MatchesReference) {
  Worst wf("dropout_forward", kElemTol), wb("dropout_backward", kElemTol);
  Rng rng(70);
  for (size_t N : {1, 3, 7, 33, 1000, 100003})
    for (float p : {0.0f, 0.1f, 0.5f, 0.9f})
      for (bool alias : {false, true}) {
        const uint64_t seed = 1000 + N + (uint64_t)(p * 10);
        Vf in = rng.vec(N), dout = rng.vec(N);
        Vd ind = to_d(in), outd(N), doutd = to_d(dout), dind(N);
        std::vector<uint8_t> keep(N, 7), keepd(N);
        ref::dropout_forward(outd.data(), keepd.data(), ind.data(), N, p, seed);
        ref::dropout_backward(dind.data(), doutd.data(), keepd.data(), N, p);
        Vf out(N, kNaN), din(N, kNaN);
        if (alias) {
          out = in;
          fast::dropout_forward(out.data(), keep.data(), out.data(), N, p, seed);
          din = dout;
          fast::dropout_backward(din.data(), din.data(), keep.data(), N, p);
        } else {
          fast::dropout_forward(out.data(), keep.data(), in.data(), N, p, seed);
          fast::dropout_backward(din.data(), dout.data(), keep.data(), N, p);
        }
        const std::string where = cat("N=", N, " p=", p, " alias=", alias);
        size_t mask_mismatch = 0;
        for (size_t i = 0; i < N; ++i) mask_mismatch += (keep[i] != 0) != (keepd[i] != 0);
        EXPECT_EQ(mask_mismatch, 0u) << where;
        wf.add(rel_err(out, outd, kTerm), where);
        wb.add(rel_err(din, dind, kTerm), where);
      }
}

TEST(Dropout, ReferenceGradientMatchesFiniteDifferences) {
  Worst worst("dropout ref grad vs FD", kFdTol);
  Rng rng(71);
  for (size_t N : {1, 7, 40})
    for (float p : {0.0f, 0.3f}) {
      Vd in = rng.dvec(N), wy = rng.dvec(N), out(N);
      std::vector<uint8_t> keep(N);
      auto f = [&] {
        ref::dropout_forward(out.data(), keep.data(), in.data(), N, p, 99);
        return dot(out, wy);
      };
      f();
      Vd din(N);
      ref::dropout_backward(din.data(), wy.data(), keep.data(), N, p);
      worst.add(rel_err(din, fd_grad(in, f), kFdFloor), cat("N=", N, " p=", p));
    }
}

TEST(Dropout, KeepsAboutOneMinusP) {
  const size_t N = 1 << 20;
  Vf in(N, 1.0f), out(N);
  std::vector<uint8_t> keep(N);
  for (float p : {0.1f, 0.5f, 0.9f}) {
    fast::dropout_forward(out.data(), keep.data(), in.data(), N, p, 12345);
    size_t kept = 0;
    for (size_t i = 0; i < N; ++i) kept += keep[i] != 0;
    // kept ~ Binomial(N, 1 - p): allow 6 standard deviations (a false alarm ~1e-9).
    const double expect = N * (1.0 - p), sigma = std::sqrt(N * p * (1.0 - p));
    std::printf("[dropout] p=%.1f kept %zu of %zu, expected %.0f +- %.0f (%.2f sigma)\n", p, kept, N, expect, sigma,
                (kept - expect) / sigma);
    EXPECT_LE(std::fabs(kept - expect), 6 * sigma) << "p=" << p;
    for (size_t i = 0; i < N; ++i)
      if (out[i] != (keep[i] ? 1.0f / (1.0f - p) : 0.0f)) {
        ADD_FAILURE() << "out[" << i << "]=" << out[i] << " with keep=" << (int)keep[i] << " p=" << p;
        break;
      }
  }
}

TEST(Dropout, SameSeedSameMaskDifferentSeedDifferent) {
  const size_t N = 10007;
  Rng rng(72);
  Vf in = rng.vec(N), out1(N), out2(N), out3(N);
  std::vector<uint8_t> k1(N), k2(N), k3(N);
  fast::dropout_forward(out1.data(), k1.data(), in.data(), N, 0.5f, 42);
  fast::dropout_forward(out2.data(), k2.data(), in.data(), N, 0.5f, 42);
  fast::dropout_forward(out3.data(), k3.data(), in.data(), N, 0.5f, 43);
  EXPECT_EQ(0, std::memcmp(out1.data(), out2.data(), N * sizeof(float)));
  EXPECT_EQ(k1, k2);
  EXPECT_NE(k1, k3);
  for (uint64_t i = 0; i < 1000; ++i) {
    const float u = fast::dropout_uniform(42, i);
    ASSERT_TRUE(u >= 0.0f && u < 1.0f) << u;
  }
}

TEST(Dropout, IndependentOfThreadCount) {
  const size_t N = 100003;
  Rng rng(73);
  Vf in = rng.vec(N);
  const int saved = omp_get_max_threads();
  Vf out_ref;
  std::vector<uint8_t> keep_ref;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    Vf out(N);
    std::vector<uint8_t> keep(N);
    fast::dropout_forward(out.data(), keep.data(), in.data(), N, 0.3f, 777);
    if (threads == 1) {
      out_ref = out;
      keep_ref = keep;
    } else {
      EXPECT_EQ(0, std::memcmp(out.data(), out_ref.data(), N * sizeof(float))) << threads << " threads";
      EXPECT_EQ(keep, keep_ref) << threads << " threads";
    }
  }
  omp_set_num_threads(saved);
}

TEST(Dropout, ZeroProbabilityCopies) {
  const size_t N = 1001;
  Rng rng(74);
  Vf in = rng.normal(N), out(N, kNaN), din(N, kNaN);
  std::vector<uint8_t> keep(N, 0);
  fast::dropout_forward(out.data(), keep.data(), in.data(), N, 0.0f, 5);
  EXPECT_EQ(0, std::memcmp(out.data(), in.data(), N * sizeof(float)));
  for (uint8_t k : keep) EXPECT_TRUE(k);
  fast::dropout_backward(din.data(), in.data(), keep.data(), N, 0.0f);
  EXPECT_EQ(0, std::memcmp(din.data(), in.data(), N * sizeof(float)));
}

// ---------------------------------------------------------------------------------------------
// cross-entropy

TEST(CrossEntropy, MatchesReference) {
  Worst wf("cross_entropy_forward", kSumTol), wb("cross_entropy_backward", kSumTol);
  Rng rng(80);
  for (int T : {1, 3, 7, 33, 65})
    for (int V : {1, 3, 7, 33, 129, 1000})
      for (int ignore_index : {-100, -1}) {
        Vf logits = rng.normal((size_t)T * V, 3.0f);
        Vi targets = rng.ids(T, V);
        for (int t = 0; t < T; ++t)
          if (rng.integer(0, 3) == 0) targets[t] = ignore_index;
        const float scale = 1.0f / (float)T;
        Vd ld = to_d(logits), lossd(T), gd(logits.size());
        const int countd = ref::cross_entropy_forward(lossd.data(), ld.data(), targets.data(), T, V, ignore_index);
        ref::cross_entropy_backward(gd.data(), ld.data(), targets.data(), T, V, ignore_index, scale);
        Vf loss(T, kNaN), g(logits.size(), kNaN);
        const int count = fast::cross_entropy_forward(loss.data(), logits.data(), targets.data(), T, V, ignore_index);
        fast::cross_entropy_backward(g.data(), logits.data(), targets.data(), T, V, ignore_index, scale);
        const std::string where = cat("T=", T, " V=", V, " ignore_index=", ignore_index);
        EXPECT_EQ(count, countd) << where;
        wf.add(rel_err(loss, lossd, kTerm), where);
        wb.add(rel_err(g, gd, scale), where);
      }
}

TEST(CrossEntropy, ReferenceGradientMatchesFiniteDifferences) {
  Worst worst("cross_entropy ref grad vs FD", kFdTol);
  Rng rng(81);
  const int ignore_index = -100;
  for (int T : {1, 3})
    for (int V : {1, 2, 3, 7, 33}) {
      Vd logits = rng.dvec((size_t)T * V), loss(T);
      for (double& v : logits) v *= 3.0;
      Vi targets = rng.ids(T, V);
      if (T > 1) targets[1] = ignore_index;
      const double scale = 0.7;
      // The backward's contract: gradient of scale * sum of the losses.
      auto f = [&] {
        ref::cross_entropy_forward(loss.data(), logits.data(), targets.data(), T, V, ignore_index);
        double s = 0.0;
        for (double l : loss) s += l;
        return scale * s;
      };
      Vd g(logits.size());
      ref::cross_entropy_backward(g.data(), logits.data(), targets.data(), T, V, ignore_index, scale);
      worst.add(rel_err(g, fd_grad(logits, f), kFdFloor), cat("T=", T, " V=", V));
    }
}

TEST(CrossEntropy, IgnoresIgnoreIndexRows) {
  Rng rng(82);
  const int T = 9, V = 17, ignore_index = -100;
  Vf logits = rng.normal((size_t)T * V, 2.0f);
  Vi targets = rng.ids(T, V);
  std::vector<int> kept_rows;
  for (int t = 0; t < T; ++t) {
    if (t % 3 == 1) {
      targets[t] = ignore_index;
      for (int v = 0; v < V; ++v) logits[(size_t)t * V + v] = 1e4f;  // would dominate if counted
    } else {
      kept_rows.push_back(t);
    }
  }
  Vf loss(T, kNaN), g(logits.size(), kNaN);
  const int count = fast::cross_entropy_forward(loss.data(), logits.data(), targets.data(), T, V, ignore_index);
  fast::cross_entropy_backward(g.data(), logits.data(), targets.data(), T, V, ignore_index, 1.0f);
  EXPECT_EQ(count, (int)kept_rows.size());

  // The same rows without the ignored ones give the same losses and gradients.
  const int Tk = (int)kept_rows.size();
  Vf logits_k, loss_k(Tk), g_k((size_t)Tk * V);
  Vi targets_k;
  for (int t : kept_rows) {
    logits_k.insert(logits_k.end(), logits.begin() + (size_t)t * V, logits.begin() + (size_t)(t + 1) * V);
    targets_k.push_back(targets[t]);
  }
  EXPECT_EQ(Tk, fast::cross_entropy_forward(loss_k.data(), logits_k.data(), targets_k.data(), Tk, V, ignore_index));
  fast::cross_entropy_backward(g_k.data(), logits_k.data(), targets_k.data(), Tk, V, ignore_index, 1.0f);
  for (int t = 0, k = 0; t < T; ++t) {
    if (targets[t] == ignore_index) {
      EXPECT_EQ(loss[t], 0.0f);
      for (int v = 0; v < V; ++v) EXPECT_EQ(g[(size_t)t * V + v], 0.0f);
    } else {
      EXPECT_EQ(loss[t], loss_k[k]);
      for (int v = 0; v < V; ++v) EXPECT_EQ(g[(size_t)t * V + v], g_k[(size_t)k * V + v]);
      ++k;
    }
  }
}

TEST(CrossEntropy, StableOnHugeLogits) {
  Rng rng(83);
  const int T = 4, V = 129;
  Vf logits = rng.normal((size_t)T * V, 1e4f);
  for (int v = 0; v < V; ++v) logits[V + v] = 1e4f;  // a constant row: loss log(V)
  Vi targets = rng.ids(T, V);
  Vf loss(T), g(logits.size());
  fast::cross_entropy_forward(loss.data(), logits.data(), targets.data(), T, V, -100);
  fast::cross_entropy_backward(g.data(), logits.data(), targets.data(), T, V, -100, 1.0f);
  Vd ld = to_d(logits), lossd(T), gd(logits.size());
  ref::cross_entropy_forward(lossd.data(), ld.data(), targets.data(), T, V, -100);
  ref::cross_entropy_backward(gd.data(), ld.data(), targets.data(), T, V, -100, 1.0);
  for (float v : loss) ASSERT_TRUE(std::isfinite(v));
  for (float v : g) ASSERT_TRUE(std::isfinite(v));
  const double el = rel_err(loss, lossd), eg = rel_err(g, gd);
  std::printf("[cross_entropy huge] rel err loss %.3g, grad %.3g\n", el, eg);
  EXPECT_LE(el, kSumTol);
  EXPECT_LE(eg, kSumTol);
  EXPECT_NEAR(loss[1], std::log((double)V), 1e-5);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Window pooling along the sequence (Linformer's mean/max projections) and the conv matrix

// A random mask with at least one real token per sequence, sometimes with padding inside.
std::vector<uint8_t> seq_mask(Rng& rng, int B, int n) {
  std::vector<uint8_t> m((size_t)B * n);
  for (int b = 0; b < B; ++b) {
    const int len = rng.integer(1, n);
    for (int t = 0; t < n; ++t) m[(size_t)b * n + t] = t < len && rng.integer(0, 5) != 0;
    m[(size_t)b * n] = 1;
  }
  return m;
}

TEST(SeqPool, MatchesReference) {
  Worst wf("seq_pool_forward", kSumTol), wb("seq_pool_backward", kSumTol);
  Rng rng(90);
  int arg_mismatch = 0, wmask_mismatch = 0;
  for (bool max : {false, true})
    for (int B : {1, 3})
      for (int d : {1, 5, 33})
        for (auto [k, w] : {std::pair{1, 1}, {4, 3}, {5, 4}, {2, 16}})
          for (int n : {1, k * w / 2 + 1, k * w}) {
            Vf in = rng.vec((size_t)B * n * d), dout = rng.vec((size_t)B * k * d);
            std::vector<uint8_t> mask = seq_mask(rng, B, n);
            Vd out_d((size_t)B * k * d), din_d((size_t)B * n * d);
            std::vector<int32_t> arg_d((size_t)B * k * d), arg((size_t)B * k * d);
            std::vector<uint8_t> wm_d((size_t)B * k), wm((size_t)B * k, 7);
            Vd ind = to_d(in), doutd = to_d(dout);
            ref::seq_pool_forward(out_d.data(), arg_d.data(), wm_d.data(), ind.data(), mask.data(), B, n, d, k, w, max);
            ref::seq_pool_backward(din_d.data(), doutd.data(), arg_d.data(), mask.data(), B, n, d, k, w, max);
            Vf out((size_t)B * k * d, kNaN), din((size_t)B * n * d, kNaN);
            fast::seq_pool_forward(out.data(), arg.data(), wm.data(), in.data(), mask.data(), B, n, d, k, w, max);
            fast::seq_pool_backward(din.data(), dout.data(), arg.data(), mask.data(), B, n, d, k, w, max);
            const std::string where = cat(max ? "max" : "mean", " B=", B, " n=", n, " d=", d, " k=", k, " w=", w);
            wf.add(rel_err(out, out_d, kTerm), where);
            wb.add(rel_err(din, din_d, kTerm), where);
            if (max && arg != arg_d) ++arg_mismatch;
            if (wm != wm_d) ++wmask_mismatch;
          }
  EXPECT_EQ(arg_mismatch, 0);
  EXPECT_EQ(wmask_mismatch, 0);
}

TEST(SeqPool, ReferenceGradientMatchesFiniteDifferences) {
  Worst worst("seq_pool ref grad vs FD", kFdTol);
  Rng rng(91);
  for (bool max : {false, true})
    for (auto [n, k, w] : {std::tuple{7, 2, 4}, {8, 4, 2}, {5, 5, 1}, {3, 1, 6}}) {
      const int B = 2, d = 3;
      Vd in = rng.dvec((size_t)B * n * d), wy = rng.dvec((size_t)B * k * d), out(wy.size());
      std::vector<int32_t> arg(out.size());
      std::vector<uint8_t> mask = seq_mask(rng, B, n);
      auto f = [&] {
        ref::seq_pool_forward(out.data(), arg.data(), (uint8_t*)nullptr, in.data(), mask.data(), B, n, d, k, w, max);
        return dot(out, wy);
      };
      f();
      Vd din(in.size());
      ref::seq_pool_backward(din.data(), wy.data(), arg.data(), mask.data(), B, n, d, k, w, max);
      // Random inputs have no ties, so max pooling is differentiable at them.
      worst.add(rel_err(din, fd_grad(in, f), kFdFloor), cat(max ? "max" : "mean", " n=", n, " k=", k, " w=", w));
    }
}

// Handmade: exact averages and maxima over the real tokens of each window; empty windows are 0.
TEST(SeqPool, ExactAveragesAndMaximaOfRealTokens) {
  // B = 1, n = 7, d = 2, k = 3 windows of w = 3: {0,1,2}, {3,4,5}, {6, (7), (8)}; position 4 is padding.
  const int n = 7, d = 2, k = 3, w = 3;
  const Vf in = {1, -1, 2, -5, 6, 0, /**/ -3, 4, 100, 100, 5, 2, /**/ 7, 8};
  const std::vector<uint8_t> mask = {1, 1, 1, 1, 0, 1, 1};
  Vf out(k * d);
  std::vector<int32_t> arg(k * d);
  std::vector<uint8_t> wm(k);
  fast::seq_pool_forward(out.data(), nullptr, wm.data(), in.data(), mask.data(), 1, n, d, k, w, false);
  EXPECT_EQ(out, (Vf{3.0f, -2.0f, 1.0f, 3.0f, 7.0f, 8.0f}));  // (1+2+6)/3, (-1-5+0)/3, (-3+5)/2, (4+2)/2, 7, 8
  fast::seq_pool_forward(out.data(), arg.data(), wm.data(), in.data(), mask.data(), 1, n, d, k, w, true);
  EXPECT_EQ(out, (Vf{6.0f, 0.0f, 5.0f, 4.0f, 7.0f, 8.0f}));  // the padded 100s never win
  EXPECT_EQ(arg, (std::vector<int32_t>{2, 2, 5, 3, 6, 6}));
  EXPECT_EQ(wm, (std::vector<uint8_t>{1, 1, 1}));
  // A sequence of 2 real tokens in n = 7: windows 1 and 2 are empty -> 0, window mask 0.
  const std::vector<uint8_t> short_mask = {1, 1, 0, 0, 0, 0, 0};
  fast::seq_pool_forward(out.data(), nullptr, wm.data(), in.data(), short_mask.data(), 1, n, d, k, w, false);
  EXPECT_EQ(out, (Vf{1.5f, -3.0f, 0.0f, 0.0f, 0.0f, 0.0f}));
  EXPECT_EQ(wm, (std::vector<uint8_t>{1, 0, 0}));
  // Backward of mean: the window's gradient split evenly over its real tokens, 0 at padding.
  const Vf dout = {3, 6, 2, 4, 1, 1};
  Vf din(n * d, kNaN);
  fast::seq_pool_backward(din.data(), dout.data(), nullptr, mask.data(), 1, n, d, k, w, false);
  EXPECT_EQ(din, (Vf{1, 2, 1, 2, 1, 2, 1, 2, 0, 0, 1, 2, 1, 1}));
}

TEST(ConvMatrix, BuildsTheStridedConvolutionAndFoldsItsGradient) {
  // k = 3 windows of w = 2 in ld = 7 columns (a max_len that is larger is fine: the rest is 0).
  const int k = 3, w = 2, ld = 7;
  const Vf kernel = {0.5f, -2.0f};
  Vf E(k * ld, kNaN);
  fast::conv_matrix_forward(E.data(), kernel.data(), k, w, ld);
  const Vf expect = {0.5f, -2, 0, 0, 0, 0, 0, /**/ 0, 0, 0.5f, -2, 0, 0, 0, /**/ 0, 0, 0, 0, 0.5f, -2, 0};
  EXPECT_EQ(E, expect);
  // E x equals the convolution: out[j] = sum_u kernel[u] x[j*w + u].
  const Vf x = {1, 2, 3, 4, 5, 6, 7};
  for (int j = 0; j < k; ++j) {
    float y = 0;
    for (int t = 0; t < ld; ++t) y += E[j * ld + t] * x[t];
    EXPECT_EQ(y, kernel[0] * x[j * w] + kernel[1] * x[j * w + 1]);
  }
  // The kernel's gradient sums the matrix gradient over the windows (accumulating).
  Vf dE(k * ld);
  for (size_t i = 0; i < dE.size(); ++i) dE[i] = (float)i;
  Vf dk = {10.0f, 20.0f};
  fast::conv_matrix_backward(dk.data(), dE.data(), k, w, ld);
  EXPECT_EQ(dk, (Vf{10.0f + 0 + 9 + 18, 20.0f + 1 + 10 + 19}));
}
