// A whole MoR adapter forward and backward in one call each (mor_morlayer.cc).
#pragma once
#include <napi.h>

// Adds morLayerForward and morLayerBackward to the addon's exports.
void RegisterMorLayerKernels(Napi::Env env, Napi::Object exports);
