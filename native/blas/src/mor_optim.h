// The optimizer's fused passes (mor_optim.cc), registered on the addon by mor_blas.cc.
#pragma once
#include <napi.h>

// Adds adamwStep and tensorStats to the addon's exports.
void RegisterOptimKernels(Napi::Env env, Napi::Object exports);
