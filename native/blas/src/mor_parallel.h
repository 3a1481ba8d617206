// The addon's one way to use several cores: split [0, n) into contiguous ranges, one thread each.
#pragma once
#include <cblas.h>

#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

namespace morpar {

// The addon's thread count where JavaScript does not pass one: OpenBLAS's (the addon's
// setThreads, from MOR_BLAS_THREADS), at least 1.
inline int BlasThreads() { return std::max(1, openblas_get_num_threads()); }

// Run fn(begin, end) over [0, n) split into up to `threads` contiguous ranges (the caller's thread
// takes the first); one thread when `work` (about the elements touched) is under `minWork`, where a
// thread spawn would cost more than it saves.
template <typename Fn>
void Parallel(size_t n, int threads, size_t work, Fn fn, size_t minWork = size_t(1) << 20) {
  const size_t t = work < minWork ? 1 : std::max<size_t>(1, std::min<size_t>(size_t(std::max(threads, 1)), n));
  if (t <= 1) {
    fn(size_t(0), n);
    return;
  }
  std::vector<std::thread> pool;
  const size_t step = (n + t - 1) / t;
  for (size_t b = step; b < n; b += step) pool.emplace_back(fn, b, std::min(n, b + step));
  fn(size_t(0), std::min(n, step));
  for (auto& th : pool) th.join();
}

}  // namespace morpar
