// Stands in for NVIDIA's cuda_runtime.h in the emulated build only (SPPO_CUDA=emulate): the
// device language and runtime API of emu/, so the CUDA backend compiles with the host compiler.
#pragma once
#include "emu/cuda_emu_runtime.h"
