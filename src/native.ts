// The one place the native addon is loaded and typed. Everything else in src/ imports from here;
// policy and validation live in TypeScript, the addon only moves bytes and does math.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NativeSppoLossArgs, SppoLossResult } from './kernels/sppoLoss.js';

const require = createRequire(import.meta.url);
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

export type { DeviceName } from './native/kinds.js';
import type { DeviceName } from './native/kinds.js';

export interface BuildInfo {
  cuda: boolean;
  cudaArchs: string;
  cublasLt: boolean;
  nccl: boolean;
  openmp: boolean;
  cpuThreads: number;
}

export interface CudaDevice {
  index: number;
  name: string;
  computeCapability: string;
  totalMemory: number;
}

/** The raw addon surface. Each section is owned by one binding file in native/addon/. */
export interface NativeAddon {
  // info_binding.cpp
  buildInfo(): BuildInfo;
  cudaDevices(): { devices: CudaDevice[]; reason: string };
  // kernels_binding.cpp (src/kernels/ validates before calling these)
  logprobForward(args: {
    logits: Float32Array | Uint16Array; dtype: 'f32' | 'bf16'; rows: number; vocab: number;
    labels: Int32Array; device: DeviceName;
  }): Promise<{ tokenLogp: Float32Array; lse: Float32Array }>;
  logprobBackward(args: {
    logits: Float32Array | Uint16Array; dtype: 'f32' | 'bf16'; rows: number; vocab: number;
    labels: Int32Array; gradToken: Float32Array; lse?: Float32Array; inPlace: boolean;
    gradDtype: 'f32' | 'bf16'; device: DeviceName;
  }): Promise<Float32Array | Uint16Array>;
  maskedSequenceSum(args: {
    tokenLogp: Float32Array; mask: Uint8Array; batch: number; seqLen: number; device: DeviceName;
  }): Promise<Float32Array>;
  sppoLoss(args: NativeSppoLossArgs): Promise<SppoLossResult>;
  lossTypes: string[];
  [key: string]: unknown;
}

let cached: NativeAddon | undefined;

/** Loads the addon once; a clear error says how to build it when it is missing. */
export function native(): NativeAddon {
  if (cached) return cached;
  try {
    // SPPO_ADDON_PATH points at a specific .node file (a second build tree, a debug build).
    const explicit = process.env.SPPO_ADDON_PATH;
    if (explicit) {
      cached = require(explicit) as NativeAddon;
    } else {
      const load = require('node-gyp-build') as (dir: string) => NativeAddon;
      cached = load(packageRoot);
    }
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(
      `sppo-native: the native addon could not be loaded (${msg}). ` +
        'Build it with `npm run build:native` (needs a C++17 compiler; CMake for the CUDA backend).',
    );
  }
  return cached;
}

/** True when the CUDA backend is compiled in and at least one GPU is visible. */
export function cudaAvailable(): boolean {
  const addon = native();
  return addon.buildInfo().cuda && addon.cudaDevices().devices.length > 0;
}

/** Throws a clear error when `device` cannot be used by this build on this machine. */
export function requireDevice(device: DeviceName): void {
  if (device === 'cpu') return;
  if (device !== 'cuda') throw new Error(`device must be 'cpu' or 'cuda' (got '${String(device)}')`);
  const addon = native();
  if (!addon.buildInfo().cuda) {
    throw new Error("device 'cuda' is not available: this build of sppo-native has no CUDA backend (rebuild with nvcc on PATH, SPPO_CUDA=on)");
  }
  const { devices, reason } = addon.cudaDevices();
  if (devices.length === 0) throw new Error(`device 'cuda' is not available: ${reason || 'no CUDA devices visible'}`);
}
