// Tiny random Hugging Face checkpoints (config.json, generation_config.json, safetensors) for
// tests, benchmarks and the demo. Written in pure TypeScript so they exist without the core.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectedParameters, parseModelConfig } from './config.js';
import { encodeSafetensors, roundTo, type NamedTensor } from './encode.js';
import { numelOf, planShards, type LoadableDtype } from './safetensors.js';

export type TinyKind = 'llama2' | 'llama3' | 'mistral' | 'reward';
export const TINY_KINDS: readonly TinyKind[] = ['llama2', 'llama3', 'mistral', 'reward'];

/** config.json of each tiny kind: small, but shaped like the real families. */
export function tinyConfig(kind: TinyKind): Record<string, unknown> {
  const base = {
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    initializer_range: 0.02,
    use_cache: true,
    torch_dtype: 'float32',
  };
  switch (kind) {
    case 'llama2':
      return {
        ...base, architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 64, hidden_size: 32,
        intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 4,
        max_position_embeddings: 128, rms_norm_eps: 1e-5, rope_theta: 10000, rope_scaling: null,
        tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
      };
    case 'llama3':
      return {
        ...base, architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 80, hidden_size: 32,
        intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
        max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 500000,
        // original_max_position_embeddings small so that the llama3 scaling changes frequencies here.
        rope_scaling: { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 32 },
        tie_word_embeddings: true, bos_token_id: 1, eos_token_id: [2, 3],
      };
    case 'mistral':
      return {
        ...base, architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: 72, hidden_size: 32,
        intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8,
        max_position_embeddings: 128, rms_norm_eps: 1e-5, rope_theta: 1000000, sliding_window: 48,
        tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
      };
    case 'reward':
      return {
        ...base, architectures: ['LlamaForSequenceClassification'], model_type: 'llama', vocab_size: 64,
        hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
        max_position_embeddings: 128, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
        bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, id2label: { '0': 'LABEL_0' }, label2id: { LABEL_0: 0 },
      };
  }
}

/** A small deterministic PRNG (splitmix32) with normal samples; JS has no seedable Math.random. */
export class SeededRandom {
  private state: number;
  constructor(seed: number) {
    this.state = (seed >>> 0) ^ 0x9e3779b9;
  }
  uniform(): number {
    this.state = (this.state + 0x9e3779b9) | 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z ^= z >>> 16;
    return ((z >>> 0) + 0.5) / 4294967296;
  }
  normal(): number {
    return Math.sqrt(-2 * Math.log(this.uniform())) * Math.cos(2 * Math.PI * this.uniform());
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.uniform() * (hi - lo + 1));
  }
}

export interface TinyCheckpointOptions {
  dtype?: LoadableDtype;
  /** Shard above this many bytes (writes an index); default: one file. */
  maxShardBytes?: number;
}

export interface TinyCheckpoint {
  folder: string;
  config: Record<string, unknown>;
  /** The weights as stored (after rounding to the file's dtype), by name. */
  tensors: Map<string, Float32Array>;
}

/**
 * Writes a random checkpoint of `kind` into `folder`. Matrices are normal(0, 1/sqrt(fan_in)) so
 * activations are of order one, and norm weights 1 + 0.1 normal so their values matter.
 */
export function writeTinyCheckpoint(folder: string, kind: TinyKind, seed: number, opts: TinyCheckpointOptions = {}): TinyCheckpoint {
  const dtype = opts.dtype ?? 'F32';
  const config = tinyConfig(kind);
  config.torch_dtype = dtype === 'F32' ? 'float32' : dtype === 'BF16' ? 'bfloat16' : 'float16';
  const parsed = parseModelConfig(config, `tiny ${kind} config`);
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
