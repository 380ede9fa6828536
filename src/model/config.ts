// Reads a Hugging Face config.json (and generation_config.json) for the Llama family as released
// on the Hub, validates it, and maps it to the plain struct the core takes (native/model/llama_config.h).
// Anything the core does not compute exactly is refused with a message naming the field.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export type Architecture = 'LlamaForCausalLM' | 'MistralForCausalLM' | 'LlamaForSequenceClassification';
import type { NativeLlamaConfig, RopeType } from '../native/addon.js';

export type { NativeLlamaConfig, RopeType };
export type CheckpointDtype = 'float32' | 'bfloat16' | 'float16';

export interface RopeConfig {
  type: RopeType;
  theta: number;
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPosition: number;
}

export interface ModelConfig {
  architecture: Architecture;
  modelType: 'llama' | 'mistral';
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  rope: RopeConfig;
  tieWordEmbeddings: boolean;
  sequenceClassification: boolean;
  numLabels: number;
  id2label: Record<string, string> | null;
  maxPositionEmbeddings: number | null;
  /** Mistral v0.1's sliding window; the engine refuses sequences longer than it. */
  slidingWindow: number | null;
  /** Longest sequence the engine computes exactly (null: unlimited). */
  maxSequenceLength: number | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
  dtype: CheckpointDtype | null;
  /** The config.json object as read. */
  raw: Record<string, unknown>;
}

/** The struct the addon's Model constructor takes (mirrors sppo::LlamaConfig). */

const ARCHITECTURES: readonly Architecture[] = ['LlamaForCausalLM', 'MistralForCausalLM', 'LlamaForSequenceClassification'];

/** Typed reads of a config object; every error names the file and the field. */
export class Fields {
  constructor(
    readonly obj: Record<string, unknown>,
    readonly source: string,
    readonly prefix = '',
  ) {}
  err(key: string, msg: string): Error {
    return new Error(`${this.source}: field '${this.prefix}${key}' ${msg}`);
  }
  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }
  int(key: string, opts: { min?: number; dflt?: number } = {}): number {
    const v = this.obj[key];
    if (v === undefined || v === null) {
      if (opts.dflt !== undefined) return opts.dflt;
      throw this.err(key, 'is required');
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw this.err(key, `must be an integer (got ${JSON.stringify(v)})`);
    const min = opts.min ?? 1;
    if (v < min) throw this.err(key, `must be >= ${min} (got ${v})`);
    return v;
  }
  num(key: string, dflt?: number, positive = true): number {
    const v = this.obj[key];
    if (v === undefined || v === null) {
      if (dflt !== undefined) return dflt;
      throw this.err(key, 'is required');
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.err(key, `must be a finite number (got ${JSON.stringify(v)})`);
    if (positive && !(v > 0)) throw this.err(key, `must be > 0 (got ${v})`);
    return v;
  }
  bool(key: string, dflt: boolean): boolean {
    const v = this.obj[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') throw this.err(key, `must be true or false (got ${JSON.stringify(v)})`);
    return v;
  }
  str(key: string): string | null {
    const v = this.obj[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') throw this.err(key, `must be a string (got ${JSON.stringify(v)})`);
    return v;
  }
  tokenId(key: string): number | null {
    const v = this.obj[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw this.err(key, `must be a token id (got ${JSON.stringify(v)})`);
    return v;
  }
  tokenIds(key: string): number[] {
    const v = this.obj[key];
    if (v === undefined || v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    for (const id of list) {
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
        throw this.err(key, `must be a token id or a list of them (got ${JSON.stringify(v)})`);
      }
    }
    return list as number[];
  }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseRope(f: Fields, maxPos: number | null): RopeConfig {
  // transformers v5 moved rope settings into `rope_parameters` (with rope_theta inside);
  // older configs have top-level rope_theta and an optional `rope_scaling`.
  let params: Record<string, unknown> | null = null;
  let key = 'rope_scaling';
  if (f.has('rope_parameters')) {
    if (!isObject(f.obj.rope_parameters)) throw f.err('rope_parameters', 'must be an object');
    params = f.obj.rope_parameters;
    key = 'rope_parameters';
  } else if (f.has('rope_scaling')) {
    if (!isObject(f.obj.rope_scaling)) throw f.err('rope_scaling', 'must be an object or null');
    params = f.obj.rope_scaling;
  }
  const p = new Fields(params ?? {}, f.source, `${key}.`);
  const theta = params && p.has('rope_theta') ? p.num('rope_theta') : f.num('rope_theta', 10000);
  const rawType = params ? (p.str('rope_type') ?? p.str('type') ?? 'default') : 'default';
  const rope: RopeConfig = {
    type: 'default',
    theta,
    factor: 1,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPosition: maxPos ?? 8192,
  };
  if (rawType === 'default') return rope;
  if (rawType === 'linear') {
    rope.type = 'linear';
    rope.factor = p.num('factor');
    return rope;
  }
  if (rawType === 'llama3') {
    rope.type = 'llama3';
    rope.factor = p.num('factor');
    rope.lowFreqFactor = p.num('low_freq_factor');
    rope.highFreqFactor = p.num('high_freq_factor');
    rope.originalMaxPosition = p.int('original_max_position_embeddings');
    if (!(rope.highFreqFactor > rope.lowFreqFactor)) {
      throw p.err('high_freq_factor', `must exceed low_freq_factor (${rope.lowFreqFactor})`);
    }
    return rope;
  }
  throw p.err(params && p.has('rope_type') ? 'rope_type' : 'type', `'${rawType}' is not supported (supported: default, linear, llama3)`);
}

function parseDtype(f: Fields): CheckpointDtype | null {
  const key = f.has('dtype') ? 'dtype' : 'torch_dtype';
  const v = f.str(key);
  if (v === null || v === 'auto') return null;
  if (v === 'float32' || v === 'bfloat16' || v === 'float16') return v;
  throw f.err(key, `'${v}' is not supported (float32, bfloat16 or float16)`);
}

/** Validates a parsed config.json object; `source` (the file) prefixes every error. */
export function parseModelConfig(json: unknown, source: string): ModelConfig {
  if (!isObject(json)) throw new Error(`${source}: config must be a JSON object`);
  const f = new Fields(json, source);

  const modelType = f.str('model_type');
  if (modelType !== null && modelType !== 'llama' && modelType !== 'mistral') {
    throw f.err('model_type', `'${modelType}' is not supported (llama or mistral)`);
  }
  let architecture: Architecture;
  if (f.has('architectures')) {
    const archs = json.architectures;
    if (!Array.isArray(archs) || archs.length !== 1 || typeof archs[0] !== 'string') {
      throw f.err('architectures', `must list exactly one architecture (got ${JSON.stringify(archs)})`);
    }
    if (!ARCHITECTURES.includes(archs[0] as Architecture)) {
      throw f.err('architectures', `'${archs[0]}' is not supported (supported: ${ARCHITECTURES.join(', ')})`);
    }
    architecture = archs[0] as Architecture;
  } else if (modelType !== null) {
    architecture = modelType === 'mistral' ? 'MistralForCausalLM' : 'LlamaForCausalLM';
  } else {
    throw f.err('architectures', 'is required (or model_type)');
  }
  const resolvedType = modelType ?? (architecture === 'MistralForCausalLM' ? 'mistral' : 'llama');

  const act = f.str('hidden_act');
  if (act !== null && act !== 'silu') throw f.err('hidden_act', `'${act}' is not supported (silu)`);
  for (const key of ['attention_bias', 'mlp_bias']) {
    if (f.bool(key, false)) throw f.err(key, 'is true: biases in attention/MLP projections are not supported');
  }

  const vocabSize = f.int('vocab_size');
  const hiddenSize = f.int('hidden_size');
  const intermediateSize = f.int('intermediate_size');
  const numLayers = f.int('num_hidden_layers');
  const numHeads = f.int('num_attention_heads');
  const numKvHeads = f.int('num_key_value_heads', { dflt: numHeads });
  if (numHeads % numKvHeads !== 0) {
    throw f.err('num_key_value_heads', `(${numKvHeads}) must divide num_attention_heads (${numHeads})`);
  }
  let headDim: number;
  if (f.has('head_dim')) {
    headDim = f.int('head_dim');
  } else {
    if (hiddenSize % numHeads !== 0) {
      throw f.err('hidden_size', `(${hiddenSize}) is not divisible by num_attention_heads (${numHeads}) and head_dim is not given`);
    }
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) throw f.err('head_dim', `(${headDim}) must be even for rotary embeddings`);
  const maxPositionEmbeddings = f.has('max_position_embeddings') ? f.int('max_position_embeddings') : null;
  const rope = parseRope(f, maxPositionEmbeddings);

  // Mistral v0.1 attends within a 4096-token window; below that length full causal attention is
  // identical, so accept the config and refuse longer sequences.
  const slidingWindow = f.has('sliding_window') ? f.int('sliding_window') : null;
  let maxSequenceLength: number | null = null;
  if (slidingWindow !== null && (maxPositionEmbeddings === null || slidingWindow < maxPositionEmbeddings)) {
    maxSequenceLength = slidingWindow;
  }

  const sequenceClassification = architecture === 'LlamaForSequenceClassification';
  let id2label: Record<string, string> | null = null;
  if (f.has('id2label')) {
    if (!isObject(json.id2label)) throw f.err('id2label', 'must be an object');
    id2label = json.id2label as Record<string, string>;
  }
  // transformers: num_labels, else the size of id2label, else 2.
  const numLabels = f.has('num_labels') ? f.int('num_labels') : id2label ? Object.keys(id2label).length : 2;
  if (id2label && Object.keys(id2label).length !== numLabels) {
    throw f.err('num_labels', `(${numLabels}) disagrees with id2label (${Object.keys(id2label).length} labels)`);
  }
  if (numLabels < 1) throw f.err('num_labels', 'must be >= 1');

  const tokenIdsOk = (key: string, ids: number[]): void => {
    for (const id of ids) if (id >= vocabSize) throw f.err(key, `(${id}) is outside the vocabulary (vocab_size ${vocabSize})`);
  };
  const bosTokenId = f.tokenId('bos_token_id');
  const eosTokenIds = f.tokenIds('eos_token_id');
  const padTokenId = f.tokenId('pad_token_id');
  tokenIdsOk('bos_token_id', bosTokenId === null ? [] : [bosTokenId]);
  tokenIdsOk('eos_token_id', eosTokenIds);
  tokenIdsOk('pad_token_id', padTokenId === null ? [] : [padTokenId]);

  return {
    architecture,
    modelType: resolvedType,
    vocabSize,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: f.num('rms_norm_eps', 1e-6),
    rope,
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    sequenceClassification,
    numLabels: sequenceClassification ? numLabels : 1,
    id2label,
    maxPositionEmbeddings,
    slidingWindow,
    maxSequenceLength,
    bosTokenId,
    eosTokenIds,
    padTokenId,
    dtype: parseDtype(f),
    raw: json,
  };
}

export interface GenerationConfig {
  eosTokenIds: number[];
  bosTokenId: number | null;
  padTokenId: number | null;
  raw: Record<string, unknown>;
}

export function parseGenerationConfig(json: unknown, source: string): GenerationConfig {
  if (!isObject(json)) throw new Error(`${source}: generation config must be a JSON object`);
  const f = new Fields(json, source);
  return { eosTokenIds: f.tokenIds('eos_token_id'), bosTokenId: f.tokenId('bos_token_id'), padTokenId: f.tokenId('pad_token_id'), raw: json };
}

export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${file}: cannot read (${(err as Error).message})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
}

/**
 * Reads folder/config.json and, when present, folder/generation_config.json, whose eos ids
 * (often a list for chat models, e.g. Llama-3-Instruct) are merged into the config's.
 */
export function readModelConfig(folder: string): { config: ModelConfig; generation: GenerationConfig | null } {
  const file = join(folder, 'config.json');
  if (!existsSync(file)) throw new Error(`${folder}: no config.json (not a Hugging Face model folder)`);
  const config = parseModelConfig(readJsonFile(file), file);
  const genFile = join(folder, 'generation_config.json');
  let generation: GenerationConfig | null = null;
  if (existsSync(genFile)) {
    generation = parseGenerationConfig(readJsonFile(genFile), genFile);
    for (const id of generation.eosTokenIds) {
      if (id >= config.vocabSize) throw new Error(`${genFile}: field 'eos_token_id' (${id}) is outside the vocabulary`);
      if (!config.eosTokenIds.includes(id)) config.eosTokenIds.push(id);
    }
  }
  return { config, generation };
}

export function toNativeConfig(c: ModelConfig): NativeLlamaConfig {
  return {
    vocabSize: c.vocabSize,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    rmsNormEps: c.rmsNormEps,
    ropeTheta: c.rope.theta,
    ropeType: c.rope.type,
    ropeFactor: c.rope.factor,
    ropeLowFreqFactor: c.rope.lowFreqFactor,
    ropeHighFreqFactor: c.rope.highFreqFactor,
    ropeOriginalMaxPosition: c.rope.originalMaxPosition,
    tieWordEmbeddings: c.tieWordEmbeddings,
    sequenceClassification: c.sequenceClassification,
    numLabels: c.numLabels,
  };
}

/** Every parameter the checkpoint must hold, with its shape (HF names, as native/model/llama.h). */
export function expectedParameters(c: ModelConfig): Map<string, number[]> {
  const H = c.hiddenSize;
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [c.vocabSize, H]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}.`;
    m.set(`${p}input_layernorm.weight`, [H]);
    m.set(`${p}self_attn.q_proj.weight`, [c.numHeads * c.headDim, H]);
    m.set(`${p}self_attn.k_proj.weight`, [c.numKvHeads * c.headDim, H]);
    m.set(`${p}self_attn.v_proj.weight`, [c.numKvHeads * c.headDim, H]);
    m.set(`${p}self_attn.o_proj.weight`, [H, c.numHeads * c.headDim]);
    m.set(`${p}post_attention_layernorm.weight`, [H]);
    m.set(`${p}mlp.gate_proj.weight`, [c.intermediateSize, H]);
    m.set(`${p}mlp.up_proj.weight`, [c.intermediateSize, H]);
    m.set(`${p}mlp.down_proj.weight`, [H, c.intermediateSize]);
  }
  m.set('model.norm.weight', [H]);
  if (c.sequenceClassification) m.set('score.weight', [c.numLabels, H]);
  else if (!c.tieWordEmbeddings) m.set('lm_head.weight', [c.vocabSize, H]);
  return m;
}
