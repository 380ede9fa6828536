// Where the rollout's samples come from: the engine (the policy loaded here) or an
// OpenAI-compatible server (src/openai/rolloutSource.ts). The rollout stage asks for one sample
// per (prompt, seed) and does not care which.
import type { GenerateOptions, ModelHandle } from '../model/types.js';
import type { TextCodec } from '../text/codec.js';

export interface SampleRequest {
  promptIndex: number;
  prompt: string;          // the user turn
  promptTokens: number[];  // the chat template applied, as the policy's tokenizer encodes it
  seed: number;
}

export interface SampleSettings {
  maxNewTokens: number;
  temperature: number;
  topP: number;
}

export interface Sample {
  /** Response token ids in the policy's tokenizer, the stopping EOS included. */
  tokens: number[];
  text: string;
  finishReason: 'eos' | 'length';
}

export interface ResponseSource {
  readonly name: string;
  /** One sample per request, in order. */
  sample(requests: SampleRequest[], s: SampleSettings): Promise<Sample[]>;
}

/** Samples from a loaded model: one generate call per batch of requests. */
export function engineSource(model: ModelHandle, codec: TextCodec): ResponseSource {
  const eosTokenIds = codec.eosIds.length ? codec.eosIds : model.eosTokenIds;
  return {
    name: 'engine',
    async sample(requests, s) {
      const gen: GenerateOptions = { maxNewTokens: s.maxNewTokens, temperature: s.temperature, topP: s.topP, eosTokenIds };
      const gens = await model.generate(requests.map((r) => r.promptTokens), requests.map((r) => r.seed), gen);
      if (gens.length !== requests.length) throw new Error(`the model returned ${gens.length} generations for ${requests.length} prompts`);
      return gens.map((g) => ({ tokens: g.tokens, text: codec.decode(g.tokens), finishReason: g.finishReason }));
    },
  };
}
