// The non-template part of addon/arena_methods.h.
#include "addon/arena_methods.h"

namespace sppo::addon {

Napi::Array ParamsToJs(Napi::Env env, const std::vector<ParamSpec>& ps) {
  Napi::Array out = Napi::Array::New(env, ps.size());
  for (size_t i = 0; i < ps.size(); ++i) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("name", ps[i].name);
    Napi::Array shape = Napi::Array::New(env, ps[i].shape.size());
    for (size_t d = 0; d < ps[i].shape.size(); ++d) shape.Set(d, Napi::Number::New(env, static_cast<double>(ps[i].shape[d])));
    p.Set("shape", shape);
    p.Set("offset", static_cast<double>(ps[i].offset));
    out.Set(i, p);
  }
  return out;
}

}  // namespace sppo::addon
