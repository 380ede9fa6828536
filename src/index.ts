// Public API of sppo-native.
export { native, cudaAvailable, requireDevice, type DeviceName, type BuildInfo, type CudaDevice } from './native/addon.js';
export { systemInfo, formatInfo, type SystemInfo } from './info.js';
export * from './kernels/index.js';
export * from './model/index.js';
export * from './judge/index.js';
export * from './sppo/index.js';
export * from './eval/stats.js';
export * from './api.js';
