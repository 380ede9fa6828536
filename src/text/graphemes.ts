// Extended grapheme clusters of a text, as Intl.Segmenter gives them, in time linear in the text.
// Node 20's Intl.Segmenter slows down with the length of the string it walks (2.5 µs a character
// at 10k characters, 170 µs at 160k), so the text is first cut where a cluster boundary is
// certain and only the pieces between cuts are segmented.
//
// A boundary is certain between a and b when UAX #29 can only break there: b is a letter, digit,
// punctuation, symbol or space that no rule attaches to what precedes it (not Extend, ZWJ,
// SpacingMark, a regional indicator or an emoji modifier), and a is such a character in the BMP
// that no rule attaches to what follows it (not Prepend, Extend, an Indic linker, a Hangul jamo;
// a Hangul syllable only where b is no vowel or trailing jamo). Marks,
// format characters, controls and unassigned code points are never "such a character", so text in
// an unknown script is segmented whole; the classes only decide where it is safe to cut.

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

const ordinary = /^[\p{L}\p{N}\p{P}\p{S}\p{Zs}]$/u;
const attachesBackward = /^[\p{Grapheme_Extend}\p{Emoji_Modifier}\p{Regional_Indicator}]$/u;
const hangul = /^\p{Script=Hangul}$/u;
// Thai and Lao SARA AM are letters with Grapheme_Cluster_Break=SpacingMark; both scripts are
// left whole rather than listing them. U+0D4E (a Malayalam letter) is Prepend.
const thaiLao = /^[\p{Script=Thai}\p{Script=Lao}]$/u;
const PREPEND_LETTER = 0x0d4e;

/** Bit 1: a boundary after it is certain before a bit-2 character; bit 2: likewise before it. */
let bmpFlags: Uint8Array | null = null;

function flagsOf(cp: number): number {
  const ch = String.fromCodePoint(cp);
  if (!ordinary.test(ch) || attachesBackward.test(ch)) return 0;
  // Hangul: a syllable joins only a following vowel or trailing jamo, which never start a cut.
  const jamoVT = (cp >= 0x1160 && cp <= 0x11ff) || (cp >= 0xd7b0 && cp <= 0xd7ff);
  const syllable = cp >= 0xac00 && cp <= 0xd7a3;
  const start = thaiLao.test(ch) || jamoVT ? 0 : 2;
  const end = cp <= 0xffff && cp !== PREPEND_LETTER && (syllable || !hangul.test(ch)) && !thaiLao.test(ch) ? 1 : 0;
  return start | end;
}

function table(): Uint8Array {
  if (bmpFlags === null) {
    const t = new Uint8Array(0x10000);
    for (let cp = 0; cp < 0x10000; cp++) if (cp < 0xd800 || cp > 0xdfff) t[cp] = flagsOf(cp);
    bmpFlags = t;
  }
  return bmpFlags;
}

const flags = (t: Uint8Array, cp: number): number => (cp <= 0xffff ? t[cp]! : flagsOf(cp));

/** Whether a cluster boundary between code points a and b is certain (see above). */
export function certainBoundary(a: number, b: number): boolean {
  const t = table();
  return (flags(t, a) & 1) !== 0 && (flags(t, b) & 2) !== 0;
}

/**
 * Calls `visit` with each extended grapheme cluster of `text` in order, and with its code point
 * where the cluster is a single one (else -1), the common case callers can look up directly.
 */
export function forEachGrapheme(text: string, visit: (cluster: string, codePoint: number) => void): void {
  const t = table();
  let start = 0;
  let prevEnds = false;
  let prevCp = -1;
  let count = 0; // code points since the last cut
  const flush = (end: number): void => {
    if (count === 1) visit(text.slice(start, end), prevCp);
    else for (const { segment } of segmenter.segment(text.slice(start, end))) visit(segment, -1);
  };
  for (let i = 0; i < text.length; ) {
    const cp = text.codePointAt(i)!;
    const f = flags(t, cp);
    if (count > 0 && prevEnds && (f & 2) !== 0) {
      flush(i);
      start = i;
      count = 0;
    }
    count++;
    prevEnds = (f & 1) !== 0;
    prevCp = cp;
    i += cp > 0xffff ? 2 : 1;
  }
  if (count > 0) flush(text.length);
}
