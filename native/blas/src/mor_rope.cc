// Rotary position embedding, Hugging Face's rotate_half convention, on the tfjs-wasm heap
// (src/backend/layerKernels.ts registers the kernels; src/models/llama/rope.ts uses them).
// x is [rows, heads, D] (rows = B * T), the tables cos and sin [rows, D] are shared by the heads;
// with h = D / 2, rotate_half(x) = [-x[h:], x[:h]], and a constant factor k (attention folds its
// 1 / sqrt(D) into the queries here; 1 elsewhere):
//
//   forward:  y = (x cos + rotate_half(x) sin) k
//             y[j]     = (x[j] cos[j]         - x[j + h] sin[j]) k
//             y[j + h] = (x[j + h] cos[j + h] + x[j] sin[j + h]) k      (j < h)
//   backward: dx = (dy cos + rotate_half^T(dy sin)) k,  rotate_half^T(v) = [v[h:], -v[:h]]
//             dx[j]     = (dy[j] cos[j]         + dy[j + h] sin[j + h]) k
//             dx[j + h] = (dy[j + h] cos[j + h] - dy[j] sin[j]) k
//
// Both directions are the same loop with the sign and the sin index swapped, so one function
// serves both. The tfjs-op version is a split, a negation, a concat, two multiplies and an add,
// and autodiff's reverse of each. Here: one pass, rows split over the cores when large (mor_parallel.h).
#include "mor_rope.h"

#include <string>

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

// One head vector. Forward (back = false): out[j] = (a[j] c[j] - a[j+h] s[j]) k,
// out[j+h] = (a[j+h] c[j+h] + a[j] s[j+h]) k. Backward: out[j] = (a[j] c[j] + a[j+h] s[j+h]) k,
// out[j+h] = (a[j+h] c[j+h] - a[j] s[j]) k. Elements j0 <= j < h (the AVX2 version's tail from j0).
void RotateScalar(const float* a, const float* c, const float* s, size_t h, size_t j0, bool back, float k, float* out) {
  const float* sLo = back ? s + h : s;  // the sin that multiplies a[j + h]
  const float* sHi = back ? s : s + h;  // the sin that multiplies a[j]
  for (size_t j = j0; j < h; j++) {
    const float lo = a[j], hi = a[j + h];
    if (back) {
      out[j] = (lo * c[j] + hi * sLo[j]) * k;
      out[j + h] = (hi * c[j + h] - lo * sHi[j]) * k;
    } else {
      out[j] = (lo * c[j] - hi * sLo[j]) * k;
      out[j + h] = (hi * c[j + h] + lo * sHi[j]) * k;
    }
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void RotateAvx2(const float* a, const float* c, const float* s, size_t h, bool back,
                                                    float k, float* out) {
  const float* sLo = back ? s + h : s;
  const float* sHi = back ? s : s + h;
  const __m256 kv = _mm256_set1_ps(k);
  size_t j = 0;
  for (; j + 8 <= h; j += 8) {
    const __m256 lo = _mm256_loadu_ps(a + j), hi = _mm256_loadu_ps(a + j + h);
    const __m256 pLo = _mm256_mul_ps(lo, _mm256_loadu_ps(c + j)), pHi = _mm256_mul_ps(hi, _mm256_loadu_ps(c + j + h));
    const __m256 qLo = _mm256_mul_ps(hi, _mm256_loadu_ps(sLo + j)), qHi = _mm256_mul_ps(lo, _mm256_loadu_ps(sHi + j));
    _mm256_storeu_ps(out + j, _mm256_mul_ps(back ? _mm256_add_ps(pLo, qLo) : _mm256_sub_ps(pLo, qLo), kv));
    _mm256_storeu_ps(out + j + h, _mm256_mul_ps(back ? _mm256_sub_ps(pHi, qHi) : _mm256_add_ps(pHi, qHi), kv));
  }
  // Clear the upper halves before the SSE-encoded scalar tail and the caller (GCC omits it here,
  // and the AVX-SSE transitions made the whole kernel several times slower).
  _mm256_zeroupper();
  RotateScalar(a, c, s, h, j, back, k, out);
}
#endif

// ropeForward / ropeBackward(heap, rows, heads, d, inOff, cosOff, sinOff, scale, outOff, threads)
Napi::Value Rope(const Napi::CallbackInfo& info, bool back) {
  const char* name = back ? "ropeBackward" : "ropeForward";
  if (!morheap::ArgsOk(info, 10)) return Fail(info.Env(), std::string(name) + ": bad arguments");
  Heap heap = morheap::HeapOf(info);
  const size_t rows = size_t(Num(info, 1)), heads = size_t(Num(info, 2)), d = size_t(Num(info, 3));
  if (d % 2 != 0) return Fail(info.Env(), std::string(name) + ": the head dimension must be even");
  const float* in = heap.at<float>(Num(info, 4), double(rows) * heads * d);
  const float* cos = heap.at<float>(Num(info, 5), double(rows) * d);
  const float* sin = heap.at<float>(Num(info, 6), double(rows) * d);
  const float scale = float(Num(info, 7));
  float* out = heap.at<float>(Num(info, 8), double(rows) * heads * d);
  if (!heap.ok) return Fail(info.Env(), std::string(name) + ": operand outside the heap");
  const size_t h = d / 2;
  morpar::Parallel(rows, int(Num(info, 9)), rows * heads * d, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; i++) {
      for (size_t head = 0; head < heads; head++) {
        const size_t at = (i * heads + head) * d;
#if defined(__x86_64__)
        if (HasAvx2()) {
          RotateAvx2(in + at, cos + i * d, sin + i * d, h, back, scale, out + at);
          continue;
        }
#endif
        RotateScalar(in + at, cos + i * d, sin + i * d, h, 0, back, scale, out + at);
      }
    }
  });
  return info.Env().Undefined();
}

Napi::Value RopeForward(const Napi::CallbackInfo& info) { return Rope(info, false); }
Napi::Value RopeBackward(const Napi::CallbackInfo& info) { return Rope(info, true); }

}  // namespace

void RegisterRopeKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("ropeForward", Napi::Function::New(env, RopeForward));
  exports.Set("ropeBackward", Napi::Function::New(env, RopeBackward));
}
