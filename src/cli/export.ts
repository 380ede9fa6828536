import type { CommandModule } from 'yargs';
import { DEVICES, type DeviceName } from '../native/kinds.js';
import { exportBenchmark } from '../export/exportAnswers.js';
import { BENCHMARKS, type Benchmark } from '../export/questions.js';
import { printEvents } from '../util/printEvents.js';

interface ExportArgs {
  benchmark: string;
  model: string;
  prompts: string;
  output?: string;
  'model-id'?: string;
  'prompt-column': string;
  temperature?: number;
  'top-p'?: number;
  'max-new-tokens'?: number;
  seed: number;
  'max-prompts'?: number;
  'batch-size': number;
  'chat-template'?: string;
  device: string;
}

const positive = (v: unknown, flag: string, integer: boolean, min = 0): void => {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
    throw new Error(`--${flag} must be ${integer ? 'an integer' : 'a number'} >= ${min} (got ${String(v)})`);
  }
};

export const exportCommand: CommandModule<object, ExportArgs> = {
  command: 'export <benchmark>',
  describe: "Answer a benchmark's questions with a model, in the file its judge reads (AlpacaEval, MT-Bench, Arena-Hard)",
  builder: (y) =>
    y
      .positional('benchmark', { type: 'string', demandOption: true, choices: [...BENCHMARKS] as string[], describe: 'alpaca-eval: model_outputs.json; mt-bench, arena-hard: FastChat-style <model-id>.jsonl' })
      .option('model', { type: 'string', demandOption: true, describe: 'Model folder (e.g. a run checkpoint, runs/x/iter-3/checkpoint-epoch-1)' })
      .option('prompts', { type: 'string', demandOption: true, describe: "The benchmark's questions: AlpacaEval's alpaca_eval.json (JSON or JSONL with instruction), FastChat's mt_bench question.jsonl, arena-hard's question.jsonl" })
      .option('output', { type: 'string', describe: 'Output folder [default: exports/<benchmark>/<model-id>]; for mt-bench / arena-hard, the judge\'s model_answer folder works as is' })
      .option('model-id', { type: 'string', describe: 'The model name in the answers (generator / model_id) [default: <run>-iter<t> for a run checkpoint, else the folder name]' })
      .option('prompt-column', { type: 'string', default: 'instruction', describe: 'alpaca-eval: the field holding the instruction' })
      .option('temperature', { type: 'number', describe: "Sampling temperature [default: the benchmark's: alpaca-eval 0.7, mt-bench FastChat's per-category table, arena-hard 0]" })
      .option('top-p', { type: 'number', describe: 'Nucleus top-p [default: alpaca-eval 0.9, else 1]' })
      .option('max-new-tokens', { type: 'number', describe: 'Most new tokens per answer [default: alpaca-eval 2048, mt-bench 1024, arena-hard 4096; cut to the model context]' })
      .option('seed', { type: 'number', default: 42, describe: 'Sampling seed (answers are seeded per question and turn)' })
      .option('max-prompts', { type: 'number', describe: 'Answer only the first N questions (for a quick look)' })
      .option('batch-size', { type: 'number', default: 8, describe: 'Questions per generate call' })
      .option('chat-template', { type: 'string', describe: 'Jinja chat template file, for a model folder whose tokenizer_config.json has none' })
      .option('device', { type: 'string', choices: [...DEVICES], default: 'cpu', describe: 'Compute device: cpu, or cuda (fp32; needs a CUDA build, a visible GPU and cuBLASLt)' })
      .example('$0 export alpaca-eval --model runs/m7b/iter-3/checkpoint-epoch-1 --prompts alpaca_eval.json', 'then: alpaca_eval --model_outputs exports/alpaca-eval/m7b-iter3/model_outputs.json')
      .epilogue('The decoding settings are recorded beside the answers (decoding.json, <model-id>.decoding.json); an interrupted export resumes when rerun. docs/benchmarks.md says how to run the judges.'),
  handler: async (args) => {
    positive(args.temperature, 'temperature', false);
    positive(args['top-p'], 'top-p', false);
    if (args['top-p'] !== undefined && (args['top-p'] <= 0 || args['top-p'] > 1)) throw new Error(`--top-p must be in (0, 1] (got ${args['top-p']})`);
    positive(args['max-new-tokens'], 'max-new-tokens', true, 1);
    positive(args.seed, 'seed', true);
    positive(args['max-prompts'], 'max-prompts', true, 1);
    positive(args['batch-size'], 'batch-size', true, 1);
    const { defaultModelId } = await import('../export/exportAnswers.js');
    const modelId = args['model-id'] ?? defaultModelId(args.model);
    const r = await exportBenchmark({
      benchmark: args.benchmark as Benchmark,
      model: args.model,
      prompts: args.prompts,
      output: args.output ?? `exports/${args.benchmark}/${modelId}`,
      modelId,
      promptColumn: args['prompt-column'],
      temperature: args.temperature,
      topP: args['top-p'],
      maxNewTokens: args['max-new-tokens'],
      seed: args.seed,
      maxPrompts: args['max-prompts'],
      batchSize: args['batch-size'],
      chatTemplate: args['chat-template'] ?? null,
      device: args.device as DeviceName,
      onEvent: printEvents(),
    });
    console.log(`${r.answers} answers: ${r.file}\ndecoding settings: ${r.decoding}`);
  },
};
