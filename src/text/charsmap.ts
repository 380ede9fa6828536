// SentencePiece's precompiled charsmap (the `Precompiled` normalizer of a tokenizer.json), read
// exactly as Hugging Face's Rust tokenizers read it, because @huggingface/tokenizers (JS) ignores
// the charsmap and approximates it with NFKC.
//
// The blob: a u32 (little-endian) byte size of the trie, the trie (a darts-clone double array of
// u32 units over UTF-8 bytes, each leaf holding an offset into the pool), then the pool of
// NUL-terminated replacement strings. Normalization walks the text by extended grapheme cluster:
// a cluster shorter than 6 UTF-8 bytes whose bytes start with a key is replaced whole by the
// shortest such key's replacement; otherwise each character is looked up alone the same way.
// (SentencePiece itself matches the longest key over the raw text; Rust tokenizers does the
// above, and transformers 4's fast DeBERTa-v3 tokenizer, which llm-blender ran, is Rust tokenizers.)

import { forEachGrapheme } from './graphemes.js';

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

export class CharsmapError extends Error {}

// darts-clone unit fields.
const hasLeaf = (unit: number): boolean => ((unit >>> 8) & 1) === 1;
const leafValue = (unit: number): number => unit & 0x7fffffff;
const label = (unit: number): number => unit & 0x800000ff;
const offset = (unit: number): number => (unit >>> 10) << ((unit & 0x200) >>> 6);

export class Charsmap {
  private readonly memo = new Map<string, string | null>();
  private readonly bmp: (string | undefined)[] = new Array<string | undefined>(0x10000);

  private constructor(
    private readonly units: Uint32Array,
    private readonly pool: Uint8Array,
  ) {}

  /** Parses a blob; `what` names its source (file and field) in errors. */
  static fromBytes(blob: Uint8Array, what: string): Charsmap {
    if (blob.length < 4) throw new CharsmapError(`${what}: the charsmap has ${blob.length} bytes, fewer than its 4-byte header`);
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieBytes = view.getUint32(0, true);
    if (trieBytes % 4 !== 0 || trieBytes === 0) throw new CharsmapError(`${what}: the charsmap's trie size ${trieBytes} is not a positive multiple of 4`);
    if (4 + trieBytes > blob.length) throw new CharsmapError(`${what}: the charsmap's trie (${trieBytes} bytes) runs past its end (${blob.length} bytes)`);
    const units = new Uint32Array(trieBytes / 4);
    for (let i = 0; i < units.length; i++) units[i] = view.getUint32(4 + 4 * i, true);
    const pool = blob.slice(4 + trieBytes);
    try {
      utf8Strict.decode(pool);
    } catch {
      throw new CharsmapError(`${what}: the charsmap's replacement strings are not valid UTF-8`);
    }
    return new Charsmap(units, pool);
  }

  static fromBase64(text: string, what: string): Charsmap {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new CharsmapError(`${what}: the charsmap is not base64`);
    return Charsmap.fromBytes(Buffer.from(text, 'base64'), what);
  }

  /**
   * The pool offset of the shortest key that prefixes the UTF-8 bytes of `chunk`, or -1. The
   * bytes are made a character at a time while walking; offsets outside the trie read as no match.
   */
  private firstPrefixValue(chunk: string): number {
    const units = this.units;
    let node = offset(units[0]!);
    const step = (c: number): number => {
      // 0: go on; 1 + value: a leaf; -1: no key continues this way.
      node ^= c;
      if (node < 0 || node >= units.length) return -1;
      const unit = units[node]!;
      if (label(unit) !== c) return -1;
      node ^= offset(unit);
      if (node < 0 || node >= units.length) return -1;
      return hasLeaf(unit) ? 1 + leafValue(units[node]!) : 0;
    };
    const bytes = [0, 0, 0, 0];
    for (const ch of chunk) {
      const n = utf8Bytes(ch.codePointAt(0)!, bytes);
      for (let i = 0; i < n; i++) {
        if (bytes[i] === 0) return -1;
        const r = step(bytes[i]!);
        if (r !== 0) return r > 0 ? r - 1 : -1;
      }
    }
    return -1;
  }

  /** The replacement of the shortest key prefixing `chunk`, or null where none does. */
  transform(chunk: string): string | null {
    const known = this.memo.get(chunk);
    if (known !== undefined) return known;
    const at = this.firstPrefixValue(chunk);
    let out: string | null = null;
    if (at >= 0 && at <= this.pool.length) {
      let end = at;
      while (end < this.pool.length && this.pool[end] !== 0) end++;
      // A replacement cut inside a character cannot come from a valid charsmap; Rust refuses it too.
      try {
        out = utf8Strict.decode(this.pool.subarray(at, end));
      } catch {
        out = null;
      }
    }
    if (this.memo.size < 65536) this.memo.set(chunk, out);
    return out;
  }

  normalize(text: string): string {
    const parts: string[] = [];
    forEachGrapheme(text, (cluster, cp) => {
      if (cp >= 0) {
        parts.push(this.single(cp, cluster));
        return;
      }
      if (utf8Length(cluster) < 6) {
        const whole = this.transform(cluster);
        if (whole !== null) {
          parts.push(whole);
          return;
        }
      }
      for (const ch of cluster) parts.push(this.transform(ch) ?? ch);
    });
    return parts.join('');
  }

  /** A cluster of one code point: its replacement or itself, cached for the BMP. */
  private single(cp: number, ch: string): string {
    if (cp > 0xffff) return this.transform(ch) ?? ch;
    let out = this.bmp[cp];
    if (out === undefined) this.bmp[cp] = out = this.transform(ch) ?? ch;
    return out;
  }
}

/** Writes the UTF-8 bytes of `cp` into `out` and returns their count; a lone surrogate is U+FFFD. */
function utf8Bytes(cp: number, out: number[]): number {
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
  if (cp < 0x80) {
    out[0] = cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = 0xc0 | (cp >> 6);
    out[1] = 0x80 | (cp & 0x3f);
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = 0xe0 | (cp >> 12);
    out[1] = 0x80 | ((cp >> 6) & 0x3f);
    out[2] = 0x80 | (cp & 0x3f);
    return 3;
  }
  out[0] = 0xf0 | (cp >> 18);
  out[1] = 0x80 | ((cp >> 12) & 0x3f);
  out[2] = 0x80 | ((cp >> 6) & 0x3f);
  out[3] = 0x80 | (cp & 0x3f);
  return 4;
}

function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return n;
}
