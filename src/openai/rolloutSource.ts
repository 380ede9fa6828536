// Rollout samples from an OpenAI-compatible server (vLLM, SGLang, `sppo-native serve`). Each
// prompt is one /v1/completions request: the prompt as the policy's token ids (the chat template
// applied here, so the server sees exactly what the engine would), n = K, and the prompt's seed,
// temperature, top_p and max_tokens (`sppo-native serve` draws choice k from the seed's k-th
// sample stream, exactly as the engine's rollout does); the requests of one rollout call (rollout.batchSize
// prompts, or a whole shard when it is 0) are in flight at a time, each reported as it is answered. The text
// that comes back is re-tokenized with the policy's tokenizer (EOS appended when the server
// stopped at it), unless the server sends its token ids too (vLLM's return_token_ids, which
// `sppo-native serve` honours), which must then decode to the text; either way the server's
// completion token count must match (else it serves another tokenizer), and the chat
// template's rendering of the conversation should hold the same ids (a difference is counted
// and reported: training uses the ids above). Re-tokenized text cannot bring back special
// tokens a model emitted inside a response (decoding drops them).
import type { TextCodec } from '../text/codec.js';
import type { ResponseSource, Sample, SampleRequest, SampleSettings } from '../stages/responseSource.js';
import { OpenAIClient } from './client.js';

export interface OpenAISourceOptions {
  client: OpenAIClient;
  /** The served model's name (its id in /v1/models). */
  model: string;
  codec: TextCodec;
  /** The policy's context window (max_position_embeddings), or null. */
  window: number | null;
  onLog?: (message: string) => void;
}

interface CompletionAnswer {
  choices?: { text?: unknown; finish_reason?: unknown; index?: unknown; token_ids?: unknown }[];
  usage?: { completion_tokens?: unknown };
}

const startsWith = (a: readonly number[], b: readonly number[]): boolean => b.length <= a.length && b.every((x, i) => a[i] === x);

export class OpenAIRolloutSource implements ResponseSource {
  readonly name: string;
  readonly window: number | null;
  /** A call's requests are all in flight at once: a shard per call. */
  readonly spansShards = false;
  /** Responses whose re-tokenization differs from the template's rendering of the conversation. */
  templateMismatches = 0;
  samples = 0;

  constructor(private readonly o: OpenAISourceOptions) {
    this.name = `openai:${o.client.root} (${o.model})`;
    this.window = o.window;
  }

  private async one(r: SampleRequest, s: SampleSettings): Promise<Sample[]> {
    const what = `${this.name}, prompt ${r.promptIndex} (seed ${r.seed})`;
    const body = { model: this.o.model, prompt: r.promptTokens, n: s.samples, seed: r.seed, temperature: s.temperature, top_p: s.topP, max_tokens: s.maxNewTokens, return_token_ids: true };
    const a = (await this.o.client.post('/completions', body)) as CompletionAnswer;
    const choices = a.choices ?? [];
    if (choices.length !== s.samples) throw new Error(`${what}: the answer has ${choices.length} choices, expected n = ${s.samples}`);
    // Choices come in index order here; the usage count is of all of them together.
    const byIndex = [...choices].sort((x, y) => Number(x.index ?? 0) - Number(y.index ?? 0));
    const out = byIndex.map((c, k) => this.choice(r, c, `${what}, choice ${k}`));
    const reported = a.usage?.completion_tokens;
    const total = out.reduce((n, x) => n + x.tokens.length, 0);
    if (typeof reported === 'number' && reported !== total) {
      throw new Error(
        `${what}: the server counts ${reported} completion tokens, the policy's tokenizer makes ${total} of the texts it sent; ` +
          `the server is not serving this policy's tokenizer (check its model and tokenizer)`,
      );
    }
    return out;
  }

  private choice(r: SampleRequest, c: NonNullable<CompletionAnswer['choices']>[number], what: string): Sample {
    if (!c || typeof c.text !== 'string') throw new Error(`${what}: the answer has no text`);
    const reason = c.finish_reason;
    if (reason !== 'stop' && reason !== 'length') throw new Error(`${what}: finish_reason '${String(reason)}' (expected stop or length)`);
    const codec = this.o.codec;
    const eos = codec.eosIds[0];
    let tokens: number[];
    const ids = c.token_ids;
    if (Array.isArray(ids) && ids.every((t) => Number.isInteger(t) && t >= 0)) {
      // The server sent its ids (vLLM's return_token_ids): they must be this tokenizer's for the text.
      tokens = ids as number[];
      if (codec.decode(tokens) !== c.text) {
        throw new Error(`${what}: the token ids the server sent decode to ${JSON.stringify(codec.decode(tokens).slice(0, 60))} with the policy's tokenizer, not to its text ${JSON.stringify(c.text.slice(0, 60))}; the server is not serving this policy's tokenizer`);
      }
      if (reason === 'stop' && eos !== undefined && !codec.eosIds.includes(tokens[tokens.length - 1]!)) tokens = [...tokens, eos];
    } else {
      tokens = codec.encodeText(c.text);
      // No stop strings are sent, so 'stop' is the model's EOS, which the engine's samples include too.
      if (reason === 'stop' && eos !== undefined) tokens.push(eos);
    }
    const conv = codec.encodeConversation(r.prompt, c.text);
    const body2 = reason === 'stop' ? tokens.slice(0, -1) : tokens;
    if (!startsWith(conv, r.promptTokens) || !startsWith(conv.slice(r.promptTokens.length), body2)) this.templateMismatches++;
    this.samples++;
    return { tokens, text: c.text, finishReason: reason === 'stop' ? 'eos' : 'length' };
  }

  /** Resolves to null: a server's scheduling is its own. */
  async sample(requests: SampleRequest[], s: SampleSettings, onRequest: (j: number, samples: Sample[]) => void, onProgress?: (finished: number) => void): Promise<null> {
    let finished = 0;
    let settled = false;
    const answers = requests.map(async (r, j) => {
      const out = await this.one(r, s);
      if (settled) return; // requests still in flight after a failure hand nothing over
      finished += out.length;
      onRequest(j, out);
      onProgress?.(finished);
    });
    try {
      await Promise.all(answers);
    } finally {
      settled = true;
    }
    return null;
  }

  /** A line for the log when some responses re-tokenize differently from the template's rendering. */
  report(): string | null {
    if (this.templateMismatches === 0) return null;
    return `${this.name}: ${this.templateMismatches} of ${this.samples} responses tokenize differently inside the chat template's rendering of the conversation than on their own; they are trained on their own re-tokenization (prompt ids + response ids)`;
  }
}
