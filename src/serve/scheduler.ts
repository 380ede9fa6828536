// One engine call at a time per model: concurrent requests queue here, and generate calls with
// the same sampling settings (and number of samples) are merged into one batch (each prompt keeps
// its own seed, so its samples do not depend on what they were batched with:
// ModelHandle.generate). Other work on the model (the logits behind logprobs) takes its turn in
// the same queue.
import type { GenerateOptions, Generation, ModelHandle } from '../model/types.js';

interface GenJob {
  kind: 'generate';
  key: string;
  prompt: number[];
  seed: number;
  opts: GenerateOptions;
  resolve: (g: Generation[]) => void;
  reject: (e: unknown) => void;
}

interface OtherJob {
  kind: 'other';
  run: () => Promise<void>;
}

export interface SchedulerStats {
  calls: number;       // generate calls made
  prompts: number;     // prompts generated
  largestBatch: number;
}

export class GenerateScheduler {
  private readonly queue: (GenJob | OtherJob)[] = [];
  private busy = false;
  readonly stats: SchedulerStats = { calls: 0, prompts: 0, largestBatch: 0 };

  constructor(private readonly model: ModelHandle, private readonly maxBatch: number) {}

  /** opts.samples samples of `prompt` from one prefill; sample k is the seed's k-th stream. */
  generate(prompt: number[], seed: number, opts: GenerateOptions): Promise<Generation[]> {
    return new Promise((resolve, reject) => {
      const key = JSON.stringify([opts.maxNewTokens, opts.temperature, opts.topP, opts.topK ?? null, opts.greedy ?? false, opts.eosTokenIds, opts.samples ?? 1]);
      this.queue.push({ kind: 'generate', key, prompt, seed, opts, resolve, reject });
      this.kick();
    });
  }

  /** Runs `fn` on the model when no other call is running. */
  exclusive<T>(fn: (model: ModelHandle) => Promise<T>): Promise<T> {
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: 'other', run: () => fn(this.model).then(resolve, reject) });
      this.kick();
    });
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Resolves when no call is queued or running (so that the model may be freed). */
  async idle(): Promise<void> {
    while (this.busy || this.queue.length > 0) await new Promise((r) => setTimeout(r, 10));
  }

  private kick(): void {
    if (this.busy) return;
    this.busy = true;
    // Wait one turn of the event loop, so that requests arriving together share a batch.
    setImmediate(() => void this.drain());
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.kind === 'other') {
        this.queue.shift();
        await head.run();
        continue;
      }
      const batch: GenJob[] = [];
      for (let i = 0; i < this.queue.length && batch.length < this.maxBatch; ) {
        const j = this.queue[i]!;
        if (j.kind === 'generate' && j.key === head.key) {
          batch.push(j);
          this.queue.splice(i, 1);
        } else i++;
      }
      this.stats.calls++;
      this.stats.prompts += batch.length;
      this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.length);
      try {
        const gens = await this.model.generate(batch.map((j) => j.prompt), batch.map((j) => j.seed), head.opts);
        const n = head.opts.samples ?? 1;
        batch.forEach((j, i) => j.resolve(gens.slice(i * n, (i + 1) * n)));
      } catch (err) {
        for (const j of batch) j.reject(err);
      }
    }
    this.busy = false;
  }
}
