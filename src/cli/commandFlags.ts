// Help texts of the recipe flags that `generate` and `eval` use in their own sense (the table in
// src/recipe/fields.ts describes them as `train` uses them), and the one-prompt-file check.
import type { FlagText } from '../recipe/flags.js';

const PROMPT_FILE = 'Prompt file: JSONL, JSON, Parquet, or a Hugging Face dataset folder of Parquet shards';

export const GENERATE_TEXTS: Readonly<Record<string, FlagText>> = {
  model: { describe: 'Model folder in Hugging Face layout (config.json, safetensors, tokenizer files)', default: null },
  prompts: { describe: `${PROMPT_FILE} (one)`, default: null },
  maxPrompts: { describe: 'Use only the first N prompts of the file (0 = all)' },
  output: { describe: 'Output folder: generated.parquet, and rollout/ shards a rerun resumes from (the options are recorded in generate.json; a rerun must use the same ones)', default: null },
  seed: { describe: 'Sampling seed (sample k of prompt p is seeded from p, k and this)' },
};

export const EVAL_TEXTS: Readonly<Record<string, FlagText>> = {
  prompts: { describe: `${PROMPT_FILE} (one)`, default: null },
  maxPrompts: { describe: 'Compare on the first N prompts of the file only (0 = all)' },
  judge: { describe: 'Judge: pairrm:<folder>, reward-model:<folder>, command:<cmd>, precomputed:<file>, builtin:<name>, or llm:<base-url>?model=<name> (an LLM on an OpenAI-compatible server)', default: null },
  seed: { describe: 'Sampling seed (both models sample with the same seeds)' },
  'eval.samples': { describe: 'Samples per prompt from each model; each pair of samples is one comparison' },
};

/** generate and eval read one prompt file (train takes one per iteration). */
export function onePromptFile(prompts: readonly string[], command: string): string {
  if (prompts.length !== 1) throw new Error(`${command} takes one prompt file with --prompts (got ${prompts.length}: ${prompts.join(', ')})`);
  return prompts[0]!;
}
