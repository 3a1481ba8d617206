// What the heap kernels (cross-entropy, attention, RMSNorm, SwiGLU, rope) share: reading their numeric
// arguments, addressing operands on the tfjs-wasm heap by byte offset with a bounds check,
// refusing bad calls with a JS TypeError, and the one-time AVX2 + FMA test.
#pragma once
#include <napi.h>

#include <cstddef>
#include <string>

namespace morheap {

inline double Num(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().DoubleValue(); }

inline bool HasAvx2() {
#if defined(__x86_64__)
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

// The wasm heap of one call; `at` gives a typed pointer to `count` elements at byte offset `off`,
// or null (and clears `ok`) when they are not inside the heap or misaligned.
struct Heap {
  char* base;
  double bytes;
  bool ok = true;
  template <typename T>
  T* at(double off, double count) {
    if (off < 0 || count < 0 || off + sizeof(T) * count > bytes || size_t(off) % sizeof(T) != 0) {
      ok = false;
      return nullptr;
    }
    return reinterpret_cast<T*>(base + size_t(off));
  }
};

// The heap of a call whose first argument is the wasm memory's ArrayBuffer.
inline Heap HeapOf(const Napi::CallbackInfo& info) {
  Napi::ArrayBuffer buf = info[0].As<Napi::ArrayBuffer>();
  return Heap{static_cast<char*>(buf.Data()), double(buf.ByteLength())};
}

inline Napi::Value Fail(Napi::Env env, const std::string& msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

// True when the call has `n` arguments, the first the heap's ArrayBuffer and the rest numbers.
inline bool ArgsOk(const Napi::CallbackInfo& info, size_t n) {
  if (info.Length() != n || !info[0].IsArrayBuffer()) return false;
  for (size_t i = 1; i < n; i++)
    if (!info[i].IsNumber()) return false;
  return true;
}

}  // namespace morheap
