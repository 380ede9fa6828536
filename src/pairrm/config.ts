// Reads the config.json of a PairRM folder (llm-blender/PairRM-hf: architecture DebertaV2PairRM,
// model_type deberta-v2), validates it and maps it to the struct the core takes
// (native/model/pairrm_config.h). Everything the core does not compute exactly (absolute
// positions, token types, a convolution layer, separate position projections, another
// activation) is refused with a message naming the field.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { NativePairRmConfig } from '../native/addon.js';
import { Fields, isObject, readJsonFile } from '../model/config.js';

/** Token ids the collator writes and the model reads (config.json's *_prefix_id fields). */
export interface PairRmSlotIds {
  source: number;
  candidate1: number;
  candidate2: number;
  /** The one candidate prefix a candidate is tokenized with, rewritten to candidate1/2 per pair. */
  candidate: number;
  sep: number;
}

export interface PairRmModelConfig {
  native: NativePairRmConfig;
  ids: PairRmSlotIds;
  /** The config.json object as read. */
  raw: Record<string, unknown>;
}

const ATT_TYPES = ['c2p', 'p2c'] as const;

function parsePosAttType(f: Fields): { c2p: boolean; p2c: boolean } {
  const v = f.obj.pos_att_type;
  if (v === undefined || v === null) return { c2p: false, p2c: false };
  // transformers accepts "p2c|c2p" as well as a list.
  const list = typeof v === 'string' ? v.toLowerCase().split('|').map((s) => s.trim()).filter(Boolean) : v;
  if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) {
    throw f.err('pos_att_type', `must be a list of 'c2p' / 'p2c' or a string like "p2c|c2p" (got ${JSON.stringify(v)})`);
  }
  for (const t of list as string[]) {
    if (!(ATT_TYPES as readonly string[]).includes(t)) {
      throw f.err('pos_att_type', `'${t}' is not supported (supported: c2p, p2c; 'p2p' is not computed)`);
    }
  }
  return { c2p: (list as string[]).includes('c2p'), p2c: (list as string[]).includes('p2c') };
}

/** Validates a parsed PairRM config.json; `source` (the file) prefixes every error. */
export function parsePairRmConfig(json: unknown, source: string): PairRmModelConfig {
  if (!isObject(json)) throw new Error(`${source}: config must be a JSON object`);
  const f = new Fields(json, source);
  const modelType = f.str('model_type');
  if (modelType !== 'deberta-v2') {
    throw f.err('model_type', `must be 'deberta-v2' for a PairRM judge (got ${JSON.stringify(json.model_type ?? null)})`);
  }
  if (f.has('architectures')) {
    const a = json.architectures;
    if (!Array.isArray(a) || a.length !== 1 || a[0] !== 'DebertaV2PairRM') {
      throw f.err('architectures', `must be ["DebertaV2PairRM"] (llm-blender/PairRM-hf; got ${JSON.stringify(a)})`);
    }
  }
  const hidden = f.int('hidden_size');
  const heads = f.int('num_attention_heads');
  const headDim = f.int('attention_head_size', { dflt: Math.floor(hidden / heads) });
  if (headDim * heads !== hidden) {
    throw f.err(f.has('attention_head_size') ? 'attention_head_size' : 'num_attention_heads',
      `times the other must equal hidden_size (${heads} x ${headDim} != ${hidden})`);
  }
  const act = f.str('hidden_act') ?? 'gelu';
  if (act !== 'gelu') throw f.err('hidden_act', `'${act}' is not supported (PairRM uses 'gelu', the exact erf form)`);
  if (f.bool('position_biased_input', true)) {
    throw f.err('position_biased_input', 'must be false: absolute position embeddings are not computed (PairRM has none)');
  }
  if (f.int('type_vocab_size', { min: 0, dflt: 0 }) !== 0) {
    throw f.err('type_vocab_size', 'must be 0: token type embeddings are not computed (PairRM has none)');
  }
  if (f.has('embedding_size') && f.int('embedding_size') !== hidden) {
    throw f.err('embedding_size', `must equal hidden_size (${hidden}): an embedding projection is not computed`);
  }
  if (f.int('conv_kernel_size', { min: 0, dflt: 0 }) !== 0) {
    throw f.err('conv_kernel_size', 'must be 0: the convolution layer of DeBERTa-v2-xlarge is not computed');
  }
  if (!f.bool('relative_attention', false)) {
    throw f.err('relative_attention', 'must be true (PairRM uses relative attention; plain attention is not computed)');
  }
  const { c2p, p2c } = parsePosAttType(f);
  if ((c2p || p2c) && !f.bool('share_att_key', false)) {
    throw f.err('share_att_key', 'must be true: separate position projections (pos_key_proj, pos_query_proj) are not computed');
  }
  const maxPositions = f.int('max_position_embeddings', { dflt: 512 });
  let maxRel = f.int('max_relative_positions', { min: -1, dflt: -1 });
  if (maxRel < 1) maxRel = maxPositions; // transformers: "< 1" means max_position_embeddings
  let buckets = f.int('position_buckets', { min: -1, dflt: -1 });
  if (buckets < 0) buckets = 0;
  if (buckets > 0 && !(buckets >= 2 && maxRel - 1 > Math.floor(buckets / 2))) {
    throw f.err('position_buckets', `(${buckets}) needs max_relative_positions - 1 (${maxRel - 1}) above position_buckets / 2`);
  }
  const normRel = (f.str('norm_rel_ebd') ?? 'none').toLowerCase().split('|').map((s) => s.trim());
  const ids: PairRmSlotIds = {
    source: requiredId(f, 'source_prefix_id'),
    candidate1: requiredId(f, 'cand1_prefix_id'),
    candidate2: requiredId(f, 'cand2_prefix_id'),
    candidate: requiredId(f, 'cand_prefix_id'),
    sep: requiredId(f, 'sep_token_id'),
  };
  const vocab = f.int('vocab_size');
  for (const [k, id] of Object.entries(ids)) {
    if (id >= vocab) throw new Error(`${source}: the ${k} token id ${id} is outside the vocabulary (vocab_size ${vocab})`);
  }
  const native: NativePairRmConfig = {
    vocabSize: vocab,
    hiddenSize: hidden,
    intermediateSize: f.int('intermediate_size'),
    numLayers: f.int('num_hidden_layers'),
    numHeads: heads,
    headDim,
    layerNormEps: f.num('layer_norm_eps', 1e-7),
    positionBuckets: buckets,
    maxRelativePositions: maxRel,
    c2p,
    p2c,
    normRelEmbeddings: normRel.includes('layer_norm'),
    numTasks: f.int('n_tasks', { dflt: 1 }),
  };
  return { native, ids, raw: json };
}

function requiredId(f: Fields, key: string): number {
  const id = f.tokenId(key);
  if (id === null) throw f.err(key, 'is required (llm-blender writes it into PairRM config.json)');
  return id;
}

export function readPairRmConfig(folder: string): PairRmModelConfig {
  const file = join(folder, 'config.json');
  if (!existsSync(file)) throw new Error(`${folder}: no config.json (not a Hugging Face model folder)`);
  return parsePairRmConfig(readJsonFile(file), file);
}

/** Rows of the relative-embedding table: 2 x the span (position_buckets, or max_relative_positions). */
export function relativeRows(c: NativePairRmConfig): number {
  return 2 * (c.positionBuckets > 0 ? c.positionBuckets : c.maxRelativePositions);
}
