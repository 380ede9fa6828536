// The model's context window (config.json max_position_embeddings): sampling never runs past it.
// Prompts are cut to leave room for one new token at least, and each response stops where
// prompt + response fills the window (finish reason "length"). Cutting a sample after it was drawn
// gives the tokens that stopping there would have (each prompt is seeded alone and drawn token by
// token), so a sample still does not depend on the batch it was drawn in.
import type { Generation } from '../model/types.js';

/** max_position_embeddings of a config.json, or null when it names none. */
export function contextWindow(config: Readonly<Record<string, unknown>>): number | null {
  const v = config.max_position_embeddings;
  return typeof v === 'number' && Number.isInteger(v) && v >= 2 ? v : null;
}

/** The prompt cut that leaves room for a response: at most window - 1 tokens. */
export function promptCut(maxPromptTokens: number, window: number | null): number {
  return window === null ? maxPromptTokens : Math.min(maxPromptTokens, window - 1);
}

/** New tokens to ask of one generate call whose shortest prompt has `shortest` tokens. */
export function newTokensFor(maxNewTokens: number, shortest: number, window: number | null): number {
  return window === null ? maxNewTokens : Math.max(1, Math.min(maxNewTokens, window - shortest));
}

/** `g` cut so that `promptLength` + its tokens fit the window. */
export function fitToWindow(g: Generation, promptLength: number, window: number | null): Generation {
  if (window === null) return g;
  const room = Math.max(0, window - promptLength);
  if (g.tokens.length <= room) return g;
  return { tokens: g.tokens.slice(0, room), logprobs: g.logprobs.slice(0, room), finishReason: 'length' };
}

/** The warning to show when the settings reach past the window, else null. */
export function contextWarning(window: number | null, maxPromptTokens: number, maxNewTokens: number, model: string): string | null {
  if (window === null || maxPromptTokens + maxNewTokens <= window) return null;
  const cut = promptCut(maxPromptTokens, window);
  return (
    `${model}: its context window (max_position_embeddings) is ${window} tokens, less than lengths.maxPromptTokens (${maxPromptTokens}) + ` +
    `rollout.maxNewTokens (${maxNewTokens}): ${cut < maxPromptTokens ? `prompts are cut to their last ${cut} tokens and ` : ''}` +
    `each response stops where prompt + response reaches ${window} tokens (finish reason "length"). ` +
    `Lower --max-new-tokens / --max-prompt-tokens to silence this`
  );
}
