// The NCCL shim's own declarations (runtime/nccl_shim.h) against nccl.h: built only where nccl.h
// exists (CMakeLists.txt), and its checks are static_asserts, so a mismatch fails the build. The
// run prints what it checked and, when libnccl.so.2 loads here, that its version is the header's.
#include <nccl.h>

#include <cstdio>
#include <type_traits>

#include "runtime/nccl_shim.h"

namespace s = sppo::nccl;
using Real = s::Signatures<ncclResult_t, ncclUniqueId, ncclComm_t, ncclDataType_t, ncclRedOp_t, cudaStream_t>;

static_assert(NCCL_UNIQUE_ID_BYTES == s::kUniqueIdBytes && sizeof(ncclUniqueId) == sizeof(s::UniqueId) &&
                  alignof(ncclUniqueId) == alignof(s::UniqueId), "unique id layout");
static_assert(std::is_same_v<ncclComm_t, s::Comm>, "communicator handle");
static_assert(sizeof(cudaStream_t) == sizeof(s::Stream), "stream handle");
static_assert(sizeof(ncclResult_t) == sizeof(s::Result) && sizeof(ncclDataType_t) == sizeof(s::DataType) &&
                  sizeof(ncclRedOp_t) == sizeof(s::RedOp), "enum sizes");
static_assert(int(ncclSuccess) == s::Success && int(ncclUnhandledCudaError) == s::UnhandledCudaError &&
                  int(ncclSystemError) == s::SystemError && int(ncclInternalError) == s::InternalError &&
                  int(ncclInvalidArgument) == s::InvalidArgument && int(ncclInvalidUsage) == s::InvalidUsage &&
                  int(ncclRemoteError) == s::RemoteError && int(ncclInProgress) == s::InProgress,
              "result codes");
static_assert(int(ncclInt8) == s::Int8 && int(ncclUint8) == s::Uint8 && int(ncclInt32) == s::Int32 &&
                  int(ncclUint32) == s::Uint32 && int(ncclInt64) == s::Int64 && int(ncclUint64) == s::Uint64 &&
                  int(ncclFloat16) == s::Float16 && int(ncclFloat32) == s::Float32 && int(ncclFloat64) == s::Float64 &&
                  int(ncclBfloat16) == s::Bfloat16,
              "data types");
static_assert(int(ncclSum) == s::Sum && int(ncclProd) == s::Prod && int(ncclMax) == s::Max && int(ncclMin) == s::Min &&
                  int(ncclAvg) == s::Avg,
              "reduction ops");
static_assert(std::is_same_v<decltype(&ncclGetVersion), Real::GetVersion>, "ncclGetVersion");
static_assert(std::is_same_v<decltype(&ncclGetUniqueId), Real::GetUniqueId>, "ncclGetUniqueId");
static_assert(std::is_same_v<decltype(&ncclCommInitRank), Real::CommInitRank>, "ncclCommInitRank");
static_assert(std::is_same_v<decltype(&ncclAllReduce), Real::AllReduce>, "ncclAllReduce");
static_assert(std::is_same_v<decltype(&ncclReduceScatter), Real::ReduceScatter>, "ncclReduceScatter");
static_assert(std::is_same_v<decltype(&ncclAllGather), Real::AllGather>, "ncclAllGather");
static_assert(std::is_same_v<decltype(&ncclBroadcast), Real::Broadcast>, "ncclBroadcast");
static_assert(std::is_same_v<decltype(&ncclGroupStart), Real::GroupStart>, "ncclGroupStart");
static_assert(std::is_same_v<decltype(&ncclGroupEnd), Real::GroupEnd>, "ncclGroupEnd");
static_assert(std::is_same_v<decltype(&ncclCommGetAsyncError), Real::CommGetAsyncError>, "ncclCommGetAsyncError");
static_assert(std::is_same_v<decltype(&ncclCommAbort), Real::CommAbort>, "ncclCommAbort");
static_assert(std::is_same_v<decltype(&ncclCommDestroy), Real::CommDestroy>, "ncclCommDestroy");
static_assert(std::is_same_v<decltype(&ncclGetErrorString), Real::GetErrorString>, "ncclGetErrorString");

int main() {
  std::printf("ok   the shim's NCCL declarations equal nccl.h %d.%d.%d's (checked at compile time)\n", NCCL_MAJOR, NCCL_MINOR,
              NCCL_PATCH);
  std::string why;
  int version = 0;
  if (!s::available(&why, &version)) {
    std::printf("note: %s\n1 passed, 0 failed\n", why.c_str());
    return 0;
  }
  const bool same = version / 100 == NCCL_VERSION_CODE / 100;
  std::printf("%s the loaded libnccl is %s (header %d.%d.%d)\n", same ? "ok  " : "FAIL", s::version_string(version).c_str(),
              NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH);
  std::printf("%d passed, %d failed\n", same ? 2 : 1, same ? 0 : 1);
  return same ? 0 : 1;
}
