// MoR rank-expansion kernels (mor_rank.cc), registered on the addon by mor_blas.cc. The loops
// are also called directly by the fused MoR layer (mor_morlayer.cc). Shapes: T tokens, N experts,
// rank r, dOut output features; g has gRows = 1 (shared by every token) or T rows.
#pragma once
#include <napi.h>

namespace morrank {

// z [T, N r] = g[t, i] * om[i, k] * h[t, k].
void Z(int T, int N, int r, int gRows, const float* h, const float* g, const float* om, float* z);
// bexp [dOut, N r] = omegaB[i, j] * b[j, k].
void Bexp(int N, int r, int dOut, const float* b, const float* omegaB, float* out, int threads);
// Gradients of Z: dh [T, r], dg [gRows, N], dom [N, r].
void ZGrad(int T, int N, int r, int gRows, const float* dz, const float* h, const float* g, const float* om, float* dh,
           float* dg, float* dom);
// Gradients of Bexp: db [dOut, r], domegaB [N, dOut].
void BexpGrad(int N, int r, int dOut, const float* dbexp, const float* b, const float* omegaB, float* db, float* domegaB,
              int threads);

}  // namespace morrank

// Adds rankZ, rankBexp, rankZGrad and rankBexpGrad to the addon's exports.
void RegisterRankKernels(Napi::Env env, Napi::Object exports);
