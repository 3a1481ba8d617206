// RMSNorm over the last axis (LlamaRMSNorm) on the tfjs-wasm heap (src/backend/layerKernels.ts
// registers the kernels; src/models/llama/rmsnorm.ts uses them). For rows x of width d, weight w:
//
//   forward:  r = 1 / sqrt(mean_j x_j^2 + eps)          (per row, kept for backward)
//             y_j = (x_j r) w_j
//   backward: g_j = dy_j w_j
//             dx_j = r g_j - x_j (r^3 / d) sum_k g_k x_k
//             dw_j = sum_rows dy_j x_j r                  (the weight may be trainable)
//
// The tfjs-op version is ~5 wasm kernels forward (square, mean, add, rsqrt, two multiplies) and
// about twice that backward, each a pass on one thread. Here: one pass forward, two backward (dx
// by rows, dw by columns, so the sum over rows needs no merge and has a fixed order), split over
// the cores once a pass is large enough to pay for a thread (mor_parallel.h). Sums are in double.
#include "mor_norm.h"

#include <cmath>
#include <vector>

#include "mor_heap.h"
#include "mor_parallel.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

using morheap::Fail;
using morheap::HasAvx2;
using morheap::Heap;
using morheap::Num;

// sum_j a_j b_j in double.
double DotScalar(const float* a, const float* b, size_t d) {
  double s = 0;
  for (size_t j = 0; j < d; j++) s += double(a[j]) * double(b[j]);
  return s;
}

void ScaleRowScalar(const float* x, const float* w, float r, size_t d, float* y) {
  for (size_t j = 0; j < d; j++) y[j] = (x[j] * r) * w[j];
}

// dx = r g - x c with g = dy w, after c = r^3 / d * sum(g x).
void GradRowScalar(const float* x, const float* w, const float* dy, float r, size_t d, float* dx) {
  double s = 0;
  for (size_t j = 0; j < d; j++) s += double(dy[j] * w[j]) * double(x[j]);
  const float c = float(double(r) * r * r * s / double(d));
  for (size_t j = 0; j < d; j++) dx[j] = r * (dy[j] * w[j]) - x[j] * c;
}

// acc[j] += dy_j x_j r over columns [0, n) of one row.
void AccumulateScalar(const float* dy, const float* x, double r, size_t n, double* acc) {
  for (size_t j = 0; j < n; j++) acc[j] += double(dy[j]) * double(x[j]) * r;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) inline __m256d Lo(__m256 v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
__attribute__((target("avx2,fma"))) inline __m256d Hi(__m256 v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }

__attribute__((target("avx2,fma"))) double Sum4(__m256d v) {
  alignas(32) double l[4];
  _mm256_store_pd(l, v);
  return (l[0] + l[1]) + (l[2] + l[3]);
}

__attribute__((target("avx2,fma"))) double DotAvx2(const float* a, const float* b, size_t d) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  size_t j = 0;
  for (; j + 8 <= d; j += 8) {
    const __m256 va = _mm256_loadu_ps(a + j), vb = _mm256_loadu_ps(b + j);
    s0 = _mm256_fmadd_pd(Lo(va), Lo(vb), s0);
    s1 = _mm256_fmadd_pd(Hi(va), Hi(vb), s1);
  }
  double s = Sum4(_mm256_add_pd(s0, s1));
  for (; j < d; j++) s += double(a[j]) * double(b[j]);
  return s;
}

__attribute__((target("avx2,fma"))) void ScaleRowAvx2(const float* x, const float* w, float r, size_t d, float* y) {
  const __m256 rv = _mm256_set1_ps(r);
  size_t j = 0;
  for (; j + 8 <= d; j += 8) {
    _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), rv), _mm256_loadu_ps(w + j)));
  }
  for (; j < d; j++) y[j] = (x[j] * r) * w[j];
}

__attribute__((target("avx2,fma"))) void GradRowAvx2(const float* x, const float* w, const float* dy, float r, size_t d,
                                                     float* dx) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  size_t j = 0;
  for (; j + 8 <= d; j += 8) {
    const __m256 g = _mm256_mul_ps(_mm256_loadu_ps(dy + j), _mm256_loadu_ps(w + j));
    const __m256 xv = _mm256_loadu_ps(x + j);
    s0 = _mm256_fmadd_pd(Lo(g), Lo(xv), s0);
    s1 = _mm256_fmadd_pd(Hi(g), Hi(xv), s1);
  }
  double s = Sum4(_mm256_add_pd(s0, s1));
  for (size_t k = j; k < d; k++) s += double(dy[k] * w[k]) * double(x[k]);
  const float c = float(double(r) * r * r * s / double(d));
  const __m256 rv = _mm256_set1_ps(r), cv = _mm256_set1_ps(c);
  j = 0;
  for (; j + 8 <= d; j += 8) {
    const __m256 g = _mm256_mul_ps(_mm256_loadu_ps(dy + j), _mm256_loadu_ps(w + j));
    _mm256_storeu_ps(dx + j, _mm256_sub_ps(_mm256_mul_ps(rv, g), _mm256_mul_ps(_mm256_loadu_ps(x + j), cv)));
  }
  for (; j < d; j++) dx[j] = r * (dy[j] * w[j]) - x[j] * c;
}

__attribute__((target("avx2,fma"))) void AccumulateAvx2(const float* dy, const float* x, double r, size_t n, double* acc) {
  const __m256d rv = _mm256_set1_pd(r);
  size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 a = _mm256_loadu_ps(dy + j), b = _mm256_loadu_ps(x + j);
    _mm256_storeu_pd(acc + j, _mm256_fmadd_pd(_mm256_mul_pd(Lo(a), Lo(b)), rv, _mm256_loadu_pd(acc + j)));
    _mm256_storeu_pd(acc + j + 4, _mm256_fmadd_pd(_mm256_mul_pd(Hi(a), Hi(b)), rv, _mm256_loadu_pd(acc + j + 4)));
  }
  for (; j < n; j++) acc[j] += double(dy[j]) * double(x[j]) * r;
}
#endif

double Dot(const float* a, const float* b, size_t d) {
#if defined(__x86_64__)
  if (HasAvx2()) return DotAvx2(a, b, d);
#endif
  return DotScalar(a, b, d);
}

// rmsNormForward(heap, rows, d, xOff, wOff, eps, yOff, rOff, threads)
Napi::Value RmsNormForward(const Napi::CallbackInfo& info) {
  if (!morheap::ArgsOk(info, 9)) return Fail(info.Env(), "rmsNormForward: bad arguments");
  Heap heap = morheap::HeapOf(info);
  const size_t rows = size_t(Num(info, 1)), d = size_t(Num(info, 2));
  const float* x = heap.at<float>(Num(info, 3), double(rows) * d);
  const float* w = heap.at<float>(Num(info, 4), double(d));
  const double eps = Num(info, 5);
  float* y = heap.at<float>(Num(info, 6), double(rows) * d);
  float* r = heap.at<float>(Num(info, 7), double(rows));
  if (!heap.ok || d == 0) return Fail(info.Env(), "rmsNormForward: operand outside the heap");
  morpar::Parallel(rows, int(Num(info, 8)), rows * d, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; i++) {
      const float* xi = x + i * d;
      const float ri = float(1.0 / std::sqrt(Dot(xi, xi, d) / double(d) + eps));
      r[i] = ri;
#if defined(__x86_64__)
      if (HasAvx2()) {
        ScaleRowAvx2(xi, w, ri, d, y + i * d);
        continue;
      }
#endif
      ScaleRowScalar(xi, w, ri, d, y + i * d);
    }
  });
  return info.Env().Undefined();
}

// rmsNormBackward(heap, rows, d, xOff, wOff, rOff, dyOff, dxOff, dwOff, threads)
Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  if (!morheap::ArgsOk(info, 10)) return Fail(info.Env(), "rmsNormBackward: bad arguments");
  Heap heap = morheap::HeapOf(info);
  const size_t rows = size_t(Num(info, 1)), d = size_t(Num(info, 2));
  const float* x = heap.at<float>(Num(info, 3), double(rows) * d);
  const float* w = heap.at<float>(Num(info, 4), double(d));
  const float* r = heap.at<float>(Num(info, 5), double(rows));
  const float* dy = heap.at<float>(Num(info, 6), double(rows) * d);
  float* dx = heap.at<float>(Num(info, 7), double(rows) * d);
  float* dw = heap.at<float>(Num(info, 8), double(d));
  if (!heap.ok || d == 0) return Fail(info.Env(), "rmsNormBackward: operand outside the heap");
  const int threads = int(Num(info, 9));
  morpar::Parallel(rows, threads, rows * d, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; i++) {
#if defined(__x86_64__)
      if (HasAvx2()) {
        GradRowAvx2(x + i * d, w, dy + i * d, r[i], d, dx + i * d);
        continue;
      }
#endif
      GradRowScalar(x + i * d, w, dy + i * d, r[i], d, dx + i * d);
    }
  });
  // dw by column ranges: each thread sums its columns over all rows, in row order.
  morpar::Parallel(d, threads, rows * d, [&](size_t c0, size_t c1) {
    std::vector<double> acc(c1 - c0, 0.0);
    for (size_t i = 0; i < rows; i++) {
#if defined(__x86_64__)
      if (HasAvx2()) {
        AccumulateAvx2(dy + i * d + c0, x + i * d + c0, r[i], c1 - c0, acc.data());
        continue;
      }
#endif
      AccumulateScalar(dy + i * d + c0, x + i * d + c0, r[i], c1 - c0, acc.data());
    }
    for (size_t j = c0; j < c1; j++) dw[j] = float(acc[j - c0]);
  });
  return info.Env().Undefined();
}

}  // namespace

void RegisterNormKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("rmsNormForward", Napi::Function::New(env, RmsNormForward));
  exports.Set("rmsNormBackward", Napi::Function::New(env, RmsNormBackward));
}
