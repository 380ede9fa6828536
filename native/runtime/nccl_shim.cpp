// The NCCL loader (runtime/nccl_shim.h).
#include "runtime/nccl_shim.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <sstream>

#include "core/error.h"

namespace sppo::nccl {
namespace {

struct Loaded {
  Api api;
  std::string error;  // empty when loaded
};

template <typename F>
bool bind(void* lib, const char* name, F& out, std::string& error) {
  out = reinterpret_cast<F>(dlsym(lib, name));
  if (!out && error.empty()) error = std::string("the NCCL library has no symbol ") + name + " (too old? NCCL >= 2.12 is needed)";
  return out != nullptr;
}

const Loaded& loaded() {
  static const Loaded l = [] {
    Loaded r;
    const char* explicit_path = std::getenv("SPPO_NCCL_LIBRARY");
    const std::string file = explicit_path && *explicit_path ? explicit_path : "libnccl.so.2";
    void* lib = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* e = dlerror();
      r.error = "NCCL is not available: " + std::string(e ? e : ("cannot open " + file).c_str()) +
                " (install NCCL 2, e.g. Debian/Ubuntu libnccl2 or the nvidia-nccl-cu12 wheel, and put its lib folder on "
                "LD_LIBRARY_PATH, or set SPPO_NCCL_LIBRARY to the file)";
      return r;
    }
    Api& a = r.api;
    bind(lib, "ncclGetVersion", a.GetVersion, r.error);
    bind(lib, "ncclGetUniqueId", a.GetUniqueId, r.error);
    bind(lib, "ncclCommInitRank", a.CommInitRank, r.error);
    bind(lib, "ncclAllReduce", a.AllReduce, r.error);
    bind(lib, "ncclReduceScatter", a.ReduceScatter, r.error);
    bind(lib, "ncclAllGather", a.AllGather, r.error);
    bind(lib, "ncclBroadcast", a.Broadcast, r.error);
    bind(lib, "ncclGroupStart", a.GroupStart, r.error);
    bind(lib, "ncclGroupEnd", a.GroupEnd, r.error);
    bind(lib, "ncclCommGetAsyncError", a.CommGetAsyncError, r.error);
    bind(lib, "ncclCommAbort", a.CommAbort, r.error);
    bind(lib, "ncclCommDestroy", a.CommDestroy, r.error);
    bind(lib, "ncclGetErrorString", a.GetErrorString, r.error);
    if (r.error.empty() && a.GetVersion(&a.version) != Success) r.error = "ncclGetVersion failed";
    if (r.error.empty() && a.version < 21200)
      r.error = "NCCL " + version_string(a.version) + " is too old: sppo-native needs NCCL >= 2.12";
    if (!r.error.empty()) r.error = file + ": " + r.error;
    return r;
  }();
  return l;
}

}  // namespace

std::string version_string(int code) {
  // Codes since 2.9 are major * 10000 + minor * 100 + patch; older ones major * 1000 + minor * 100 + patch.
  std::ostringstream os;
  if (code >= 10000) os << code / 10000 << "." << (code % 10000) / 100 << "." << code % 100;
  else os << code / 1000 << "." << (code % 1000) / 100 << "." << code % 100;
  return os.str();
}

const Api& api() {
  const Loaded& l = loaded();
  if (!l.error.empty()) throw Error(l.error);
  return l.api;
}

bool available(std::string* why, int* version) {
  const Loaded& l = loaded();
  if (why) *why = l.error;
  if (version) *version = l.error.empty() ? l.api.version : 0;
  return l.error.empty();
}

void check(Result r, const char* what) {
  if (r == Success) return;
  const Api& a = api();
  fail("NCCL ", what, " failed: ", a.GetErrorString ? a.GetErrorString(r) : "error", " (code ", static_cast<int>(r), ")");
}

}  // namespace sppo::nccl
