// Fused causal attention with grouped-query heads (mor_attention.cc), registered on the addon by
// mor_blas.cc.
#pragma once
#include <napi.h>

// Adds attnForward and attnBackward to the addon's exports.
void RegisterAttentionKernels(Napi::Env env, Napi::Object exports);
