// Hugging Face model folders in and out of a native model: safetensors weights (single file or
// shards with an index), config.json, generation_config.json and the tokenizer files.
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SaveOptions } from './types.js';
import type { NativeModel } from '../native/addon.js';
import { expectedParameters, type GenerationConfig, type ModelConfig } from './config.js';
import { LOADABLE_DTYPES, buildSafetensorsHeader, numelOf, openCheckpoint, planShards, type Checkpoint } from './safetensors.js';

/** Buffers transformers keeps out of the state dict today but older checkpoints may contain. */
const IGNORED = [/\.rotary_emb\.inv_freq$/];

/** Tokenizer files a Hugging Face model folder may carry; copied on save. */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
  'chat_template.jinja',
  'chat_template.json',
];

export function hasTokenizerFiles(folder: string): boolean {
  return TOKENIZER_FILES.some((f) => existsSync(join(folder, f)));
}

const shapeText = (s: readonly number[]): string => `[${s.join(', ')}]`;

function listNames(names: string[]): string {
  const shown = names.slice(0, 8).map((n) => `'${n}'`).join(', ');
  return names.length > 8 ? `${shown} and ${names.length - 8} more` : shown;
}

export interface WeightRange {
  name: string;
  file: string;
  offset: number;
  nbytes: number;
  dtype: string;
}

/**
 * Checks every header of the checkpoint in `folder` against `params` (names and shapes) and returns
 * the byte range of each.
 */
export function planWeights(folder: string, config: ModelConfig, params: readonly { name: string; shape: readonly number[] }[]): WeightRange[] {
  return planFrom(openCheckpoint(folder), folder, config, params);
}

/**
 * Validates the checkpoint in `folder` against config.json in pure TypeScript, before the native
 * model allocates anything: a config with absurd sizes is refused unless the files really hold
 * tensors that large. The layer count is bounded by the tensor count first, so that a huge
 * num_hidden_layers is refused before the expected parameters are even listed.
 */
export function checkCheckpoint(folder: string, config: ModelConfig): void {
  const ckpt = openCheckpoint(folder);
  const perLayer = 9; // two norms, four attention and three MLP projections
  if (config.numLayers * perLayer > ckpt.tensors.size) {
    throw new Error(
      `${join(folder, 'config.json')}: field 'num_hidden_layers' (${config.numLayers}) needs ${config.numLayers * perLayer}+ tensors but the checkpoint holds ${ckpt.tensors.size}`,
    );
  }
  planFrom(ckpt, folder, config, [...expectedParameters(config)].map(([name, shape]) => ({ name, shape })));
}

function planFrom(
  ckpt: Checkpoint,
  folder: string,
  config: ModelConfig,
  params: readonly { name: string; shape: readonly number[] }[],
): WeightRange[] {
  const wanted = new Set(params.map((p) => p.name));
  const missing: string[] = [];
  const ranges: WeightRange[] = [];
  for (const p of params) {
    const t = ckpt.tensors.get(p.name);
    if (!t) {
      missing.push(p.name);
      continue;
    }
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      throw new Error(`${t.file}: tensor '${p.name}' has shape ${shapeText(t.shape)} but config.json implies ${shapeText(p.shape)}`);
    }
    if (!LOADABLE_DTYPES.includes(t.dtype)) {
      throw new Error(`${t.file}: tensor '${p.name}' has dtype ${t.dtype}; only F32, BF16 and F16 are read`);
    }
    ranges.push({ name: p.name, file: t.file, offset: t.offset, nbytes: t.nbytes, dtype: t.dtype });
  }
  if (missing.length > 0) throw new Error(`${folder}: checkpoint is missing ${missing.length} tensor(s): ${listNames(missing)}`);
  const unexpected = [...ckpt.tensors.keys()].filter(
    (n) => !wanted.has(n) && !IGNORED.some((re) => re.test(n)) && !(config.tieWordEmbeddings && n === 'lm_head.weight'),
  );
  if (unexpected.length > 0) {
    throw new Error(`${folder}: checkpoint has ${unexpected.length} tensor(s) this ${config.architecture} does not use: ${listNames(unexpected)}`);
  }
  return ranges;
}

/** Fills every parameter of `model` from the safetensors in `folder`, after checking them all. */
export async function loadWeights(model: NativeModel, folder: string, config: ModelConfig): Promise<void> {
  await model.loadTensors(planWeights(folder, config, model.params()));
}

/** Writes text to `file` atomically (temp file in the same folder, then rename). */
export function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

const WEIGHT_FILE = /^(model\.safetensors|model\.safetensors\.index\.json|model-\d{5}-of-\d{5}\.safetensors)$/;

export interface SaveContext {
  config: ModelConfig;
  generation: GenerationConfig | null;
}

/** config.json as transformers writes it for this model (the loaded one, with dtype updated). */
export function configJsonFor(ctx: SaveContext, dtype: 'float32' | 'bfloat16'): Record<string, unknown> {
  const c = ctx.config;
  const out: Record<string, unknown> = { ...c.raw };
  out.architectures = [c.architecture];
  out.model_type = c.modelType;
  out.vocab_size = c.vocabSize;
  out.hidden_size = c.hiddenSize;
  out.intermediate_size = c.intermediateSize;
  out.num_hidden_layers = c.numLayers;
  out.num_attention_heads = c.numHeads;
  out.num_key_value_heads = c.numKvHeads;
  out.head_dim = c.headDim;
  out.rms_norm_eps = c.rmsNormEps;
  out.hidden_act = 'silu';
  out.tie_word_embeddings = c.tieWordEmbeddings;
  if (!('rope_parameters' in out)) out.rope_theta = c.rope.theta;
  if (c.maxPositionEmbeddings !== null) out.max_position_embeddings = c.maxPositionEmbeddings;
  if (c.sequenceClassification) out.num_labels = c.numLabels;
  // transformers < 4.56 reads torch_dtype, newer ones dtype; both are harmless elsewhere.
  out.torch_dtype = dtype;
  out.dtype = dtype;
  return out;
}

function generationJsonFor(ctx: SaveContext): Record<string, unknown> {
  if (ctx.generation) return { ...ctx.generation.raw };
  const c = ctx.config;
  const out: Record<string, unknown> = {};
  if (c.bosTokenId !== null) out.bos_token_id = c.bosTokenId;
  if (c.eosTokenIds.length > 0) out.eos_token_id = c.eosTokenIds.length === 1 ? c.eosTokenIds[0] : c.eosTokenIds;
  if (c.padTokenId !== null) out.pad_token_id = c.padTokenId;
  return out;
}

/** Writes the Hugging Face layout of `model` into `folder`. */
export async function saveModelFolder(model: NativeModel, folder: string, ctx: SaveContext, opts: SaveOptions = {}): Promise<void> {
  const dtype = opts.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'bfloat16') throw new Error(`save: dtype must be 'float32' or 'bfloat16' (got '${String(dtype)}')`);
  const maxShard = opts.maxShardBytes ?? 5_000_000_000;
  if (!(Number.isFinite(maxShard) && maxShard > 0)) throw new Error(`save: maxShardBytes must be > 0 (got ${maxShard})`);
  const tokenizerFiles: string[] = [];
  if (opts.tokenizerFrom !== undefined) {
    for (const f of TOKENIZER_FILES) if (existsSync(join(opts.tokenizerFrom, f))) tokenizerFiles.push(f);
    if (tokenizerFiles.length === 0) throw new Error(`save: tokenizerFrom '${opts.tokenizerFrom}' holds no tokenizer files (${TOKENIZER_FILES.join(', ')})`);
  }
  mkdirSync(folder, { recursive: true });

  // transformers does not write a tied lm_head; the core does not have one either.
  const tensors = model.params().filter((p) => !(ctx.config.tieWordEmbeddings && p.name === 'lm_head.weight'));
  const st = dtype === 'float32' ? 'F32' : 'BF16';
  const esize = dtype === 'float32' ? 4 : 2;
  const shards = planShards(tensors, esize, maxShard);
  const written = new Set<string>();
  if (shards.length === 1) {
    const plan = buildSafetensorsHeader(tensors, st);
    await model.saveTensors(join(folder, 'model.safetensors'), plan.header, tensors.map((t) => t.name), st, plan.dataBytes);
    written.add('model.safetensors');
  } else {
    const n = shards.length;
    const pad = (i: number): string => String(i).padStart(5, '0');
    const weightMap: Record<string, string> = {};
    let total = 0;
    for (let i = 0; i < n; i++) {
      const name = `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
      const shard = shards[i]!;
      const plan = buildSafetensorsHeader(shard, st);
      await model.saveTensors(join(folder, name), plan.header, shard.map((t) => t.name), st, plan.dataBytes);
      for (const t of shard) weightMap[t.name] = name;
      total += shard.reduce((a, t) => a + numelOf(t.shape) * esize, 0);
      written.add(name);
    }
    writeFileAtomic(join(folder, 'model.safetensors.index.json'), `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`);
    written.add('model.safetensors.index.json');
  }
  // A previous save into the same folder may have left weights in the other layout.
  for (const f of readdirSync(folder)) if (WEIGHT_FILE.test(f) && !written.has(f)) rmSync(join(folder, f));

  writeFileAtomic(join(folder, 'config.json'), `${JSON.stringify(configJsonFor(ctx, dtype), null, 2)}\n`);
  writeFileAtomic(join(folder, 'generation_config.json'), `${JSON.stringify(generationJsonFor(ctx), null, 2)}\n`);
  for (const f of tokenizerFiles) {
    const tmp = join(folder, `${f}.tmp-${process.pid}`);
    copyFileSync(join(opts.tokenizerFrom!, f), tmp);
    renameSync(tmp, join(folder, f));
  }
}
