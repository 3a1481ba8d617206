// The native weight store (mor_store.cc), registered on the addon by mor_blas.cc.
#pragma once
#include <napi.h>

// Adds mapFile, unmapFile, storedGemm, storedGather, storedRead and storedNonFinite to the exports.
void RegisterStoreKernels(Napi::Env env, Napi::Object exports);
