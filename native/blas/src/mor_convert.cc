// Weight conversion and few-row products for the native weight store: scalar loops that any
// x86-64 or ARM compiler builds, plus AVX2/FMA/F16C versions chosen at run time on CPUs that
// have them (the addon is built without -march flags so that one build runs everywhere).
#include "mor_convert.h"
#include "mor_parallel.h"

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace morstore {
namespace {

float F16ToF32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        exp--;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000 | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline float At(const char* w, int dtype, size_t i) {
  if (dtype == kF32) {
    float f;
    std::memcpy(&f, w + 4 * i, 4);
    return f;
  }
  uint16_t v;
  std::memcpy(&v, w + 2 * i, 2);
  if (dtype == kF16) return F16ToF32(v);
  const uint32_t bits = uint32_t(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void ToF32Scalar(const char* src, int dtype, size_t count, float* dst) {
  if (dtype == kF32) {
    std::memcpy(dst, src, count * 4);
    return;
  }
  for (size_t i = 0; i < count; i++) dst[i] = At(src, dtype, i);
}

void GemvScalar(const float* x, size_t m, size_t k, const char* w, int dtype, size_t r0, size_t r1, float* y,
                size_t ldy) {
  const size_t bytes = DtypeBytes(dtype);
  for (size_t j = r0; j < r1; j++) {
    const char* row = w + j * k * bytes;
    for (size_t i = 0; i < m; i++) {
      float s = 0;
      for (size_t p = 0; p < k; p++) s += x[i * k + p] * At(row, dtype, p);
      y[i * ldy + j] = s;
    }
  }
}

#if defined(__x86_64__)
bool HasAvx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          __builtin_cpu_supports("f16c");
  return has;
}

__attribute__((target("avx2,fma,f16c"))) inline __m256 Load8(const char* p, int dtype) {
  if (dtype == kF32) return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if (dtype == kBF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  return _mm256_cvtph_ps(h);
}

__attribute__((target("avx2,fma,f16c"))) void ToF32Avx2(const char* src, int dtype, size_t count, float* dst) {
  const size_t bytes = DtypeBytes(dtype);
  size_t i = 0;
  for (; i + 8 <= count; i += 8) _mm256_storeu_ps(dst + i, Load8(src + i * bytes, dtype));
  for (; i < count; i++) dst[i] = At(src, dtype, i);
}

__attribute__((target("avx2,fma,f16c"))) float Sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// Rows [r0, r1) of y = x W^T for M (compile-time, so the accumulators stay in registers) rows
// of x; two accumulators per row of x hide the FMA latency.
template <int M>
__attribute__((target("avx2,fma,f16c"))) void GemvAvx2M(const float* x, size_t k, const char* w, int dtype, size_t r0,
                                                        size_t r1, float* y, size_t ldy) {
  const size_t bytes = DtypeBytes(dtype);
  for (size_t j = r0; j < r1; j++) {
    const char* row = w + j * k * bytes;
    __m256 acc0[M], acc1[M];
    for (int i = 0; i < M; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
    size_t p = 0;
    for (; p + 16 <= k; p += 16) {
      const __m256 w0 = Load8(row + p * bytes, dtype);
      const __m256 w1 = Load8(row + (p + 8) * bytes, dtype);
      for (int i = 0; i < M; i++) {
        acc0[i] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i * k + p), w0, acc0[i]);
        acc1[i] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i * k + p + 8), w1, acc1[i]);
      }
    }
    for (; p + 8 <= k; p += 8) {
      const __m256 w0 = Load8(row + p * bytes, dtype);
      for (int i = 0; i < M; i++) acc0[i] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i * k + p), w0, acc0[i]);
    }
    for (int i = 0; i < M; i++) {
      float s = Sum8(_mm256_add_ps(acc0[i], acc1[i]));
      for (size_t q = p; q < k; q++) s += x[i * k + q] * At(row, dtype, q);
      y[i * ldy + j] = s;
    }
  }
}

void GemvAvx2(const float* x, size_t m, size_t k, const char* w, int dtype, size_t r0, size_t r1, float* y,
              size_t ldy) {
  switch (m) {
    case 1: return GemvAvx2M<1>(x, k, w, dtype, r0, r1, y, ldy);
    case 2: return GemvAvx2M<2>(x, k, w, dtype, r0, r1, y, ldy);
    case 3: return GemvAvx2M<3>(x, k, w, dtype, r0, r1, y, ldy);
    default:
      for (size_t i = 0; i < m; i += 4) {
        const size_t mi = std::min<size_t>(4, m - i);
        if (mi == 4) GemvAvx2M<4>(x + i * k, k, w, dtype, r0, r1, y + i * ldy, ldy);
        else GemvAvx2(x + i * k, mi, k, w, dtype, r0, r1, y + i * ldy, ldy);
      }
  }
}
#endif

}  // namespace

using morpar::Parallel;

void ToF32(const char* src, int dtype, size_t count, float* dst, int threads) {
  const size_t bytes = DtypeBytes(dtype);
  Parallel(count, threads, count, [&](size_t b, size_t e) {
#if defined(__x86_64__)
    if (HasAvx2()) return ToF32Avx2(src + b * bytes, dtype, e - b, dst + b);
#endif
    ToF32Scalar(src + b * bytes, dtype, e - b, dst + b);
  });
}

void GemvRows(const float* x, size_t m, size_t k, const char* w, int dtype, size_t rows, float* y, size_t ldy,
              int threads) {
  for (size_t i0 = 0; i0 < m; i0 += 8) {
    const size_t mi = std::min<size_t>(8, m - i0);
    Parallel(rows, threads, rows * k, [&](size_t b, size_t e) {
#if defined(__x86_64__)
      if (HasAvx2()) return GemvAvx2(x + i0 * k, mi, k, w, dtype, b, e, y + i0 * ldy, ldy);
#endif
      GemvScalar(x + i0 * k, mi, k, w, dtype, b, e, y + i0 * ldy, ldy);
    });
  }
}

}  // namespace morstore
