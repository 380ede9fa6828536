// Placeholder until the model bindings land; keeps the module's registration list complete.
#include "addon/registry.h"

namespace sppo::addon {

void RegisterModel(Napi::Env, Napi::Object) {}

}  // namespace sppo::addon
