// Tokenizer and chat template: exactly one BOS whichever side adds it, EOS ids, truncation that
// keeps the end, the --chat-template fallback, and the tokenizer families the pipeline needs.
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TextCodec } from '../src/text/codec.js';
import { DEMO_DIR } from '../src/pipeline/demo.js';
import { seededRandom } from './sppo.seed.js';

const root = mkdtempSync(join(tmpdir(), 'sppo-text-'));
const { rand } = seededRandom('pipeline.text');
const demoTok = JSON.parse(readFileSync(join(DEMO_DIR, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
const demoCfg = JSON.parse(readFileSync(join(DEMO_DIR, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
const words = Object.keys((demoTok.model as { vocab: Record<string, number> }).vocab).filter((w) => /^[a-z]+$/.test(w));
const randomText = (n: number): string => Array.from({ length: n }, () => words[Math.floor(rand() * words.length)]).join(' ');

let n = 0;
function folder(tok: Record<string, unknown>, cfg: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  const f = join(root, `m${n++}`);
  mkdirSync(f);
  writeFileSync(join(f, 'tokenizer.json'), JSON.stringify(tok));
  writeFileSync(join(f, 'tokenizer_config.json'), JSON.stringify(cfg));
  for (const [name, v] of Object.entries(extra)) writeFileSync(join(f, name), JSON.stringify(v));
  return f;
}

const noBosTemplate = "{% for m in messages %}{{ '<|' + m['role'] + '|> ' + m['content'] + ' ' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";
const bosTemplate = `{{ bos_token }}${noBosTemplate}`;
const noPost = { ...demoTok, post_processor: null };

describe('one BOS', () => {
  const user = randomText(3 + Math.floor(rand() * 8));
  const count = (ids: number[]): number => ids.filter((i) => i === 1).length;
  it.each([
    ['template writes BOS, tokenizer adds BOS', demoTok, bosTemplate, 1],
    ['template writes BOS, tokenizer adds none', noPost, bosTemplate, 1],
    ['template writes none, tokenizer adds BOS', demoTok, noBosTemplate, 1],
    ['neither writes BOS', noPost, noBosTemplate, 0],
  ] as const)('%s', (_, tok, template, bos) => {
    const c = TextCodec.load(folder(tok as Record<string, unknown>, { ...demoCfg, chat_template: template }));
    const ids = c.encodePrompt(user);
    expect(count(ids)).toBe(bos);
    if (bos) expect(ids[0]).toBe(1);
    // The prompt text survives: the user words are in it, in order.
    expect(c.decode(ids)).toBe(`${user}`);
    // Conversations for reward models too.
    expect(count(c.encodeConversation(user, randomText(3)))).toBe(bos);
  });

  it('renders one user turn with the generation prompt', () => {
    const c = TextCodec.load(DEMO_DIR);
    expect(c.renderPrompt('hello sky')).toBe('<s><|user|> hello sky <|assistant|>');
  });
});

describe('truncation, EOS, templates', () => {
  it('keeps the last tokens of a long prompt, after the BOS', () => {
    const c = TextCodec.load(DEMO_DIR);
    const user = randomText(40);
    const full = c.encodePrompt(user);
    const max = 5 + Math.floor(rand() * 20);
    const cut = c.encodePrompt(user, max);
    expect(cut).toHaveLength(max);
    expect(cut[0]).toBe(1);
    expect(cut.slice(1)).toEqual(full.slice(full.length - (max - 1)));
  });

  it('collects EOS ids from the tokenizer config, generation_config.json and config.json', () => {
    const c = TextCodec.load(folder(demoTok, demoCfg, { 'generation_config.json': { eos_token_id: [2, 7] }, 'config.json': { eos_token_id: 9 } }));
    expect(c.eosIds.sort((a, b) => a - b)).toEqual([2, 7, 9]);
  });

  it('asks for --chat-template when the folder has none, and uses the file given', () => {
    const { chat_template: _, ...noTemplate } = demoCfg;
    const f = folder(demoTok, noTemplate);
    expect(() => TextCodec.load(f)).toThrow(/has no chat template .*pass one with --chat-template/);
    const tpl = join(root, 'tpl.jinja');
    writeFileSync(tpl, bosTemplate);
    expect(TextCodec.load(f, { chatTemplateFile: tpl }).renderPrompt('a')).toBe('<s><|user|> a <|assistant|>');
    expect(() => TextCodec.load(f, { chatTemplateFile: join(root, 'none.jinja') })).toThrow(/cannot read the chat template file/);
  });

  it('reports missing and broken tokenizer files by name', () => {
    const f = join(root, 'empty');
    mkdirSync(f);
    expect(() => TextCodec.load(f)).toThrow(/has no tokenizer.json/);
    writeFileSync(join(f, 'tokenizer.json'), '{oops');
    expect(() => TextCodec.load(f)).toThrow(/tokenizer file .*tokenizer.json is not valid JSON/);
    const g = folder(demoTok, { ...demoCfg, chat_template: '{% for %}' });
    expect(() => TextCodec.load(g)).toThrow(/chat template .* does not parse/);
  });
});

// GPT-2 byte-to-unicode table, used by byte-level BPE (Llama-3, GPT-2).
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let i = 33; i <= 126; i++) bs.push(i);
  for (let i = 161; i <= 172; i++) bs.push(i);
  for (let i = 174; i <= 255; i++) bs.push(i);
  const cs = [...bs];
  let m = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + m++); }
  const out: string[] = new Array(256);
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i]!)));
  return out;
}

describe('tokenizer families', () => {
  const texts = ['Hello world, this is SPPO.', 'héllo  wörld\t日本語 🙂', ' leading space and 123 numbers'];

  it('byte-level BPE (Llama-3 style) round-trips text', () => {
    const chars = bytesToUnicode();
    const vocab: Record<string, number> = {};
    chars.forEach((c, i) => (vocab[c] = i));
    const merges = [['Ġ', 'w'], ['Ġw', 'o'], ['h', 'e'], ['he', 'l']];
    for (const [a, b] of merges) vocab[a! + b!] = Object.keys(vocab).length;
    const special = ['<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>'];
    const added = special.map((s, i) => ({ id: 1000 + i, content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
    const tok = {
      version: '1.0', added_tokens: added, normalizer: null,
      pre_tokenizer: { type: 'Sequence', pretokenizers: [
        { type: 'Split', pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ] },
      post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [], special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [1000], tokens: ['<|begin_of_text|>'] } } },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab, merges: merges.map((m) => m.join(' ')) },
    };
    const template = "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] + '<|eot_id|>' }}{% endfor %}";
    const c = TextCodec.load(folder(tok, { bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>', chat_template: template }, { 'generation_config.json': { eos_token_id: [1001, 1002] } }));
    for (const t of texts) expect(c.decode(c.encodeText(t))).toBe(t);
    expect(c.encodeText(' wo')).toEqual([vocab['Ġwo']]);
    const ids = c.encodePrompt('hi');
    expect(ids.filter((i) => i === 1000)).toHaveLength(1);
    expect(c.eosIds.sort()).toEqual([1001, 1002]);
  });

  it('SentencePiece-style BPE with byte fallback (Llama-2 / Mistral style) round-trips text', () => {
    const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
    for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
    for (const ch of '▁abcdefghijklmnopqrstuvwxyzHSPOw,.') if (!(ch in vocab)) vocab[ch] = Object.keys(vocab).length;
    const merges = [['▁', 'w'], ['▁w', 'o']];
    for (const [a, b] of merges) vocab[a! + b!] = Object.keys(vocab).length;
    const added = ['<unk>', '<s>', '</s>'].map((s, i) => ({ id: i, content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
    const tok = {
      version: '1.0', added_tokens: added,
      normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
      pre_tokenizer: null,
      post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [], special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } },
      decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
      model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab, merges: merges.map((m) => m.join(' ')) },
    };
    const template = "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}";
    const c = TextCodec.load(folder(tok, { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', chat_template: template, legacy: false }));
    for (const t of texts) expect(c.decode(c.encodeText(t))).toBe(t);
    const ids = c.encodePrompt('hi');
    expect(ids.filter((i) => i === 1)).toHaveLength(1);
    expect(ids[0]).toBe(1);
    expect(c.eosIds).toEqual([2]);
  });

  it('the demo word-level tokenizer encodes and decodes its words', () => {
    const c = TextCodec.load(DEMO_DIR);
    const t = randomText(10);
    expect(c.decode(c.encodeText(t))).toBe(t);
    expect(c.encodeText(t).every((i) => i > 4)).toBe(true); // no <unk> (0) or specials
  });
});


describe('the prompt as the SPPO reference shows it to PairRM', () => {
  const mistral =
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}";
  const llama3 =
    "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
  it.each([
    ['Mistral', mistral, '<s>[INST] USER [/INST]'],
    ['Llama-3', llama3, '<s><|start_header_id|>user<|end_header_id|>\n\nUSER<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n'],
  ])("is the two-turn %s template cut where the answer starts (rank.py's apply_template)", (_, template, want) => {
    const c = TextCodec.load(folder(demoTok, { ...demoCfg, bos_token: '<s>', eos_token: '</s>', chat_template: template }));
    const user = randomText(4);
    expect(c.promptBeforeAnswer(user)).toBe(want.replace('USER', user));
    // rank.py renders the answer "None" and cuts at the first "None", which would also cut this
    // prompt; here it stays whole.
    expect(c.promptBeforeAnswer(`is None ${user}`)).toContain(`is None ${user}`);
  });
});
