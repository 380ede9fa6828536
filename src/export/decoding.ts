// Decoding settings of the exports, by default each benchmark's own reference setting:
//   alpaca-eval  temperature 0.7, top-p 0.9, 2048 new tokens (the settings uclaml/SPPO's AlpacaEval
//                model configs use for the SPPO checkpoints)
//   mt-bench     FastChat's per-category temperatures (writing, roleplay 0.7; extraction, math,
//                coding, reasoning 0; stem, humanities 0.1; others 0.7), top-p 1, 1024 new tokens
//   arena-hard   temperature 0 (greedy), top-p 1, 4096 new tokens (arena-hard-auto's gen_answer config)
// A --temperature given on the command line replaces the per-category table.
import type { Benchmark } from './questions.js';

export const MT_BENCH_TEMPERATURES: Readonly<Record<string, number>> = {
  writing: 0.7, roleplay: 0.7, extraction: 0, math: 0, coding: 0, reasoning: 0, stem: 0.1, humanities: 0.1,
};

export interface Decoding {
  /** One temperature, or per category (with a default for the others). */
  temperature: number | { byCategory: Record<string, number>; default: number };
  topP: number;
  maxNewTokens: number;
  seed: number;
}

export function defaultDecoding(b: Benchmark): Omit<Decoding, 'seed'> {
  switch (b) {
    case 'alpaca-eval':
      return { temperature: 0.7, topP: 0.9, maxNewTokens: 2048 };
    case 'mt-bench':
      return { temperature: { byCategory: { ...MT_BENCH_TEMPERATURES }, default: 0.7 }, topP: 1, maxNewTokens: 1024 };
    case 'arena-hard':
      return { temperature: 0, topP: 1, maxNewTokens: 4096 };
  }
}

export function temperatureFor(d: Decoding, category: string | null): number {
  if (typeof d.temperature === 'number') return d.temperature;
  return (category !== null ? d.temperature.byCategory[category] : undefined) ?? d.temperature.default;
}
