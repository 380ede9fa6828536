// Placeholder until the kernels bindings land; keeps the module's registration list complete.
#include "addon/registry.h"

namespace sppo::addon {

void RegisterKernels(Napi::Env, Napi::Object) {}

}  // namespace sppo::addon
