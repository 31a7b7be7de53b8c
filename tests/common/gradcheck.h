// Finite-difference gradient checking for tests (float64).
//
// gradcheck_relerr(x, analytic, loss): perturbs every element of x by ±h, evaluates loss() (which
// must read x), and returns ||analytic - numeric||_2 / max(||analytic||_2, ||numeric||_2, 1e-30),
// restoring x. Central differences: truncation error O(h^2), so h = 1e-5 gives ~1e-10.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

namespace ssiat::testing {

inline double gradcheck_relerr(double* x, int64_t n, const double* analytic,
                               const std::function<double()>& loss, double h = 1e-5) {
  double diff2 = 0, a2 = 0, n2 = 0;
  for (int64_t i = 0; i < n; i++) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double lp = loss();
    x[i] = x0 - h;
    const double lm = loss();
    x[i] = x0;
    const double num = (lp - lm) / (2 * h);
    diff2 += (analytic[i] - num) * (analytic[i] - num);
    a2 += analytic[i] * analytic[i];
    n2 += num * num;
  }
  return std::sqrt(diff2) / std::max({std::sqrt(a2), std::sqrt(n2), 1e-30});
}

inline double gradcheck_relerr(std::vector<double>& x, const std::vector<double>& analytic,
                               const std::function<double()>& loss, double h = 1e-5) {
  return gradcheck_relerr(x.data(), static_cast<int64_t>(x.size()), analytic.data(), loss, h);
}

// Deterministic test data: n values uniform in [lo, hi) from a fixed-seed mt19937_64
// (test inputs only; the product draws every random number through the seed registry).
inline std::vector<double> test_values(int64_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(n);
  for (auto& e : v) e = dist(gen);
  return v;
}

}  // namespace ssiat::testing
