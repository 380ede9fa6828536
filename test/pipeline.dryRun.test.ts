// `sppo-native train --dry-run`: the memory plan of every stage from the recipe and config.json
// alone (no weights, no model, nothing written), its verdict and exit code; and a real run that
// refuses, before loading a model, a plan that does not fit. Spawns bin/sppo-native.js over dist/.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatBytes, parseBytes } from '../src/util/bytes.js';
import { tinyPairRmConfig } from './helpers/pairrmFolder.js';
import { parsePairRmConfig } from '../src/pairrm/config.js';
import { expectedPairRmParameters } from '../src/pairrm/checkpoint.js';
import { recipePrecision } from '../src/pipeline/memoryPlan.js';
import { defaultRecipe } from '../src/recipe/fields.js';

const repo = join(import.meta.dirname, '..');
const bin = join(repo, 'bin', 'sppo-native.js');
const haveDist = existsSync(join(repo, 'dist', 'cli', 'main.js'));

function cli(cwd: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', env: { ...process.env, SPPO_NO_PROGRESS: '1' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function everything(dir: string): string[] {
  return readdirSync(dir, { recursive: true }).map(String).sort();
}

// mistralai/Mistral-7B-v0.1's config.json (public values); no weights beside it.
const MISTRAL_7B = {
  architectures: ['MistralForCausalLM'], model_type: 'mistral', hidden_size: 4096, intermediate_size: 14336,
  num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 32000, max_position_embeddings: 32768,
  rope_theta: 1e6, rms_norm_eps: 1e-5, tie_word_embeddings: false, hidden_act: 'silu', sliding_window: null, bos_token_id: 1, eos_token_id: 2,
};

/** Parameters of a Llama-shaped config, counted here from the shapes (independently of the engine). */
function llamaParameters(c: typeof MISTRAL_7B): number {
  const H = c.hidden_size, I = c.intermediate_size, hd = H / c.num_attention_heads, kv = c.num_key_value_heads * hd;
  const layer = 2 * H + H * H + 2 * kv * H + H * H + 3 * H * I;
  return c.vocab_size * H * (c.tie_word_embeddings ? 1 : 2) + c.num_hidden_layers * layer + H;
}

/** The byte figure on the line of `item` in the stage titled `stage`. */
function figure(stdout: string, stage: string, item: string): string | undefined {
  const block = stdout.split('\n\n').find((b) => b.trimStart().startsWith(stage));
  const line = block?.split('\n').find((l) => l.trim().startsWith(`${item} `));
  return line?.trim().slice(item.length).trim().split(/\s{2,}/)[0];
}

function modelFolder(root: string, name: string, config: Record<string, unknown>): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

describe('byte figures', () => {
  it('formats binary units and parses what people type', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1.5 * 2 ** 30)).toBe('1.50 GiB');
    expect(parseBytes('141GB', 'x')).toBe(141e9);
    expect(parseBytes('80 GiB', 'x')).toBe(80 * 2 ** 30);
    expect(parseBytes('2', 'x')).toBe(2 * 2 ** 30);
    expect(() => parseBytes('lots', '--device-memory')).toThrow(/--device-memory must be a size/);
    expect(() => parseBytes('0GB', '--device-memory')).toThrow(/more than 0/);
    // A unit that is a name every object has (its prototype's) is not a unit.
    for (const bad of ['5constructor', '8 hasownproperty']) expect(() => parseBytes(bad, '--device-memory')).toThrow(/--device-memory must be a size like/);
  });
});

describe('the precision a recipe asks for', () => {
  it('fp32 and bf16 run on both devices (bf16 emulated on the CPU); anything else is refused', () => {
    const r = defaultRecipe();
    expect(recipePrecision(r)).toBe('fp32');
    r.precision = 'bf16';
    expect(recipePrecision(r)).toBe('bf16');
    r.device = 'cuda';
    expect(recipePrecision(r)).toBe('bf16');
    (r as { precision: string }).precision = 'fp16';
    expect(() => recipePrecision(r)).toThrow("precision must be fp32 or bf16 (got 'fp16')");
  });
});

describe.skipIf(!haveDist)('train --dry-run (runs bin/ over dist/; skipped when dist/ is not built, which `npm test` does first)', () => {
  it('prints the demo plan per stage with totals and a verdict, and writes nothing', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'sppo-dry-demo-'));
    const r = cli(cwd, ['train', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    for (const stage of ['rollout (policy + KV cache)', 'reference log-probs', 'training (policy + gradients + optimizer + activations)']) expect(r.stdout).toContain(stage);
    for (const item of ['KV cache', 'gradients', 'optimizer state', 'activations', 'log-prob head', 'total']) expect(r.stdout).toContain(item);
    expect(r.stdout).toMatch(/training +[\d.]+ [KMG]iB +fits/);
    // The demo model's 98240 fp32 parameters (data/demo/model-config.json: 2 x 125 x 64 + 2 layers).
    expect(figure(r.stdout, 'training', 'weights')).toBe(formatBytes(4 * 98240));
    expect(everything(cwd)).toEqual([]); // no run folder, no demo base model
  });

  it('plans a 7B model from config.json alone on one H200 in bf16 with checkpointing: it fits, with its figures', () => {
    const root = mkdtempSync(join(tmpdir(), 'sppo-dry-7b-'));
    const model = modelFolder(root, 'mistral-7b', MISTRAL_7B);
    writeFileSync(join(root, 'r.yaml'), 'model: mistral-7b\nprompts: prompts.parquet\njudge: builtin:length\ndevice: cuda\nprecision: bf16\ntrain:\n  microBatch: 8\n  gradientCheckpointing: "on"\nlengths:\n  maxLength: 1024\n');
    const before = everything(root);
    const r = cli(root, ['train', '--recipe', 'r.yaml', '--dry-run', '--device-memory', '141GB']);
    expect(r.code, r.stderr).toBe(0);
    console.log(`[pipeline.dryRun] Mistral-7B on an H200:\n${r.stdout}`);
    const n = llamaParameters(MISTRAL_7B);
    expect(n).toBe(7241732096); // the published count
    expect(r.stdout).toContain(`policy ${model}`);
    expect(figure(r.stdout, 'training', 'weights')).toBe(formatBytes(2 * n)); // bf16
    for (const item of ['master weights', 'gradients', 'optimizer state']) expect(figure(r.stdout, 'training', item)).toBe(formatBytes(4 * n)); // fp32, RMSprop's one slot
    expect(r.stdout).toContain('16 x 1024 (8 pairs), checkpointed');
    // One generate call spans the stage's prompts (the number is not in the recipe), planned at the
    // fewest whose samples fill the automatic running set of 2048: ceil(2048 / 5) = 410 prompts x
    // 5 samples x (512 + 2048) positions in blocks of 16 (32 layers x 8 x 128, K and V, bf16): more
    // than the engine's automatic KV pool takes, which is at most half of what is free once the
    // weights (and the 256-byte rope table) are loaded; the block tables are of the call's
    // min(2050 + 410, 2 x 2048) = 2460 sequences of 160 blocks. The whole need is that of prompts
    // of the worst length up to 512 (511: 32 blocks, and each sample's tail starts at block 31,
    // one earlier than a 512-token prompt's).
    const perBlock = 16 * 32 * 8 * 128 * 2 * 2;
    const whole = 410 * (512 / 16 + 5 * (Math.ceil((511 + 2048) / 16) - Math.floor(511 / 16)));
    const pool = Math.floor((141e9 - 2 * n - 256) / 2 / perBlock);
    expect(pool).toBeLessThan(whole);
    // On CUDA decode-only steps are bucketed (native/model/decode_buckets.h): the cache also holds
    // 1023 padding slots (the widest gap of the buckets up to 2048 rows, 1024 -> 2048, less one: 64
    // scratch blocks) and one scratch table row.
    expect(figure(r.stdout, 'rollout', 'KV cache')).toBe(formatBytes((pool + 64) * perBlock + (2460 + 1) * 160 * 4));
    expect(r.stdout).toMatch(/decode buckets +\d/);
    expect(r.stdout).toContain(`${pool} blocks of 16 positions: 410 prompts x 5 samples x (512 + 2048)`);
    expect(r.stdout).toContain(`the call's whole need: ${whole} blocks`);
    expect(r.stdout).toContain('a call spans all the prompts the stage samples, planned at 410, the fewest that fill the running set');
    // Prompts join past their worst case (native/model/scheduler.h): automatic swap space of 3
    // pools, at most what admitting all would use (whole - pool + the largest worst case); the
    // worst case admitted stays within pool + swap - that largest one, counted in the fewest blocks
    // a prompt of length 1..512 needs (16 tokens: one block, then 5 tails of 128), and the pool
    // holds a block per sample and one for the prompt (length 1).
    const needOf = (len: number): number => Math.ceil(len / 16) + 5 * (Math.ceil((len + 2048) / 16) - Math.floor(len / 16));
    const needMin = Math.min(...Array.from({ length: 16 }, (_, i) => needOf(i + 1)));
    const needMax = needOf(511);
    const swap = Math.min(whole - pool + needMax, 3 * pool);
    const atOnce = Math.min(409, Math.floor((pool + swap - needMax) / needMin), Math.ceil(Math.floor((pool * 5) / 6) / 5));
    expect(r.stdout).toContain(`prompts join past their worst case as finished ones use less, up to ${atOnce} at once, preempted ones swapped to at most ${swap} blocks`);
    expect(atOnce).toBeGreaterThan(4 * Math.floor(pool / needMax));  // reserving the worst case: 44 prompts
    expect(r.stdout).toMatch(new RegExp(`logits and sampler +[\\d.]+ [MG]iB +${atOnce * 5} rows x 32000`));
    expect(r.stdout).toMatch(/against 131\.32 GiB available on cuda \(--device-memory 141GB\)/);
    expect(r.stdout).toMatch(/training +\d+\.\d+ GiB +fits/);
    expect(everything(root)).toEqual(before);
  });

  it('exits 1 with the figures when the plan does not fit (7B without checkpointing on 80 GB)', () => {
    const root = mkdtempSync(join(tmpdir(), 'sppo-dry-80-'));
    modelFolder(root, 'm', MISTRAL_7B);
    const r = cli(root, ['train', '--model', 'm', '--prompts', 'p.parquet', '--judge', 'builtin:length', '--device', 'cuda', '--precision', 'bf16', '--micro-batch', '8', '--max-length', '1024', '--dry-run', '--device-memory', '80GB']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/training +\d+\.\d+ GiB +does NOT fit: short by \d+\.\d+ GiB \(largest item: activations/);
    expect(r.stderr).toMatch(/the plan does not fit: the training stage needs \d+\.\d+ GiB on cuda \(--device-memory 80GB\) \(weights 13\.49 GiB, .*master weights 26\.98 GiB.*\) but 74\.51 GiB is available/);
    expect(everything(root)).toEqual(['m', 'm/config.json']);
  });

  it('plans an engine judge (PairRM from its config.json) and keeps it resident in later stages', () => {
    const root = mkdtempSync(join(tmpdir(), 'sppo-dry-pairrm-'));
    modelFolder(root, 'pairrm', tinyPairRmConfig());
    const r = cli(root, ['train', '--judge', 'pairrm:pairrm', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('judge (pairrm:');
    const config = parsePairRmConfig(tinyPairRmConfig(), 'config.json');
    // Its fp32 weights: every tensor of its checkpoint, each starting at a multiple of 64 elements.
    const n = [...expectedPairRmParameters(config.native).values()].reduce((a, shape) => a + Math.ceil(shape.reduce((x, y) => x * y, 1) / 64) * 64, 0);
    expect(figure(r.stdout, 'judge', 'weights')).toBe(formatBytes(4 * n));
    // The policy stays loaded while the judge runs; the judge stays loaded while the policy trains.
    expect(figure(r.stdout, 'judge', 'policy weights')).toBe(figure(r.stdout, 'training', 'weights'));
    expect(figure(r.stdout, 'training', 'judge (kept loaded)')).toBeDefined();
    expect(figure(r.stdout, 'reference', 'judge (kept loaded)')).toBe(figure(r.stdout, 'training', 'judge (kept loaded)'));
    // The spec's own precision=fp16 (the run stays fp32): the judge's weights in 2 bytes.
    const half = cli(root, ['train', '--judge', 'pairrm:pairrm?precision=fp16', '--dry-run']);
    expect(half.code, half.stderr).toBe(0);
    expect(figure(half.stdout, 'judge', 'weights')).toBe(formatBytes(2 * n));
    expect(figure(half.stdout, 'training', 'weights')).toBe(figure(r.stdout, 'training', 'weights'));
  });

  it('refuses --device-memory without --dry-run, and --help explains the dry run', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'sppo-dry-help-'));
    const bad = cli(cwd, ['train', '--device-memory', '10GB']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--device-memory goes with --dry-run');
    const help = cli(cwd, ['train', '--help']);
    expect(help.stdout).toContain('--dry-run');
    expect(help.stdout).toContain('no weights are read');
    expect(help.stdout).toContain('--gradient-checkpointing');
    expect(everything(cwd)).toEqual([]);
  });

  it('a real run on the CPU refuses a plan past the host memory before loading the model (there are no weights to load)', () => {
    const root = mkdtempSync(join(tmpdir(), 'sppo-real-'));
    // Llama-3.1-405B's shape: terabytes in fp32, more than any host has.
    modelFolder(root, 'm', { ...MISTRAL_7B, architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 16384, intermediate_size: 53248, num_hidden_layers: 126, num_attention_heads: 128, vocab_size: 128256 });
    writeFileSync(join(root, 'p.jsonl'), '{"prompt":"hi"}\n');
    const r = cli(root, ['train', '--model', 'm', '--prompts', 'p.jsonl', '--judge', 'builtin:length', '--output', 'out', '--max-length', '1024', '--micro-batch', '8']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/the training stage needs \d+\.\d+ TiB on cpu \(weights \d+\.\d+ TiB, .*optimizer state \d+\.\d+ TiB.*\) but \d+\.\d+ [GT]iB is available/);
    expect(r.stderr).toContain('sppo-native train --dry-run');
  });

  it('plans the 7B in fp32 on cuda by default (what --device cuda runs today): no master weights, fp32 weights', () => {
    const root = mkdtempSync(join(tmpdir(), 'sppo-dry-fp32-'));
    modelFolder(root, 'm', MISTRAL_7B);
    const r = cli(root, ['train', '--model', 'm', '--prompts', 'p.parquet', '--judge', 'builtin:length', '--device', 'cuda', '--gradient-checkpointing', 'on', '--micro-batch', '8', '--max-length', '1024', '--dry-run', '--device-memory', '141GB']);
    expect(r.stdout, r.stderr).toContain('(fp32)');
    const n = llamaParameters(MISTRAL_7B);
    expect(figure(r.stdout, 'training', 'weights')).toBe(formatBytes(4 * n));
    expect(figure(r.stdout, 'training', 'master weights')).toBeUndefined();
    expect(figure(r.stdout, 'training', 'gradients')).toBe(formatBytes(4 * n));
  });

  it('plans the demo in bf16 on the CPU (emulated): bf16 weights and fp32 master weights', () => {
    const root = mkdtempSync(join(tmpdir(), 'sppo-dry-bf16-'));
    const r = cli(root, ['train', '--precision', 'bf16', '--dry-run']);
    expect(r.stdout, r.stderr).toContain('(bf16)');
    const demo = JSON.parse(readFileSync(join(repo, 'data', 'demo', 'model-config.json'), 'utf8')) as typeof MISTRAL_7B;
    const n = llamaParameters(demo);
    expect(figure(r.stdout, 'training', 'weights')).toBe(formatBytes(2 * n));
    expect(figure(r.stdout, 'training', 'master weights')).toBe(formatBytes(4 * n));
    expect(figure(r.stdout, 'training', 'gradients')).toBe(formatBytes(4 * n));
  });

  it('plans bf16 gradient buffers at 2 bytes a parameter, master and RMSprop still fp32 (issue 8: the 7B step)', () => {
    const root = mkdtempSync(join(tmpdir(), 'sppo-dry-bf16g-'));
    modelFolder(root, 'm', MISTRAL_7B);
    const args = ['train', '--model', 'm', '--prompts', 'p.parquet', '--judge', 'builtin:length', '--device', 'cuda', '--precision', 'bf16',
      '--gradient-checkpointing', 'on', '--micro-batch', '8', '--max-length', '1024', '--dry-run', '--device-memory', '141GB'];
    const base = cli(root, args), r = cli(root, [...args, '--gradient-dtype', 'bf16']);
    expect(r.code, r.stderr).toBe(0);
    console.log(`[pipeline.dryRun] Mistral-7B with bf16 gradients:\n${r.stdout}`);
    const n = llamaParameters(MISTRAL_7B);
    expect(figure(r.stdout, 'training', 'gradients')).toBe(formatBytes(2 * n));
    expect(r.stdout).toMatch(/gradients +\d+\.\d+ GiB +\d+ buckets of 25\.00 MiB, BF16/);
    for (const item of ['master weights', 'optimizer state']) expect(figure(r.stdout, 'training', item)).toBe(formatBytes(4 * n));
    expect(figure(base.stdout, 'training', 'gradients')).toBe(formatBytes(4 * n));
    const total = (out: string): number => parseBytes(out.match(/training +(\d+\.\d+ GiB) +fits/)![1]!, 'total');
    // The training stage's total drops by the 2 bytes a parameter the gradients no longer take.
    expect(Math.abs(total(base.stdout) - total(r.stdout) - 2 * n)).toBeLessThan(0.02 * 2 ** 30);
    // A trainer frees the rollout's decode workspace: the reference stage keeps it, training does not.
    expect(figure(r.stdout, 'reference', 'decode step (kept)')).toBeDefined();
    expect(figure(r.stdout, 'training', 'decode step (kept)')).toBeUndefined();
    expect(total(r.stdout)).toBeLessThanOrEqual(90 * 2 ** 30); // issue 8's target for this step
  });

  it('refuses bf16 gradient buffers without precision bf16, naming both settings', () => {
    const root = mkdtempSync(join(tmpdir(), 'sppo-dry-bf16g-fp32-'));
    const r = cli(root, ['train', '--gradient-dtype', 'bf16', '--dry-run']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("train.gradientDtype 'bf16' needs precision 'bf16' (got precision 'fp32')");
    expect(everything(root)).toEqual([]);
  });
});
