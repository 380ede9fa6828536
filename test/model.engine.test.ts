// The model engine through the addon against an independent float64 reference
// (test/helpers/llamaReference.ts) on tiny random checkpoints: logits, padding, sequence
// log-probs, reward scores, gradients by name (finite differences), optimizer step, sampling.
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type EngineModel } from '../src/model/engine.js';
import { withBudgetSetting } from '../src/stages/responseSource.js';
import { describeEngineCall } from '../src/stages/engineCallLog.js';
import { SeededRandom } from '../src/util/rng.js';
import type { PreferencePair, TrainerHandle } from '../src/model/types.js';
import {
  logSoftmax,
  maxNormRelError,
  referenceLogits,
  referenceScores,
  referenceSequenceLogprob,
  type Weights,
} from './helpers/llamaReference.js';
import { makeTempDir, modelsFreedAfterAll, randomSequences, testSeed, tiny, type Tiny } from './helpers/modelFixtures.js';

const seed = testSeed('model.engine');
const rng = new SeededRandom(seed);
const rand = () => rng.uniform();
const { dir, cleanup } = makeTempDir('sppo-engine-');
const models = modelsFreedAfterAll(cleanup);

async function open(t: Tiny): Promise<EngineModel> {
  const m = await loadModel(t.folder);
  models.push(m);
  return m;
}

describe.each(['llama2', 'llama3', 'mistral'] as const)('%s-style tiny model', (kind) => {
  let t: Tiny;
  let m: EngineModel;
  beforeAll(async () => {
    t = tiny(dir, kind, seed + 1);
    m = await open(t);
  });

  it('logits match the float64 reference (max-norm relative 1e-4)', async () => {
    const seqs = randomSequences(rand, 3, t.parsed.vocabSize, 2, 14);
    const got = await m.logits(seqs);
    for (let b = 0; b < seqs.length; b++) {
      const ref = referenceLogits(t.parsed, t.tensors, seqs[b]!);
      expect(got[b]!.length).toBe(seqs[b]!.length * t.parsed.vocabSize);
      expect(maxNormRelError(got[b]!, Float64Array.from(ref.flatMap((r) => Array.from(r))))).toBeLessThan(1e-4);
    }
  });

  it('left and right padding give the same logits and log-probs', async () => {
    const seqs = randomSequences(rand, 4, t.parsed.vocabSize, 2, 12);
    const right = await m.logits(seqs, { padding: 'right' });
    const left = await m.logits(seqs, { padding: 'left' });
    for (let b = 0; b < seqs.length; b++) expect(maxNormRelError(left[b]!, right[b]!)).toBeLessThan(1e-5);
    const scored = seqs.map((s) => ({ tokens: s, promptLength: 1 + Math.floor(rand() * (s.length - 1)) }));
    const lr = await m.sequenceLogprobs(scored, { padding: 'right' });
    const ll = await m.sequenceLogprobs(scored, { padding: 'left' });
    for (let b = 0; b < seqs.length; b++) expect(Math.abs(lr[b]! - ll[b]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(lr[b]!)));
  });

  it('sequence log-probs count response tokens only, as the reference', async () => {
    const seqs = randomSequences(rand, 3, t.parsed.vocabSize, 3, 12);
    const scored = seqs.map((s) => ({ tokens: s, promptLength: 1 + Math.floor(rand() * (s.length - 1)) }));
    scored.push({ tokens: seqs[0]!, promptLength: seqs[0]!.length }); // empty response: 0
    const got = await m.sequenceLogprobs(scored);
    scored.forEach((s, b) => {
      const ref = referenceSequenceLogprob(t.parsed, t.tensors, s.tokens, s.promptLength);
      expect(Math.abs(got[b]! - ref)).toBeLessThan(1e-4 * Math.max(1, Math.abs(ref)));
    });
    expect(got[scored.length - 1]).toBe(0);
  });

  it('greedy generation follows the reference argmax; sampling log-probs are the model’s', async () => {
    const prompt = randomSequences(rand, 1, t.parsed.vocabSize, 3, 6)[0]!;
    const [g] = await m.generate([prompt], [7], { maxNewTokens: 6, temperature: 1, topP: 1, greedy: true, eosTokenIds: [] });
    let seq = [...prompt];
    for (const tok of g!.tokens) {
      const logits = referenceLogits(t.parsed, t.tensors, seq);
      const last = logits[logits.length - 1]!;
      let arg = 0;
      for (let v = 1; v < last.length; v++) if (last[v]! > last[arg]!) arg = v;
      // Near-ties could legitimately differ in fp32; the random weights make them rare.
      expect(tok).toBe(arg);
      seq = [...seq, tok];
    }
    expect(g!.finishReason).toBe('length');
    const [s] = await m.generate([prompt], [11], { maxNewTokens: 5, temperature: 1, topP: 1, eosTokenIds: [] });
    seq = [...prompt];
    s!.tokens.forEach((tok, i) => {
      const logits = referenceLogits(t.parsed, t.tensors, seq);
      const ref = logSoftmax(logits[logits.length - 1]!)[tok]!;
      expect(Math.abs(s!.logprobs[i]! - ref)).toBeLessThan(1e-4 * Math.max(1, Math.abs(ref)));
      seq = [...seq, tok];
    });
  });
});

describe('sampling', () => {
  let t: Tiny;
  let m: EngineModel;
  beforeAll(async () => {
    t = tiny(dir, 'llama3', seed + 2, {}, 'sampling');
    m = await open(t);
  });

  it('is reproducible by seed and independent of the rest of the batch', async () => {
    const prompts = randomSequences(rand, 3, t.parsed.vocabSize, 2, 7);
    const opts = { maxNewTokens: 8, temperature: 0.7, topP: 0.9, eosTokenIds: [] };
    const seeds = [50, 100, 150];
    const a = await m.generate(prompts, seeds, opts);
    const b = await m.generate(prompts, seeds, opts);
    expect(b).toEqual(a);
    const alone = await m.generate([prompts[1]!], [100], opts);
    expect(alone[0]).toEqual(a[1]);
    const other = await m.generate(prompts, [51, 101, 151], opts);
    expect(other.map((g) => g.tokens)).not.toEqual(a.map((g) => g.tokens));
  });

  it('gives the same samples under any continuous-batching budget, and refuses one too small by name', async () => {
    const prompts = randomSequences(rand, 5, t.parsed.vocabSize, 2, 20);
    const seeds = [5, 6, 7, 8, 9];
    const eos = [0, 1, 2, 3, 4, 5];  // responses of different lengths
    const opts = { maxNewTokens: 10, temperature: 1, topP: 0.95, eosTokenIds: eos, samples: 3 };
    const all = await m.generate(prompts, seeds, opts);
    const longest = Math.max(...prompts.map((p) => p.length));
    // What the scheduler did comes back from generateEach: a pool of 12 blocks, its worst case
    // reserved (no swap space) or overcommitted (swap space: 3 pools at most).
    for (const swap of [0, -1]) {
      const st = await m.generateEach(prompts, seeds, { ...opts, maxCacheTokens: 48 * 4, maxSwapTokens: swap }, () => {});
      expect(st).toMatchObject({ kvBlocks: 12, blockSize: 16, maxBatchTokens: 2048, maxRunningSequences: 2048 });
      expect(st.steps).toBeGreaterThanOrEqual(2);
      expect(st.peakBlocksInUse).toBeGreaterThan(0);
      expect(st.peakBlocksInUse).toBeLessThanOrEqual(12);
      expect(st.peakRunning).toBeGreaterThanOrEqual(3);
      expect(st.peakSwappedBlocks).toBeLessThanOrEqual(st.swapBlocks);
      if (swap === 0) expect(st).toMatchObject({ swapBlocks: 0, preemptions: 0, swappedOutBlocks: 0 });
      else expect(st.swapBlocks).toBeGreaterThan(0);
      expect(describeEngineCall(st, 5, 3)).toMatch(swap === 0 ? /each prompt's worst case reserved \(no swap space\)$/ : /(no preemption|\d+ preemptions?, \d+ blocks swapped to host memory \(at most \d+ of \d+ at once\))$/);
    }
    expect(describeEngineCall({ steps: 9, mixedSteps: 1, prefillTokens: 40, decodeTokens: 60, bucketedSteps: 0, peakRunning: 12, maxRunningSequences: 2048, maxBatchTokens: 2048, kvBlocks: 30, blockSize: 16, peakBlocksInUse: 30, swapBlocks: 90, preemptions: 2, swappedOutBlocks: 14, peakSwappedBlocks: 8 }, 1, 5))
      .toBe('rollout: engine call over 1 prompt x 5: 9 steps, up to 12 of 2048 samples at once; KV pool 30 blocks of 16 (peak 30); 2 preemptions, 14 blocks swapped to host memory (at most 8 of 90 at once)');
    for (const budget of [
      { maxRunningSequences: 3, maxBatchTokens: Math.max(longest, 3) },  // one prompt at a time
      { maxRunningSequences: 7, maxBatchTokens: longest + 6 },           // joins while others run
      { maxCacheTokens: 48 * 4 },                                         // a small KV pool, joins on demand (swapping)
      { maxCacheTokens: 48 * 4, maxSwapTokens: 0 },                       // the same, reserving the worst case
      { maxCacheTokens: 48 * 4, maxSwapTokens: 16 * 50 },                 // little swap space
    ]) {
      expect(await m.generate(prompts, seeds, { ...opts, ...budget })).toEqual(all);
    }
    await expect(m.generate(prompts, seeds, { ...opts, maxRunningSequences: 2 })).rejects.toThrow(/max_running_sequences = 2 is smaller than the 3 samples/);
    await expect(m.generate(prompts, seeds, { ...opts, maxBatchTokens: 1 })).rejects.toThrow(/max_batch_tokens = 1 is smaller than prompt \d+/);
    await expect(m.generate(prompts, seeds, { ...opts, maxCacheTokens: 16 })).rejects.toThrow(/max_cache_tokens = 16 \(1 block of 16 positions\) cannot hold prompt/);
    await expect(m.generate(prompts, seeds, { ...opts, maxCacheTokens: -1 })).rejects.toThrow(/maxCacheTokens must be a non-negative integer/);
    await expect(m.generate(prompts, seeds, { ...opts, maxSwapTokens: -2 })).rejects.toThrow(/maxSwapTokens must be an integer >= -1, -1 = automatic, 0 = none \(got -2\)/);
    await expect(m.generate(prompts, seeds, { ...opts, maxSwapTokens: 1.5 })).rejects.toThrow(/maxSwapTokens must be an integer >= -1/);
    // The rollout stage adds the recipe key and flag to the core's message.
    const named = async (o: object) => m.generate(prompts, seeds, { ...opts, ...o }).then(() => '', (e: Error) => withBudgetSetting(e.message));
    expect(await named({ maxRunningSequences: 2 })).toMatch(/at least 3 \(set by rollout\.maxRunningSequences, --rollout-max-sequences\)$/);
    expect(await named({ maxBatchTokens: 1 })).toMatch(/\(set by rollout\.maxBatchTokens, --rollout-batch-tokens\)$/);
    expect(await named({ maxCacheTokens: 16 })).toMatch(/\(set by rollout\.maxCacheTokens, --rollout-cache-tokens\)$/);
    expect(withBudgetSetting('generate: topP must be in (0, 1]')).toBe('generate: topP must be in (0, 1]');
  });

  it('stops at any EOS id and reports why', async () => {
    const prompt = randomSequences(rand, 1, t.parsed.vocabSize, 2, 5)[0]!;
    const free = await m.generate([prompt], [3], { maxNewTokens: 12, temperature: 1, topP: 1, greedy: true, eosTokenIds: [] });
    const stopAt = free[0]!.tokens[3]!;
    const [g] = await m.generate([prompt], [3], { maxNewTokens: 12, temperature: 1, topP: 1, greedy: true, eosTokenIds: [stopAt] });
    const first = free[0]!.tokens.indexOf(stopAt);
    expect(g!.tokens).toEqual(free[0]!.tokens.slice(0, first + 1));
    expect(g!.finishReason).toBe('eos');
  });

  it('refuses bad options with the argument named', async () => {
    await expect(m.generate([[1, 2]], [1, 2], { maxNewTokens: 2, temperature: 1, topP: 1, eosTokenIds: [] })).rejects.toThrow(/seeds must have one seed per prompt/);
    await expect(m.generate([[1, 2]], [1], { maxNewTokens: 2, temperature: 1, topP: 0, eosTokenIds: [] })).rejects.toThrow(/topP must be in \(0, 1\]/);
    await expect(m.generate([[1, 9999]], [1], { maxNewTokens: 2, temperature: 1, topP: 1, eosTokenIds: [] })).rejects.toThrow(/prompts\[0\]\[1\] = 9999/);
  });
});

describe('reward model', () => {
  it('scores at the last real token, as the reference, whatever the batch padding', async () => {
    const t = tiny(dir, 'reward', seed + 3);
    const m = await open(t);
    const seqs = randomSequences(rand, 4, t.parsed.vocabSize, 2, 12);
    const got = await m.scores(seqs);
    expect(got.length).toBe(seqs.length);
    seqs.forEach((s, b) => {
      const ref = referenceScores(t.parsed, t.tensors, s)[0]!;
      expect(Math.abs(got[b]! - ref)).toBeLessThan(1e-4 * Math.max(1, Math.abs(ref)));
    });
    expect(m.isRewardModel).toBe(true);
    await expect(m.logits(seqs)).rejects.toThrow(/reward model/);
  });
});

/** The SPPO loss (mean over pairs) in float64 from reference log-probs. */
function referenceSppoLoss(t: Tiny, weights: Weights, pairs: PreferencePair[], beta: number): number {
  const eta = 1 / beta;
  let sum = 0;
  for (const p of pairs) {
    const sw = referenceSequenceLogprob(t.parsed, weights, p.chosen.tokens, p.chosen.promptLength) - p.refChosen;
    const sl = referenceSequenceLogprob(t.parsed, weights, p.rejected.tokens, p.rejected.promptLength) - p.refRejected;
    sum += 0.5 * ((sw - eta * (p.chosenProbsWin - 0.5)) ** 2 + (sl - eta * (p.chosenProbsLose - 0.5)) ** 2);
  }
  return sum / pairs.length;
}

function randomPairs(t: Tiny, count: number): PreferencePair[] {
  return Array.from({ length: count }, () => {
    const [c, r] = randomSequences(rand, 2, t.parsed.vocabSize, 4, 9);
    const pw = rand();
    return {
      chosen: { tokens: c!, promptLength: 2 },
      rejected: { tokens: r!, promptLength: 2 },
      refChosen: -20 * rand(),
      refRejected: -20 * rand(),
      chosenProbs: rand(),
      chosenProbsWin: pw,
      chosenProbsLose: pw * rand(),
    };
  });
}

describe('training through the addon', () => {
  let t: Tiny;
  let m: EngineModel;
  let tr: TrainerHandle;
  beforeAll(async () => {
    t = tiny(dir, 'llama3', seed + 4, {}, 'train');
    m = await open(t);
    tr = await m.createTrainer({ optimizer: { kind: 'rmsprop' } });
  });

  it('gradients by name exist for every parameter and match finite differences of the reference', async () => {
    const pairs = randomPairs(t, 2);
    const beta = 0.1;
    tr.zeroGrad();
    const metrics = await tr.accumulate(pairs, 'sppo', beta, 1);
    expect(Math.abs(metrics.loss - referenceSppoLoss(t, t.tensors, pairs, beta))).toBeLessThan(1e-3 * Math.max(1, metrics.loss));
    const grads = tr.gradients();
    const params = m.parameters();
    expect([...grads.keys()]).toEqual(params.map((p) => p.name));
    for (const p of params) {
      const g = grads.get(p.name)!;
      expect(g.length).toBe(p.shape.reduce((a, b) => a * b, 1));
      expect(g.every(Number.isFinite)).toBe(true);
      expect(g.some((v) => v !== 0)).toBe(true);
      // Two entries per parameter: the largest and a random one.
      let big = 0;
      for (let i = 1; i < g.length; i++) if (Math.abs(g[i]!) > Math.abs(g[big]!)) big = i;
      for (const i of [big, Math.floor(rand() * g.length)]) {
        const h = 1e-4;
        const w = Float64Array.from(t.tensors.get(p.name)!);
        const weights: Weights = new Map(t.tensors);
        weights.set(p.name, w);
        const x = w[i]!;
        w[i] = x + h;
        const up = referenceSppoLoss(t, weights, pairs, beta);
        w[i] = x - h;
        const down = referenceSppoLoss(t, weights, pairs, beta);
        const fd = (up - down) / (2 * h);
        expect(Math.abs(g[i]! - fd), `${p.name}[${i}]: ${g[i]} vs ${fd}`).toBeLessThan(1e-3 * Math.abs(g[big]!) + 1e-6);
      }
    }
  });

  it('gradient checkpointing (recomputing each layer) gives the same gradients', async () => {
    const ckpt = await loadModel(t.folder, { gradientCheckpointing: true });
    models.push(ckpt);
    const pairs = randomPairs(t, 2);
    tr.zeroGrad();
    await tr.accumulate(pairs, 'sppo', 0.1, 1);
    const ckptTr = await ckpt.createTrainer({ optimizer: { kind: 'rmsprop' } });
    await ckptTr.accumulate(pairs, 'sppo', 0.1, 1);
    const [a, b] = [tr.gradients(), ckptTr.gradients()];
    for (const [name, g] of a) {
      const h = b.get(name)!;
      let scale = 0;
      for (const v of g) scale = Math.max(scale, Math.abs(v));
      for (let i = 0; i < g.length; i++) expect(Math.abs(g[i]! - h[i]!), name).toBeLessThanOrEqual(1e-6 * scale);
    }
    tr.zeroGrad();
  });

  it('a trainer step clips, applies RMSprop as PyTorch and zeroes the gradients', async () => {
    tr.zeroGrad();
    await tr.accumulate(randomPairs(t, 2), 'sppo', 0.1, 0.5);
    const grads = tr.gradients();
    let sq = 0;
    for (const g of grads.values()) for (const v of g) sq += v * v;
    const norm = Math.sqrt(sq);
    const before = new Map(m.parameters().map((p) => [p.name, m.parameter(p.name)]));
    const lr = 1e-3;
    const maxNorm = norm / 2; // forces clipping: coefficient maxNorm / (norm + 1e-6)
    const { gradNorm } = await tr.step(lr, maxNorm);
    expect(Math.abs(gradNorm - norm)).toBeLessThan(1e-4 * norm);
    const coef = maxNorm / (norm + 1e-6);
    for (const [name, g] of grads) {
      const p0 = before.get(name)!;
      const p1 = m.parameter(name);
      for (let i = 0; i < g.length; i += Math.max(1, Math.floor(g.length / 17))) {
        const gc = g[i]! * coef;
        const v = 0.01 * gc * gc;
        const want = p0[i]! - (lr * gc) / (Math.sqrt(v) + 1e-8);
        expect(Math.abs(p1[i]! - want)).toBeLessThan(1e-6 + 1e-5 * Math.abs(want));
      }
    }
    for (const g of tr.gradients().values()) expect(g.every((v) => v === 0)).toBe(true);
  });
});

describe('model lifetime and misuse', () => {
  it('rejects a second call while one runs, and every call after free()', async () => {
    const t = tiny(dir, 'llama2', seed + 5, {}, 'lifetime');
    const m = await loadModel(t.folder);
    const seqs = randomSequences(rand, 8, t.parsed.vocabSize, 30, 40);
    const tr = await m.createTrainer({ optimizer: { kind: 'adamw' } });
    const first = m.logits(seqs);
    await expect(m.logits(seqs)).rejects.toThrow(/still running/);
    expect(() => m.free()).toThrow(/still running/);
    expect(() => tr.gradients()).toThrow(/still running/);
    await first;
    m.free(); // frees its trainer first
    await expect(m.logits(seqs)).rejects.toThrow(/the model was freed/);
    expect(() => tr.gradients()).toThrow(/the trainer was freed/);
    expect(() => tr.zeroGrad()).toThrow(/the trainer was freed/);
    await expect(m.save(join(dir, 'never'))).rejects.toThrow(/the model was freed/);
    expect(() => m.free()).not.toThrow();
  });

  it('refuses bad inputs with the argument named', async () => {
    const t = tiny(dir, 'mistral', seed + 6, {}, 'inputs');
    const m = await open(t);
    await expect(m.logits([[1, 2, t.parsed.vocabSize]])).rejects.toThrow(/sequences\[0\]\[2\] = 72 is not a token id/);
    await expect(m.logits([[]])).rejects.toThrow(/sequences\[0\] must be a non-empty array/);
    await expect(m.sequenceLogprobs([{ tokens: [1, 2, 3], promptLength: 0 }])).rejects.toThrow(/promptLength = 0/);
    const long = Array.from({ length: t.parsed.slidingWindow! + 1 }, () => 1);
    await expect(m.logits([long])).rejects.toThrow(/sliding window \(48\)/);
    const tr = await m.createTrainer({ optimizer: { kind: 'rmsprop' } });
    await expect(tr.accumulate(randomPairs(t, 1), 'kto' as never, 0.1, 1)).rejects.toThrow(/loss must be one of/);
    const bad = randomPairs(t, 1);
    bad[0]!.chosenProbsWin = 1.5;
    await expect(tr.accumulate(bad, 'sppo', 0.1, 1)).rejects.toThrow(/pairs\[0\].chosenProbsWin must be a probability/);
    await expect(m.scores([[1, 2]])).rejects.toThrow(/not a reward model/);
    await expect(m.createTrainer({ optimizer: { kind: 'sgd' as never } })).rejects.toThrow(/optimizer kind must be/);
  });
});

