// The addon's one float32 product on raw pointers (mor_blas.cc), shared by the heap kernel and
// the weight store so both paths compute a product the same way (bit-identical results).
#pragma once

// C[m,n] = op(A) op(B) + beta C, row-major; op(A) is [m,k], op(B) is [k,n].
void MorGemm(const float* a, const float* b, float* c, int m, int n, int k, bool tA, bool tB, float beta);

// The same with leading dimensions (elements between rows of A, B and C as stored).
void MorGemmLd(bool tA, bool tB, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float beta,
               float* c, int ldc);
