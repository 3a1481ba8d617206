// The optimizer's passes over every trainable tensor, each ONE call for all of them (see
// src/backend/optimizerKernels.ts). With tfjs ops, AdamW is ~11 wasm kernels per parameter, the
// gradient norm 2 and the weight check 4: a MoR model's 90 adapter tensors cost ~1,500 kernel
// calls a step, mostly engine overhead on tensors of a few thousand elements.
//
//   adamwStep:   per tensor  g' = g * scale (only when scale != 1)
//                            m  = m * b1 + g' * (1 - b1)
//                            v  = v * b2 + (g' * g') * (1 - b2)
//                            p  = (decay ? p * (1 - lr wd) : p) - (m / (sqrt(v) / bc2 + eps)) * stepSize
//   tensorStats: per tensor  sum of squares (accumulated in double) and max |x| (NaN if any is NaN)
//
// adamwStep performs the same float32 operations, in the same order, as AdamW's tfjs-op version
// (src/train/adamw.ts) and so gives the same bits: the constants arrive already rounded to float32,
// and this file is compiled for the baseline x86-64 target, which has no fused multiply-add for the
// compiler to contract `a * b + c` into.
#include "mor_optim.h"

#include <cmath>
#include <limits>
#include <vector>

#include "mor_heap.h"
#include "mor_parallel.h"

namespace {

using morheap::Fail;
using morheap::Heap;
using morheap::Num;

// One tensor's AdamW operands (byte offsets resolved to pointers).
struct Slot {
  const float* p;
  const float* m;
  const float* v;
  const float* g;
  float* po;
  float* mo;
  float* vo;
};

struct AdamConsts {
  float b1, omb1, b2, omb2, bc2, eps, decay, stepSize, scale;
};

void AdamRange(const Slot& s, bool decay, size_t j0, size_t j1, const AdamConsts& c) {
  // Outputs may be the inputs themselves (updates in place): each element is read before it is written.
  const float* p = s.p;
  const float* m = s.m;
  const float* v = s.v;
  const float* g = s.g;
  float* po = s.po;
  float* mo = s.mo;
  float* vo = s.vo;
  const bool scaled = c.scale != 1.0f;
  for (size_t j = j0; j < j1; j++) {
    const float gj = scaled ? g[j] * c.scale : g[j];
    const float mj = m[j] * c.b1 + gj * c.omb1;
    const float vj = v[j] * c.b2 + (gj * gj) * c.omb2;
    const float denom = std::sqrt(vj) / c.bc2 + c.eps;
    const float base = decay ? p[j] * c.decay : p[j];
    po[j] = base - (mj / denom) * c.stepSize;
    mo[j] = mj;
    vo[j] = vj;
  }
}

// Sum of squares (float64) and max |x| of x[0, n) into *sum, *mx; true when x holds a NaN. Four
// independent lanes, so that the compiler vectorises the float64 sum without reassociating it.
bool SquaresAndMax(const float* x, size_t n, double* sum, float* mx) {
  double s[4] = {0, 0, 0, 0};
  float m[4] = {0, 0, 0, 0};
  bool nan = false;
  size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    for (int q = 0; q < 4; q++) {
      const float a = std::fabs(x[j + q]);
      s[q] += double(a) * a;
      m[q] = a > m[q] ? a : m[q];
      nan |= a != a;
    }
  }
  for (; j < n; j++) {
    const float a = std::fabs(x[j]);
    s[0] += double(a) * a;
    m[0] = a > m[0] ? a : m[0];
    nan |= a != a;
  }
  *sum = (s[0] + s[1]) + (s[2] + s[3]);
  *mx = std::max(std::max(m[0], m[1]), std::max(m[2], m[3]));
  return nan;
}

// Run fn(chunk, i, j0, j1) over the elements of tensors of `sizes`, taken one after the other and
// split into one contiguous chunk per thread: elements [j0, j1) of tensor i lie in chunk `chunk`
// (a tensor may span chunks). One chunk under 2^16 elements in all.
template <typename Fn>
void OverElements(const std::vector<size_t>& sizes, int threads, Fn fn) {
  size_t total = 0;
  for (size_t n : sizes) total += n;
  const size_t chunks = total < (size_t(1) << 16) ? 1 : size_t(std::max(1, threads));
  const size_t per = (total + chunks - 1) / chunks;
  morpar::Parallel(chunks, int(chunks), total, [&](size_t c0, size_t c1) {
    for (size_t c = c0; c < c1; c++) {
      const size_t b = c * per, e = std::min(total, b + per);
      size_t begin = 0;
      for (size_t i = 0; i < sizes.size(); begin += sizes[i], i++) {
        const size_t lo = std::max(b, begin), hi = std::min(e, begin + sizes[i]);
        if (lo < hi) fn(c, i, lo - begin, hi - begin);
      }
    }
  }, 0);
}

// True when the call is (heap ArrayBuffer, Float64Array, Float64Array, thread count), as both
// functions below take.
bool TableArgsOk(const Napi::CallbackInfo& info) {
  const auto f64 = [&](size_t i) {
    return info[i].IsTypedArray() && info[i].As<Napi::TypedArray>().TypedArrayType() == napi_float64_array;
  };
  return info.Length() == 4 && info[0].IsArrayBuffer() && f64(1) && f64(2) && info[3].IsNumber();
}

// adamwStep(heap, table, consts, threads). table: 9 doubles per tensor (elements, p, m, v, g,
// p', m', v' byte offsets, decay 0/1; p' may be p, and so on); consts: b1, 1-b1, b2, 1-b2, bc2,
// eps, 1-lr*wd, stepSize, scale.
Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!TableArgsOk(info)) return Fail(env, "adamwStep: bad arguments");
  Heap heap = morheap::HeapOf(info);
  auto table = info[1].As<Napi::Float64Array>();
  auto k = info[2].As<Napi::Float64Array>();
  if (table.ElementLength() % 9 != 0 || k.ElementLength() != 9) return Fail(env, "adamwStep: bad table");
  const AdamConsts c{float(k[0]), float(k[1]), float(k[2]), float(k[3]), float(k[4]), float(k[5]), float(k[6]), float(k[7]), float(k[8])};
  std::vector<Slot> slots;
  std::vector<size_t> sizes;
  std::vector<bool> decay;
  for (size_t i = 0; i < table.ElementLength(); i += 9) {
    const double n = table[i];
    slots.push_back(Slot{heap.at<float>(table[i + 1], n), heap.at<float>(table[i + 2], n), heap.at<float>(table[i + 3], n),
                         heap.at<float>(table[i + 4], n), heap.at<float>(table[i + 5], n), heap.at<float>(table[i + 6], n),
                         heap.at<float>(table[i + 7], n)});
    sizes.push_back(size_t(n));
    decay.push_back(table[i + 8] != 0);
  }
  if (!heap.ok) return Fail(env, "adamwStep: operand outside the heap");
  OverElements(sizes, int(Num(info, 3)), [&](size_t, size_t i, size_t j0, size_t j1) { AdamRange(slots[i], decay[i], j0, j1, c); });
  return env.Undefined();
}

// tensorStats(heap, table, out, threads). table: 2 doubles per tensor (elements, byte offset);
// out: 2 doubles per tensor (sum of squares, max |x|).
Napi::Value TensorStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!TableArgsOk(info)) return Fail(env, "tensorStats: bad arguments");
  Heap heap = morheap::HeapOf(info);
  auto table = info[1].As<Napi::Float64Array>();
  auto out = info[2].As<Napi::Float64Array>();
  const size_t count = table.ElementLength() / 2;
  if (table.ElementLength() % 2 != 0 || out.ElementLength() != 2 * count) return Fail(env, "tensorStats: bad table");
  std::vector<const float*> xs;
  std::vector<size_t> sizes;
  for (size_t i = 0; i < count; i++) {
    const double n = table[2 * i];
    xs.push_back(heap.at<float>(table[2 * i + 1], n));
    sizes.push_back(size_t(n));
  }
  if (!heap.ok) return Fail(env, "tensorStats: operand outside the heap");
  // Partial results per chunk and tensor, combined after in chunk order.
  const int threads = std::max(1, int(Num(info, 3)));
  std::vector<double> sums(size_t(threads) * count, 0.0), maxes(size_t(threads) * count, 0.0);
  OverElements(sizes, threads, [&](size_t c, size_t i, size_t j0, size_t j1) {
    double sum = 0.0;
    float mx = 0.0f;
    const bool nan = SquaresAndMax(xs[i] + j0, j1 - j0, &sum, &mx);
    sums[c * count + i] = sum;
    maxes[c * count + i] = nan ? std::numeric_limits<double>::quiet_NaN() : double(mx);
  });
  for (size_t i = 0; i < count; i++) {
    double sum = 0.0, mx = 0.0;
    for (int t = 0; t < threads; t++) {
      sum += sums[size_t(t) * count + i];
      const double m = maxes[size_t(t) * count + i];
      mx = (m != m || mx != mx) ? std::numeric_limits<double>::quiet_NaN() : std::max(mx, m);
    }
    out[2 * i] = sum;
    out[2 * i + 1] = mx;
  }
  return env.Undefined();
}

}  // namespace

void RegisterOptimKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("adamwStep", Napi::Function::New(env, AdamwStep));
  exports.Set("tensorStats", Napi::Function::New(env, TensorStats));
}
