// Rotary position embedding forward and backward (mor_rope.cc), registered on the addon by mor_blas.cc.
#pragma once
#include <napi.h>

// Adds ropeForward and ropeBackward to the addon's exports.
void RegisterRopeKernels(Napi::Env env, Napi::Object exports);
