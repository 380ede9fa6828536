#!/usr/bin/env node
// The rollout stage's wall time (src/stages/rollout.ts runRollout: shards, Parquet, progress) for
// three ways of splitting its prompts into engine calls: `--rollout-batch 16` (16 prompts per
// generate call), `--rollout-batch 64` (one call per 64-prompt shard, the default until calls
// spanned shards) and `--rollout-batch 0` (one call over every shard, each shard written as its
// prompts finish: the default now). Each call ends with its last sample, so smaller calls decode
// their tails with a part of the running set empty; one call over all shards drains only once.
// A random Llama of the `small` preset (26M parameters), the demo tokenizer, prompts of varied
// length, K samples each, and extra EOS ids so that the near-uniform random model stops a sample
// with about `eos`/vocab chance a step (lengths from 1 to maxNew). Rounds interleave the modes;
// the median of the rounds after a warm-up is reported, and all modes' samples are checked equal.
// Usage: OMP_NUM_THREADS=1 node bench/rollout_calls.mjs [--rounds 5] [--prompts 192] [--k 5]
//        [--new 160] [--eos 160]   (needs `npm run build:ts`)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandomModel } from '../dist/model/engine.js';
import { presetConfig } from '../dist/model/presets.js';
import { DEMO_DIR } from '../dist/pipeline/demo.js';
import { readRollout, runRollout } from '../dist/stages/rollout.js';
import { engineSource } from '../dist/stages/responseSource.js';
import { TextCodec } from '../dist/text/codec.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const rounds = arg('rounds', 5), nPrompts = arg('prompts', 192), k = arg('k', 5), maxNew = arg('new', 160), nEos = arg('eos', 160);

const config = presetConfig('small');
const model = await createRandomModel(config, 1);
const base = TextCodec.load(DEMO_DIR);
const V = config.vocab_size;
const eos = Array.from({ length: nEos }, (_, e) => Math.floor((e * V) / nEos)).filter((t) => t !== 0);
const codec = Object.assign(Object.create(base), { eosIds: [...new Set([...base.eosIds, ...eos])] });
const words = ['a', 'big', 'red', 'dog', 'bird', 'star', 'sky', 'describe', 'bad', 'small'];
let x = 7;
const rnd = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
const prompts = Array.from({ length: nPrompts }, () => Array.from({ length: 2 + Math.floor(rnd() * 40) }, () => words[Math.floor(rnd() * words.length)]).join(' '));
const lengths = prompts.map((p) => codec.encodePrompt(p, 512).length);
console.log(`small preset (26M), ${nPrompts} prompts of ${Math.min(...lengths)}..${Math.max(...lengths)} tokens, K=${k}, <= ${maxNew} new tokens, ` +
  `${codec.eosIds.length} EOS ids of ${V}; shards of 64 prompts; threads ${process.env.OMP_NUM_THREADS ?? '(all)'}; median of ${rounds} rounds after a warm-up`);

const root = mkdtempSync(join(tmpdir(), 'sppo-rollout-calls-bench-'));
const modes = [{ name: 'batch 16', batchSize: 16 }, { name: 'per shard', batchSize: 64 }, { name: 'spanning', batchSize: 0 }];
const secs = modes.map(() => []);
let ref = null;
let tokens = 0;
for (let r = 0; r <= rounds; r++) {
  for (const [mi, m] of modes.entries()) {
    const dir = join(root, `${r}-${mi}`);
    let calls = 0;
    const counted = Object.assign(Object.create(model), { generateEach: (...a) => (calls++, model.generateEach(...a)) });
    const t0 = process.hrtime.bigint();
    await runRollout({
      source: async () => engineSource(counted, codec), codec, prompts, dir, output: join(dir, 'g.parquet'), iteration: 1,
      opts: { k, temperature: 1, topP: 1, maxNewTokens: maxNew, batchSize: m.batchSize, shardSize: 64, maxPromptTokens: 512, seed: 3 },
    });
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    const rows = (await readRollout(join(dir, 'g.parquet'))).rows;
    rmSync(dir, { recursive: true, force: true });
    const key = JSON.stringify(rows.map((row) => [row.responseTokens, row.finishReasons]));
    if (ref === null) {
      ref = key;
      const all = rows.flatMap((row) => row.responseTokens);
      tokens = all.reduce((a, t) => a + t.length, 0);
      const stopped = rows.flatMap((row) => row.finishReasons).filter((f) => f === 'eos').length;
      console.log(`${tokens} new tokens; ${stopped} of ${all.length} samples stop at EOS`);
    } else if (key !== ref) {
      console.error(`rollout_calls: mode '${m.name}' changed the samples`);
      process.exit(1);
    }
    if (r > 0) secs[mi].push(s);
    console.log(`  round ${r}${r === 0 ? ' (warm-up)' : ''}: ${m.name.padEnd(9)} ${s.toFixed(2)} s, ${calls} generate calls`);
  }
}
model.free();
rmSync(root, { recursive: true, force: true });
const median = (a) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
console.log('\nmode         seconds   tokens/s   speedup');
const b0 = median(secs[0]);
for (const [mi, m] of modes.entries()) {
  const med = median(secs[mi]);
  console.log(`${m.name.padEnd(10)} ${med.toFixed(2).padStart(9)} ${(tokens / med).toFixed(0).padStart(10)} ${(b0 / med).toFixed(2).padStart(8)}x`);
}
