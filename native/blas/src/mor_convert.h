// Weight conversion and small-batch products for the native weight store (mor_store.cc).
// Pure C++ (no N-API), so the loops can be read and tested on their own.
#pragma once
#include <cstddef>
#include <cstdint>

namespace morstore {

// dtype codes shared with src/backend/weightStore.ts.
enum Dtype { kF32 = 0, kF16 = 1, kBF16 = 2 };

inline size_t DtypeBytes(int dtype) { return dtype == kF32 ? 4 : 2; }

// dst[0..count) = float32 of the `count` values at src (file dtype), on up to `threads` threads.
void ToF32(const char* src, int dtype, size_t count, float* dst, int threads);

// y[i * ldy + j] = sum_p x[i * k + p] * W[j, p] for i < m, j < rows: x W^T with W [rows, k] in its
// file dtype, converted on the fly (no float32 copy of W), on up to `threads` threads. Made for
// the few-row products of generation, where converting all of W first would cost more than the
// product.
void GemvRows(const float* x, size_t m, size_t k, const char* w, int dtype, size_t rows, float* y, size_t ldy,
              int threads);

}  // namespace morstore
