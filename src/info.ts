// What this build has and which devices it sees: the data behind `sppo-native info`.
import { native, type BuildInfo, type CudaDevice } from './native/addon.js';

export interface SystemInfo {
  build: BuildInfo;
  backends: string[];
  cudaDevices: CudaDevice[];
  cudaReason: string;
  node: string;
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
    node: process.version,
  };
}

export function formatInfo(info: SystemInfo): string {
  const b = info.build;
  const lines = [
    `sppo-native`,
    `  backends:      ${info.backends.join(', ')}`,
    `  CPU threads:   ${b.cpuThreads}${b.openmp ? ' (OpenMP)' : ' (no OpenMP: single-threaded)'}`,
    `  CUDA backend:  ${b.cuda ? `yes (architectures ${b.cudaArchs || '?'})` : 'no'}`,
    `  cuBLASLt:      ${b.cublasLt ? 'yes' : 'no'}`,
    `  NCCL:          ${b.nccl ? 'yes' : 'no'}`,
    `  Node.js:       ${info.node}`,
  ];
  if (info.cudaDevices.length > 0) {
    lines.push('  CUDA devices:');
    for (const d of info.cudaDevices) {
      lines.push(`    [${d.index}] ${d.name} (sm ${d.computeCapability}, ${(d.totalMemory / 2 ** 30).toFixed(1)} GiB)`);
    }
  } else {
    lines.push(`  CUDA devices:  none (${info.cudaReason || 'none visible'})`);
  }
  return lines.join('\n');
}
