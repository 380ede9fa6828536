// `sppo-native bench <suite>`: benchmark suites that print a table and write JSON. A suite is one
// entry of `benchSuites` (its options are listed in the builder below).
import type { Argv, CommandModule } from 'yargs';
import type { DeviceName } from '../native/addon.js';
import { runKernelBench, type KernelDType } from '../bench/kernels.js';
import { runModelBench } from '../bench/model.js';
import { MODEL_PRESETS, presetDescription, type ModelPreset } from '../model/presets.js';
import { runPairRmBench, type PairRmBenchPrecision, type PairRmBenchSize } from '../bench/pairrm.js';

export interface BenchArgs {
  suite: string;
  device: DeviceName;
  out?: string;
  iters?: number;
  warmup?: number;
  rows?: number;
  vocab?: string;
  dtype?: string;
  via: 'auto' | 'native' | 'addon';
  size?: string;
  precision?: string;
}

export interface BenchSuite {
  describe: string;
  run(args: BenchArgs): Promise<void>;
}

function numberList(flag: string, v: string | undefined): number[] | undefined {
  if (v === undefined) return undefined;
  return String(v).split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${flag} takes positive integers separated by commas (got '${v}')`);
    return n;
  });
}

export const benchSuites: Record<string, BenchSuite> = {
  kernels: {
    describe: 'log-probability forward + in-place backward (8x1024 rows x V on CUDA)',
    run: async (a) => {
      const dtypes = a.dtype === undefined ? undefined : (String(a.dtype).split(',').map((s) => s.trim()) as KernelDType[]);
      await runKernelBench({
        device: a.device, out: a.out, iters: a.iters, warmup: a.warmup, rows: a.rows,
        vocab: numberList('vocab', a.vocab), dtypes, via: a.via,
      });
    },
  },
  pairrm: {
    describe: "PairRM judge's model on the CPU or CUDA: all K(K-1) ordered pairs of K = 5 responses (--size large: PairRM's shape)",
    run: async (a) => {
      await runPairRmBench({
        device: a.device, out: a.out, prompts: a.iters, batch: a.rows, size: a.size as PairRmBenchSize | undefined,
        precision: a.precision as PairRmBenchPrecision | undefined,
      });
    },
  },
  model: {
    describe: 'model engine on the CPU: SPPO training steps and KV-cache generation on a random Llama of a preset size',
    run: async (a) => {
      await runModelBench({ device: a.device, out: a.out, steps: a.iters, size: a.size as ModelPreset | undefined });
    },
  },
};

export const benchCommand: CommandModule<object, BenchArgs> = {
  command: 'bench <suite>',
  describe: 'Run a benchmark suite: print a table and write JSON',
  builder: (y: Argv<object>) =>
    y
      .positional('suite', { type: 'string', choices: Object.keys(benchSuites), demandOption: true, describe: 'Which benchmark' })
      .option('device', { type: 'string', choices: ['cpu', 'cuda'] as const, default: 'cpu' as DeviceName, describe: 'Where to run' })
      .option('out', { type: 'string', describe: 'JSON output (default bench/out/<suite>-<date>.json)' })
      .option('iters', { type: 'number', describe: 'Timed runs (median reported); pairrm: prompts (default 1)' })
      .option('warmup', { type: 'number', describe: 'Untimed runs first' })
      .option('rows', { type: 'number', describe: 'kernels: rows (default 8192 on cuda, 512 on cpu); pairrm: pairs per call (default 4)' })
      .option('vocab', { type: 'string', describe: 'kernels: vocabulary sizes, e.g. 32000,128256' })
      .option('dtype', { type: 'string', describe: 'kernels: bf16,f32' })
      .option('size', {
        type: 'string',
        choices: [...new Set<string>([...MODEL_PRESETS, 'large'])],
        describe:
          `model: random model size (default small): ${MODEL_PRESETS.map((p) => `${p} = ${presetDescription(p)}`).join('; ')}. ` +
          "pairrm: tiny or large (default, PairRM's shape)",
      })
      .option('precision', { type: 'string', choices: ['fp32', 'bf16', 'fp16'], describe: "pairrm: the engine's mode (default fp32; bf16 and fp16 on cuda only; fp16 is how llm-blender runs PairRM)" })
      .option('via', { type: 'string', choices: ['auto', 'native', 'addon'] as const, default: 'auto' as const, describe: 'kernels: native benchmark executable or the addon' }) as unknown as Argv<BenchArgs>,
  handler: async (args) => {
    const suite = benchSuites[args.suite];
    if (!suite) throw new Error(`unknown bench suite '${args.suite}' (have: ${Object.keys(benchSuites).join(', ')})`);
    await suite.run(args);
  },
};
