// Op-level tests of the attention kernels (src/kernels/attention.hpp), in the three kinds of
// test_kernels.cpp:
//   1. Fast vs reference: attention_forward/backward and flash_attention_forward/backward
//      (float) against their reference twins (reference.hpp, run in double) over grids of shapes:
//      n != k, n not a multiple of the tile sizes, odd head dims, several heads and batch
//      elements, key padding (random, padded tails, whole key tiles padded, a sequence with no
//      real key), dropout on and off.
//   2. Gradients: the double reference backwards against central differences of their forwards.
//   3. Tiled == full: the flash kernels give the function of attention_forward with kk = n, and
//      both draw bitwise the same dropout masks (attention_dropout_row).
// Every comparison prints the worst error it saw and fails when it exceeds its bound.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernel_test_util.hpp"
#include "kernels/attention.hpp"
#include "kernels/kernels.hpp"
#include "kernels/reference.hpp"

namespace fast = linformer::kernels;
namespace ref = linformer::ref;

namespace {

using namespace kernel_test;
using Mask = std::vector<uint8_t>;

// Key masks [B, keys]. kind 0: none (all real, passed as null where allowed); 1: random, at
// least one real key per sequence; 2: padded tails of different lengths (the last sequence
// keeps a single key, so for keys > kFlashKeyTile whole key tiles are padding); 3: as 2, but the
// last sequence has no real key at all.
Mask make_key_mask(Rng& rng, int B, int keys, int kind) {
  Mask m((size_t)B * keys, 1);
  for (int b = 0; b < B; ++b) {
    uint8_t* r = m.data() + (size_t)b * keys;
    if (kind == 1) {
      for (int c = 0; c < keys; ++c) r[c] = rng.integer(0, 3) != 0;
      r[rng.integer(0, keys - 1)] = 1;
    } else if (kind >= 2) {
      const int len = b == B - 1 ? (kind == 3 ? 0 : 1) : std::max(1, keys - rng.integer(0, keys / 2 + 1));
      for (int c = len; c < keys; ++c) r[c] = 0;
    }
  }
  return m;
}

const char* mask_name(int kind) {
  static const char* names[] = {"none", "random", "padded tails", "tails + empty sequence"};
  return names[kind];
}

// One forward of each implementation on the same inputs, the float one's and the double one's
// outputs side by side.
struct BlockRun {
  int B, n, kk, h, dh;
  float p;
  uint64_t seed = 1234;
  Mask mask;  // [B, kk] or empty (null)
  Vf q, kc, vc;
  Vf ctx, P, Pd, dP;
  std::vector<uint8_t> keep;
  Vd ctx_d, P_d, Pd_d, dP_d;
  std::vector<uint8_t> keep_d;

  size_t probs() const { return (size_t)B * h * n * kk; }
  int d() const { return h * dh; }
  const uint8_t* mask_ptr() const { return mask.empty() ? nullptr : mask.data(); }

  BlockRun(Rng& rng, int B_, int n_, int kk_, int h_, int dh_, int mask_kind, float p_)
      : B(B_), n(n_), kk(kk_), h(h_), dh(dh_), p(p_) {
    if (mask_kind > 0) mask = make_key_mask(rng, B, kk, mask_kind);
    q = rng.normal((size_t)B * n * d());
    kc = rng.normal((size_t)B * kk * d());
    vc = rng.vec((size_t)B * kk * d());
  }
  void forward() {
    ctx.assign((size_t)B * n * d(), kNaN);
    P.assign(probs(), kNaN);
    Pd.assign(probs(), kNaN);
    keep.assign(probs(), 7);
    fast::attention_forward(ctx.data(), P.data(), Pd.data(), keep.data(), q.data(), kc.data(), vc.data(), mask_ptr(),
                            B, n, kk, h, dh, p, seed, B * h);
    ctx_d.assign(ctx.size(), 0.0);
    P_d.assign(probs(), 0.0);
    Pd_d.assign(probs(), 0.0);
    keep_d.assign(probs(), 7);
    const Vd qd = to_d(q), kd = to_d(kc), vd = to_d(vc);
    ref::attention_forward(ctx_d.data(), P_d.data(), Pd_d.data(), keep_d.data(), qd.data(), kd.data(), vd.data(),
                           mask_ptr(), B, n, kk, h, dh, p, seed, B * h);
  }
  std::string where() const {
    return cat("B=", B, " n=", n, " kk=", kk, " h=", h, " dh=", dh, " p=", p, " mask=",
               mask.empty() ? "none" : "given");
  }
};

// ---------------------------------------------------------------------------------------------
// attention_dropout_row

TEST(AttentionDropout, RowMatchesReferenceAndTilesDrawTheWholeRowsMask) {
  Worst worst("attention_dropout_row vs reference", kElemTol);
  Rng rng(1);
  int masks = 0;
  for (float p : {0.1f, 0.5f, 0.9f})
    for (int n_cols : {1, 7, 256, 300, 513})
      for (int bh : {0, 3})
        for (int t : {0, 5}) {
          const int n = 6;
          const Vf in = rng.vec(n_cols, 0.0f, 1.0f);
          Vf out(n_cols), in_place = in;
          std::vector<uint8_t> keep(n_cols), keep_ref(n_cols), keep_tiles(n_cols);
          fast::attention_dropout_row(out.data(), keep.data(), in.data(), n_cols, 99, p, bh, n, n_cols, t, 0);
          Vd out_d(n_cols);
          const Vd in_d = to_d(in);
          ref::attention_dropout_row(out_d.data(), keep_ref.data(), in_d.data(), n_cols, 99, p, bh, n, n_cols, t, 0);
          const std::string where = cat("p=", p, " n_cols=", n_cols, " bh=", bh, " t=", t);
          worst.add(rel_err(out, out_d, kTerm), where);
          EXPECT_EQ(keep, keep_ref) << where;
          // The element's place alone decides: key tiles of the row (the flash kernel's, and odd
          // ones), in place and without keep, give the same mask and values.
          for (int tile : {fast::kFlashKeyTile, 5}) {
            Vf tiled = in;
            for (int c0 = 0; c0 < n_cols; c0 += tile) {
              const int cols = std::min(tile, n_cols - c0);
              fast::attention_dropout_row(tiled.data() + c0, keep_tiles.data() + c0, tiled.data() + c0, cols, 99, p,
                                          bh, n, n_cols, t, c0);
            }
            EXPECT_EQ(keep_tiles, keep) << where << " tile=" << tile;
            EXPECT_EQ(tiled, out) << where << " tile=" << tile;
          }
          fast::attention_dropout_row(in_place.data(), nullptr, in_place.data(), n_cols, 99, p, bh, n, n_cols, t, 0);
          EXPECT_EQ(in_place, out) << where << " (in place, no keep)";
          // The index is (bh*n + t)*n_cols + c: the same element of a neighbouring row differs.
          if (n_cols >= 256) {
            std::vector<uint8_t> other(n_cols);
            fast::attention_dropout_row(out.data(), other.data(), in.data(), n_cols, 99, p, bh, n, n_cols, t + 1, 0);
            EXPECT_NE(other, keep) << where;
            ++masks;
          }
        }
  EXPECT_GT(masks, 0);
}

TEST(AttentionDropout, KeepsAboutOneMinusP) {
  const int n = 64, cols = 1000;
  for (float p : {0.1f, 0.5f}) {
    size_t kept = 0;
    Vf in(cols, 1.0f), out(cols);
    std::vector<uint8_t> keep(cols);
    for (int t = 0; t < n; ++t) {
      fast::attention_dropout_row(out.data(), keep.data(), in.data(), cols, 5, p, 2, n, cols, t, 0);
      for (int j = 0; j < cols; ++j) {
        kept += keep[j];
        EXPECT_EQ(out[j], keep[j] ? 1.0f / (1.0f - p) : 0.0f);
      }
    }
    const double frac = (double)kept / (n * cols);
    std::printf("[attention dropout p=%.1f] kept %.4f (expected %.4f)\n", p, frac, 1.0 - p);
    EXPECT_NEAR(frac, 1.0 - p, 0.01);
  }
}

// ---------------------------------------------------------------------------------------------
// attention_forward / attention_backward (full and Linformer attention's block)

TEST(AttentionBlock, ForwardMatchesReference) {
  Worst wctx("attention_forward ctx", kSumTol), wp("attention_forward P", kSumTol),
      wpd("attention_forward Pd", kSumTol);
  Rng rng(2);
  int dropped = 0;
  for (int B : {1, 3})
    for (int h : {1, 2, 3})
      for (int dh : {1, 5, 8})
        for (int n : {1, 7, 33})
          for (int kk : {n, 4, 19})  // kk = n: full attention; else Linformer's projected keys
            for (int mk = 0; mk < 4; ++mk)
              for (float p : {0.0f, 0.3f}) {
                BlockRun r(rng, B, n, kk, h, dh, mk, p);
                r.forward();
                const std::string where = r.where() + " (" + mask_name(mk) + ")";
                wctx.add(rel_err(r.ctx, r.ctx_d, kTerm), where);
                wp.add(rel_err(r.P, r.P_d, kTerm), where);
                if (p > 0.0f) {
                  wpd.add(rel_err(r.Pd, r.Pd_d, kTerm), where);
                  EXPECT_EQ(r.keep, r.keep_d) << where;
                  ++dropped;
                }
                if (mk == 3)  // the last sequence has no real key: zero probabilities and context
                  for (size_t e = (size_t)(B - 1) * n * h * dh; e < r.ctx.size(); ++e)
                    ASSERT_EQ(r.ctx[e], 0.0f) << where;
              }
  EXPECT_GT(dropped, 0);
}

TEST(AttentionBlock, BackwardMatchesReference) {
  Worst wq("attention_backward dq", kSumTol), wk("attention_backward dkc", kSumTol),
      wv("attention_backward dvc", kSumTol);
  Rng rng(3);
  for (int B : {1, 2})
    for (int h : {1, 3})
      for (int dh : {1, 5, 8})
        for (int n : {1, 7, 33})
          for (int kk : {n, 4, 19})
            for (int mk = 0; mk < 4; ++mk)
              for (float p : {0.0f, 0.3f}) {
                BlockRun r(rng, B, n, kk, h, dh, mk, p);
                r.forward();
                const size_t T = (size_t)B * n * r.d(), C = (size_t)B * kk * r.d();
                const Vf dctx = rng.vec(T);
                Vf dq(T, kNaN), dk(C, kNaN), dv(C, kNaN), dP(r.probs(), kNaN);
                fast::attention_backward(dq.data(), dk.data(), dv.data(), dP.data(), dctx.data(), r.q.data(),
                                         r.kc.data(), r.vc.data(), r.P.data(), p > 0 ? r.Pd.data() : nullptr,
                                         p > 0 ? r.keep.data() : nullptr, B, n, kk, h, dh, p);
                Vd dqd(T), dkd(C), dvd(C), dPd(r.probs());
                const Vd dctxd = to_d(dctx), qd = to_d(r.q), kd = to_d(r.kc), vd = to_d(r.vc);
                ref::attention_backward(dqd.data(), dkd.data(), dvd.data(), dPd.data(), dctxd.data(), qd.data(),
                                        kd.data(), vd.data(), r.P_d.data(), r.Pd_d.data(), r.keep_d.data(), B, n, kk,
                                        h, dh, p);
                const std::string where = r.where() + " (" + mask_name(mk) + ")";
                wq.add(rel_err(dq, dqd, kTerm), where);
                wk.add(rel_err(dk, dkd, kTerm), where);
                wv.add(rel_err(dv, dvd, kTerm), where);
              }
}

// The double reference backward against central differences of the double reference forward,
// objective sum(ctx * W). The dropout mask is a function of the seed only, so with it on the
// forward is still differentiable in q, k and v.
TEST(AttentionBlock, ReferenceGradientMatchesFiniteDifferences) {
  Worst worst("attention ref grad vs FD", kFdTol);
  Rng rng(4);
  for (int n : {1, 5})
    for (int kk : {n, 3})
      for (int mk = 0; mk < 4; ++mk)
        for (float p : {0.0f, 0.4f}) {
          const int B = 2, h = 2, dh = 3, d = h * dh;
          const Mask mask = mk > 0 ? make_key_mask(rng, B, kk, mk) : Mask();
          const uint8_t* m = mask.empty() ? nullptr : mask.data();
          Vd q = rng.dvec((size_t)B * n * d), k = rng.dvec((size_t)B * kk * d), v = rng.dvec((size_t)B * kk * d);
          const Vd W = rng.dvec((size_t)B * n * d);
          const size_t probs = (size_t)B * h * n * kk;
          Vd ctx(W.size()), P(probs), Pd(probs), dP(probs);
          std::vector<uint8_t> keep(probs);
          auto f = [&] {
            ref::attention_forward(ctx.data(), P.data(), Pd.data(), keep.data(), q.data(), k.data(), v.data(), m, B,
                                   n, kk, h, dh, p, 77, B * h);
            return dot(ctx, W);
          };
          f();
          Vd dq(q.size()), dk(k.size()), dv(v.size());
          ref::attention_backward(dq.data(), dk.data(), dv.data(), dP.data(), W.data(), q.data(), k.data(), v.data(),
                                  P.data(), Pd.data(), keep.data(), B, n, kk, h, dh, p);
          const std::string where = cat("n=", n, " kk=", kk, " p=", p, " mask=", mask_name(mk));
          worst.add(rel_err(dq, fd_grad(q, f), kFdFloor), where + " dq");
          worst.add(rel_err(dk, fd_grad(k, f), kFdFloor), where + " dk");
          worst.add(rel_err(dv, fd_grad(v, f), kFdFloor), where + " dv");
        }
}

// Inference keeps one score block per thread: the same context, and no block out of range
// when there are more threads than (sequence, head) blocks.
TEST(AttentionBlock, PerThreadScoreBlocksGiveTheSameContext) {
  Rng rng(5);
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 4}) {
    omp_set_num_threads(threads);
    for (int Bh : {1, 2, 6}) {  // B*h below, at and above the thread count
      const int B = Bh % 2 == 0 ? Bh / 2 : Bh, h = Bh / B, n = 9, kk = 5, dh = 4, d = h * dh;
      BlockRun r(rng, B, n, kk, h, dh, 1, 0.0f);
      r.forward();
      const int blocks = std::min(threads, B * h);
      Vf P(blocks * (size_t)n * kk), ctx(r.ctx.size(), kNaN);
      fast::attention_forward(ctx.data(), P.data(), nullptr, nullptr, r.q.data(), r.kc.data(), r.vc.data(),
                              r.mask_ptr(), B, n, kk, h, dh, 0.0f, 0, blocks);
      EXPECT_EQ(ctx, r.ctx) << "threads=" << threads << " B=" << B << " h=" << h << " d=" << d;
    }
  }
  omp_set_num_threads(saved);
}

// ---------------------------------------------------------------------------------------------
// flash_attention_forward / flash_attention_backward (tiled exact attention)

// n: below one tile, a query tile + 1, several query and key tiles with ragged ends.
const int kFlashSizes[] = {1, 5, 129, 300};

// The double reference is slow at n = 300: there, odd head dims and three (sequence, head) blocks.
bool skip_large(int n, int B, int h, int dh) { return n > 200 && (dh != 7 || B * h == 6 || B * h == 1); }

struct FlashRun {
  int B, n, h, dh;
  float p;
  uint64_t seed = 4321;
  Mask mask;
  Vf q, k, v, ctx, lse;
  Vd ctx_d, lse_d;
  int d() const { return h * dh; }

  FlashRun(Rng& rng, int B_, int n_, int h_, int dh_, int mask_kind, float p_) : B(B_), n(n_), h(h_), dh(dh_), p(p_) {
    mask = make_key_mask(rng, B, n, mask_kind);  // the flash kernels take a mask always
    q = rng.normal((size_t)B * n * d());
    k = rng.normal((size_t)B * n * d());
    v = rng.vec((size_t)B * n * d());
  }
  void forward() {
    ctx.assign((size_t)B * n * d(), kNaN);
    lse.assign((size_t)B * h * n, kNaN);
    fast::flash_attention_forward(ctx.data(), lse.data(), q.data(), k.data(), v.data(), mask.data(), B, n, h, dh, p,
                                  seed);
    ctx_d.assign(ctx.size(), 0.0);
    lse_d.assign(lse.size(), 0.0);
    const Vd qd = to_d(q), kd = to_d(k), vd = to_d(v);
    ref::flash_attention_forward(ctx_d.data(), lse_d.data(), qd.data(), kd.data(), vd.data(), mask.data(), B, n, h, dh,
                                 p, seed);
  }
  std::string where(int mk) const {
    return cat("B=", B, " n=", n, " h=", h, " dh=", dh, " p=", p, " mask=", mask_name(mk));
  }
};

// lse: the same rows infinite (no real key), the finite ones close (absolute: lse is a log).
void check_lse(Worst& worst, const Vf& lse, const Vd& lse_d, const std::string& where) {
  Vf a;
  Vd b;
  for (size_t i = 0; i < lse.size(); ++i) {
    ASSERT_EQ(std::isinf(lse[i]), std::isinf(lse_d[i])) << where << " row " << i;
    if (!std::isinf(lse[i])) a.push_back(lse[i]), b.push_back(lse_d[i]);
  }
  if (!a.empty()) worst.add(rel_err(a, b, kTerm), where);
}

// Every case of the flash tests (sizes, batch, heads, head dims, masks, dropout), run forward by
// the fast and the reference kernel and handed to check(run, mask kind).
template <class Check>
void for_each_flash_case(Rng& rng, Check check) {
  for (int n : kFlashSizes)
    for (int B : {1, 2})
      for (int h : {1, 3})
        for (int dh : {1, 7, 16})
          for (int mk = 0; mk < 4; ++mk)
            for (float p : {0.0f, 0.25f}) {
              if (skip_large(n, B, h, dh)) continue;
              FlashRun r(rng, B, n, h, dh, mk, p);
              r.forward();
              check(r, mk);
            }
}

TEST(FlashAttention, ForwardMatchesReference) {
  Worst wctx("flash_attention_forward ctx", kSumTol), wlse("flash_attention_forward lse", kSumTol);
  Rng rng(6);
  for_each_flash_case(rng, [&](FlashRun& r, int mk) {
    wctx.add(rel_err(r.ctx, r.ctx_d, kTerm), r.where(mk));
    check_lse(wlse, r.lse, r.lse_d, r.where(mk));
  });
}

TEST(FlashAttention, BackwardMatchesReference) {
  Worst wq("flash_attention_backward dq", kSumTol), wk("flash_attention_backward dk", kSumTol),
      wv("flash_attention_backward dv", kSumTol);
  Rng rng(7);
  for_each_flash_case(rng, [&](FlashRun& r, int mk) {
    const size_t T = (size_t)r.B * r.n * r.d();
    const Vf dctx = rng.vec(T);
    Vf dq(T, kNaN), dk(T, kNaN), dv(T, kNaN);
    fast::flash_attention_backward(dq.data(), dk.data(), dv.data(), dctx.data(), r.ctx.data(), r.lse.data(),
                                   r.q.data(), r.k.data(), r.v.data(), r.mask.data(), r.B, r.n, r.h, r.dh, r.p, r.seed);
    Vd dqd(T), dkd(T), dvd(T);
    const Vd dctxd = to_d(dctx), qd = to_d(r.q), kd = to_d(r.k), vd = to_d(r.v);
    ref::flash_attention_backward(dqd.data(), dkd.data(), dvd.data(), dctxd.data(), r.ctx_d.data(),
                                  r.lse_d.data(), qd.data(), kd.data(), vd.data(), r.mask.data(), r.B, r.n, r.h,
                                  r.dh, r.p, r.seed);
    wq.add(rel_err(dq, dqd, kTerm), r.where(mk));
    wk.add(rel_err(dk, dkd, kTerm), r.where(mk));
    wv.add(rel_err(dv, dvd, kTerm), r.where(mk));
  });
}

TEST(FlashAttention, ReferenceGradientMatchesFiniteDifferences) {
  Worst worst("flash attention ref grad vs FD", kFdTol);
  Rng rng(8);
  for (int n : {1, 6})
    for (int mk = 0; mk < 4; ++mk)
      for (float p : {0.0f, 0.4f}) {
        const int B = 2, h = 2, dh = 3, d = h * dh;
        const Mask mask = make_key_mask(rng, B, n, mk);
        Vd q = rng.dvec((size_t)B * n * d), k = rng.dvec((size_t)B * n * d), v = rng.dvec((size_t)B * n * d);
        const Vd W = rng.dvec((size_t)B * n * d);
        Vd ctx(W.size()), lse((size_t)B * h * n);
        auto f = [&] {
          ref::flash_attention_forward(ctx.data(), lse.data(), q.data(), k.data(), v.data(), mask.data(), B, n, h, dh,
                                       p, 55);
          return dot(ctx, W);
        };
        f();
        Vd dq(q.size()), dk(k.size()), dv(v.size());
        ref::flash_attention_backward(dq.data(), dk.data(), dv.data(), W.data(), ctx.data(), lse.data(), q.data(),
                                      k.data(), v.data(), mask.data(), B, n, h, dh, p, 55);
        const std::string where = cat("n=", n, " p=", p, " mask=", mask_name(mk));
        worst.add(rel_err(dq, fd_grad(q, f), kFdFloor), where + " dq");
        worst.add(rel_err(dk, fd_grad(k, f), kFdFloor), where + " dk");
        worst.add(rel_err(dv, fd_grad(v, f), kFdFloor), where + " dv");
      }
}

// The tiled kernels compute the function of the full block with kk = n and key_mask = mask, with
// dropout too: the masks they regenerate tile by tile are bitwise those full attention keeps.
TEST(FlashAttention, EqualsFullAttentionWithTheSameDropoutMasks) {
  Worst wctx("flash vs full ctx", kSumTol), wgrad("flash vs full dq/dk/dv", kSumTol);
  Rng rng(9);
  int dropped_rows = 0;
  for (int n : {7, 129, 300})
    for (int mk = 0; mk < 4; ++mk)
      for (float p : {0.0f, 0.3f}) {
        const int B = 2, h = 2, dh = 8, d = h * dh;
        FlashRun f(rng, B, n, h, dh, mk, p);
        const size_t T = (size_t)B * n * d, probs = (size_t)B * h * n * n;
        Vf ctx(T), lse((size_t)B * h * n);
        fast::flash_attention_forward(ctx.data(), lse.data(), f.q.data(), f.k.data(), f.v.data(), f.mask.data(), B, n, h,
                                      dh, p, f.seed);
        Vf ctx_full(T), P(probs), Pd(probs), dP(probs);
        std::vector<uint8_t> keep(probs);
        fast::attention_forward(ctx_full.data(), P.data(), Pd.data(), keep.data(), f.q.data(), f.k.data(), f.v.data(),
                                f.mask.data(), B, n, n, h, dh, p, f.seed, B * h);
        const std::string where = f.where(mk);
        wctx.add(rel_err(ctx, ctx_full, kTerm), where);
        const Vf dctx = rng.vec(T);
        Vf dq(T), dk(T), dv(T), dq_full(T), dk_full(T), dv_full(T);
        fast::flash_attention_backward(dq.data(), dk.data(), dv.data(), dctx.data(), ctx.data(), lse.data(), f.q.data(),
                                       f.k.data(), f.v.data(), f.mask.data(), B, n, h, dh, p, f.seed);
        fast::attention_backward(dq_full.data(), dk_full.data(), dv_full.data(), dP.data(), dctx.data(), f.q.data(),
                                 f.k.data(), f.v.data(), P.data(), Pd.data(), keep.data(), B, n, n, h, dh, p);
        wgrad.add(rel_err(dq, dq_full, kTerm), where + " dq");
        wgrad.add(rel_err(dk, dk_full, kTerm), where + " dk");
        wgrad.add(rel_err(dv, dv_full, kTerm), where + " dv");
        if (p == 0.0f) continue;
        // The masks: the flash kernels draw row t of block bh in key tiles starting at multiples
        // of kFlashKeyTile; together they are the row full attention kept.
        for (int bh = 0; bh < B * h; ++bh)
          for (int t = 0; t < n; ++t) {
            std::vector<uint8_t> tiles(n);
            Vf ones(n, 1.0f), out(n);
            for (int k0 = 0; k0 < n; k0 += fast::kFlashKeyTile) {
              const int bk = std::min(fast::kFlashKeyTile, n - k0);
              fast::attention_dropout_row(out.data() + k0, tiles.data() + k0, ones.data() + k0, bk, f.seed, p, bh, n, n,
                                          t, k0);
            }
            const uint8_t* full_row = keep.data() + ((size_t)bh * n + t) * n;
            ASSERT_TRUE(std::equal(tiles.begin(), tiles.end(), full_row)) << where << " bh=" << bh << " t=" << t;
            ++dropped_rows;
          }
      }
  EXPECT_GT(dropped_rows, 0);
}

}  // namespace
