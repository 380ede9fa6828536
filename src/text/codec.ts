// Text in and out of a model folder: tokenizer.json through @huggingface/tokenizers (tokenizerJson.ts), the chat
// template from tokenizer_config.json (or a --chat-template file) through @huggingface/jinja.
// A prompt is the template applied to one user turn with the generation prompt, tokenized with
// exactly one BOS: the template's own when it writes one, else the tokenizer's when it adds one.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { openTokenizerJson } from './tokenizerJson.js';

export class TextError extends Error {}

function readJson(file: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TextError(`cannot read ${what} ${file}: ${(err as Error).message}`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new TextError(`${what} ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

/** tokenizer_config.json writes special tokens as strings or as AddedToken objects. */
function tokenString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

function pickTemplate(raw: unknown, file: string): string | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw === 'string') return raw;
  // Newer configs: a list of named templates; the default one is used.
  if (Array.isArray(raw)) {
    const named = raw as { name?: unknown; template?: unknown }[];
    const def = named.find((t) => t.name === 'default') ?? named[0];
    if (def && typeof def.template === 'string') return def.template;
  }
  throw new TextError(`${file}: chat_template must be a string or a list of {name, template}`);
}

function idList(v: unknown): number[] {
  if (typeof v === 'number' && Number.isInteger(v)) return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number' && Number.isInteger(x));
  return [];
}

export interface CodecOptions {
  /** A Jinja template file that replaces (or supplies) the folder's chat template. */
  chatTemplateFile?: string | null;
}

export class TextCodec {
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly bosId: number | null;
  readonly eosIds: number[];
  private readonly template: Template;
  /** Whether the tokenizer's post-processor puts BOS in front of plain text. */
  private readonly tokenizerAddsBos: boolean;

  private constructor(
    readonly folder: string,
    private readonly tokenizer: Tokenizer,
    config: Record<string, unknown>,
    templateSource: string,
    extraEos: number[],
  ) {
    this.bosToken = tokenString(config.bos_token);
    this.eosToken = tokenString(config.eos_token);
    this.bosId = this.bosToken !== null ? (tokenizer.token_to_id(this.bosToken) ?? null) : null;
    const eos = this.eosToken !== null ? tokenizer.token_to_id(this.eosToken) : undefined;
    this.eosIds = [...new Set([...(eos !== undefined ? [eos] : []), ...extraEos])];
    try {
      this.template = new Template(templateSource);
    } catch (err) {
      throw new TextError(`the chat template of ${folder} does not parse: ${(err as Error).message}`);
    }
    const probe = tokenizer.encode('a', { add_special_tokens: true }).ids;
    this.tokenizerAddsBos = this.bosId !== null && probe[0] === this.bosId;
  }

  /** Loads tokenizer.json, tokenizer_config.json and the EOS ids of a model folder. */
  static load(folder: string, opts: CodecOptions = {}): TextCodec {
    const tokFile = join(folder, 'tokenizer.json');
    const cfgFile = join(folder, 'tokenizer_config.json');
    if (!existsSync(tokFile)) throw new TextError(`model folder ${folder} has no tokenizer.json`);
    const tokJson = readJson(tokFile, 'tokenizer file');
    const config = existsSync(cfgFile) ? readJson(cfgFile, 'tokenizer config') : {};
    let tokenizer: Tokenizer;
    try {
      tokenizer = openTokenizerJson(tokJson, config, tokFile);
    } catch (err) {
      throw new TextError((err as Error).message);
    }
    let templateSource: string | null;
    if (opts.chatTemplateFile) {
      try {
        templateSource = readFileSync(opts.chatTemplateFile, 'utf8');
      } catch (err) {
        throw new TextError(`cannot read the chat template file ${opts.chatTemplateFile}: ${(err as Error).message}`);
      }
    } else {
      templateSource = pickTemplate(config.chat_template, cfgFile);
      const jinjaFile = join(folder, 'chat_template.jinja');
      if (templateSource === null && existsSync(jinjaFile)) templateSource = readFileSync(jinjaFile, 'utf8');
    }
    if (templateSource === null) {
      throw new TextError(
        `model folder ${folder} has no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja); ` +
          'pass one with --chat-template <file.jinja>',
      );
    }
    // EOS ids: the tokenizer's eos_token plus generation_config.json / config.json eos_token_id
    // (Llama-3 instruct stops at <|eot_id|> as well as <|end_of_text|>).
    const extra: number[] = [];
    for (const f of ['generation_config.json', 'config.json']) {
      const p = join(folder, f);
      if (existsSync(p)) extra.push(...idList(readJson(p, f).eos_token_id));
    }
    return new TextCodec(folder, tokenizer, config, templateSource, extra);
  }

  /** The chat template applied to one user turn, with the generation prompt. */
  renderPrompt(user: string): string {
    try {
      return this.template.render({
        messages: [{ role: 'user', content: user }],
        add_generation_prompt: true,
        bos_token: this.bosToken ?? '',
        eos_token: this.eosToken ?? '',
      });
    } catch (err) {
      throw new TextError(`the chat template of ${this.folder} failed to render: ${(err as Error).message}`);
    }
  }

  /**
   * The prompt as the SPPO reference shows it to PairRM (scripts/rank.py): the template applied
   * to the user turn followed by an assistant turn, cut where the assistant's text begins. The
   * reference uses the answer "None" and cuts at the first "None", which also cuts prompts that
   * contain the word; a marker that cannot occur in text is used here instead.
   */
  promptBeforeAnswer(user: string): string {
    const marker = '\uE000sppo-native-answer\uE000';
    let text: string;
    try {
      text = this.template.render({
        messages: [
          { role: 'user', content: user },
          { role: 'assistant', content: marker },
        ],
        add_generation_prompt: false,
        bos_token: this.bosToken ?? '',
        eos_token: this.eosToken ?? '',
      });
    } catch (err) {
      throw new TextError(`the chat template of ${this.folder} failed to render: ${(err as Error).message}`);
    }
    const at = text.lastIndexOf(marker);
    if (at < 0) throw new TextError(`the chat template of ${this.folder} does not write the assistant's answer into the conversation`);
    return text.slice(0, at);
  }

  /** Prompt token ids with exactly one BOS (when the model uses one), cut to the last `maxTokens`. */
  encodePrompt(user: string, maxTokens = Infinity): number[] {
    let ids = this.tokenizer.encode(this.renderPrompt(user), { add_special_tokens: false }).ids;
    if (this.bosId !== null) {
      let lead = 0;
      while (ids[lead] === this.bosId) lead++;
      const wantBos = lead > 0 || this.tokenizerAddsBos;
      ids = ids.slice(lead);
      if (ids.length + (wantBos ? 1 : 0) > maxTokens) ids = ids.slice(ids.length + (wantBos ? 1 : 0) - maxTokens);
      return wantBos ? [this.bosId, ...ids] : ids;
    }
    return ids.length > maxTokens ? ids.slice(ids.length - maxTokens) : ids;
  }

  /**
   * Token ids of a whole conversation (user turn + assistant turn) under the template, with
   * exactly one BOS; used to score responses with a reward model.
   */
  encodeConversation(user: string, assistant: string): number[] {
    let text: string;
    try {
      text = this.template.render({
        messages: [
          { role: 'user', content: user },
          { role: 'assistant', content: assistant },
        ],
        add_generation_prompt: false,
        bos_token: this.bosToken ?? '',
        eos_token: this.eosToken ?? '',
      });
    } catch (err) {
      throw new TextError(`the chat template of ${this.folder} failed to render: ${(err as Error).message}`);
    }
    let ids = this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    if (this.bosId === null) return ids;
    let lead = 0;
    while (ids[lead] === this.bosId) lead++;
    const wantBos = lead > 0 || this.tokenizerAddsBos;
    ids = ids.slice(lead);
    return wantBos ? [this.bosId, ...ids] : ids;
  }

  /**
   * Token ids of a chat (any roles and turns, e.g. from an OpenAI chat request) under the
   * template, with exactly one BOS; `addGenerationPrompt` ends it where the assistant's turn starts.
   */
  encodeChat(messages: readonly { role: string; content: string }[], addGenerationPrompt: boolean): number[] {
    let text: string;
    try {
      text = this.template.render({
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: addGenerationPrompt,
        bos_token: this.bosToken ?? '',
        eos_token: this.eosToken ?? '',
      });
    } catch (err) {
      throw new TextError(`the chat template of ${this.folder} failed to render: ${(err as Error).message}`);
    }
    let ids = this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    if (this.bosId === null) return ids;
    let lead = 0;
    while (ids[lead] === this.bosId) lead++;
    const wantBos = lead > 0 || this.tokenizerAddsBos;
    ids = ids.slice(lead);
    return wantBos ? [this.bosId, ...ids] : ids;
  }

  /** Text with the tokenizer's own special tokens (BOS where it adds one), as a plain completion prompt. */
  encodeWithSpecial(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: true }).ids;
  }

  /** Text of generated tokens, without special tokens (EOS). */
  decode(ids: number[]): string {
    return this.tokenizer.decode(ids, { skip_special_tokens: true });
  }

  /** One token's text as the tokenizer decodes it alone, special tokens included (for logprobs). */
  tokenText(id: number): string {
    return this.tokenizer.decode([id], { skip_special_tokens: false });
  }

  encodeText(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  get vocabSize(): number {
    return this.tokenizer.get_vocab(true).size;
  }

  /** The largest token id the tokenizer can produce (added tokens included). */
  get maxTokenId(): number {
    let max = -1;
    for (const id of this.tokenizer.get_vocab(true).values()) if (id > max) max = id;
    return max;
  }
}
