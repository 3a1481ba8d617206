// A whole MoR adapter (src/adapters/morLayer.ts) in one native call each way, for the common
// case: a learned softmax router, no dropout. As tfjs ops the adapter is ~11 kernels forward and
// ~15 backward (concatenating A and the router, slicing the shared product, the softmax and its
// gradient, padding the two slices' gradients back, scaling Omega_A, the rank expansion's four
// loops and three products); each costs the engine's bookkeeping on top of its work. Here it is
// the same products (MorGemm, so the same bits) and the same loops (mor_rank.cc) in sequence.
// Shapes: T tokens, dIn / dOut features, rank r, N experts, s the LoRA scaling.
//
// Forward: hl = x [A; W_g]ᵀ [T, r+N];  h = hl[:, :r];  g = softmax(hl[:, r:] + bias)
//          z = g ⊙ (s Ω_A) ⊙ h [T, N r];  bexp = Ω_B ⊙ B [dOut, N r];  out = y + z bexpᵀ
//          (y the frozen layer's output: the product accumulates onto a copy of it, which saves
//          the separate [T, dOut] addition and the delta's memory)
// Backward (dy = d out, which is also y's gradient; dgIn = the gradient reaching g from elsewhere, e.g. a load-balance loss):
//          dz = dy bexp;  dbexp = dyᵀ z;  (dB, dΩ_B) from dbexp;  (dh, dg, dom) from dz
//          dΩ_A = s dom;  dlogits = g ⊙ (dg + dgIn) − g Σ g ⊙ (dg + dgIn);  dbias = Σ_t dlogits
//          dhl = [dh | dlogits];  d[A; W_g] = dhlᵀ x;  dx = dhl [A; W_g]
#include "mor_morlayer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "mor_gemm.h"
#include "mor_heap.h"
#include "mor_parallel.h"
#include "mor_rank.h"

namespace {

using morheap::Fail;
using morheap::Heap;
using morheap::Num;

// Per-call work buffers, reused between calls (they only grow).
struct Scratch {
  std::vector<float> cat, hl, om, dz, dbexp, dh, dg, dom, dcat;
};
thread_local Scratch tScratch;

float* Grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

struct Dims {
  int T, dIn, dOut, r, N;
  bool hasBias;
  float s;
  int width() const { return r + N; }
};

Dims DimsOf(const Napi::CallbackInfo& info) {
  return Dims{int(Num(info, 1)), int(Num(info, 2)), int(Num(info, 3)), int(Num(info, 4)), int(Num(info, 5)),
              Num(info, 6) != 0, float(Num(info, 7))};
}

bool DimsOk(const Dims& d) { return d.T >= 0 && d.dIn >= 0 && d.dOut >= 0 && d.r >= 0 && d.N >= 1; }

// [A; W_g] [r+N, dIn] and s Ω_A [N, r] into the scratch (the same float products as the tfjs
// ops: concat copies, tf.mul(Ω_A, s) rounds once).
void Stack(const Dims& d, const float* a, const float* wg, const float* omegaA, float** cat, float** om) {
  Scratch& s = tScratch;
  *cat = Grow(s.cat, size_t(d.width()) * d.dIn);
  std::memcpy(*cat, a, sizeof(float) * size_t(d.r) * d.dIn);
  std::memcpy(*cat + size_t(d.r) * d.dIn, wg, sizeof(float) * size_t(d.N) * d.dIn);
  *om = Grow(s.om, size_t(d.N) * d.r);
  for (size_t i = 0; i < size_t(d.N) * d.r; i++) (*om)[i] = omegaA[i] * d.s;
}

// morLayerForward(heap, T, dIn, dOut, r, N, hasBias, s, x, a, wg, bias, omegaA, b, omegaB, y,
//                 out, g, h, z, bexp): byte offsets; bias is read only when hasBias.
Napi::Value Forward(const Napi::CallbackInfo& info) {
  if (!morheap::ArgsOk(info, 21)) return Fail(info.Env(), "morLayerForward: bad arguments");
  Heap heap = morheap::HeapOf(info);
  const Dims d = DimsOf(info);
  if (!DimsOk(d)) return Fail(info.Env(), "morLayerForward: bad dimensions");
  const double T = d.T, nr = double(d.N) * d.r;
  const float* x = heap.at<float>(Num(info, 8), T * d.dIn);
  const float* a = heap.at<float>(Num(info, 9), double(d.r) * d.dIn);
  const float* wg = heap.at<float>(Num(info, 10), double(d.N) * d.dIn);
  const float* bias = d.hasBias ? heap.at<float>(Num(info, 11), d.N) : nullptr;
  const float* omegaA = heap.at<float>(Num(info, 12), nr);
  const float* b = heap.at<float>(Num(info, 13), double(d.dOut) * d.r);
  const float* omegaB = heap.at<float>(Num(info, 14), double(d.N) * d.dOut);
  const float* y = heap.at<float>(Num(info, 15), T * d.dOut);
  float* out = heap.at<float>(Num(info, 16), T * d.dOut);
  float* g = heap.at<float>(Num(info, 17), T * d.N);
  float* h = heap.at<float>(Num(info, 18), T * d.r);
  float* z = heap.at<float>(Num(info, 19), T * nr);
  float* bexp = heap.at<float>(Num(info, 20), double(d.dOut) * nr);
  if (!heap.ok) return Fail(info.Env(), "morLayerForward: operand outside the heap");

  float *cat, *om;
  Stack(d, a, wg, omegaA, &cat, &om);
  const int w = d.width();
  float* hl = Grow(tScratch.hl, size_t(d.T) * w);
  MorGemm(x, cat, hl, d.T, w, d.dIn, false, true, 0.0f);
  for (int t = 0; t < d.T; t++) {
    const float* row = hl + size_t(t) * w;
    std::memcpy(h + size_t(t) * d.r, row, sizeof(float) * size_t(d.r));
    float* gt = g + size_t(t) * d.N;
    float mx = -INFINITY;
    for (int i = 0; i < d.N; i++) {
      gt[i] = bias ? row[d.r + i] + bias[i] : row[d.r + i];
      mx = std::max(mx, gt[i]);
    }
    float sum = 0.0f;
    for (int i = 0; i < d.N; i++) sum += (gt[i] = std::exp(gt[i] - mx));
    for (int i = 0; i < d.N; i++) gt[i] /= sum;
  }
  morrank::Z(d.T, d.N, d.r, d.T, h, g, om, z);
  morrank::Bexp(d.N, d.r, d.dOut, b, omegaB, bexp, morpar::BlasThreads());
  std::memcpy(out, y, sizeof(float) * size_t(d.T) * d.dOut);
  MorGemm(z, bexp, out, d.T, d.dOut, d.N * d.r, false, true, 1.0f);
  return info.Env().Undefined();
}

// morLayerBackward(heap, T, dIn, dOut, r, N, hasBias, s, dy, dgIn, x, a, wg, omegaA, b, omegaB, h, g, z,
//                  bexp, dx, da, dwg, dbias, domegaA, db, domegaB): dbias is written only when hasBias.
Napi::Value Backward(const Napi::CallbackInfo& info) {
  if (!morheap::ArgsOk(info, 27)) return Fail(info.Env(), "morLayerBackward: bad arguments");
  Heap heap = morheap::HeapOf(info);
  const Dims d = DimsOf(info);
  if (!DimsOk(d)) return Fail(info.Env(), "morLayerBackward: bad dimensions");
  const double T = d.T, nr = double(d.N) * d.r;
  const float* dy = heap.at<float>(Num(info, 8), T * d.dOut);
  const float* dgIn = heap.at<float>(Num(info, 9), T * d.N);
  const float* x = heap.at<float>(Num(info, 10), T * d.dIn);
  const float* a = heap.at<float>(Num(info, 11), double(d.r) * d.dIn);
  const float* wg = heap.at<float>(Num(info, 12), double(d.N) * d.dIn);
  const float* omegaA = heap.at<float>(Num(info, 13), nr);
  const float* b = heap.at<float>(Num(info, 14), double(d.dOut) * d.r);
  const float* omegaB = heap.at<float>(Num(info, 15), double(d.N) * d.dOut);
  const float* h = heap.at<float>(Num(info, 16), T * d.r);
  const float* g = heap.at<float>(Num(info, 17), T * d.N);
  const float* z = heap.at<float>(Num(info, 18), T * nr);
  const float* bexp = heap.at<float>(Num(info, 19), double(d.dOut) * nr);
  float* dx = heap.at<float>(Num(info, 20), T * d.dIn);
  float* da = heap.at<float>(Num(info, 21), double(d.r) * d.dIn);
  float* dwg = heap.at<float>(Num(info, 22), double(d.N) * d.dIn);
  float* dbias = d.hasBias ? heap.at<float>(Num(info, 23), d.N) : nullptr;
  float* domegaA = heap.at<float>(Num(info, 24), nr);
  float* db = heap.at<float>(Num(info, 25), double(d.dOut) * d.r);
  float* domegaB = heap.at<float>(Num(info, 26), double(d.N) * d.dOut);
  if (!heap.ok) return Fail(info.Env(), "morLayerBackward: operand outside the heap");

  Scratch& s = tScratch;
  const int n = d.N * d.r, w = d.width();
  float* dz = Grow(s.dz, size_t(d.T) * n);
  float* dbexp = Grow(s.dbexp, size_t(d.dOut) * n);
  MorGemm(dy, bexp, dz, d.T, n, d.dOut, false, false, 0.0f);
  MorGemm(dy, z, dbexp, d.dOut, n, d.T, true, false, 0.0f);
  float *cat, *om;
  Stack(d, a, wg, omegaA, &cat, &om);
  float* dh = Grow(s.dh, size_t(d.T) * d.r);
  float* dg = Grow(s.dg, size_t(d.T) * d.N);
  float* dom = Grow(s.dom, size_t(d.N) * d.r);
  morrank::BexpGrad(d.N, d.r, d.dOut, dbexp, b, omegaB, db, domegaB, morpar::BlasThreads());
  morrank::ZGrad(d.T, d.N, d.r, d.T, dz, h, g, om, dh, dg, dom);
  for (size_t i = 0; i < size_t(d.N) * d.r; i++) domegaA[i] = dom[i] * d.s;

  // dhl = [dh | dlogits], the softmax's gradient as tfjs's: dy*y - sum(dy*y) * y.
  float* dhl = Grow(s.hl, size_t(d.T) * w);
  if (dbias) std::memset(dbias, 0, sizeof(float) * size_t(d.N));
  for (int t = 0; t < d.T; t++) {
    float* row = dhl + size_t(t) * w;
    std::memcpy(row, dh + size_t(t) * d.r, sizeof(float) * size_t(d.r));
    const float* gt = g + size_t(t) * d.N;
    const float* dgt = dg + size_t(t) * d.N;
    const float* dgi = dgIn + size_t(t) * d.N;
    float* dl = row + d.r;
    float sum = 0.0f;
    for (int i = 0; i < d.N; i++) sum += (dl[i] = (dgt[i] + dgi[i]) * gt[i]);
    for (int i = 0; i < d.N; i++) dl[i] -= sum * gt[i];
    if (dbias)
      for (int i = 0; i < d.N; i++) dbias[i] += dl[i];
  }
  float* dcat = Grow(s.dcat, size_t(w) * d.dIn);
  MorGemm(dhl, x, dcat, w, d.dIn, d.T, true, false, 0.0f);
  std::memcpy(da, dcat, sizeof(float) * size_t(d.r) * d.dIn);
  std::memcpy(dwg, dcat + size_t(d.r) * d.dIn, sizeof(float) * size_t(d.N) * d.dIn);
  MorGemm(dhl, cat, dx, d.T, d.dIn, w, false, false, 0.0f);
  return info.Env().Undefined();
}

}  // namespace

void RegisterMorLayerKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("morLayerForward", Napi::Function::New(env, Forward));
  exports.Set("morLayerBackward", Napi::Function::New(env, Backward));
}
