// Fused cross-entropy over rows of logits (mor_xent.cc), registered on the addon by mor_blas.cc.
#pragma once
#include <napi.h>

// Adds xentForward and xentBackward to the addon's exports.
void RegisterXentKernels(Napi::Env env, Napi::Object exports);
