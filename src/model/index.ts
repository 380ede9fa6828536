// The model engine's public surface.
// LossType is the same union as the kernels' (exported from there).
export type {
  ModelHandle,
  ScoredSequence,
  PreferencePair,
  StepMetrics,
  GenerateOptions,
  Generation,
  OptimizerOptions,
  SaveOptions,
} from './types.js';
export { loadModel, createRandomModel, EngineModel, type LoadModelOptions } from './engine.js';
export {
  parseModelConfig,
  parseGenerationConfig,
  readModelConfig,
  toNativeConfig,
  expectedParameters,
  type ModelConfig,
  type GenerationConfig,
  type NativeLlamaConfig,
  type Architecture,
  type RopeConfig,
} from './config.js';
export { readSafetensorsHeader, openCheckpoint, buildSafetensorsHeader, type TensorEntry, type Checkpoint } from './safetensors.js';
export { padBatch, type PaddingSide } from './batch.js';
export { writeRandomModelFolder, type RandomFolderOptions, type RandomModelFolder } from './randomFolder.js';
