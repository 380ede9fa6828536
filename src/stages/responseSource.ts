// Where the rollout's samples come from: the engine (the policy loaded here) or an
// OpenAI-compatible server (src/openai/rolloutSource.ts). The rollout stage asks for K samples of
// each (prompt, seed) and does not care which.
import type { GenerateOptions, GenerateStats, Generation, ModelHandle } from '../model/types.js';
import type { TextCodec } from '../text/codec.js';
import { contextWindow } from './contextWindow.js';

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
  /** Samples per request: sample k of a request is the k-th sample of its seed. */
  samples: number;
  /** The engine's continuous-batching budgets (GenerateOptions); other sources ignore them. */
  budget?: { maxBatchTokens: number; maxRunningSequences: number; maxCacheTokens: number; maxSwapTokens: number };
}

export interface Sample {
  /** Response token ids in the policy's tokenizer, the stopping EOS included. */
  tokens: number[];
  text: string;
  finishReason: 'eos' | 'length';
}

export interface ResponseSource {
  readonly name: string;
  /** The policy's context window (max_position_embeddings), or null when its config names none. */
  readonly window: number | null;
  /**
   * Whether one call may span many shards: the source hands each request over as it finishes
   * while the rest of the call keeps it busy (the engine: finished samples leave the batch and
   * waiting prompts join, so a call over a whole stage stays full until its end). A source whose
   * call has all its requests in flight at once (a server) gets a shard per call.
   */
  readonly spansShards: boolean;
  /**
   * s.samples samples for each request: `onRequest(j, samples)` gets request j's as soon as they
   * are all in (in any order, each request once, all before the promise settles; if it throws,
   * the call stops and rejects with what it threw). `onProgress`, when the source can report, gets
   * the number of samples of this call finished so far (rising; never after the promise settles);
   * a source may also never call it. Resolves to what the engine's scheduler did in the call, or
   * null for a source without one (a server).
   */
  sample(requests: SampleRequest[], s: SampleSettings, onRequest: (j: number, samples: Sample[]) => void, onProgress?: (finished: number) => void): Promise<GenerateStats | null>;
}

const BUDGET_SETTINGS: Readonly<Record<string, string>> = {
  max_batch_tokens: 'rollout.maxBatchTokens, --rollout-batch-tokens',
  max_running_sequences: 'rollout.maxRunningSequences, --rollout-max-sequences',
  max_cache_tokens: 'rollout.maxCacheTokens, --rollout-cache-tokens',
  max_swap_tokens: 'rollout.maxSwapTokens, --rollout-swap-tokens',
};

/** The engine names a batching budget it refuses as the core does (max_batch_tokens, ...): add the recipe key and flag. */
export function withBudgetSetting(message: string): string {
  const m = /^generate: (max_batch_tokens|max_running_sequences|max_cache_tokens|max_swap_tokens) = /.exec(message);
  return m ? `${message} (set by ${BUDGET_SETTINGS[m[1]!]})` : message;
}

/** Samples from a loaded model: one generate call per batch of requests, K samples from one prefill each; each request is handed over as its samples finish. */
export function engineSource(model: ModelHandle, codec: TextCodec): ResponseSource {
  const eosTokenIds = codec.eosIds.length ? codec.eosIds : model.eosTokenIds;
  return {
    name: model.folder ?? 'the engine',
    window: contextWindow(model.config),
    spansShards: true,
    async sample(requests, s, onRequest, onProgress) {
      const gen: GenerateOptions = {
        maxNewTokens: s.maxNewTokens, temperature: s.temperature, topP: s.topP, eosTokenIds, samples: s.samples, ...s.budget,
        ...(onProgress ? { onProgress } : {}),
      };
      // The count of each request's samples is checked by the caller (stages/rollout.ts sampleEach).
      const each = (j: number, gens: Generation[]): void => {
        onRequest(j, gens.map((g) => ({ tokens: g.tokens, text: codec.decode(g.tokens), finishReason: g.finishReason })));
      };
      return model.generateEach(requests.map((r) => r.promptTokens), requests.map((r) => r.seed), gen, each).catch((err: unknown) => {
        // Only a budget message is reworded; any other error (CancelledError included) goes on as it is.
        if (!(err instanceof Error)) throw err;
        const message = withBudgetSetting(err.message);
        throw message === err.message ? err : new Error(message);
      });
    },
  };
}
