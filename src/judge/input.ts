// Checks a judge batch before any work, so a bad call fails with the judge and the row named.
import type { JudgeInput } from './types.js';
import { describe } from './matrix.js';

export function validateBatch(batch: readonly JudgeInput[], judgeName: string): void {
  if (!Array.isArray(batch)) throw new Error(`judge '${judgeName}': judge() takes an array of {prompt, responses} (got ${describe(batch)})`);
  batch.forEach((input, b) => {
    const what = `judge '${judgeName}', batch item ${b}`;
    if (typeof input !== 'object' || input === null) throw new Error(`${what}: expected {prompt, responses} (got ${describe(input)})`);
    if (typeof input.prompt !== 'string') throw new Error(`${what}: prompt must be a string (got ${describe(input.prompt)})`);
    if (!Array.isArray(input.responses) || input.responses.length === 0) {
      throw new Error(`${what}: responses must be a non-empty array of strings (got ${describe(input.responses)})`);
    }
    (input.responses as unknown[]).forEach((r: unknown, i: number) => {
      if (typeof r !== 'string') throw new Error(`${what}: responses[${i}] must be a string (got ${describe(r)})`);
    });
    if (input.index !== undefined && !(Number.isInteger(input.index) && input.index >= 0)) {
      throw new Error(`${what}: index must be a non-negative integer (got ${describe(input.index)})`);
    }
  });
}
