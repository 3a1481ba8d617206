// Cross-entropy of rows of logits against one label each, in two fused passes over the tfjs-wasm
// heap (src/backend/lossKernels.ts registers them as kernels; src/models/llama/loss.ts uses them):
//
//   forward:  lse[i] = m_i + log(sum_j exp(x[i,j] - m_i)),  m_i = max_j x[i,j]
//             loss[i] = lse[i] - x[i, label[i]]
//   backward: dx[i,j] = dy[i] * (exp(x[i,j] - lse[i]) - [j == label[i]])
//
// With tfjs ops the same is ~8 wasm kernels over the [rows, vocab] logits (max, sub, exp, sum,
// log, gather; then exp, one-hot, sub, mul), each a full pass, on one thread. Here: two reads of
// the logits forward, one read and one write backward, rows split over the cores. Sums are
// kept in 8 float lanes and added in double per row.
#include "mor_xent.h"

#include <cmath>

#include "mor_heap.h"
#include "mor_parallel.h"
#include "mor_vexp.h"

namespace {

using morheap::Fail;
using morheap::HasAvx2;
using morheap::Heap;
using morheap::Num;

// Max and sum of exp(x - max) of one row.
void RowMaxSumScalar(const float* x, size_t v, float* maxOut, double* sumOut) {
  float m = -INFINITY;
  for (size_t j = 0; j < v; j++) m = x[j] > m ? x[j] : m;
  double s = 0;
  for (size_t j = 0; j < v; j++) s += std::exp(x[j] - m);
  *maxOut = m;
  *sumOut = s;
}

// dx[j] = dy * exp(x[j] - lse) over one row.
void RowGradScalar(const float* x, size_t v, float lse, float dy, float* dx) {
  for (size_t j = 0; j < v; j++) dx[j] = dy * std::exp(x[j] - lse);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void RowMaxSumAvx2(const float* x, size_t v, float* maxOut, double* sumOut) {
  __m256 mv = _mm256_set1_ps(-INFINITY);
  size_t j = 0;
  for (; j + 8 <= v; j += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + j));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, mv);
  float m = -INFINITY;
  for (float l : lanes) m = l > m ? l : m;
  for (size_t k = j; k < v; k++) m = x[k] > m ? x[k] : m;
  const __m256 mb = _mm256_set1_ps(m);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  j = 0;
  for (; j + 16 <= v; j += 16) {
    s0 = _mm256_add_ps(s0, morvexp::Exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), mb)));
    s1 = _mm256_add_ps(s1, morvexp::Exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), mb)));
  }
  _mm256_store_ps(lanes, _mm256_add_ps(s0, s1));
  double s = 0;
  for (float l : lanes) s += l;
  for (; j < v; j++) s += std::exp(x[j] - m);
  *maxOut = m;
  *sumOut = s;
}

__attribute__((target("avx2,fma"))) void RowGradAvx2(const float* x, size_t v, float lse, float dy, float* dx) {
  const __m256 l = _mm256_set1_ps(lse), d = _mm256_set1_ps(dy);
  size_t j = 0;
  for (; j + 8 <= v; j += 8) {
    _mm256_storeu_ps(dx + j, _mm256_mul_ps(d, morvexp::Exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), l))));
  }
  for (; j < v; j++) dx[j] = dy * std::exp(x[j] - lse);
}
#endif

bool LabelsOk(const int* labels, size_t n, size_t v) {
  for (size_t i = 0; i < n; i++)
    if (labels[i] < 0 || size_t(labels[i]) >= v) return false;
  return true;
}

// xentForward(heap, n, v, xOff, labelsOff, lossOff, lseOff, threads)
Napi::Value XentForward(const Napi::CallbackInfo& info) {
  if (info.Length() != 8 || !info[0].IsArrayBuffer()) return Fail(info.Env(), "xentForward: bad arguments");
  Napi::ArrayBuffer buf = info[0].As<Napi::ArrayBuffer>();
  Heap heap{static_cast<char*>(buf.Data()), double(buf.ByteLength())};
  const size_t n = size_t(Num(info, 1)), v = size_t(Num(info, 2));
  const float* x = heap.at<float>(Num(info, 3), double(n) * v);
  const int* labels = heap.at<int>(Num(info, 4), double(n));
  float* loss = heap.at<float>(Num(info, 5), double(n));
  float* lse = heap.at<float>(Num(info, 6), double(n));
  if (!heap.ok || v == 0) return Fail(info.Env(), "xentForward: operand outside the heap");
  if (!LabelsOk(labels, n, v)) return Fail(info.Env(), "xentForward: a label is outside the vocabulary");
  morpar::Parallel(n, int(Num(info, 7)), n * v, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; i++) {
      const float* row = x + i * v;
      float m;
      double s;
#if defined(__x86_64__)
      if (HasAvx2())
        RowMaxSumAvx2(row, v, &m, &s);
      else
#endif
        RowMaxSumScalar(row, v, &m, &s);
      const float l = float(double(m) + std::log(s));
      lse[i] = l;
      loss[i] = l - row[labels[i]];
    }
  });
  return info.Env().Undefined();
}

// xentBackward(heap, n, v, xOff, lseOff, labelsOff, dyOff, dxOff, threads)
Napi::Value XentBackward(const Napi::CallbackInfo& info) {
  if (info.Length() != 9 || !info[0].IsArrayBuffer()) return Fail(info.Env(), "xentBackward: bad arguments");
  Napi::ArrayBuffer buf = info[0].As<Napi::ArrayBuffer>();
  Heap heap{static_cast<char*>(buf.Data()), double(buf.ByteLength())};
  const size_t n = size_t(Num(info, 1)), v = size_t(Num(info, 2));
  const float* x = heap.at<float>(Num(info, 3), double(n) * v);
  const float* lse = heap.at<float>(Num(info, 4), double(n));
  const int* labels = heap.at<int>(Num(info, 5), double(n));
  const float* dy = heap.at<float>(Num(info, 6), double(n));
  float* dx = heap.at<float>(Num(info, 7), double(n) * v);
  if (!heap.ok || v == 0) return Fail(info.Env(), "xentBackward: operand outside the heap");
  if (!LabelsOk(labels, n, v)) return Fail(info.Env(), "xentBackward: a label is outside the vocabulary");
  morpar::Parallel(n, int(Num(info, 8)), n * v, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; i++) {
#if defined(__x86_64__)
      if (HasAvx2())
        RowGradAvx2(x + i * v, v, lse[i], dy[i], dx + i * v);
      else
#endif
        RowGradScalar(x + i * v, v, lse[i], dy[i], dx + i * v);
      dx[i * v + labels[i]] -= dy[i];
    }
  });
  return info.Env().Undefined();
}

}  // namespace

void RegisterXentKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("xentForward", Napi::Function::New(env, XentForward));
  exports.Set("xentBackward", Napi::Function::New(env, XentBackward));
}
