// A fake ModelHandle in plain TypeScript for the pipeline's unit tests: a context-free unigram
// policy (one logit per token), with exact float64 log-probabilities, SPPO loss gradients,
// RMSprop, seeded sampling, and save/load as JSON. Small enough to be obviously right, real
// enough that training moves it and resume must restore it exactly.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type {
  GenerateOptions, Generation, LossType, ModelHandle, OptimizerOptions, PreferencePair, SaveOptions, ScoredSequence, StepMetrics,
  TrainerHandle, TrainerOptions,
} from '../../src/model/types.js';
import type { ModelProvider } from '../../src/pipeline/modelProvider.js';
import { mulberry32 } from '../../src/util/rng.js';

export interface FakeHooks {
  /** Return NaN as the loss of this (1-based) accumulate call count, counted per process. */
  nanAtAccumulate?: number;
  /** Report a NaN gradient norm (and skip the step, as the engine does) at this (1-based) optimizerStep call. */
  nanGradAtStep?: number;
  /** Devices other than these are refused by load and createRandom (default: cpu only). */
  devices?: string[];
  calls?: { generate: number; accumulate: number; steps: number; loads: number };
  /** Every model handed out, to check that each is freed. */
  models?: FakeModel[];
  /** generate takes this long (a slow model). */
  generateDelayMs?: number;
}

function logSoftmax(w: Float64Array, temperature = 1): Float64Array {
  const t = temperature > 0 ? temperature : 1;
  let m = -Infinity;
  for (const x of w) m = Math.max(m, x / t);
  let s = 0;
  for (const x of w) s += Math.exp(x / t - m);
  const lse = m + Math.log(s);
  return w.map((x) => x / t - lse);
}

export class FakeModel implements ModelHandle {
  readonly device = 'cpu' as const;
  readonly isRewardModel = false;
  readonly eosTokenIds: number[];
  private grad: Float64Array;
  private sq: Float64Array | null = null;
  private stepCount = 0;
  freed = false;

  constructor(
    readonly folder: string | null,
    readonly config: Readonly<Record<string, unknown>>,
    public w: Float64Array,
    private readonly hooks: FakeHooks,
  ) {
    this.eosTokenIds = [Number(config.eos_token_id ?? 2)];
    this.grad = new Float64Array(w.length);
  }

  get vocabSize(): number {
    return this.w.length;
  }

  private seqLogp(s: ScoredSequence): number {
    const lp = logSoftmax(this.w);
    let sum = 0;
    for (let i = s.promptLength; i < s.tokens.length; i++) sum += lp[s.tokens[i]!]!;
    return sum;
  }

  async logits(seqs: number[][]): Promise<Float32Array[]> {
    return seqs.map((s) => {
      const out = new Float32Array(s.length * this.w.length);
      for (let t = 0; t < s.length; t++) out.set(Float32Array.from(this.w), t * this.w.length);
      return out;
    });
  }

  async sequenceLogprobs(seqs: ScoredSequence[]): Promise<Float64Array> {
    return Float64Array.from(seqs.map((s) => this.seqLogp(s)));
  }

  async scores(): Promise<Float32Array> {
    throw new Error('fake model: not a reward model');
  }

  async generate(prompts: number[][], seeds: number[], opts: GenerateOptions): Promise<Generation[]> {
    if (this.hooks.calls) this.hooks.calls.generate++;
    if (this.hooks.generateDelayMs) await new Promise((r) => setTimeout(r, this.hooks.generateDelayMs));
    const lp = logSoftmax(this.w, opts.temperature);
    const samples = opts.samples ?? 1;
    return prompts.flatMap((_, i) => Array.from({ length: samples }, (_, k) => {
      // The seed may exceed 2^32: fold it so different seeds give different streams; sample k
      // gets its own stream, as the engine's Philox sequences.
      const seed = seeds[i]!;
      const rand = mulberry32(((seed % 4294967296) ^ Math.floor(seed / 4294967296) ^ Math.imul(k, 0x9e3779b1)) >>> 0);
      const tokens: number[] = [];
      const logprobs: number[] = [];
      while (tokens.length < opts.maxNewTokens) {
        let u = rand();
        let tok = lp.length - 1;
        if (opts.temperature === 0) {
          // Greedy, as the engine at temperature 0: the most likely token every time.
          tok = lp.indexOf(Math.max(...lp));
        } else {
          for (let v = 0; v < lp.length; v++) {
            u -= Math.exp(lp[v]!);
            if (u <= 0) {
              tok = v;
              break;
            }
          }
        }
        tokens.push(tok);
        logprobs.push(lp[tok]!);
        if (opts.eosTokenIds.includes(tok)) return { tokens, logprobs, finishReason: 'eos' as const };
      }
      return { tokens, logprobs, finishReason: 'length' as const };
    }));
  }

  /** generate's samples, each prompt handed over in turn (a fake has no batch to keep full, and no scheduler to report on). */
  async generateEach(prompts: number[][], seeds: number[], opts: GenerateOptions, onPrompt: (prompt: number, generations: Generation[]) => void): Promise<null> {
    const all = await this.generate(prompts, seeds, opts);
    const k = opts.samples ?? 1;
    prompts.forEach((_, i) => {
      onPrompt(i, all.slice(i * k, (i + 1) * k));
      opts.onProgress?.((i + 1) * k);
    });
    return null;
  }

  cancel(): void {}

  /** The fake's training state lives on the model; the trainer forwards to it. */
  async createTrainer(opts: TrainerOptions): Promise<TrainerHandle> {
    return {
      accumulate: (pairs, loss, beta, scale) => this.accumulate(pairs, loss, beta, scale),
      step: (lr, maxGradNorm) => this.optimizerStep(lr, maxGradNorm, opts.optimizer),
      zeroGrad: () => this.zeroGrad(),
      gradients: () => this.gradients(),
      saveState: async (file) => (file === null ? undefined : this.saveOptimizerState(file)),
      loadState: (file) => this.loadOptimizerState(file),
      free: () => {},
    };
  }

  async accumulate(pairs: PreferencePair[], loss: LossType, beta: number, scale: number): Promise<StepMetrics> {
    if (loss !== 'sppo') throw new Error('fake model: only the sppo loss');
    const calls = this.hooks.calls;
    if (calls) calls.accumulate++;
    const eta = 1 / beta;
    const soft = logSoftmax(this.w).map(Math.exp);
    let total = 0;
    let rc = 0;
    let rr = 0;
    let acc = 0;
    let lc = 0;
    let lr = 0;
    let tokens = 0;
    const B = pairs.length;
    for (const pair of pairs) {
      const pc = this.seqLogp(pair.chosen);
      const pr = this.seqLogp(pair.rejected);
      const sw = pc - pair.refChosen;
      const sl = pr - pair.refRejected;
      const dw = sw - eta * (pair.chosenProbsWin - 0.5);
      const dl = sl - eta * (pair.chosenProbsLose - 0.5);
      total += 0.5 * (dw * dw + dl * dl);
      rc += beta * sw;
      rr += beta * sl;
      acc += sw > sl ? 1 : 0;
      lc += pc;
      lr += pr;
      // d seqLogp / d w_v = count_v - n * softmax_v over response tokens.
      for (const [seq, d] of [[pair.chosen, dw], [pair.rejected, dl]] as const) {
        const n = seq.tokens.length - seq.promptLength;
        tokens += seq.tokens.length;
        for (let i = seq.promptLength; i < seq.tokens.length; i++) this.grad[seq.tokens[i]!]! += (scale * d) / B;
        for (let v = 0; v < this.w.length; v++) this.grad[v]! -= (scale * d * n * soft[v]!) / B;
      }
    }
    let lossValue = total / B;
    if (calls && this.hooks.nanAtAccumulate !== undefined && calls.accumulate === this.hooks.nanAtAccumulate) lossValue = NaN;
    return {
      loss: lossValue,
      rewardsChosen: rc / B,
      rewardsRejected: rr / B,
      margins: (rc - rr) / B,
      accuracy: acc / B,
      policyChosenLogp: lc / B,
      policyRejectedLogp: lr / B,
      tokens,
    };
  }

  async optimizerStep(lr: number, maxGradNorm: number, opts: OptimizerOptions): Promise<{ gradNorm: number; stepped: boolean }> {
    if (this.hooks.calls) this.hooks.calls.steps++;
    let norm = Math.sqrt(this.grad.reduce((a, g) => a + g * g, 0));
    if (this.hooks.calls && this.hooks.calls.steps === this.hooks.nanGradAtStep) norm = NaN;
    if (!Number.isFinite(norm)) {
      this.zeroGrad(); // as the engine: no update, no optimizer state change
      return { gradNorm: norm, stepped: false };
    }
    const clip = maxGradNorm > 0 && norm > maxGradNorm ? maxGradNorm / norm : 1;
    const alpha = opts.alpha ?? 0.99;
    const eps = opts.eps ?? 1e-8;
    this.sq ??= new Float64Array(this.w.length);
    for (let v = 0; v < this.w.length; v++) {
      const g = this.grad[v]! * clip;
      this.sq[v] = alpha * this.sq[v]! + (1 - alpha) * g * g;
      this.w[v]! -= (lr * g) / (Math.sqrt(this.sq[v]!) + eps);
    }
    this.stepCount++;
    this.zeroGrad();
    return { gradNorm: norm, stepped: true };
  }

  zeroGrad(): void {
    this.grad.fill(0);
  }

  gradients(): Map<string, Float32Array> {
    return new Map([['w', Float32Array.from(this.grad)]]);
  }

  async save(folder: string, opts: SaveOptions = {}): Promise<void> {
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, 'config.json'), JSON.stringify(this.config));
    writeFileSync(join(folder, 'weights.json'), JSON.stringify(Array.from(this.w)));
    if (opts.tokenizerFrom) {
      for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
        if (existsSync(join(opts.tokenizerFrom, f))) copyFileSync(join(opts.tokenizerFrom, f), join(folder, f));
      }
    }
  }

  async saveOptimizerState(file: string): Promise<void> {
    writeFileSync(file, JSON.stringify({ step: this.stepCount, sq: this.sq ? Array.from(this.sq) : null }));
  }

  async loadOptimizerState(file: string): Promise<void> {
    const s = JSON.parse(readFileSync(file, 'utf8')) as { step: number; sq: number[] | null };
    this.stepCount = s.step;
    this.sq = s.sq ? Float64Array.from(s.sq) : null;
  }

  free(): void {
    this.freed = true;
  }
}

/** A provider of fake models: createRandom seeds small logits; load reads save's JSON. */
export function fakeProvider(hooks: FakeHooks = {}): ModelProvider & { hooks: FakeHooks } {
  hooks.calls ??= { generate: 0, accumulate: 0, steps: 0, loads: 0 };
  hooks.models ??= [];
  const checkDevice = (device: string): void => {
    if (!(hooks.devices ?? ['cpu']).includes(device)) throw new Error(`fake model: device '${device}' is not supported by this engine`);
  };
  const made = (m: FakeModel): FakeModel => {
    hooks.models!.push(m);
    return m;
  };
  return {
    hooks,
    async load(folder, device) {
      checkDevice(device);
      hooks.calls!.loads++;
      const file = join(folder, 'weights.json');
      if (!existsSync(file)) throw new Error(`fake model: ${folder} has no weights.json`);
      const config = JSON.parse(readFileSync(join(folder, 'config.json'), 'utf8')) as Record<string, unknown>;
      return made(new FakeModel(folder, config, Float64Array.from(JSON.parse(readFileSync(file, 'utf8')) as number[]), hooks));
    },
    async createRandom(config, seed, device) {
      checkDevice(device);
      const rand = mulberry32(seed);
      const v = Number(config.vocab_size);
      return made(new FakeModel(null, config, Float64Array.from({ length: v }, () => 0.1 * (rand() - 0.5)), hooks));
    },
  };
}
