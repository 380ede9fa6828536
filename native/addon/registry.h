// Each binding file registers its functions on the module's exports; addon.cpp calls them all.
// This is the only directory that includes napi.h.
#pragma once
#include <napi.h>

namespace sppo::addon {

void RegisterInfo(Napi::Env env, Napi::Object exports);
void RegisterKernels(Napi::Env env, Napi::Object exports);
void RegisterModel(Napi::Env env, Napi::Object exports);
void RegisterPairRm(Napi::Env env, Napi::Object exports);
void RegisterTrainer(Napi::Env env, Napi::Object exports);
void RegisterCommunicator(Napi::Env env, Napi::Object exports);
void RegisterMemoryPlan(Napi::Env env, Napi::Object exports);

}  // namespace sppo::addon
