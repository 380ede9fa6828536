// Small helpers shared by the addon's bindings: turning native exceptions into JS errors, and
// the loss summary object that both the sppoLoss kernel and Model.accumulate return.
#pragma once
#include <napi.h>

#include <exception>
#include <functional>

#include "kernels/sppo_loss.h"

namespace sppo::addon {

// Runs `body` and turns a C++ exception (sppo::Error from synchronous checks) into a JS Error;
// node-addon-api only forwards Napi::Error by itself, anything else would terminate the process.
inline Napi::Value Guarded(Napi::Env env, const std::function<Napi::Value()>& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// Sets loss, rewardsChosen, rewardsRejected, margins and accuracy on `o`.
inline void SetLossSummary(Napi::Object o, const LossSummary& s) {
  o.Set("loss", s.loss);
  o.Set("rewardsChosen", s.rewards_chosen);
  o.Set("rewardsRejected", s.rewards_rejected);
  o.Set("margins", s.margins);
  o.Set("accuracy", s.accuracy);
}

}  // namespace sppo::addon
