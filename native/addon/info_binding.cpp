// buildInfo() and cudaDevices(): what this build has and which GPUs it sees.
#include "addon/registry.h"
#include "core/device.h"
#include "train/optimizer_config.h"

namespace sppo::addon {

namespace {

Napi::Value BuildInfoJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BuildInfo b = build_info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("cuda", b.cuda);
  o.Set("cudaArchs", b.cuda_archs);
  o.Set("cublasLt", b.cublaslt);
  o.Set("cublasLtDetail", b.cublaslt_detail);
  o.Set("nccl", b.nccl);
  o.Set("ncclVersion", b.nccl_version);
  o.Set("ncclReason", b.nccl_reason);
  o.Set("openmp", b.openmp);
  o.Set("cpuThreads", b.cpu_threads);
  return o;
}

Napi::Value CudaDevicesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string why;
  auto devs = cuda_devices(&why);
  Napi::Array arr = Napi::Array::New(env, devs.size());
  for (size_t i = 0; i < devs.size(); ++i) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("index", devs[i].index);
    d.Set("name", devs[i].name);
    d.Set("computeCapability", std::to_string(devs[i].major) + "." + std::to_string(devs[i].minor));
    d.Set("totalMemory", static_cast<double>(devs[i].total_memory));
    arr.Set(static_cast<uint32_t>(i), d);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("devices", arr);
  o.Set("reason", why);
  return o;
}

}  // namespace

void RegisterInfo(Napi::Env env, Napi::Object exports) {
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfoJs, "buildInfo"));
  exports.Set("cudaDevices", Napi::Function::New(env, CudaDevicesJs, "cudaDevices"));
  Napi::Array kinds = Napi::Array::New(env);
  uint32_t i = 0;
  for (OptimizerKind k : kOptimizerKinds) kinds.Set(i++, optimizer_kind_name(k));
  exports.Set("optimizerKinds", kinds);
}

}  // namespace sppo::addon
