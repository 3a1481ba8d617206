// The element-wise parts of MoR's rank-expansion product (src/adapters/rankExpansion.ts),
// fused into single passes over the tfjs-wasm heap. With tfjs ops each of these is 2-4
// kernels over [T, N, r] or [out, N, r] tensors, and the reductions over a middle axis
// make the wasm backend transpose first; these loops are one pass each and vectorise.
//
//   z[t, i*r+k]            = g[t, i] * om[i, k] * h[t, k]        (g may have 1 row, broadcast)
//   bexp[j, i*r+k]         = omegaB[i, j] * b[j, k]
//   dh[t, k]               = sum_i dz[t, i*r+k] g[t, i] om[i, k]
//   dg[t, i]               = sum_k dz[t, i*r+k] om[i, k] h[t, k]   (summed over t if g has 1 row)
//   dom[i, k]              = sum_t dz[t, i*r+k] g[t, i] h[t, k]
//   db[j, k]               = sum_i dbexp[j, i*r+k] omegaB[i, j]
//   domegaB[i, j]          = sum_k dbexp[j, i*r+k] b[j, k]
#include "mor_rank.h"

#include <cstring>

#include "mor_heap.h"
#include "mor_parallel.h"

namespace morrank {

void Z(int T, int N, int r, int gRows, const float* h, const float* g, const float* om, float* z) {
  for (int t = 0; t < T; t++) {
    const float* ht = h + size_t(t) * r;
    const float* gt = g + (gRows == 1 ? 0 : size_t(t) * N);
    float* zt = z + size_t(t) * N * r;
    for (int i = 0; i < N; i++) {
      const float gi = gt[i];
      const float* omi = om + size_t(i) * r;
      float* zti = zt + size_t(i) * r;
      for (int k = 0; k < r; k++) zti[k] = gi * omi[k] * ht[k];
    }
  }
}

void Bexp(int N, int r, int dOut, const float* b, const float* omegaB, float* out, int threads) {
  morpar::Parallel(size_t(dOut), threads, size_t(N) * r * dOut, [&](size_t j0, size_t j1) {
    for (size_t j = j0; j < j1; j++) {
      const float* bj = b + j * r;
      float* row = out + j * N * r;
      for (int i = 0; i < N; i++) {
        const float o = omegaB[size_t(i) * dOut + j];
        float* ri = row + size_t(i) * r;
        for (int k = 0; k < r; k++) ri[k] = o * bj[k];
      }
    }
  });
}

void ZGrad(int T, int N, int r, int gRows, const float* dz, const float* h, const float* g, const float* om, float* dh,
           float* dg, float* dom) {
  std::memset(dg, 0, sizeof(float) * size_t(gRows) * N);
  std::memset(dom, 0, sizeof(float) * size_t(N) * r);
  for (int t = 0; t < T; t++) {
    const float* ht = h + size_t(t) * r;
    const float* gt = g + (gRows == 1 ? 0 : size_t(t) * N);
    float* dgt = dg + (gRows == 1 ? 0 : size_t(t) * N);
    const float* dzt = dz + size_t(t) * N * r;
    float* dht = dh + size_t(t) * r;
    for (int k = 0; k < r; k++) dht[k] = 0.0f;
    for (int i = 0; i < N; i++) {
      const float gi = gt[i];
      const float* omi = om + size_t(i) * r;
      const float* v = dzt + size_t(i) * r;
      float* domi = dom + size_t(i) * r;
      float s = 0.0f;
      for (int k = 0; k < r; k++) {
        const float vo = v[k] * omi[k];
        dht[k] += vo * gi;
        s += vo * ht[k];
        domi[k] += v[k] * gi * ht[k];
      }
      dgt[i] += s;
    }
  }
}

namespace {

// Dot product of x and y over [0, n) in eight interleaved partial sums (vectorised; the
// compiler keeps a single running sum in order otherwise).
float Dot(const float* x, const float* y, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int k = 0;
  for (; k + 8 <= n; k += 8)
    for (int q = 0; q < 8; q++) acc[q] += x[k + q] * y[k + q];
  for (; k < n; k++) acc[0] += x[k] * y[k];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

}  // namespace

void BexpGrad(int N, int r, int dOut, const float* dbexp, const float* b, const float* omegaB, float* db, float* domegaB,
              int threads) {
  morpar::Parallel(size_t(dOut), threads, size_t(N) * r * dOut, [&](size_t j0, size_t j1) {
    for (size_t j = j0; j < j1; j++) {
      const float* row = dbexp + j * N * r;
      const float* bj = b + j * r;
      float* dbj = db + j * r;
      for (int k = 0; k < r; k++) dbj[k] = 0.0f;
      for (int i = 0; i < N; i++) {
        const float* ri = row + size_t(i) * r;
        const float o = omegaB[size_t(i) * dOut + j];
        for (int k = 0; k < r; k++) dbj[k] += ri[k] * o;
        domegaB[size_t(i) * dOut + j] = Dot(ri, bj, r);
      }
    }
  });
}

}  // namespace morrank

namespace {

using morheap::Fail;
using morheap::Heap;
using morheap::Num;

// rankZ(heap, T, N, r, gRows, hOff, gOff, omOff, zOff)
Napi::Value RankZ(const Napi::CallbackInfo& info) {
  if (!morheap::ArgsOk(info, 9)) return Fail(info.Env(), "rankZ: bad arguments");
  Heap heap = morheap::HeapOf(info);
  const int T = int(Num(info, 1)), N = int(Num(info, 2)), r = int(Num(info, 3)), gRows = int(Num(info, 4));
  const float* h = heap.at<float>(Num(info, 5), double(T) * r);
  const float* g = heap.at<float>(Num(info, 6), double(gRows) * N);
  const float* om = heap.at<float>(Num(info, 7), double(N) * r);
  float* z = heap.at<float>(Num(info, 8), double(T) * N * r);
  if (!heap.ok || T < 0 || N < 0 || r < 0 || (gRows != 1 && gRows != T)) return Fail(info.Env(), "rankZ: operand outside the heap");
  morrank::Z(T, N, r, gRows, h, g, om, z);
  return info.Env().Undefined();
}

// rankBexp(heap, N, r, dOut, bOff, omegaBOff, outOff): one row of bexp per output feature j.
Napi::Value RankBexp(const Napi::CallbackInfo& info) {
  if (!morheap::ArgsOk(info, 7)) return Fail(info.Env(), "rankBexp: bad arguments");
  Heap heap = morheap::HeapOf(info);
  const int N = int(Num(info, 1)), r = int(Num(info, 2)), dOut = int(Num(info, 3));
  const float* b = heap.at<float>(Num(info, 4), double(dOut) * r);
  const float* omegaB = heap.at<float>(Num(info, 5), double(N) * dOut);
  float* out = heap.at<float>(Num(info, 6), double(N) * r * dOut);
  if (!heap.ok || N < 0 || r < 0 || dOut < 0) return Fail(info.Env(), "rankBexp: operand outside the heap");
  morrank::Bexp(N, r, dOut, b, omegaB, out, morpar::BlasThreads());
  return info.Env().Undefined();
}

// rankZGrad(heap, T, N, r, gRows, dzOff, hOff, gOff, omOff, dhOff, dgOff, domOff)
Napi::Value RankZGrad(const Napi::CallbackInfo& info) {
  if (!morheap::ArgsOk(info, 12)) return Fail(info.Env(), "rankZGrad: bad arguments");
  Heap heap = morheap::HeapOf(info);
  const int T = int(Num(info, 1)), N = int(Num(info, 2)), r = int(Num(info, 3)), gRows = int(Num(info, 4));
  const float* dz = heap.at<float>(Num(info, 5), double(T) * N * r);
  const float* h = heap.at<float>(Num(info, 6), double(T) * r);
  const float* g = heap.at<float>(Num(info, 7), double(gRows) * N);
  const float* om = heap.at<float>(Num(info, 8), double(N) * r);
  float* dh = heap.at<float>(Num(info, 9), double(T) * r);
  float* dg = heap.at<float>(Num(info, 10), double(gRows) * N);
  float* dom = heap.at<float>(Num(info, 11), double(N) * r);
  if (!heap.ok || T < 0 || N < 0 || r < 0 || (gRows != 1 && gRows != T)) return Fail(info.Env(), "rankZGrad: operand outside the heap");
  morrank::ZGrad(T, N, r, gRows, dz, h, g, om, dh, dg, dom);
  return info.Env().Undefined();
}

// rankBexpGrad(heap, N, r, dOut, dbexpOff, bOff, omegaBOff, dbOff, domegaBOff): one row of
// dbexp per output feature j gives row j of db and column j of domegaB.
Napi::Value RankBexpGrad(const Napi::CallbackInfo& info) {
  if (!morheap::ArgsOk(info, 9)) return Fail(info.Env(), "rankBexpGrad: bad arguments");
  Heap heap = morheap::HeapOf(info);
  const int N = int(Num(info, 1)), r = int(Num(info, 2)), dOut = int(Num(info, 3));
  const float* dbexp = heap.at<float>(Num(info, 4), double(N) * r * dOut);
  const float* b = heap.at<float>(Num(info, 5), double(dOut) * r);
  const float* omegaB = heap.at<float>(Num(info, 6), double(N) * dOut);
  float* db = heap.at<float>(Num(info, 7), double(dOut) * r);
  float* domegaB = heap.at<float>(Num(info, 8), double(N) * dOut);
  if (!heap.ok || N < 0 || r < 0 || dOut < 0) return Fail(info.Env(), "rankBexpGrad: operand outside the heap");
  morrank::BexpGrad(N, r, dOut, dbexp, b, omegaB, db, domegaB, morpar::BlasThreads());
  return info.Env().Undefined();
}

}  // namespace

void RegisterRankKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("rankZ", Napi::Function::New(env, RankZ));
  exports.Set("rankBexp", Napi::Function::New(env, RankBexp));
  exports.Set("rankZGrad", Napi::Function::New(env, RankZGrad));
  exports.Set("rankBexpGrad", Napi::Function::New(env, RankBexpGrad));
}
