#include "addon/registry.h"

static Napi::Object InitSppoNative(Napi::Env env, Napi::Object exports) {
  sppo::addon::RegisterInfo(env, exports);
  sppo::addon::RegisterKernels(env, exports);
  sppo::addon::RegisterModel(env, exports);
  sppo::addon::RegisterPairRm(env, exports);
  sppo::addon::RegisterTrainer(env, exports);
  sppo::addon::RegisterCommunicator(env, exports);
  sppo::addon::RegisterMemoryPlan(env, exports);
  return exports;
}

NODE_API_MODULE(sppo_native, InitSppoNative)
