// The addon's own float32 product for CPUs with AVX-512 (x86-64, built by GCC).
//
// Why by hand: OpenBLAS picks its kernels at load time from the CPU or from OPENBLAS_CORETYPE,
// and some machines set that variable to Haswell (older OpenBLAS builds crash on newer CPUs),
// which runs AVX2 kernels at about half of an AVX-512 CPU's rate; Debian's OpenBLAS 0.3.21 has
// no way to choose the kernel per call. This file is one small BLIS-style product, the same on
// every AVX-512 machine whatever the environment: B is packed into panels of NR = 48 (or 32)
// columns (shared by the threads), A into blocks of kMR-row micro-panels (one per thread), and a
// register-blocked micro-kernel (kMR x NR accumulators in zmm registers) runs over them.
// Threads split the rows of C (or its columns when C has few rows). One- and two-row products
// (sgemv) and CPUs without AVX-512 stay on OpenBLAS (MorGemm in mor_blas.cc).
#include "mor_sgemm.h"

#include "mor_parallel.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MOR_SGEMM_AVX512 1
#endif

#if MOR_SGEMM_AVX512
#include <immintrin.h>

namespace morgemm {
namespace {

constexpr int kMR = 8;           // rows of a micro-tile
constexpr int kKC = 640;         // largest depth of a packed block (see DepthStep)
constexpr int kMC = 128;         // rows of a packed A block (a multiple of kMR)
constexpr int kNC = 3072;        // columns of a packed B panel (a multiple of 32 and 48)

// A 64-byte-aligned float buffer that only grows (page faults once, not per product).
struct Buffer {
  float* p = nullptr;
  size_t cap = 0;
  float* Get(size_t n) {
    if (n > cap) {
      std::free(p);
      cap = (n + 15) / 16 * 16;
      p = static_cast<float*>(std::aligned_alloc(64, cap * sizeof(float)));
    }
    return p;
  }
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : p(o.p), cap(o.cap) { o.p = nullptr; o.cap = 0; }
  ~Buffer() { std::free(p); }
};

// The calling thread's buffers: B panel (shared by the product's threads when they split rows;
// one per thread in `bt` when they split columns) and one A block per thread. Products are issued
// from one thread at a time per caller, so these are reused.
struct Scratch {
  Buffer b;
  std::vector<Buffer> bt;
  std::vector<Buffer> a;
};
thread_local Scratch tScratch;

// Threads of one product meet here after packing B and before repacking it.
class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void Wait() {
    if (n_ <= 1) return;
    const int gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      gen_.fetch_add(1, std::memory_order_release);
      return;
    }
    for (int spins = 0; gen_.load(std::memory_order_acquire) == gen; spins++) {
      if (spins < 4096) _mm_pause();
      else std::this_thread::yield();
    }
  }

 private:
  const int n_;
  std::atomic<int> count_{0};
  std::atomic<int> gen_{0};
};

struct Problem {
  bool tA, tB;
  int m, n, k;
  const float* a;
  int lda;
  const float* b;
  int ldb;
  float beta;
  float* c;
  int ldc;
};

// Depth of the packed blocks: k split into equal blocks of at most kKC (a multiple of 16), so that
// C is read and written once per block and no block is a short remainder (k = 576: 2 x 288
// rather than 256 + 256 + 64).
inline int DepthStep(int k) {
  const int blocks = (k + kKC - 1) / kKC;
  return std::min(kKC, ((k + blocks - 1) / blocks + 15) / 16 * 16);
}

// Only the packing and compute functions are compiled for AVX-512 (the threading code and the
// standard-library templates it instantiates stay baseline x86-64).
#pragma GCC push_options
#pragma GCC target("avx512f,fma")

// A rows [i0, i0+mc) x depth [p0, p0+kc) into kMR-row micro-panels: dst[panel][p][row], zero-padded.
void PackA(const Problem& q, int i0, int mc, int p0, int kc, float* dst) {
  for (int r0 = 0; r0 < mc; r0 += kMR, dst += size_t(kMR) * kc) {
    const int rows = std::min(kMR, mc - r0);
    if (q.tA) {  // A stored [k, m]: each depth step reads rows contiguously
      for (int p = 0; p < kc; p++) {
        const float* src = q.a + size_t(p0 + p) * q.lda + i0 + r0;
        float* d = dst + size_t(p) * kMR;
        for (int r = 0; r < rows; r++) d[r] = src[r];
        for (int r = rows; r < kMR; r++) d[r] = 0.f;
      }
    } else {  // A stored [m, k]: each row read contiguously, written with stride kMR
      for (int r = 0; r < rows; r++) {
        const float* src = q.a + size_t(i0 + r0 + r) * q.lda + p0;
        for (int p = 0; p < kc; p++) dst[size_t(p) * kMR + r] = src[p];
      }
      for (int r = rows; r < kMR; r++)
        for (int p = 0; p < kc; p++) dst[size_t(p) * kMR + r] = 0.f;
    }
  }
}

// dst[e * ldd + r] = src[r * lds + e] for a 16 x 16 block (unpack within 128-bit lanes, then
// exchange lanes twice).
inline void Transpose16(const float* src, int lds, float* dst, int ldd) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + size_t(i) * lds);
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  // r[4g + b]: element 4 lane + b of rows 4g .. 4g+3, per 128-bit lane
  for (int g = 0; g < 4; g++) {
    r[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  // t[b] / t[4 + b]: lanes 0,2 / 1,3 of rows 0-7 (from r[b], r[4 + b]); t[8 + b] / t[12 + b] rows 8-15
  for (int b = 0; b < 4; b++) {
    t[b] = _mm512_shuffle_f32x4(r[b], r[4 + b], 0x88);
    t[4 + b] = _mm512_shuffle_f32x4(r[b], r[4 + b], 0xdd);
    t[8 + b] = _mm512_shuffle_f32x4(r[8 + b], r[12 + b], 0x88);
    t[12 + b] = _mm512_shuffle_f32x4(r[8 + b], r[12 + b], 0xdd);
  }
  // element e = 4 lane + b
  for (int lane = 0; lane < 4; lane++)
    for (int b = 0; b < 4; b++) {
      const int x = b + (lane & 1 ? 4 : 0);
      const __m512 v = lane < 2 ? _mm512_shuffle_f32x4(t[x], t[x + 8], 0x88) : _mm512_shuffle_f32x4(t[x], t[x + 8], 0xdd);
      _mm512_store_ps(dst + size_t(4 * lane + b) * ldd, v);
    }
}

// B depth [p0, p0+kc) x columns [j0 + panel*NR, ...) for panels [pBegin, pEnd) of a panel of
// nc columns into dst[panel][p][col], zero-padded.
template <int NV>
void PackB(const Problem& q, int p0, int kc, int j0, int nc, int pBegin, int pEnd, float* dst) {
  constexpr int NR = 16 * NV;
  for (int panel = pBegin; panel < pEnd; panel++) {
    const int c0 = panel * NR, cols = std::min(NR, nc - c0);
    float* d = dst + size_t(panel) * NR * kc;
    if (!q.tB) {  // B stored [k, n]: one contiguous run of columns per depth step
      for (int p = 0; p < kc; p++) {
        const float* src = q.b + size_t(p0 + p) * q.ldb + j0 + c0;
        float* dp = d + size_t(p) * NR;
        if (cols == NR) {
          for (int v = 0; v < NV; v++) _mm512_store_ps(dp + 16 * v, _mm512_loadu_ps(src + 16 * v));
        } else {
          for (int j = 0; j < cols; j++) dp[j] = src[j];
          for (int j = cols; j < NR; j++) dp[j] = 0.f;
        }
      }
    } else {  // B stored [n, k]: 16 x 16 blocks transposed in registers, the edges one by one
      const int cols16 = cols / 16 * 16, kc16 = kc / 16 * 16;
      for (int j = 0; j < cols16; j += 16)
        for (int p = 0; p < kc16; p += 16)
          Transpose16(q.b + size_t(j0 + c0 + j) * q.ldb + p0 + p, q.ldb, d + size_t(p) * NR + j, NR);
      for (int j = 0; j < NR; j++) {
        const int p1 = j < cols16 ? kc16 : 0;
        if (j >= cols) {
          for (int p = p1; p < kc; p++) d[size_t(p) * NR + j] = 0.f;
          continue;
        }
        const float* src = q.b + size_t(j0 + c0 + j) * q.ldb + p0;
        for (int p = p1; p < kc; p++) d[size_t(p) * NR + j] = src[p];
      }
    }
  }
}

// Where the micro-kernel reads A: a packed micro-panel, or A itself (rows of row-major A, or
// columns of A stored transposed) when packing would cost more than it saves (see SgemmWith).
enum AFrom { kPacked, kRows, kColumns };

// c[kMR, NR] (row stride ldc) = A-panel x pb-panel (+ beta c): the register-blocked kernel. For
// kRows / kColumns, pa is A's element (row 0, depth 0) of the tile, lda its leading dimension, and
// rows past `rows` repeat the last one (computed, never stored).
template <int NV, AFrom AF>
__attribute__((always_inline)) inline void MicroKernel(int kc, const float* pa, size_t lda, int rows, const float* pb,
                                                       float* c, int ldc, float beta) {
  constexpr int NR = 16 * NV;
  __m512 acc[kMR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < kMR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
  const float* ap[kMR];  // kRows: row i's start
  size_t off[kMR];       // kColumns: row i's offset within a stored row of A
  for (int i = 0; i < kMR; i++) {
    off[i] = size_t(std::min(i, rows - 1));
    ap[i] = pa + off[i] * lda;
  }
  for (int p = 0; p < kc; p++) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = _mm512_load_ps(pb + 16 * v);
    const float* col = AF == kColumns ? pa + size_t(p) * lda : nullptr;
#pragma GCC unroll 8
    for (int i = 0; i < kMR; i++) {
      const float x = AF == kPacked ? pa[size_t(p) * kMR + i] : AF == kRows ? ap[i][p] : col[off[i]];
      const __m512 ai = _mm512_set1_ps(x);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    pb += NR;
  }
  const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
  for (int i = 0; i < kMR; i++) {
    float* ci = c + size_t(i) * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      __m512 r = acc[i][v];
      if (beta == 1.f) r = _mm512_add_ps(r, _mm512_loadu_ps(ci + 16 * v));
      else if (beta != 0.f) r = _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16 * v), r);
      _mm512_storeu_ps(ci + 16 * v, r);
    }
  }
}

// C[i0.., j0..] tile of rows x cols (at most kMR x NR) += packed panels, through a local tile
// when the tile is partial.
template <int NV, AFrom AF>
void Tile(int kc, const float* pa, size_t lda, const float* pb, float* c, int ldc, int rows, int cols, float beta) {
  constexpr int NR = 16 * NV;
  if (rows == kMR && cols == NR) {
    MicroKernel<NV, AF>(kc, pa, lda, rows, pb, c, ldc, beta);
    return;
  }
  alignas(64) float t[kMR * NR];
  MicroKernel<NV, AF>(kc, pa, lda, rows, pb, t, NR, 0.f);
  for (int i = 0; i < rows; i++) {
    float* ci = c + size_t(i) * ldc;
    const float* ti = t + i * NR;
    if (beta == 0.f) for (int j = 0; j < cols; j++) ci[j] = ti[j];
    else for (int j = 0; j < cols; j++) ci[j] = ti[j] + beta * ci[j];
  }
}

// One thread's share: rows [m0, m1) and columns [n0, n1) of C. The B panel (columns [n0, n1)) is
// packed by the `nt` threads of `bar` together into `bbuf`, each a contiguous run of its panels;
// A is packed into `abuf`, or read where it lies when `directA`.
template <int NV>
void Run(const Problem& q, int m0, int m1, int n0, int n1, float* bbuf, float* abuf, bool directA, SpinBarrier& bar,
         int t, int nt) {
  constexpr int NR = 16 * NV;
  for (int jc = n0; jc < n1; jc += kNC) {
    const int nc = std::min(kNC, n1 - jc), panels = (nc + NR - 1) / NR;
    const int kStep = DepthStep(q.k);
    for (int pc = 0; pc < q.k; pc += kStep) {
      const int kc = std::min(kStep, q.k - pc);
      const float beta = pc == 0 ? q.beta : 1.f;
      const int per = (panels + nt - 1) / nt;
      PackB<NV>(q, pc, kc, jc, nc, std::min(panels, t * per), std::min(panels, (t + 1) * per), bbuf);
      bar.Wait();
      for (int ic = m0; ic < m1; ic += kMC) {
        const int mc = std::min(kMC, m1 - ic);
        if (!directA) PackA(q, ic, mc, pc, kc, abuf);
        for (int jr = 0; jr < panels; jr++) {
          const int cols = std::min(NR, nc - jr * NR);
          const float* pb = bbuf + size_t(jr) * NR * kc;
          for (int ir = 0; ir < mc; ir += kMR) {
            float* c = q.c + size_t(ic + ir) * q.ldc + jc + jr * NR;
            const int rows = std::min(kMR, mc - ir);
            if (!directA)
              Tile<NV, kPacked>(kc, abuf + size_t(ir) * kc, 0, pb, c, q.ldc, rows, cols, beta);
            else if (q.tA)
              Tile<NV, kColumns>(kc, q.a + size_t(pc) * q.lda + ic + ir, size_t(q.lda), pb, c, q.ldc, rows, cols, beta);
            else
              Tile<NV, kRows>(kc, q.a + size_t(ic + ir) * q.lda + pc, size_t(q.lda), pb, c, q.ldc, rows, cols, beta);
          }
        }
      }
      bar.Wait();
    }
  }
}

#pragma GCC pop_options

}  // namespace

// The product with micro-tiles of kMR x 16 NV (NV = 2 or 3, chosen by Sgemm).
template <int NV>
void SgemmWith(const Problem& q, int threads) {
  constexpr int NR = 16 * NV;
  const int m = q.m, n = q.n, k = q.k;
  // One thread under ~4 MFLOP, where starting a thread costs more than it saves.
  const double flops = 2.0 * m * n * k;
  int nt = std::max(1, threads);
  if (flops < 4e6) nt = 1;
  Scratch& s = tScratch;
  if (int(s.a.size()) < nt) s.a.resize(size_t(nt));
  if (int(s.bt.size()) < nt) s.bt.resize(size_t(nt));
  // Buffers sized for this product's depth blocks (small for the attention's k = 64 products,
  // whose worker threads allocate their own).
  const size_t kStep = size_t(DepthStep(k));
  const size_t aSize = size_t(kMC) * kStep, bPanel = size_t((std::min(kNC, n) + NR - 1) / NR) * NR * kStep;
  // Rows split when every thread gets a useful share of them (B packed once, shared); otherwise
  // columns (each thread packs its own B columns and all of A, which is then small).
  const bool splitRows = m >= nt * 4 * kMR;
  // A block packed once serves every B panel of its columns. With up to 12 panels (n <= 576 with
  // 48-column panels: LoRA's rank-32 products, MoR's N r = 256 ones, the LM head's dY E) the
  // kernel reads A where it lies instead: the 8-row strip it works on stays in L1 across the
  // panels anyway, and packing it cost 4-10 % of those products (measured; wider ones do not gain).
  const bool directA = n <= 12 * NR;
  nt = std::min(nt, splitRows ? (m + kMR - 1) / kMR : (n + NR - 1) / NR);
  if (nt <= 1) {
    SpinBarrier one(1);
    Run<NV>(q, 0, m, 0, n, s.b.Get(bPanel), s.a[0].Get(aSize), directA, one, 0, 1);
    return;
  }
  // work(t) for t in [0, nt), each on its own thread (the caller's is t = 0): the row split's
  // barrier needs all of them running at once.
  auto onThreads = [nt](auto work) {
    morpar::Parallel(size_t(nt), nt, 1, [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; t++) work(int(t));
    }, 0);
  };
  if (splitRows) {
    float* bbuf = s.b.Get(bPanel);
    SpinBarrier bar(nt);
    const int units = (m + kMR - 1) / kMR, per = (units + nt - 1) / nt;
    for (int t = 0; t < nt; t++) s.a[size_t(t)].Get(aSize);
    auto work = [&](int t) {
      Run<NV>(q, std::min(m, t * per * kMR), std::min(m, (t + 1) * per * kMR), 0, n, bbuf, s.a[size_t(t)].p, directA, bar, t, nt);
    };
    onThreads(work);
    return;
  }
  // Column split: private B panels (one per thread, sized for its columns), allocated here so
  // that the workers only compute.
  const int units = (n + NR - 1) / NR, per = (units + nt - 1) / nt;
  std::vector<float*> bbufs(static_cast<size_t>(nt));
  for (int t = 0; t < nt; t++) {
    s.a[size_t(t)].Get(aSize);
    const int cols = std::max(0, std::min(n, (t + 1) * per * NR) - std::min(n, t * per * NR));
    bbufs[size_t(t)] = s.bt[size_t(t)].Get(size_t((std::min(kNC, cols) + NR - 1) / NR) * NR * kStep + 16);
  }
  auto work = [&](int t) {
    const int n0 = std::min(n, t * per * NR), n1 = std::min(n, (t + 1) * per * NR);
    if (n0 >= n1) return;
    float* bbuf = bbufs[size_t(t)];
    SpinBarrier one(1);
    Run<NV>(q, 0, m, n0, n1, bbuf, s.a[size_t(t)].p, directA, one, 0, 1);
  };
  onThreads(work);
}

bool Available() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  return ok;
}

void Sgemm(bool tA, bool tB, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float beta,
           float* c, int ldc, int threads) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (int i = 0; i < m; i++) {
      float* ci = c + size_t(i) * ldc;
      if (beta == 0.f) std::memset(ci, 0, sizeof(float) * size_t(n));
      else for (int j = 0; j < n; j++) ci[j] *= beta;
    }
    return;
  }
  const Problem q{tA, tB, m, n, k, a, lda, b, ldb, beta, c, ldc};
  // 48-column micro-tiles, or 32 where that pads fewer columns (n = 32, 256: LoRA and MoR ranks).
  if ((n + 31) / 32 * 32 < (n + 47) / 48 * 48) SgemmWith<2>(q, threads);
  else SgemmWith<3>(q, threads);
}

}  // namespace morgemm

#else  // no AVX-512 build: OpenBLAS serves every product

namespace morgemm {
bool Available() { return false; }
void Sgemm(bool, bool, int, int, int, const float*, int, const float*, int, float, float*, int, int) {}
}  // namespace morgemm

#endif
