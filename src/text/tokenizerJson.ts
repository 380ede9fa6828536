// One way to open a tokenizer.json: @huggingface/tokenizers, with the normalizers it approximates
// swapped for ones that do what Rust tokenizers does: `Precompiled` with its charsmap applied
// (charsmap.ts, where the library applies NFKC), and `Strip` by Unicode White_Space (the library
// uses String.trim, which also strips U+FEFF and keeps U+0085). Used by model folders (codec.ts)
// and PairRM (pairrm/tokenizer.ts) alike.
import { Tokenizer } from '@huggingface/tokenizers';
import { Charsmap } from './charsmap.js';

// The library's normalizers as it uses them: callable, with normalize(), a Sequence holding its
// children in `normalizers`. (Its normalizer classes are not reachable through its typings under
// NodeNext resolution, so the shape is written here and checked by test/text.charsmap.test.ts.)
interface LibNormalizer {
  (text: string): string;
  normalize(text: string): string;
  normalizers?: (LibNormalizer | null)[];
}

function callable(normalize: (text: string) => string): LibNormalizer {
  return Object.assign((text: string) => normalize(text), { normalize });
}

const isSpace = (ch: string): boolean => /^\p{White_Space}$/u.test(ch);

/** `text` without its leading and/or trailing Unicode White_Space (all in the BMP, one unit each). */
function strip(text: string, left: boolean, right: boolean): string {
  let start = 0, end = text.length;
  if (left) while (start < end && isSpace(text[start]!)) start++;
  if (right) while (end > start && isSpace(text[end - 1]!)) end--;
  return text.slice(start, end);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The normalizer `built` (made by the library from `config`) with its approximations made exact. */
function exactNormalizer(built: LibNormalizer | null, config: unknown, file: string, path: string): LibNormalizer | null {
  if (built === null || !isObject(config)) return built;
  if (config.type === 'Precompiled') {
    const raw = config.precompiled_charsmap;
    // No charsmap (some hand-written files): nothing exact to apply; the library's NFKC stands.
    if (raw === null || raw === undefined) return built;
    if (typeof raw !== 'string') throw new Error(`${file}: ${path}.precompiled_charsmap must be a base64 string`);
    const map = Charsmap.fromBase64(raw, `${file} ${path}.precompiled_charsmap`);
    return callable((text) => map.normalize(text));
  }
  if (config.type === 'Strip') {
    const left = config.strip_left === true, right = config.strip_right === true;
    return callable((text) => strip(text, left, right));
  }
  if (config.type === 'Sequence' && Array.isArray(config.normalizers)) {
    const list = config.normalizers as unknown[];
    if (!Array.isArray(built.normalizers) || built.normalizers.length !== list.length) {
      throw new Error(`${file}: ${path} is a Sequence that @huggingface/tokenizers did not build as one (a library change?)`);
    }
    built.normalizers = built.normalizers.map((n, i) => exactNormalizer(n, list[i], file, `${path}.normalizers[${i}]`));
  }
  return built;
}

/**
 * Opens a parsed tokenizer.json (`file` names it in errors). The library matches normalized added
 * tokens by their normalized text, which it computes while constructing; a token that the exact
 * normalizers would normalize differently is refused rather than silently matched the other way.
 */
export function openTokenizerJson(json: Record<string, unknown>, config: Record<string, unknown>, file: string): Tokenizer {
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json, config);
  } catch (err) {
    throw new Error(`${file} could not be loaded by @huggingface/tokenizers: ${(err as Error).message}`);
  }
  const approximate = tokenizer.normalizer as LibNormalizer | null;
  // The library's results, taken before the swap changes its Sequence in place.
  const before = new Map<string, string>();
  const added = Array.isArray(json.added_tokens) ? (json.added_tokens as unknown[]).filter(isObject) : [];
  if (approximate) for (const t of added) if (t.normalized === true && typeof t.content === 'string') before.set(t.content, approximate.normalize(t.content));
  const exact = exactNormalizer(approximate, json.normalizer, file, 'normalizer');
  tokenizer.normalizer = exact;
  if (exact) {
    for (const [content, was] of before) {
      const now = exact.normalize(content);
      if (now !== was) {
        throw new Error(
          `${file}: the added token ${JSON.stringify(content)} normalizes to ${JSON.stringify(now)} as Rust tokenizers does it ` +
            `but to ${JSON.stringify(was)} under @huggingface/tokenizers' approximation, so it could not be matched exactly`,
        );
      }
    }
  }
  return tokenizer;
}
