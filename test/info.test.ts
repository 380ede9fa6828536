import { describe, expect, it } from 'vitest';
import { native, requireCublasLt, requireDevice, cudaAvailable } from '../src/native/addon.js';
import { formatInfo, systemInfo } from '../src/info.js';

describe('build info', () => {
  it('reports the backends consistently', () => {
    const info = systemInfo();
    expect(info.backends[0]).toBe('cpu');
    expect(info.backends.includes('cuda')).toBe(info.build.cuda);
    expect(info.build.cpuThreads).toBeGreaterThanOrEqual(1);
    if (!info.build.cuda) expect(info.cudaDevices).toHaveLength(0);
    expect(formatInfo(info)).toMatch(/backends:\s+cpu/);
  });

  it('refuses cuda with a reason where it cannot run', () => {
    if (cudaAvailable()) {
      expect(() => requireDevice('cuda')).not.toThrow();
    } else {
      expect(() => requireDevice('cuda')).toThrow(/device 'cuda' is not available/);
    }
    expect(() => requireDevice('tpu' as never)).toThrow(/device must be 'cpu' or 'cuda'/);
    expect(typeof native().buildInfo).toBe('function');
  });

  it('says whether cuBLASLt loaded: its version and file, or every file tried', () => {
    const info = systemInfo();
    const text = formatInfo(info);
    if (!info.build.cuda) {
      expect(info.build.cublasLt).toBe(false);
      expect(text).toMatch(/cuBLASLt: +no \(this build has no CUDA backend\)/);
    } else if (info.build.cublasLt) {
      expect(text).toMatch(/cuBLASLt: +yes, 1[23]\.\d+\.\d+ \(.*libcublasLt\.so.*\)/);
      expect(() => requireCublasLt()).not.toThrow();
    } else {
      expect(text).toMatch(/cuBLASLt: +no \(cuBLASLt could not be loaded \(tried .*libcublasLt\.so\.13.*libcublasLt\.so\.12/);
      expect(() => requireCublasLt()).toThrow(/device 'cuda' cannot run models: cuBLASLt could not be loaded/);
    }
  });
});
