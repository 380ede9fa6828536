// Shared setup for the model suites: tiny random checkpoints in a temp folder, with a logged seed.
import { afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseModelConfig, type ModelConfig } from '../../src/model/config.js';
import type { EngineModel } from '../../src/model/engine.js';
import { seededRandom } from '../sppo.seed.js';
import { writeTinyCheckpoint, type TinyKind } from './tinyModels.js';
import type { RandomModelFolder as TinyCheckpoint, RandomFolderOptions as TinyCheckpointOptions } from '../../src/model/randomFolder.js';

export function makeTempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A list for the models a suite opens: after the suite each is freed (unless it already was),
 * then `cleanup` runs (the temp folder they were loaded from).
 */
export function modelsFreedAfterAll(cleanup: () => void): EngineModel[] {
  const models: EngineModel[] = [];
  afterAll(() => {
    for (const m of models) {
      try {
        m.free();
      } catch {
        /* already freed */
      }
    }
    cleanup();
  });
  return models;
}

export function testSeed(label: string): number {
  return seededRandom(label).seed;
}

export interface Tiny extends TinyCheckpoint {
  parsed: ModelConfig;
}

export function tiny(dir: string, kind: TinyKind, seed: number, opts: TinyCheckpointOptions = {}, name: string = kind): Tiny {
  const ck = writeTinyCheckpoint(join(dir, name), kind, seed, opts);
  return { ...ck, parsed: parseModelConfig(ck.config, kind) };
}

/** Random token sequences of lengths in [minLen, maxLen]. */
export function randomSequences(rand: () => number, count: number, vocab: number, minLen: number, maxLen: number): number[][] {
  return Array.from({ length: count }, () => {
    const len = minLen + Math.floor(rand() * (maxLen - minLen + 1));
    return Array.from({ length: len }, () => Math.floor(rand() * vocab));
  });
}
