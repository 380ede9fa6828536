// PairRM's tokenizer: tokenizer.json through @huggingface/tokenizers, with the tokens llm-blender
// adds (added_tokens.json) merged in when tokenizer.json lacks them, and every id the collator
// relies on checked against config.json: [CLS], [SEP] and the four slot tokens.
//
// The DeBERTa-v3 normalizer (Strip, the precompiled nmt_nfkc charsmap, a Replace) is applied as
// Rust tokenizers applies it (text/tokenizerJson.ts); docs/pairrm.md says what was checked.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Tokenizer } from '@huggingface/tokenizers';
import { openTokenizerJson } from '../text/tokenizerJson.js';
import type { PairRmSlotIds } from './config.js';

/** The text prefixes llm-blender's CrossCompareCollator puts before the source and candidates. */
export const SLOT_TEXT = {
  source: '<|source|>',
  candidate1: '<|candidate1|>',
  candidate2: '<|candidate2|>',
  candidate: '<|candidate|>',
} as const;

function readJson(file: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: cannot read as JSON (${(err as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${file}: must be a JSON object`);
  return v as Record<string, unknown>;
}

function tokenString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

export class PairRmTokenizer {
  readonly sepToken: string;
  readonly clsId: number;

  private constructor(
    private readonly tokenizer: Tokenizer,
    readonly ids: PairRmSlotIds,
    sepToken: string,
    clsId: number,
  ) {
    this.sepToken = sepToken;
    this.clsId = clsId;
  }

  /** Loads the tokenizer of a PairRM folder and checks it against config.json's ids. */
  static load(folder: string, ids: PairRmSlotIds): PairRmTokenizer {
    const tokFile = join(folder, 'tokenizer.json');
    if (!existsSync(tokFile)) throw new Error(`PairRM folder ${folder} has no tokenizer.json`);
    const tokJson = readJson(tokFile);
    const cfgFile = join(folder, 'tokenizer_config.json');
    const config = existsSync(cfgFile) ? readJson(cfgFile) : {};
    const mapFile = join(folder, 'special_tokens_map.json');
    const specialMap = existsSync(mapFile) ? readJson(mapFile) : {};
    // llm-blender adds its slot tokens with tokenizer.add_tokens; a folder saved without them in
    // tokenizer.json lists them in added_tokens.json (content -> id).
    const addedFile = join(folder, 'added_tokens.json');
    if (existsSync(addedFile)) {
      const list = Array.isArray(tokJson.added_tokens) ? [...(tokJson.added_tokens as Record<string, unknown>[])] : [];
      for (const [content, id] of Object.entries(readJson(addedFile))) {
        if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) throw new Error(`${addedFile}: '${content}' must map to a token id (got ${JSON.stringify(id)})`);
        const same = list.find((t) => t.content === content);
        if (same && same.id !== id) throw new Error(`${addedFile}: '${content}' is ${id} but ${tokFile} says ${String(same.id)}`);
        if (!same) list.push({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: false });
      }
      tokJson.added_tokens = list;
    }
    const tokenizer = openTokenizerJson(tokJson, config, tokFile);
    const sep = tokenString(config.sep_token) ?? tokenString(specialMap.sep_token) ?? '[SEP]';
    const cls = tokenString(config.cls_token) ?? tokenString(specialMap.cls_token) ?? '[CLS]';
    const idOf = (token: string, what: string): number => {
      const id = tokenizer.token_to_id(token);
      if (id === undefined) throw new Error(`${tokFile}: the ${what} token '${token}' is not in the vocabulary (is this llm-blender/PairRM-hf?)`);
      return id;
    };
    const clsId = idOf(cls, 'CLS');
    const check = (token: string, want: number, field: string): void => {
      const got = idOf(token, field);
      if (got !== want) throw new Error(`${tokFile}: '${token}' is token ${got} but config.json's ${field} is ${want}`);
    };
    check(sep, ids.sep, 'sep_token_id');
    check(SLOT_TEXT.source, ids.source, 'source_prefix_id');
    check(SLOT_TEXT.candidate1, ids.candidate1, 'cand1_prefix_id');
    check(SLOT_TEXT.candidate2, ids.candidate2, 'cand2_prefix_id');
    check(SLOT_TEXT.candidate, ids.candidate, 'cand_prefix_id');
    return new PairRmTokenizer(tokenizer, ids, sep, clsId);
  }

  /** Token ids of `text` without [CLS]/[SEP] (added tokens in the text are matched as in Python). */
  encode(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  get vocabSize(): number {
    return this.tokenizer.get_vocab(true).size;
  }
}
