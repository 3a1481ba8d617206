// The addon's own AVX-512 float32 product (mor_sgemm.cc), used instead of OpenBLAS's sgemm on
// CPUs with AVX-512 (see MorGemm in mor_blas.cc).
#pragma once

namespace morgemm {

// Whether this CPU (and this build) can run Sgemm: x86-64 with AVX-512F, compiled by GCC.
bool Available();

// C[m,n] = op(A) op(B) + beta C, row-major with leading dimensions; op(A) is [m,k], op(B) is
// [k,n] (tA: A is stored [k,m]; tB: B is stored [n,k]). Runs on up to `threads` threads. C is
// not read when beta is 0. Call only when Available().
void Sgemm(bool tA, bool tB, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float beta,
           float* c, int ldc, int threads);

}  // namespace morgemm
