// Helpers shared by the kernel tests (test_kernels.cpp, test_attention_ops.cpp): random inputs,
// the norm-relative error measure and its bounds, the worst-error report every comparison
// prints, central finite differences.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace kernel_test {

using Vf = std::vector<float>;
using Vd = std::vector<double>;
using Vi = std::vector<int32_t>;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Bounds on the norm-relative error (see rel_err), float kernel vs double reference.
// Float's unit roundoff is u = 6e-8.
constexpr double kElemTol = 1e-6;  // a few float operations per element: a few u
constexpr double kSumTol = 2e-5;   // sums of up to a few hundred float terms: worst case n * u
// Double finite differences with h = 1e-5: truncation O(h^2) ~ 1e-10, rounding O(1e-16 / h).
constexpr double kFdTol = 1e-6;
// The size of one term in the kernels' sums: inputs are uniform in [-1, 1] or normal with a
// standard deviation of a few units. Used as rel_err's floor where outputs may cancel to ~0.
constexpr double kTerm = 1.0;
// Floor for gradient checks: identically-zero gradients (layernorm d = 1, softmax with one
// key) leave rounding residue in the analytic side; 1e-2 * kFdTol is still 100x above the
// central differences' own noise (~1e-10).
constexpr double kFdFloor = 1e-2;

// ---------------------------------------------------------------------------------------------
// Helpers: random fill, conversions, error measure, finite differences.

struct Rng {
  std::mt19937_64 gen;
  explicit Rng(uint64_t seed) : gen(seed) {}
  float uniform(float lo = -1.0f, float hi = 1.0f) { return std::uniform_real_distribution<float>(lo, hi)(gen); }
  int integer(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); }  // inclusive
  Vf vec(size_t n, float lo = -1.0f, float hi = 1.0f) {
    Vf v(n);
    for (float& x : v) x = uniform(lo, hi);
    return v;
  }
  Vf normal(size_t n, float stddev = 1.0f) {
    std::normal_distribution<float> dist(0.0f, stddev);
    Vf v(n);
    for (float& x : v) x = dist(gen);
    return v;
  }
  Vd dvec(size_t n) {  // for the double-only gradient checks
    Vd v(n);
    for (double& x : v) x = std::uniform_real_distribution<double>(-1.0, 1.0)(gen);
    return v;
  }
  Vi ids(size_t n, int V) {
    Vi v(n);
    for (int32_t& x : v) x = integer(0, V - 1);
    return v;
  }
};

inline Vd to_d(const Vf& v) { return Vd(v.begin(), v.end()); }
inline Vf to_f(const Vd& v) { return Vf(v.begin(), v.end()); }

template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream s;
  (s << ... << args);
  return s.str();
}

// Norm-relative error: max_i |a_i - b_i| / max(max_i |b_i|, floor), b the reference.
// An element-wise relative error is meaningless where b_i is near zero (cancellation in a
// sum, the tails of a softmax, masked entries), while the rounding error of a float kernel is
// proportional to the size of the terms it combines, which is normally about the size of the
// largest output: so we measure against the output's scale. Where a whole output can cancel to
// (nearly) zero (a one-element sum, layernorm's dx at d = 1, which is exactly 0) its largest
// value says nothing about that scale, and the caller passes `floor`, the size of the terms
// (kTerm for our O(1) random inputs). A NaN or infinity anywhere in a or b gives +inf.
template <class A, class B>
double rel_err(const A* a, const B* b, size_t n, double floor = 1e-30) {
  double max_diff = 0.0, max_ref = 0.0;
  for (size_t i = 0; i < n; ++i) {
    double d = std::fabs((double)a[i] - (double)b[i]);
    if (!std::isfinite(d)) return std::numeric_limits<double>::infinity();
    max_diff = std::max(max_diff, d);
    max_ref = std::max(max_ref, std::fabs((double)b[i]));
  }
  return max_diff / std::max({max_ref, floor, 1e-30});
}
template <class A, class B>
double rel_err(const std::vector<A>& a, const std::vector<B>& b, double floor = 1e-30) {
  EXPECT_EQ(a.size(), b.size());
  return rel_err(a.data(), b.data(), std::min(a.size(), b.size()), floor);
}

// The worst error of one comparison over many cases. Fails the test on every case over the
// bound (details for the first few) and prints the worst case when it goes out of scope.
class Worst {
 public:
  Worst(std::string name, double bound) : name_(std::move(name)), bound_(bound) {}
  ~Worst() {
    std::printf("[%s] worst rel err %.3g (bound %.3g) over %d comparisons%s%s\n", name_.c_str(), worst_, bound_,
                count_, worst_where_.empty() ? "" : ", at ", worst_where_.c_str());
    if (failures_ > kDetailed) ADD_FAILURE() << "[" << name_ << "] " << failures_ << " comparisons over the bound";
  }
  void add(double err, const std::string& where) {
    ++count_;
    if (!(err <= worst_)) {  // also catches NaN
      worst_ = std::isnan(err) ? std::numeric_limits<double>::infinity() : err;
      worst_where_ = where;
    }
    if (!(err <= bound_) && ++failures_ <= kDetailed)
      ADD_FAILURE() << "[" << name_ << "] rel err " << err << " > " << bound_ << " at " << where;
  }

 private:
  static constexpr int kDetailed = 5;
  std::string name_;
  double bound_;
  double worst_ = 0.0;
  std::string worst_where_;
  int count_ = 0, failures_ = 0;
};

// Central-difference gradient of f() with respect to every element of x. x is perturbed in
// place (f must read it) and restored.
inline Vd fd_grad(Vd& x, const std::function<double()>& f) {
  Vd g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i], h = 1e-5 * std::max(1.0, std::fabs(x0));
    x[i] = x0 + h;
    const double fp = f();
    x[i] = x0 - h;
    const double fm = f();
    x[i] = x0;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

inline double dot(const Vd& a, const Vd& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace kernel_test
