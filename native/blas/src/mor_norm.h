// RMSNorm forward and backward over rows (mor_norm.cc), registered on the addon by mor_blas.cc.
#pragma once
#include <napi.h>

// Adds rmsNormForward and rmsNormBackward to the addon's exports.
void RegisterNormKernels(Napi::Env env, Napi::Object exports);
