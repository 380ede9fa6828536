// What this build has and which devices it sees: the data behind `sppo-native info`.
import { existsSync, readFileSync } from 'node:fs';
import { native, type BuildInfo, type CudaDevice } from './native/addon.js';

export interface SystemInfo {
  build: BuildInfo;
  backends: string[];
  cudaDevices: CudaDevice[];
  cudaReason: string;
  /** The NVIDIA kernel driver: its version line, or null when none is loaded (Linux: /proc/driver/nvidia). */
  nvidiaDriver: string | null;
  node: string;
}

/** The loaded NVIDIA driver's version line (Linux), or null when there is none. */
export function nvidiaDriverVersion(procFile = '/proc/driver/nvidia/version'): string | null {
  try {
    return readFileSync(procFile, 'utf8').split('\n')[0]!.trim() || 'unknown version';
  } catch {
    return existsSync('/dev/nvidiactl') ? 'unknown version' : null;
  }
}

export function systemInfo(): SystemInfo {
  const addon = native();
  const build = addon.buildInfo();
  const { devices, reason } = addon.cudaDevices();
  return {
    build,
    backends: build.cuda ? ['cpu', 'cuda'] : ['cpu'],
    cudaDevices: devices,
    cudaReason: reason,
    nvidiaDriver: process.platform === 'linux' ? nvidiaDriverVersion() : 'unknown version',
    node: process.version,
  };
}

/**
 * Why no CUDA device is seen, in words. Without a driver the CUDA runtime reports "CUDA driver
 * version is insufficient", which blames a version on a machine that has no GPU driver at all.
 */
export function cudaAbsence(info: Pick<SystemInfo, 'build' | 'cudaReason' | 'nvidiaDriver'>): string {
  if (!info.build.cuda) return 'this build has no CUDA backend';
  if (info.nvidiaDriver === null) return 'no NVIDIA GPU driver is loaded on this machine: no /proc/driver/nvidia';
  return `${info.cudaReason || 'none visible'} (driver: ${info.nvidiaDriver})`;
}

export function formatInfo(info: SystemInfo): string {
  const b = info.build;
  const lines = [
    `sppo-native`,
    `  backends:      ${info.backends.join(', ')}`,
    `  CPU threads:   ${b.cpuThreads}${b.openmp ? ' (OpenMP)' : ' (no OpenMP: single-threaded)'}`,
    `  CUDA backend:  ${b.cuda ? `yes (architectures ${b.cudaArchs || '?'})` : 'no'}`,
    `  cuBLASLt:      ${b.cublasLt ? `yes, ${b.cublasLtDetail}` : `no (${b.cuda ? b.cublasLtDetail : 'this build has no CUDA backend'})`}`,
    `  NCCL:          ${b.nccl ? `${b.ncclVersion} (loaded at run time)` : `not available: ${b.ncclReason || 'libnccl.so.2 did not load'}`}`,
    `  Node.js:       ${info.node}`,
  ];
  if (info.cudaDevices.length > 0) {
    lines.push('  CUDA devices:');
    for (const d of info.cudaDevices) {
      lines.push(`    [${d.index}] ${d.name} (sm ${d.computeCapability}, ${(d.totalMemory / 2 ** 30).toFixed(1)} GiB)`);
    }
  } else {
    lines.push(`  CUDA devices:  none (${cudaAbsence(info)})`);
  }
  return lines.join('\n');
}
