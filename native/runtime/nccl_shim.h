// NCCL loaded at run time (CONTRACT): libnccl.so.2 is opened with dlopen the first time a NCCL
// communicator is made, so that every build compiles the NCCL path and a machine without NCCL
// runs everything else. The project declares the few types, values and functions it calls here
// itself (NCCL's ABI: plain C, ints for enums, a 128-byte unique id by value); nccl.h is never
// included outside native/tests/test_nccl_abi.cpp, which, where nccl.h exists, static_asserts that
// these declarations equal NCCL's.
#pragma once
#include <cstddef>
#include <string>

struct ncclComm;  // opaque, as nccl.h declares it

namespace sppo::nccl {

constexpr int kUniqueIdBytes = 128;
struct UniqueId {
  char internal[kUniqueIdBytes];
};
using Comm = ::ncclComm*;
using Stream = void*;  // a cudaStream_t

enum Result : int {
  Success = 0,
  UnhandledCudaError = 1,
  SystemError = 2,
  InternalError = 3,
  InvalidArgument = 4,
  InvalidUsage = 5,
  RemoteError = 6,
  InProgress = 7,
};
enum DataType : int {
  Int8 = 0,
  Uint8 = 1,
  Int32 = 2,
  Uint32 = 3,
  Int64 = 4,
  Uint64 = 5,
  Float16 = 6,
  Float32 = 7,
  Float64 = 8,
  Bfloat16 = 9,
};
enum RedOp : int { Sum = 0, Prod = 1, Max = 2, Min = 3, Avg = 4 };

// The functions' types over given result, id, communicator, datatype, op and stream types, so
// that the ABI test can instantiate them with nccl.h's and compare with its declarations.
template <class R, class Id, class C, class DT, class Op, class S>
struct Signatures {
  using GetVersion = R (*)(int*);
  using GetUniqueId = R (*)(Id*);
  using CommInitRank = R (*)(C*, int, Id, int);
  using AllReduce = R (*)(const void*, void*, std::size_t, DT, Op, C, S);
  using ReduceScatter = R (*)(const void*, void*, std::size_t, DT, Op, C, S);
  using AllGather = R (*)(const void*, void*, std::size_t, DT, C, S);
  using Broadcast = R (*)(const void*, void*, std::size_t, DT, int, C, S);
  using GroupStart = R (*)();
  using GroupEnd = R (*)();
  using CommGetAsyncError = R (*)(C, R*);
  using CommAbort = R (*)(C);
  using CommDestroy = R (*)(C);
  using GetErrorString = const char* (*)(R);
};
using Sig = Signatures<Result, UniqueId, Comm, DataType, RedOp, Stream>;

struct Api {
  Sig::GetVersion GetVersion = nullptr;
  Sig::GetUniqueId GetUniqueId = nullptr;
  Sig::CommInitRank CommInitRank = nullptr;
  Sig::AllReduce AllReduce = nullptr;
  Sig::ReduceScatter ReduceScatter = nullptr;
  Sig::AllGather AllGather = nullptr;
  Sig::Broadcast Broadcast = nullptr;
  Sig::GroupStart GroupStart = nullptr;
  Sig::GroupEnd GroupEnd = nullptr;
  Sig::CommGetAsyncError CommGetAsyncError = nullptr;
  Sig::CommAbort CommAbort = nullptr;
  Sig::CommDestroy CommDestroy = nullptr;
  Sig::GetErrorString GetErrorString = nullptr;
  int version = 0;  // NCCL_VERSION_CODE of the loaded library, e.g. 22105 for 2.21.5
};

// The loaded library; throws sppo::Error saying why it is not available (the dlopen error, or a
// missing symbol). SPPO_NCCL_LIBRARY names another file than libnccl.so.2.
const Api& api();

// Whether NCCL can be loaded here; `why` gets the reason when not, `version` the version.
bool available(std::string* why = nullptr, int* version = nullptr);

// "2.21.5" from a version code.
std::string version_string(int code);

// Throws sppo::Error "NCCL <what> failed: <NCCL's message>" unless r is Success.
void check(Result r, const char* what);

}  // namespace sppo::nccl
