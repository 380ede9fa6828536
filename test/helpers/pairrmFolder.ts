// A tiny random PairRM folder in the layout of llm-blender/PairRM-hf, written in pure TypeScript:
// config.json (DebertaV2PairRM, relative attention with log buckets, both relative terms, shared
// keys), model.safetensors (F32, seeded), tokenizer.json (a small Unigram vocabulary with the
// DeBERTa-v3 normalizer and its real nmt_nfkc charsmap, taken from test/fixtures/charsmap,
// Metaspace and [CLS] $A [SEP] shapes), tokenizer_config.json, and the
// four slot tokens either in tokenizer.json or, like an add_tokens() save, in added_tokens.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readGzJson } from './gzFixture.js';
import { encodeSafetensors, type NamedTensor } from '../../src/model/encode.js';
import { parsePairRmConfig } from '../../src/pairrm/config.js';
import { expectedPairRmParameters } from '../../src/pairrm/checkpoint.js';
import { SeededRandom } from '../../src/util/rng.js';

const LETTERS = 'abcdefghijklmnopqrstuvwxyz'.split('');
const WORDS = ['the', 'a', 'is', 'red', 'blue', 'green', 'cat', 'dog', 'sky', 'hello', 'world', 'answer', 'question', 'yes', 'no'];
/** Unigram pieces after [PAD] [CLS] [SEP] [UNK], with SentencePiece-like scores. */
const PIECES: [string, number][] = [
  ['▁', -3],
  ...LETTERS.map((c): [string, number] => [c, -6]),
  ...LETTERS.map((c): [string, number] => [`▁${c}`, -5]),
  ...'0123456789.,!?\'":;-()[]<>|~'.split('').map((c): [string, number] => [c, -6]),
  ...WORDS.map((w): [string, number] => [`▁${w}`, -2.5]),
  ['ing', -4],
  ['ed', -4],
  ['s', -4.5],
];

export const TINY_BASE_VOCAB = 4 + PIECES.length;
export const TINY_IDS = {
  mask: TINY_BASE_VOCAB,
  source: TINY_BASE_VOCAB + 1,
  candidate1: TINY_BASE_VOCAB + 2,
  candidate2: TINY_BASE_VOCAB + 3,
  candidate: TINY_BASE_VOCAB + 4,
  cls: 1,
  sep: 2,
};
export const TINY_VOCAB = TINY_BASE_VOCAB + 5;

export interface TinyPairRmOptions {
  seed?: number;
  layers?: number;
  hidden?: number;
  heads?: number;
  ffn?: number;
  buckets?: number;
  maxPositions?: number;
  tasks?: number;
  /** The slot tokens in added_tokens.json instead of tokenizer.json. */
  addedTokensFile?: boolean;
  /** Fields to change in config.json (null deletes). */
  configPatch?: Record<string, unknown>;
  /** Tensors whose name ends with a key are multiplied by its value (e.g. to push activations past fp16's range). */
  scale?: Record<string, number>;
}

export function tinyPairRmConfig(o: TinyPairRmOptions = {}): Record<string, unknown> {
  const cfg: Record<string, unknown> = {
    architectures: ['DebertaV2PairRM'],
    model_type: 'deberta-v2',
    attention_probs_dropout_prob: 0.1,
    hidden_act: 'gelu',
    hidden_dropout_prob: 0.1,
    hidden_size: o.hidden ?? 16,
    initializer_range: 0.02,
    intermediate_size: o.ffn ?? 32,
    layer_norm_eps: 1e-7,
    max_position_embeddings: o.maxPositions ?? 24,
    max_relative_positions: -1,
    norm_rel_ebd: 'layer_norm',
    num_attention_heads: o.heads ?? 4,
    num_hidden_layers: o.layers ?? 2,
    pad_token_id: 0,
    pos_att_type: ['p2c', 'c2p'],
    position_biased_input: false,
    position_buckets: o.buckets ?? 8,
    relative_attention: true,
    share_att_key: true,
    type_vocab_size: 0,
    vocab_size: TINY_VOCAB,
    n_tasks: o.tasks ?? 1,
    drop_out: 0.05,
    source_prefix_id: TINY_IDS.source,
    cand1_prefix_id: TINY_IDS.candidate1,
    cand2_prefix_id: TINY_IDS.candidate2,
    cand_prefix_id: TINY_IDS.candidate,
    sep_token_id: TINY_IDS.sep,
    torch_dtype: 'float32',
  };
  for (const [k, v] of Object.entries(o.configPatch ?? {})) {
    if (v === null) delete cfg[k];
    else cfg[k] = v;
  }
  return cfg;
}

let charsmap: string | null = null;
/** SentencePiece's nmt_nfkc charsmap (base64), as DeBERTa-v3's tokenizer.json carries it. */
export function nmtNfkcCharsmap(): string {
  if (charsmap === null) {
    const file = join(import.meta.dirname, '..', 'fixtures', 'charsmap', 'tokenizer.json.gz');
    const json = readGzJson(file) as unknown as { normalizer: { normalizers: { type: string; precompiled_charsmap?: string }[] } };
    const node = json.normalizer.normalizers.find((n) => n.type === 'Precompiled');
    if (!node?.precompiled_charsmap) throw new Error(`${file} has no Precompiled charsmap`);
    charsmap = node.precompiled_charsmap;
  }
  return charsmap;
}

function added(id: number, content: string, special: boolean): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special };
}

export function tinyPairRmTokenizer(slotsInTokenizer = true): Record<string, unknown> {
  const slots = [
    added(TINY_IDS.source, '<|source|>', false),
    added(TINY_IDS.candidate1, '<|candidate1|>', false),
    added(TINY_IDS.candidate2, '<|candidate2|>', false),
    added(TINY_IDS.candidate, '<|candidate|>', false),
  ];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      added(0, '[PAD]', true),
      added(1, '[CLS]', true),
      added(2, '[SEP]', true),
      added(3, '[UNK]', true),
      added(TINY_IDS.mask, '[MASK]', true),
      ...(slotsInTokenizer ? slots : []),
    ],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Strip', strip_left: true, strip_right: true },
        { type: 'Precompiled', precompiled_charsmap: nmtNfkcCharsmap() },
        { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' },
      ],
    },
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [1], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [2], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 3, vocab: [['[PAD]', 0], ['[CLS]', 0], ['[SEP]', 0], ['[UNK]', 0], ...PIECES], byte_fallback: false },
  };
}

export interface TinyPairRmFolder {
  folder: string;
  config: Record<string, unknown>;
  /** The stored weights by name. */
  tensors: Map<string, Float32Array>;
}

/** Writes a tiny random PairRM folder into `folder`, deterministic in opts.seed. */
export function writeTinyPairRm(folder: string, o: TinyPairRmOptions = {}): TinyPairRmFolder {
  const config = tinyPairRmConfig(o);
  const parsed = parsePairRmConfig(config, join(folder, 'config.json'));
  const rng = new SeededRandom(o.seed ?? 1);
  const tensors: NamedTensor[] = [];
  const values = new Map<string, Float32Array>();
  for (const [name, shape] of expectedPairRmParameters(parsed.native)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const normWeight = name.endsWith('LayerNorm.weight');
    for (let i = 0; i < data.length; i++) {
      if (shape.length === 2) data[i] = (name.includes('embeddings') ? 1 : 1 / Math.sqrt(shape[1]!)) * rng.normal();
      else data[i] = (normWeight ? 1 : 0) + 0.2 * rng.normal();
    }
    for (const [suffix, by] of Object.entries(o.scale ?? {})) if (name.endsWith(suffix)) for (let i = 0; i < data.length; i++) data[i]! *= by;
    tensors.push({ name, shape, data });
    values.set(name, data);
  }
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  writeFileSync(join(folder, 'model.safetensors'), encodeSafetensors(tensors, 'F32'));
  const slotsInTokenizer = !o.addedTokensFile;
  writeFileSync(join(folder, 'tokenizer.json'), JSON.stringify(tinyPairRmTokenizer(slotsInTokenizer)));
  writeFileSync(
    join(folder, 'tokenizer_config.json'),
    `${JSON.stringify({ cls_token: '[CLS]', sep_token: '[SEP]', pad_token: '[PAD]', unk_token: '[UNK]', mask_token: '[MASK]', do_lower_case: false }, null, 2)}\n`,
  );
  if (!slotsInTokenizer) {
    writeFileSync(
      join(folder, 'added_tokens.json'),
      `${JSON.stringify({ '<|source|>': TINY_IDS.source, '<|candidate1|>': TINY_IDS.candidate1, '<|candidate2|>': TINY_IDS.candidate2, '<|candidate|>': TINY_IDS.candidate })}\n`,
    );
  }
  return { folder, config, tensors: values };
}
