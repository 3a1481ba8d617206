// Attention for training and full-sequence forwards, fused over the tfjs-wasm heap
// (src/backend/attentionKernels.ts registers it; src/models/llama/attention.ts uses it):
//
//   q [B, T, H, D] (rope applied, 1/sqrt(D) folded in), k, v [B, S, Hkv, D], head h reads kv
//   head h / (H / Hkv); mask [Bm, T, S] additive (Bm 1 or B; none: every key visible)
//   forward:  P = softmax(q_h k_gᵀ + mask) per row, out[b, t, h] = P v_g
//   backward: P recomputed (the same function, so the same values); dv_g += Pᵀ dout_h; dP = dout_h v_gᵀ;
//             dS = P ∘ (dP - rowsum(dout_h ∘ out_h)); dq_h = dS k_g; dk_g += dSᵀ q_h
//
// The products are the addon's products (MorGemmLd: the own AVX-512 sgemm where it runs, else
// cblas_sgemm), one per key/value head and tile of query rows, on the
// query heads of that group gathered into one contiguous block (a copy of q's rows, not of the
// keys and values, which are read in place from the [B, S, Hkv, D] layout the projections
// produce: no transposes); the [T, S] probabilities live only
// in a scratch tile of query rows and are never saved: the backward recomputes them (as
// FlashAttention does; not from a saved log-sum-exp, which float32 cannot hold next to the
// -1e9 of masked keys), so the tape holds q, k, v and out instead of the scores and
// probabilities of every head. Row-wise softmax work is split over threads.
#include "mor_attention.h"
#include "mor_gemm.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "mor_heap.h"
#include "mor_parallel.h"
#include "mor_vexp.h"

namespace {

using morheap::Fail;
using morheap::HasAvx2;
using morheap::Num;

// Rows (query heads of a group x query rows) per tile: bounds the scratch at 2 x kTile x S floats.
constexpr size_t kTile = 1024;
// Query rows per tile under a mask (see TileRows).
constexpr size_t kMaskedTileRows = 32;

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) inline float Hmax8(__m256 v) {
  alignas(32) float l[8];
  _mm256_store_ps(l, v);
  float m = l[0];
  for (int i = 1; i < 8; i++) m = l[i] > m ? l[i] : m;
  return m;
}

// SoftmaxRow's vector version; the same operations in the same order per element, sums in lanes.
__attribute__((target("avx2,fma"))) void SoftmaxRowAvx2(float* row, const float* mask, size_t s) {
  const size_t n8 = s / 8 * 8;
  __m256 mv = _mm256_set1_ps(-INFINITY);
  for (size_t j = 0; j < n8; j += 8) {
    __m256 x = _mm256_loadu_ps(row + j);
    if (mask) x = _mm256_add_ps(x, _mm256_loadu_ps(mask + j));
    mv = _mm256_max_ps(mv, x);
  }
  float m = Hmax8(mv);
  for (size_t j = n8; j < s; j++) {
    const float x = row[j] + (mask ? mask[j] : 0.f);
    m = x > m ? x : m;
  }
  const __m256 mb = _mm256_set1_ps(m);
  __m256 sv = _mm256_setzero_ps();
  for (size_t j = 0; j < n8; j += 8) {
    __m256 x = _mm256_loadu_ps(row + j);
    if (mask) x = _mm256_add_ps(x, _mm256_loadu_ps(mask + j));
    const __m256 e = morvexp::Exp8(_mm256_sub_ps(x, mb));
    _mm256_storeu_ps(row + j, e);
    sv = _mm256_add_ps(sv, e);
  }
  alignas(32) float l[8];
  _mm256_store_ps(l, sv);
  double sum = 0;
  for (float x : l) sum += x;
  for (size_t j = n8; j < s; j++) sum += (row[j] = std::exp(row[j] + (mask ? mask[j] : 0.f) - m));
  const float inv = float(1.0 / sum);
  const __m256 iv = _mm256_set1_ps(inv);
  for (size_t j = 0; j < n8; j += 8) _mm256_storeu_ps(row + j, _mm256_mul_ps(_mm256_loadu_ps(row + j), iv));
  for (size_t j = n8; j < s; j++) row[j] *= inv;
  _mm256_zeroupper();
}

// dS = P ∘ (dP - di), in place in dp.
__attribute__((target("avx2,fma"))) void ScoreGradAvx2(const float* p, float* dp, size_t s, float di) {
  const size_t n8 = s / 8 * 8;
  const __m256 dv = _mm256_set1_ps(di);
  for (size_t j = 0; j < n8; j += 8)
    _mm256_storeu_ps(dp + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), _mm256_sub_ps(_mm256_loadu_ps(dp + j), dv)));
  _mm256_zeroupper();
  for (size_t j = n8; j < s; j++) dp[j] = p[j] * (dp[j] - di);
}
#endif

// Softmax of one row of scores plus mask, in place.
void SoftmaxRow(float* row, const float* mask, size_t s) {
#if defined(__x86_64__)
  if (HasAvx2()) return SoftmaxRowAvx2(row, mask, s);
#endif
  float m = -INFINITY;
  for (size_t j = 0; j < s; j++) {
    const float x = row[j] + (mask ? mask[j] : 0.f);
    m = x > m ? x : m;
  }
  double sum = 0;
  for (size_t j = 0; j < s; j++) sum += (row[j] = std::exp(row[j] + (mask ? mask[j] : 0.f) - m));
  const float inv = float(1.0 / sum);
  for (size_t j = 0; j < s; j++) row[j] *= inv;
}

// dS = P ∘ (dP - di), in place in dp.
void ScoreGrad(const float* p, float* dp, size_t s, float di) {
#if defined(__x86_64__)
  if (HasAvx2()) return ScoreGradAvx2(p, dp, s, di);
#endif
  for (size_t j = 0; j < s; j++) dp[j] = p[j] * (dp[j] - di);
}

struct Dims {
  size_t B, T, S, H, Hkv, D, maskB;
  int threads;
  size_t rep() const { return H / Hkv; }
  // Row strides of the [B, T, H, D] and [B, S, Hkv, D] layouts.
  size_t qs() const { return H * D; }
  size_t ks() const { return Hkv * D; }
  // Elements of q (and out) and of k (and v).
  double nq() const { return double(B) * T * H * D; }
  double nk() const { return double(B) * S * Hkv * D; }
};

bool ReadDims(const Napi::CallbackInfo& info, Dims* d) {
  *d = Dims{size_t(Num(info, 1)), size_t(Num(info, 2)), size_t(Num(info, 3)), size_t(Num(info, 4)),
            size_t(Num(info, 5)), size_t(Num(info, 6)), size_t(Num(info, 7)), int(Num(info, 8))};
  return d->Hkv > 0 && d->H % d->Hkv == 0 && d->D > 0 && d->S > 0 && (d->maskB == 0 || d->maskB == 1 || d->maskB == d->B);
}

// q, k, v and the mask (null without one) of a call, at arguments 9-12.
struct Operands {
  const float *q, *k, *v, *mask;
};

Operands ReadOperands(const Napi::CallbackInfo& info, const Dims& d, morheap::Heap* heap) {
  return Operands{heap->at<float>(Num(info, 9), d.nq()), heap->at<float>(Num(info, 10), d.nk()),
                  heap->at<float>(Num(info, 11), d.nk()),
                  d.maskB ? heap->at<float>(Num(info, 12), double(d.maskB) * d.T * d.S) : nullptr};
}

// Mask row of query t of batch b, or null.
const float* MaskRow(const float* mask, const Dims& d, size_t b, size_t t) {
  return mask ? mask + ((d.maskB == 1 ? 0 : b) * d.T + t) * d.S : nullptr;
}

// The query heads of one key/value head, for query rows [t0, t0 + tr): row r * tr + i of `dst`
// ([rep * tr, D], contiguous) is head g * rep + r at query t0 + i of `src` ([B, T, H, D]).
void Gather(const float* src, const Dims& d, size_t b, size_t g, size_t t0, size_t tr, float* dst) {
  for (size_t r = 0; r < d.rep(); r++)
    for (size_t i = 0; i < tr; i++)
      std::copy_n(src + ((b * d.T + t0 + i) * d.H + g * d.rep() + r) * d.D, d.D, dst + (r * tr + i) * d.D);
}

// The inverse of Gather.
void Scatter(const float* src, const Dims& d, size_t b, size_t g, size_t t0, size_t tr, float* dst) {
  for (size_t r = 0; r < d.rep(); r++)
    for (size_t i = 0; i < tr; i++)
      std::copy_n(src + (r * tr + i) * d.D, d.D, dst + ((b * d.T + t0 + i) * d.H + g * d.rep() + r) * d.D);
}

// Query rows per tile so that a tile of the group's heads has about kTile rows; with a mask,
// tiles of kMaskedTileRows query rows, so that KeyEnd can drop the keys a causal tile never sees.
size_t TileRows(const Dims& d, bool masked) {
  return std::max<size_t>(1, std::min({d.T, kTile / d.rep(), masked ? kMaskedTileRows : d.T}));
}

// Mask values at or below this are keys a row cannot see: exp of them underflows to exactly 0.
constexpr float kDead = -1e8f;

// One past the last key that some row of the tile sees: later keys get probability exactly 0, so
// the products skip them (about half the work under a causal mask). A row that sees no key at all
// keeps every key (its softmax is uniform over them, as in the op version).
size_t KeyEnd(const float* mask, const Dims& d, size_t b, size_t t0, size_t tr) {
  if (!mask) return d.S;
  size_t end = 0;
  for (size_t i = 0; i < tr; i++) {
    const float* row = MaskRow(mask, d, b, t0 + i);
    size_t j = d.S;
    while (j > 0 && row[j - 1] <= kDead) j--;
    if (j == 0) return d.S;
    end = std::max(end, j);
  }
  return end;
}

// Run fn(b, g, inner) for every (batch, key/value head) group. Groups write disjoint rows of the
// outputs (dk and dv included: a group owns its key/value head), so they split over threads: with
// `threads` > 1 and enough work, each product runs on one thread (OpenBLAS's count set to 1, which
// the own sgemm follows too) while the groups run side by side (threading these small products
// costs more than it saves), and `inner`, the
// thread count for the row-wise softmax work inside a group, is 1. Decoding steps (one query row)
// are below the threshold and stay on the caller's thread.
template <typename Fn>
void ForEachGroup(const Dims& d, Fn fn) {
  const size_t groups = d.B * d.Hkv;
  const size_t work = d.B * d.H * d.T * d.S * d.D;
  const int threads = int(std::min<size_t>(size_t(std::max(d.threads, 1)), groups));
  if (threads <= 1 || work < (size_t(1) << 22)) {
    for (size_t i = 0; i < groups; i++) fn(i / d.Hkv, i % d.Hkv, d.threads);
    return;
  }
  const int blasThreads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  morpar::Parallel(groups, threads, work, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; i++) fn(i / d.Hkv, i % d.Hkv, 1);
  }, 0);
  openblas_set_num_threads(blasThreads);
}

// attnForward(heap, B, T, S, H, Hkv, D, maskB, threads, qOff, kOff, vOff, maskOff, outOff)
// maskB 0: no mask (maskOff ignored).
Napi::Value AttnForward(const Napi::CallbackInfo& info) {
  if (info.Length() != 14 || !info[0].IsArrayBuffer()) return Fail(info.Env(), "attnForward: bad arguments");
  Dims d;
  if (!ReadDims(info, &d)) return Fail(info.Env(), "attnForward: bad dimensions");
  morheap::Heap heap = morheap::HeapOf(info);
  const Operands o = ReadOperands(info, d, &heap);
  float* out = heap.at<float>(Num(info, 13), d.nq());
  if (!heap.ok) return Fail(info.Env(), "attnForward: operand outside the heap");
  const float *q = o.q, *k = o.k, *v = o.v, *mask = o.mask;
  const size_t tile = TileRows(d, mask != nullptr), rows = d.rep() * tile;
  ForEachGroup(d, [&](size_t b, size_t g, int inner) {
    std::vector<float> p(rows * d.S), qg(rows * d.D), og(rows * d.D);
    const size_t kvAt = (b * d.S * d.Hkv + g) * d.D;
    for (size_t t0 = 0; t0 < d.T; t0 += tile) {
      const size_t tr = std::min(tile, d.T - t0), m = d.rep() * tr, se = KeyEnd(mask, d, b, t0, tr);
      Gather(q, d, b, g, t0, tr, qg.data());
      MorGemmLd(false, true, int(m), int(se), int(d.D), qg.data(), int(d.D), k + kvAt, int(d.ks()), 0.f, p.data(), int(se));
      morpar::Parallel(m, inner, m * se, [&](size_t i0, size_t i1) {
        for (size_t i = i0; i < i1; i++) SoftmaxRow(p.data() + i * se, MaskRow(mask, d, b, t0 + i % tr), se);
      }, size_t(1) << 17);
      MorGemmLd(false, false, int(m), int(d.D), int(se), p.data(), int(se), v + kvAt, int(d.ks()), 0.f, og.data(), int(d.D));
      Scatter(og.data(), d, b, g, t0, tr, out);
    }
  });
  return info.Env().Undefined();
}

// attnBackward(heap, B, T, S, H, Hkv, D, maskB, threads, qOff, kOff, vOff, maskOff, outOff, doutOff, dqOff, dkOff,
//              dvOff)
Napi::Value AttnBackward(const Napi::CallbackInfo& info) {
  if (info.Length() != 18 || !info[0].IsArrayBuffer()) return Fail(info.Env(), "attnBackward: bad arguments");
  Dims d;
  if (!ReadDims(info, &d)) return Fail(info.Env(), "attnBackward: bad dimensions");
  morheap::Heap heap = morheap::HeapOf(info);
  const Operands o = ReadOperands(info, d, &heap);
  const float *q = o.q, *k = o.k, *v = o.v, *mask = o.mask;
  const double nq = d.nq(), nk = d.nk();
  const float* out = heap.at<float>(Num(info, 13), nq);
  const float* dout = heap.at<float>(Num(info, 14), nq);
  float* dq = heap.at<float>(Num(info, 15), nq);
  float* dk = heap.at<float>(Num(info, 16), nk);
  float* dv = heap.at<float>(Num(info, 17), nk);
  if (!heap.ok) return Fail(info.Env(), "attnBackward: operand outside the heap");
  std::fill(dk, dk + size_t(nk), 0.f);
  std::fill(dv, dv + size_t(nk), 0.f);
  const size_t tile = TileRows(d, mask != nullptr), rows = d.rep() * tile;
  ForEachGroup(d, [&](size_t b, size_t g, int inner) {
    std::vector<float> p(rows * d.S), dp(rows * d.S), qg(rows * d.D), og(rows * d.D), dog(rows * d.D);
    const size_t kvAt = (b * d.S * d.Hkv + g) * d.D;
    for (size_t t0 = 0; t0 < d.T; t0 += tile) {
      const size_t tr = std::min(tile, d.T - t0), m = d.rep() * tr, se = KeyEnd(mask, d, b, t0, tr);
      Gather(q, d, b, g, t0, tr, qg.data());
      Gather(out, d, b, g, t0, tr, og.data());
      Gather(dout, d, b, g, t0, tr, dog.data());
      MorGemmLd(false, true, int(m), int(se), int(d.D), qg.data(), int(d.D), k + kvAt, int(d.ks()), 0.f, p.data(), int(se));
      MorGemmLd(false, true, int(m), int(se), int(d.D), dog.data(), int(d.D), v + kvAt, int(d.ks()), 0.f, dp.data(), int(se));
      morpar::Parallel(m, inner, m * se, [&](size_t i0, size_t i1) {
        for (size_t i = i0; i < i1; i++) {
          float* pr = p.data() + i * se;
          float* dpr = dp.data() + i * se;
          SoftmaxRow(pr, MaskRow(mask, d, b, t0 + i % tr), se);
          const float* o = og.data() + i * d.D;
          const float* dO = dog.data() + i * d.D;
          double s = 0;
          for (size_t c = 0; c < d.D; c++) s += double(o[c]) * dO[c];
          const float di = float(s);
          ScoreGrad(pr, dpr, se, di);
        }
      }, size_t(1) << 17);
      // dv_g += Pᵀ dout_g; dq_g = dS k_g; dk_g += dSᵀ q_g
      MorGemmLd(true, false, int(se), int(d.D), int(m), p.data(), int(se), dog.data(), int(d.D), 1.f, dv + kvAt, int(d.ks()));
      MorGemmLd(false, false, int(m), int(d.D), int(se), dp.data(), int(se), k + kvAt, int(d.ks()), 0.f, og.data(), int(d.D));
      Scatter(og.data(), d, b, g, t0, tr, dq);
      MorGemmLd(true, false, int(se), int(d.D), int(m), dp.data(), int(se), qg.data(), int(d.D), 1.f, dk + kvAt, int(d.ks()));
    }
  });
  return info.Env().Undefined();
}

}  // namespace

void RegisterAttentionKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("attnForward", Napi::Function::New(env, AttnForward));
  exports.Set("attnBackward", Napi::Function::New(env, AttnBackward));
}
