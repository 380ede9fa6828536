// Errors and notes in the user's words (issue 12, items 7 and 9): prompt files that are not UTF-8,
// output folders that cannot be used, writes that fail, corrupt Parquet, a tokenizer of another
// model, the demo banner, `info` without a GPU driver, and the wall time of a run.
import { describe, expect, it } from 'vitest';
import { accessSync, chmodSync, constants, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { train } from '../src/pipeline/pipeline.js';
import { generate, trainCommandRun } from '../src/api.js';
import type { Recipe } from '../src/recipe/types.js';
import { DEMO_DIR } from '../src/pipeline/demo.js';
import { loadPrompts } from '../src/data/prompts.js';
import { readParquet, writeParquet } from '../src/data/parquet.js';
import { writeFileAtomic } from '../src/run/atomic.js';
import { cudaAbsence, formatInfo, type SystemInfo } from '../src/info.js';
import type { PipelineEvent } from '../src/util/events.js';
import { fakeRunRecipe } from './helpers/fakeRun.js';
import { fakeProvider } from './helpers/fakeModel.js';
import { seededRandom } from './sppo.seed.js';

const root = mkdtempSync(join(tmpdir(), 'sppo-messages-'));
const { seed } = seededRandom('pipeline.messages');
const recipe = (name: string, patch?: (r: Recipe) => void): Recipe =>
  fakeRunRecipe({ root, promptFile: join(DEMO_DIR, 'prompts.jsonl'), maxPrompts: 4, seed }, name, (r) => {
    r.iterations = 1;
    patch?.(r);
  });

describe('prompt files that are not UTF-8', () => {
  const bytes = Buffer.concat([Buffer.from('{"prompt": "fine"}\n{"prompt": "caf'), Buffer.from([0xe9]), Buffer.from('"}\n{"prompt": "ok \ufffd"}\n')]);
  const file = join(root, 'latin1.jsonl');
  writeFileSync(file, bytes);

  it('are refused with the file, the line and the byte', async () => {
    await expect(loadPrompts(file)).rejects.toThrow(/latin1.jsonl:2: not valid UTF-8 \(byte 0xe9 at byte offset 34\); save the file as UTF-8, or pass --prompt-invalid-utf8 replace/);
    const json = join(root, 'bad.json');
    writeFileSync(json, Buffer.concat([Buffer.from('[\n{"prompt": "a"},\n{"prompt": "'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n]\n')]));
    await expect(loadPrompts(json)).rejects.toThrow(/bad.json:3: not valid UTF-8 \(byte 0xff/);
  });

  it('or, when asked, replaced and counted (a U+FFFD the file holds is not counted)', async () => {
    const set = await loadPrompts(file, 'prompt', { invalidUtf8: 'replace' });
    expect(set.prompts).toEqual(['fine', 'caf\ufffd', 'ok \ufffd']);
    expect(set.replacedInvalidUtf8).toBe(1);
    const logs: string[] = [];
    const r = recipe('replaced', (x) => { x.prompts = [file]; x.promptInvalidUtf8 = 'replace'; x.maxPrompts = 0; x.promptSplit = 'reuse'; });
    await train(r, { provider: fakeProvider(), onEvent: (e) => { if (e.type === 'log') logs.push(e.message); } });
    expect(logs.join('\n')).toMatch(/latin1.jsonl: 3 prompts \(3 rows; dropped 0 empty, 0 duplicate; replaced 1 invalid UTF-8 sequence\(s\) with U\+FFFD\)/);
    await expect(train(recipe('refused', (x) => { x.prompts = [file]; }), { provider: fakeProvider() })).rejects.toThrow(/not valid UTF-8/);
  });
});

describe('output folders', () => {
  it('a file, an unrelated non-empty folder, and a folder that cannot be created are refused in words', async () => {
    const asFile = join(root, 'a-file');
    writeFileSync(asFile, 'x');
    await expect(train(recipe('x', (r) => { r.output = asFile; }), { provider: fakeProvider() })).rejects.toThrow(`--output ${asFile} is a file, not a folder`);
    await expect(train(recipe('x', (r) => { r.output = join(asFile, 'run'); }), { provider: fakeProvider() })).rejects.toThrow(
      /cannot create the run folder .*a-file\/run: a part of the path is a file, not a folder \(ENOTDIR\)/,
    );
    // /sys is read-only or refuses new folders everywhere (as root too, where permissions do not apply).
    await expect(train(recipe('x', (r) => { r.output = '/sys/sppo-test/run'; }), { provider: fakeProvider() })).rejects.toThrow(
      /cannot create the run folder \/sys\/sppo-test\/run: (permission denied|operation not permitted|the file system is read-only)/,
    );
    const unrelated = join(root, 'photos');
    mkdirSync(unrelated);
    writeFileSync(join(unrelated, 'holiday.jpg'), 'x');
    await expect(train(recipe('x', (r) => { r.output = unrelated; }), { provider: fakeProvider() })).rejects.toThrow(
      /--output .*photos is a folder that is not empty and holds no sppo-native run \(it holds holiday.jpg\)/,
    );
    expect(readdirSync(unrelated)).toEqual(['holiday.jpg']);
    // An empty folder, and a run folder, are used.
    const empty = join(root, 'empty');
    mkdirSync(empty);
    await train(recipe('x', (r) => { r.output = empty; }), { provider: fakeProvider() });
    await train(recipe('x', (r) => { r.output = empty; }), { provider: fakeProvider() });
  });

  // A folder this process cannot write: a chmod 555 one, or as root (whom permissions do not stop)
  // /proc/sys where the container makes it read-only.
  const readOnly = ((): string | null => {
    if (process.getuid?.() !== 0) {
      const d = join(root, 'read-only');
      mkdirSync(d);
      chmodSync(d, 0o555);
      return d;
    }
    try {
      accessSync('/proc/sys', constants.W_OK);
      return null;
    } catch {
      return '/proc/sys';
    }
  })();
  it.skipIf(readOnly === null)('a folder that is not writable is refused in words (skipped where there is none: root with a writable /proc/sys)', async () => {
    await expect(train(recipe('x', (r) => { r.output = readOnly!; }), { provider: fakeProvider() })).rejects.toThrow(
      new RegExp(`the run folder ${readOnly} is not writable: (permission denied \\(EACCES\\)|the file system is read-only \\(EROFS\\))`),
    );
  });

  it('generate refuses an unrelated folder too', async () => {
    const unrelated = join(root, 'docs');
    mkdirSync(unrelated);
    writeFileSync(join(unrelated, 'notes.txt'), 'x');
    const provider = fakeProvider();
    const model = join(root, 'gen-model');
    const m = await provider.createRandom(JSON.parse(readFileSync(join(DEMO_DIR, 'model-config.json'), 'utf8')) as Record<string, unknown>, 1, 'cpu');
    await m.save(model, { tokenizerFrom: DEMO_DIR });
    await expect(generate({ model, prompts: join(DEMO_DIR, 'prompts.jsonl'), output: unrelated, provider })).rejects.toThrow(/holds no sppo-native generate output \(it holds notes.txt\)/);
  });

  it('a write that fails names the file and leaves no temp file', () => {
    const dir = join(root, 'writes');
    mkdirSync(join(dir, 'target', 'inside'), { recursive: true });
    expect(() => writeFileAtomic(join(dir, 'target'), 'data')).toThrow(/cannot write .*writes\/target: /);
    expect(readdirSync(dir)).toEqual(['target']);
  });
});

describe('files of the wrong kind', () => {
  it('corrupt Parquet is described, not reported in decoder internals only', async () => {
    const ok = join(root, 'ok.parquet');
    writeParquet(ok, [{ name: 'prompt', kind: 'string', data: ['a', 'b'] }]);
    const bytes = readFileSync(ok);
    const cut = join(root, 'cut.parquet');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 10));
    await expect(readParquet(cut)).rejects.toThrow(/cut.parquet is not a readable Parquet file: it does not end in a Parquet footer \(a truncated file, or not Parquet at all\) \(decoder: /);
    const garbled = join(root, 'garbled.parquet');
    writeFileSync(garbled, Buffer.concat([Buffer.from('PAR1'), Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 37) % 256)), Buffer.from([20, 0, 0, 0]), Buffer.from('PAR1')]));
    await expect(readParquet(garbled)).rejects.toThrow(/garbled.parquet is not a readable Parquet file: its metadata or data pages are corrupt/);
  });

  it('a tokenizer larger than the model\'s vocabulary is refused when the folders are loaded', async () => {
    const provider = fakeProvider();
    const model = join(root, 'small-vocab');
    const config = { ...(JSON.parse(readFileSync(join(DEMO_DIR, 'model-config.json'), 'utf8')) as Record<string, unknown>), vocab_size: 50 };
    const m = await provider.createRandom(config, 1, 'cpu');
    await m.save(model, { tokenizerFrom: DEMO_DIR });
    const fits = /the tokenizer of .*small-vocab \(tokenizer.json: 125 tokens, ids up to 124\) does not fit the model .*small-vocab, whose config.json has vocab_size 50/;
    await expect(generate({ model, prompts: join(DEMO_DIR, 'prompts.jsonl'), output: join(root, 'gen-vocab'), provider })).rejects.toThrow(fits);
    await expect(train(recipe('vocab', (r) => { r.model = model; }), { provider })).rejects.toThrow(fits);
    expect(provider.hooks.calls!.generate).toBe(0);
  });
});

describe('what the CLI says', () => {
  it('the demo banner names the judge and device in use; the wall time counts from the process start', async () => {
    const events: PipelineEvent[] = [];
    const cwd = process.cwd();
    const dir = join(root, 'demo-cwd');
    mkdirSync(dir);
    process.chdir(dir);
    try {
      const before = process.uptime();
      const { trainFromSources } = await import('../src/api.js');
      const overrides = { judge: 'builtin:length', iterations: 1, maxPrompts: 8, 'eval.prompts': 0, 'rollout.k': 2, 'train.globalBatch': 4, 'train.microBatch': 2 };
      await trainFromSources({ overrides }, (e) => events.push(e), { provider: fakeProvider() });
      const logs = events.filter((e) => e.type === 'log').map((e) => (e as { message: string }).message);
      expect(logs[0]).toMatch(/^sppo-native demo: the demo recipe .*recipe.yaml \(a tiny model on cpu, judge builtin:length\), run folder runs\/demo$/);
      events.length = 0;
      await trainCommandRun({ overrides }, (e) => events.push(e));
      const finished = events.map((e) => (e as { message?: string }).message ?? '').find((m) => m.startsWith('finished in'))!;
      expect(Number(/finished in ([\d.]+)s/.exec(finished)![1])).toBeGreaterThanOrEqual(Math.floor(before * 10) / 10);
    } finally {
      process.chdir(cwd);
    }
  });

  it('info says that no GPU driver is loaded rather than blaming a driver version', () => {
    const build = { cuda: true, cudaArchs: '80,90', cublasLt: false, cublasLtDetail: 'cuBLASLt could not be loaded', nccl: false, ncclVersion: '', ncclReason: 'NCCL is not available: libnccl.so.2: cannot open shared object file', openmp: true, cpuThreads: 2 };
    const reason = 'CUDA driver version is insufficient for CUDA runtime version';
    const none: SystemInfo = { build, backends: ['cpu', 'cuda'], cudaDevices: [], cudaReason: reason, nvidiaDriver: null, node: 'v20' };
    expect(formatInfo(none)).toMatch(/CUDA devices: +none \(no NVIDIA GPU driver is loaded on this machine: no \/proc\/driver\/nvidia\)/);
    expect(formatInfo(none)).not.toMatch(/version is insufficient/);
    expect(cudaAbsence({ ...none, nvidiaDriver: 'NVRM version: 535.1' })).toBe(`${reason} (driver: NVRM version: 535.1)`);
    expect(cudaAbsence({ ...none, build: { ...build, cuda: false } })).toBe('this build has no CUDA backend');
  });
});
