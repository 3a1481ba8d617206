// MoR rank-expansion kernels (mor_rank.cc), registered on the addon by mor_blas.cc.
#pragma once
#include <napi.h>

// Adds rankZ, rankBexp, rankZGrad and rankBexpGrad to the addon's exports.
void RegisterRankKernels(Napi::Env env, Napi::Object exports);
