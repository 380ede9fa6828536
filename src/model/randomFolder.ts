// A Hugging Face model folder (config.json, generation_config.json, safetensors) with random
// weights for a given config.json, written in pure TypeScript so it exists without the core:
// for benchmarks, the demo, tests, and `sppo-native init-model`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectedParameters, parseModelConfig } from './config.js';
import { encodeSafetensors, roundTo, type NamedTensor } from './encode.js';
import { numelOf, planShards, type LoadableDtype } from './safetensors.js';
import { SeededRandom } from '../util/rng.js';

export interface RandomFolderOptions {
  dtype?: LoadableDtype;
  /** Shard above this many bytes (writes an index); default: one file. */
  maxShardBytes?: number;
}

export interface RandomModelFolder {
  folder: string;
  config: Record<string, unknown>;
  /** The weights as stored (after rounding to the file's dtype), by name. */
  tensors: Map<string, Float32Array>;
}

/**
 * Writes a model with config.json `configJson` and random weights into `folder`, deterministic in
 * `seed`. Matrices are normal(0, 1/sqrt(fan_in)) so activations are of order one, and norm weights
 * 1 + 0.1 normal so their values matter. The config is validated as a loaded one would be.
 */
export function writeRandomModelFolder(
  folder: string,
  configJson: Record<string, unknown>,
  seed: number,
  opts: RandomFolderOptions = {},
): RandomModelFolder {
  const dtype = opts.dtype ?? 'F32';
  const config: Record<string, unknown> = { ...configJson, torch_dtype: dtype === 'F32' ? 'float32' : dtype === 'BF16' ? 'bfloat16' : 'float16' };
  const parsed = parseModelConfig(config, `${folder}/config.json`);
  const rng = new SeededRandom(seed);
  const tensors: NamedTensor[] = [];
  const values = new Map<string, Float32Array>();
  for (const [name, shape] of expectedParameters(parsed)) {
    const data = new Float32Array(numelOf(shape));
    const isNorm = shape.length === 1;
    const std = isNorm ? 0.1 : 1 / Math.sqrt(shape[1]!);
    for (let i = 0; i < data.length; i++) data[i] = roundTo(dtype, (isNorm ? 1 : 0) + std * rng.normal());
    tensors.push({ name, shape, data });
    values.set(name, data);
  }
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  const gen: Record<string, unknown> = { bos_token_id: config.bos_token_id, eos_token_id: config.eos_token_id };
  writeFileSync(join(folder, 'generation_config.json'), `${JSON.stringify(gen, null, 2)}\n`);
  const esize = dtype === 'F32' ? 4 : 2;
  const shards = opts.maxShardBytes ? planShards(tensors, esize, opts.maxShardBytes) : [tensors];
  if (shards.length === 1) {
    writeFileSync(join(folder, 'model.safetensors'), encodeSafetensors(tensors, dtype));
  } else {
    const pad = (i: number): string => String(i).padStart(5, '0');
    const weightMap: Record<string, string> = {};
    let total = 0;
    shards.forEach((shard, i) => {
      const file = `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`;
      writeFileSync(join(folder, file), encodeSafetensors(shard, dtype));
      for (const t of shard) {
        weightMap[t.name] = file;
        total += t.data.length * esize;
      }
    });
    writeFileSync(join(folder, 'model.safetensors.index.json'), `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`);
  }
  return { folder, config, tensors: values };
}
