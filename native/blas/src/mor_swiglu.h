// SwiGLU activation forward and backward (mor_swiglu.cc), registered on the addon by mor_blas.cc.
#pragma once
#include <napi.h>

// Adds swigluForward and swigluBackward to the addon's exports.
void RegisterSwigluKernels(Napi::Env env, Napi::Object exports);
