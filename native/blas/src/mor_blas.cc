// Native OpenBLAS sgemm for mor-peft: row-major single-precision products that read and
// write either the tfjs-wasm heap (an ArrayBuffer plus byte offsets, no copies) or plain
// Float32Arrays (the benchmark ceiling). Loaded by src/backend/blas.ts. The MoR
// rank-expansion kernels live in mor_rank.cc.
#include <napi.h>
#include <cblas.h>

#include "mor_gemm.h"
#include "mor_parallel.h"
#include "mor_sgemm.h"
#include "mor_morlayer.h"
#include "mor_norm.h"
#include "mor_optim.h"
#include "mor_rank.h"
#include "mor_rope.h"
#include "mor_store.h"
#include "mor_swiglu.h"
#include "mor_xent.h"
#include "mor_attention.h"
#include <algorithm>
#include <cstring>

namespace {

// Rows up to which a product runs as one sgemv per row (see MorGemm).
constexpr int kGemvMaxRows = 2;

// Whether products of more rows run on the addon's own AVX-512 sgemm (mor_sgemm.cc) rather than
// OpenBLAS's: on by default where the CPU has AVX-512 (setSgemm switches it).
bool gOwnSgemm = morgemm::Available();

}  // namespace

void MorGemm(const float* a, const float* b, float* c, int m, int n, int k, bool tA, bool tB, float beta) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (beta == 0.0f) std::memset(c, 0, sizeof(float) * size_t(m) * size_t(n));
    return;
  }
  if (m <= kGemvMaxRows) {
    // Few rows (decoding steps): one matrix-vector product per row. OpenBLAS 0.3.21 runs sgemm
    // with so few rows through its packing path (no forward to gemv before 0.3.27): [1, 576] x
    // [576, 1536] took 0.65 ms at m = 2 against 0.18 ms per row with sgemv.
    // Row r of op(A): k values from a + r (stride m) when A is transposed, else contiguous.
    for (int r = 0; r < m; r++) {
      const float* x = tA ? a + r : a + size_t(r) * k;
      const int incx = tA ? m : 1;
      if (tB)  // B [n, k]: c_r = B x
        cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, b, std::max(1, k), x, incx, beta, c + size_t(r) * n, 1);
      else  // B [k, n]: c_r = Bᵀ x
        cblas_sgemv(CblasRowMajor, CblasTrans, k, n, 1.0f, b, std::max(1, n), x, incx, beta, c + size_t(r) * n, 1);
    }
    return;
  }
  MorGemmLd(tA, tB, m, n, k, a, std::max(1, tA ? m : k), b, std::max(1, tB ? k : n), beta, c, std::max(1, n));
}

void MorGemmLd(bool tA, bool tB, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float beta,
               float* c, int ldc) {
  if (gOwnSgemm) {
    morgemm::Sgemm(tA, tB, m, n, k, a, lda, b, ldb, beta, c, ldc, morpar::BlasThreads());
    return;
  }
  cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda,
              b, ldb, beta, c, ldc);
}

namespace {

double Num(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::Number>().DoubleValue();
}

Napi::Value Fail(Napi::Env env, const char* msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

// gemmHeap(heap: ArrayBuffer, batch, m, n, k, tA, tB, aOff, bOff, cOff, aStride, bStride,
//          biasOff, biasLen, relu): offsets in bytes, strides in elements (0 = broadcast),
// biasLen 0 = no bias, 1 = scalar, n = per column.
Napi::Value GemmHeap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 15 || !info[0].IsArrayBuffer()) return Fail(env, "gemmHeap: bad arguments");
  Napi::ArrayBuffer heap = info[0].As<Napi::ArrayBuffer>();
  char* base = static_cast<char*>(heap.Data());
  const double bytes = double(heap.ByteLength());
  const int batch = int(Num(info, 1)), m = int(Num(info, 2)), n = int(Num(info, 3)), k = int(Num(info, 4));
  const bool tA = info[5].ToBoolean(), tB = info[6].ToBoolean(), relu = info[14].ToBoolean();
  const double aOff = Num(info, 7), bOff = Num(info, 8), cOff = Num(info, 9);
  const double aStride = Num(info, 10), bStride = Num(info, 11), biasOff = Num(info, 12);
  const int biasLen = int(Num(info, 13));
  if (batch < 0 || m < 0 || n < 0 || k < 0 || aOff < 0 || bOff < 0 || cOff < 0 || aStride < 0 || bStride < 0)
    return Fail(env, "gemmHeap: negative argument");
  // Bounds checks, so a bad call throws instead of corrupting memory.
  const double last = batch > 0 ? batch - 1 : 0;
  if (aOff + 4.0 * (last * aStride + double(m) * k) > bytes ||
      bOff + 4.0 * (last * bStride + double(k) * n) > bytes ||
      cOff + 4.0 * double(batch) * m * n > bytes || (biasLen > 0 && biasOff + 4.0 * biasLen > bytes))
    return Fail(env, "gemmHeap: operand outside the heap");
  const float* bias = reinterpret_cast<const float*>(base + size_t(biasOff));
  for (int i = 0; i < batch; i++) {
    const float* a = reinterpret_cast<const float*>(base + size_t(aOff)) + size_t(i * aStride);
    const float* b = reinterpret_cast<const float*>(base + size_t(bOff)) + size_t(i * bStride);
    float* c = reinterpret_cast<float*>(base + size_t(cOff)) + size_t(i) * m * n;
    if (biasLen > 0) {
      for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) c[size_t(r) * n + j] = bias[biasLen == 1 ? 0 : j];
    }
    MorGemm(a, b, c, m, n, k, tA, tB, biasLen > 0 ? 1.0f : 0.0f);
    if (relu)
      for (size_t j = 0; j < size_t(m) * n; j++) c[j] = std::max(c[j], 0.0f);
  }
  return env.Undefined();
}

// sgemm(a, b, c: Float32Array, m, n, k, tA, tB): c = op(a) op(b), the raw ceiling.
Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 8 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsTypedArray())
    return Fail(env, "sgemm: bad arguments");
  auto a = info[0].As<Napi::Float32Array>(), b = info[1].As<Napi::Float32Array>();
  auto c = info[2].As<Napi::Float32Array>();
  const int m = int(Num(info, 3)), n = int(Num(info, 4)), k = int(Num(info, 5));
  if (m < 0 || n < 0 || k < 0 || a.ElementLength() < size_t(m) * k || b.ElementLength() < size_t(k) * n ||
      c.ElementLength() < size_t(m) * n)
    return Fail(env, "sgemm: array too small for the shape");
  MorGemm(a.Data(), b.Data(), c.Data(), m, n, k, info[6].ToBoolean(), info[7].ToBoolean(), 0.0f);
  return env.Undefined();
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  openblas_set_num_threads(std::max(1, int(Num(info, 0))));
  return Napi::Number::New(info.Env(), openblas_get_num_threads());
}

Napi::Value GetThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), openblas_get_num_threads());
}

// setSgemm(own: boolean): the addon's AVX-512 sgemm (when the CPU has it) or OpenBLAS's for
// products of more than kGemvMaxRows rows; returns whether the own kernel is now in use.
Napi::Value SetSgemm(const Napi::CallbackInfo& info) {
  gOwnSgemm = info.Length() > 0 && info[0].ToBoolean() && morgemm::Available();
  return Napi::Boolean::New(info.Env(), gOwnSgemm);
}

Napi::Value OwnSgemm(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), gOwnSgemm); }

Napi::Value OwnSgemmAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), morgemm::Available());
}

Napi::Value Config(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), std::string(openblas_get_config()) + " " + openblas_get_corename());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("gemmHeap", Napi::Function::New(env, GemmHeap));
  exports.Set("sgemm", Napi::Function::New(env, Sgemm));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("getThreads", Napi::Function::New(env, GetThreads));
  exports.Set("config", Napi::Function::New(env, Config));
  exports.Set("setSgemm", Napi::Function::New(env, SetSgemm));
  exports.Set("ownSgemm", Napi::Function::New(env, OwnSgemm));
  exports.Set("ownSgemmAvailable", Napi::Function::New(env, OwnSgemmAvailable));
  RegisterRankKernels(env, exports);
  RegisterMorLayerKernels(env, exports);
  RegisterStoreKernels(env, exports);
  RegisterXentKernels(env, exports);
  RegisterAttentionKernels(env, exports);
  RegisterNormKernels(env, exports);
  RegisterSwigluKernels(env, exports);
  RegisterRopeKernels(env, exports);
  RegisterOptimKernels(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(mor_blas, Init)
