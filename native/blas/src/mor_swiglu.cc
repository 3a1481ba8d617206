// The SwiGLU activation of the LLaMA MLP on the tfjs-wasm heap (src/backend/layerKernels.ts
// registers the kernels; src/models/llama/mlp.ts uses them), element-wise over gate g and up u:
//
//   forward:  s = sigmoid(g) = 1 / (1 + exp(-g)),  a = (g s) u
//   backward: dg = da u s (1 + g (1 - s)),  du = da g s
//
// The tfjs-op version is 3 wasm kernels forward (sigmoid, two multiplies) and ~8 backward through
// autodiff, each a pass over the [tokens, intermediate] activations on one thread. Here: one pass
// each way (the backward recomputes s from g), exp 8 lanes at a time (mor_vexp.h), split over
// the cores.
#include "mor_swiglu.h"

#include <cmath>

#include "mor_heap.h"
#include "mor_parallel.h"
#include "mor_vexp.h"

namespace {

using morheap::Fail;
using morheap::HasAvx2;
using morheap::Heap;
using morheap::Num;

inline float Sigmoid(float g) { return 1.0f / (1.0f + std::exp(-g)); }

void ForwardScalar(const float* g, const float* u, size_t n, float* a) {
  for (size_t j = 0; j < n; j++) a[j] = (g[j] * Sigmoid(g[j])) * u[j];
}

void BackwardScalar(const float* g, const float* u, const float* da, size_t n, float* dg, float* du) {
  for (size_t j = 0; j < n; j++) {
    const float s = Sigmoid(g[j]);
    dg[j] = (da[j] * u[j]) * (s * (1.0f + g[j] * (1.0f - s)));
    du[j] = da[j] * (g[j] * s);
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) inline __m256 Sigmoid8(__m256 g) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 e = morvexp::Exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_div_ps(one, _mm256_add_ps(one, e));
}

__attribute__((target("avx2,fma"))) void ForwardAvx2(const float* g, const float* u, size_t n, float* a) {
  size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 gv = _mm256_loadu_ps(g + j);
    _mm256_storeu_ps(a + j, _mm256_mul_ps(_mm256_mul_ps(gv, Sigmoid8(gv)), _mm256_loadu_ps(u + j)));
  }
  ForwardScalar(g + j, u + j, n - j, a + j);
}

__attribute__((target("avx2,fma"))) void BackwardAvx2(const float* g, const float* u, const float* da, size_t n, float* dg,
                                                      float* du) {
  const __m256 one = _mm256_set1_ps(1.0f);
  size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 gv = _mm256_loadu_ps(g + j), dav = _mm256_loadu_ps(da + j);
    const __m256 s = Sigmoid8(gv);
    const __m256 ds = _mm256_mul_ps(s, _mm256_add_ps(one, _mm256_mul_ps(gv, _mm256_sub_ps(one, s))));
    _mm256_storeu_ps(dg + j, _mm256_mul_ps(_mm256_mul_ps(dav, _mm256_loadu_ps(u + j)), ds));
    _mm256_storeu_ps(du + j, _mm256_mul_ps(dav, _mm256_mul_ps(gv, s)));
  }
  BackwardScalar(g + j, u + j, da + j, n - j, dg + j, du + j);
}
#endif

// swigluForward(heap, n, gOff, uOff, aOff, threads)
Napi::Value SwigluForward(const Napi::CallbackInfo& info) {
  if (!morheap::ArgsOk(info, 6)) return Fail(info.Env(), "swigluForward: bad arguments");
  Heap heap = morheap::HeapOf(info);
  const size_t n = size_t(Num(info, 1));
  const float* g = heap.at<float>(Num(info, 2), double(n));
  const float* u = heap.at<float>(Num(info, 3), double(n));
  float* a = heap.at<float>(Num(info, 4), double(n));
  if (!heap.ok) return Fail(info.Env(), "swigluForward: operand outside the heap");
  morpar::Parallel(n, int(Num(info, 5)), n, [&](size_t b, size_t e) {
#if defined(__x86_64__)
    if (HasAvx2()) return ForwardAvx2(g + b, u + b, e - b, a + b);
#endif
    ForwardScalar(g + b, u + b, e - b, a + b);
  });
  return info.Env().Undefined();
}

// swigluBackward(heap, n, gOff, uOff, daOff, dgOff, duOff, threads)
Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  if (!morheap::ArgsOk(info, 8)) return Fail(info.Env(), "swigluBackward: bad arguments");
  Heap heap = morheap::HeapOf(info);
  const size_t n = size_t(Num(info, 1));
  const float* g = heap.at<float>(Num(info, 2), double(n));
  const float* u = heap.at<float>(Num(info, 3), double(n));
  const float* da = heap.at<float>(Num(info, 4), double(n));
  float* dg = heap.at<float>(Num(info, 5), double(n));
  float* du = heap.at<float>(Num(info, 6), double(n));
  if (!heap.ok) return Fail(info.Env(), "swigluBackward: operand outside the heap");
  morpar::Parallel(n, int(Num(info, 7)), n, [&](size_t b, size_t e) {
#if defined(__x86_64__)
    if (HasAvx2()) return BackwardAvx2(g + b, u + b, da + b, e - b, dg + b, du + b);
#endif
    BackwardScalar(g + b, u + b, da + b, e - b, dg + b, du + b);
  });
  return info.Env().Undefined();
}

}  // namespace

void RegisterSwigluKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("swigluForward", Napi::Function::New(env, SwigluForward));
  exports.Set("swigluBackward", Napi::Function::New(env, SwigluBackward));
}
