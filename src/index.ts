// Public API of sppo-native.
export { native, cudaAvailable, requireDevice, type DeviceName, type BuildInfo, type CudaDevice } from './native.js';
export { systemInfo, formatInfo, type SystemInfo } from './info.js';
