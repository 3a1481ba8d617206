// The native weight store: frozen base weights kept OUTSIDE the tfjs-wasm heap (which is
// 32-bit, 4 GiB for everything), memory-mapped from the safetensors files and left in their
// file dtype (F32, F16 or BF16). Products with them convert the weight to float32 while
// packing it for sgemm; the activations come from, and go to, the wasm heap.
//
// Files are mapped private and copy-on-write, so nothing written through a mapping reaches
// the file; each mapping is known to JavaScript only by an integer handle (no ArrayBuffer
// over it, so no 4 GiB typed-array limit and no way for script code to write to it).
#include "mor_store.h"
#include "mor_gemm.h"

#include "mor_convert.h"
#include "mor_parallel.h"

#include <cblas.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

struct Mapping {
  char* data;
  size_t size;
};

std::unordered_map<int, Mapping> mappings;
int nextHandle = 1;

using morstore::DtypeBytes;
using morstore::kBF16;
using morstore::kF16;
using morstore::kF32;

// A reusable float32 scratch buffer for converted weight blocks (grows, never shrinks). It
// remembers which whole matrix it holds: the chunked loss multiplies by the output head once per
// chunk and direction, and must not convert the head (up to 640 MB as float32) every time.
// Handles are never reused and mapped weights never change, so the key identifies the values.
struct Scratch {
  std::vector<float> buf;
  int handle = 0;  // 0: holds no whole matrix
  double off = 0;
  int dtype = 0;
  size_t rows = 0, cols = 0;
};
Scratch scratch;

// scratch.buf with room for n floats; forgets the matrix it held.
float* ScratchFor(size_t n) {
  if (scratch.buf.size() < n) {
    scratch.buf.clear();
    scratch.buf.shrink_to_fit();
    scratch.buf.resize(n);
  }
  scratch.handle = 0;
  return scratch.buf.data();
}

// Largest float32 block converted at once: a whole matrix up to this size (so the product is
// one sgemm, the same call as for a heap tensor), else row blocks of at most this size.
// 640 MB holds the largest head of the supported model families below 8B (Qwen2's
// 151,936 x 896, LLaMA-2's 32,000 x 4,096) whole.
constexpr size_t kMaxBlockFloats = size_t(160) << 20;

// Products with at most this many rows of x convert W on the fly (GemvRows) instead of
// converting it whole for sgemm: generation's one-token steps.
constexpr size_t kGemvMaxRows = 8;

double Num(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().DoubleValue(); }

Napi::Value Fail(Napi::Env env, const std::string& msg) {
  Napi::Error::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

// The weight [rows, cols] at `off` in mapping `handle`, checked against the mapping's size.
const char* WeightPtr(Napi::Env env, int handle, double off, int dtype, double rows, double cols) {
  auto it = mappings.find(handle);
  if (it == mappings.end()) {
    Fail(env, "weight store: unknown or closed file handle");
    return nullptr;
  }
  if (dtype < kF32 || dtype > kBF16 || off < 0 || rows < 0 || cols < 0 ||
      off + rows * cols * double(DtypeBytes(dtype)) > double(it->second.size)) {
    Fail(env, "weight store: tensor outside its file");
    return nullptr;
  }
  return it->second.data + size_t(off);
}

bool HeapSpan(Napi::Env env, Napi::ArrayBuffer& heap, double off, double floats) {
  if (off < 0 || off + 4.0 * floats > double(heap.ByteLength())) {
    Fail(env, "weight store: operand outside the wasm heap");
    return false;
  }
  return true;
}

// mapFile(path) -> [handle, size]
Napi::Value MapFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(env, "cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return Fail(env, "cannot stat " + path);
  }
  const size_t size = size_t(st.st_size);
  void* p = size > 0 ? mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0) : nullptr;
  close(fd);
  if (p == MAP_FAILED) return Fail(env, "cannot map " + path + ": " + std::strerror(errno));
  const int handle = nextHandle++;
  mappings[handle] = {static_cast<char*>(p), size};
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(uint32_t(0), Napi::Number::New(env, handle));
  out.Set(uint32_t(1), Napi::Number::New(env, double(size)));
  return out;
}

// unmapFile(handle)
Napi::Value UnmapFile(const Napi::CallbackInfo& info) {
  auto it = mappings.find(int(Num(info, 0)));
  if (it != mappings.end()) {
    if (it->second.data) munmap(it->second.data, it->second.size);
    mappings.erase(it);
  }
  return info.Env().Undefined();
}

// storedGemm(heap, handle, wOff, dtype, rows, cols, m, transposeW, xOff, yOff, blockFloats)
//   transposeW: y[m, rows] = x[m, cols] W^T   (forward of a linear layer)
//   otherwise:  y[m, cols] = x[m, rows] W     (its input gradient)
//   blockFloats: largest converted block (0: kMaxBlockFloats; tests use small blocks)
Napi::Value StoredGemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 11 || !info[0].IsArrayBuffer()) return Fail(env, "storedGemm: bad arguments");
  Napi::ArrayBuffer heap = info[0].As<Napi::ArrayBuffer>();
  const int dtype = int(Num(info, 3));
  const size_t rows = size_t(Num(info, 4)), cols = size_t(Num(info, 5)), m = size_t(Num(info, 6));
  const bool tW = info[7].ToBoolean();
  const double xOff = Num(info, 8), yOff = Num(info, 9);
  const char* w = WeightPtr(env, int(Num(info, 1)), Num(info, 2), dtype, double(rows), double(cols));
  if (!w) return env.Undefined();
  const size_t kIn = tW ? cols : rows, nOut = tW ? rows : cols;
  if (!HeapSpan(env, heap, xOff, double(m) * kIn) || !HeapSpan(env, heap, yOff, double(m) * nOut)) return env.Undefined();
  char* base = static_cast<char*>(heap.Data());
  const float* x = reinterpret_cast<const float*>(base + size_t(xOff));
  float* y = reinterpret_cast<float*>(base + size_t(yOff));
  if (m == 0 || nOut == 0) return env.Undefined();
  if (kIn == 0) {
    std::memset(y, 0, 4 * m * nOut);
    return env.Undefined();
  }
  if (dtype == kF32) {
    // Nothing to convert: the heap kernel's product on the mapped matrix, so results equal a
    // heap-loaded model's bit for bit.
    const float* wf = reinterpret_cast<const float*>(w);
    if (tW)
      MorGemm(x, wf, y, int(m), int(rows), int(cols), false, true, 0.0f);
    else
      MorGemm(x, wf, y, int(m), int(cols), int(rows), false, false, 0.0f);
    return env.Undefined();
  }
  if (tW && m <= kGemvMaxRows) {
    morstore::GemvRows(x, m, cols, w, dtype, rows, y, rows, morpar::BlasThreads());
    return env.Undefined();
  }
  const size_t blockFloats = Num(info, 10) > 0 ? size_t(Num(info, 10)) : kMaxBlockFloats;
  const size_t blockRows = std::max<size_t>(1, std::min(rows, blockFloats / std::max<size_t>(1, cols)));
  for (size_t r0 = 0; r0 < rows; r0 += blockRows) {
    const size_t nr = std::min(blockRows, rows - r0);
    const char* src = w + r0 * cols * DtypeBytes(dtype);
    const float* wb;
    const int handle = int(Num(info, 1));
    const double off = Num(info, 2);
    if (nr == rows && scratch.handle == handle && scratch.off == off && scratch.dtype == dtype &&
               scratch.rows == rows && scratch.cols == cols) {
      wb = scratch.buf.data();  // this whole matrix was the last one converted
    } else {
      float* s = ScratchFor(nr * cols);
      morstore::ToF32(src, dtype, nr * cols, s, morpar::BlasThreads());
      if (nr == rows) {
        scratch.handle = handle;
        scratch.off = off;
        scratch.dtype = dtype;
        scratch.rows = rows;
        scratch.cols = cols;
      }
      wb = s;
    }
    if (tW) {
      // y[:, r0:r0+nr] = x [m, cols] * wb[nr, cols]^T
      MorGemmLd(false, true, int(m), int(nr), int(cols), x, int(cols), wb, int(cols), 0.0f, y + r0, int(rows));
    } else {
      // y[m, cols] (+)= x[:, r0:r0+nr] * wb[nr, cols]
      MorGemmLd(false, false, int(m), int(cols), int(nr), x + r0, int(rows), wb, int(cols), r0 == 0 ? 0.0f : 1.0f, y,
                int(cols));
    }
  }
  return env.Undefined();
}

// storedGather(heap, handle, wOff, dtype, rows, cols, idsOff, count, outOff): out[i] = W[ids[i]]
Napi::Value StoredGather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 9 || !info[0].IsArrayBuffer()) return Fail(env, "storedGather: bad arguments");
  Napi::ArrayBuffer heap = info[0].As<Napi::ArrayBuffer>();
  const int dtype = int(Num(info, 3));
  const size_t rows = size_t(Num(info, 4)), cols = size_t(Num(info, 5)), count = size_t(Num(info, 7));
  const double idsOff = Num(info, 6), outOff = Num(info, 8);
  const char* w = WeightPtr(env, int(Num(info, 1)), Num(info, 2), dtype, double(rows), double(cols));
  if (!w || !HeapSpan(env, heap, idsOff, double(count)) || !HeapSpan(env, heap, outOff, double(count) * cols))
    return env.Undefined();
  char* base = static_cast<char*>(heap.Data());
  const int32_t* ids = reinterpret_cast<const int32_t*>(base + size_t(idsOff));
  float* out = reinterpret_cast<float*>(base + size_t(outOff));
  for (size_t i = 0; i < count; i++) {
    if (ids[i] < 0 || size_t(ids[i]) >= rows) return Fail(env, "token id " + std::to_string(ids[i]) + " outside the vocabulary (" + std::to_string(rows) + ")");
    morstore::ToF32(w + size_t(ids[i]) * cols * DtypeBytes(dtype), dtype, cols, out + i * cols, 1);
  }
  return env.Undefined();
}

// storedRead(handle, off, dtype, count, dst: Float32Array, dstAt): convert a span to float32.
Napi::Value StoredRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 6 || !info[4].IsTypedArray()) return Fail(env, "storedRead: bad arguments");
  const int dtype = int(Num(info, 2));
  const size_t count = size_t(Num(info, 3)), at = size_t(Num(info, 5));
  auto dst = info[4].As<Napi::Float32Array>();
  if (at + count > dst.ElementLength()) return Fail(env, "storedRead: destination too small");
  const char* w = WeightPtr(env, int(Num(info, 0)), Num(info, 1), dtype, 1, double(count));
  if (!w) return env.Undefined();
  morstore::ToF32(w, dtype, count, dst.Data() + at, morpar::BlasThreads());
  return env.Undefined();
}

// storedNonFinite(handle, off, dtype, count) -> how many values are NaN or +-Inf.
Napi::Value StoredNonFinite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int dtype = int(Num(info, 2));
  const size_t count = size_t(Num(info, 3));
  const char* w = WeightPtr(env, int(Num(info, 0)), Num(info, 1), dtype, 1, double(count));
  if (!w) return env.Undefined();
  size_t bad = 0;
  if (dtype == kF32) {
    const uint32_t* s = reinterpret_cast<const uint32_t*>(w);
    for (size_t i = 0; i < count; i++) bad += (s[i] & 0x7f800000u) == 0x7f800000u;
  } else {
    // BF16: exponent bits 0x7f80; F16: 0x7c00. All ones = Inf or NaN.
    const uint16_t mask = dtype == kBF16 ? 0x7f80 : 0x7c00;
    const uint16_t* s = reinterpret_cast<const uint16_t*>(w);
    for (size_t i = 0; i < count; i++) bad += (s[i] & mask) == mask;
  }
  return Napi::Number::New(env, double(bad));
}

}  // namespace

void RegisterStoreKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("mapFile", Napi::Function::New(env, MapFile));
  exports.Set("unmapFile", Napi::Function::New(env, UnmapFile));
  exports.Set("storedGemm", Napi::Function::New(env, StoredGemm));
  exports.Set("storedGather", Napi::Function::New(env, StoredGather));
  exports.Set("storedRead", Napi::Function::New(env, StoredRead));
  exports.Set("storedNonFinite", Napi::Function::New(env, StoredNonFinite));
}
