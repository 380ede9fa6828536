import type { CommandModule } from 'yargs';
import { judgeGenerated } from '../api.js';
import { DEVICES } from '../native/kinds.js';
import { parsePairing } from '../sppo/pairs.js';
import { printEvents } from '../util/printEvents.js';

interface JudgeArgs {
  input: string;
  judge: string;
  output: string;
  pairing: string;
  'judge-timeout': number;
  'judge-startup-timeout': number;
  'chat-template-model'?: string;
  device: (typeof DEVICES)[number];
  precision: 'fp32' | 'bf16';
}

export const judgeCommand: CommandModule<object, JudgeArgs> = {
  command: 'judge',
  describe: 'Judge a generated.parquet: writes <output>/judged.parquet (probability, rm_scores) and <output>/train.parquet',
  builder: (y) =>
    y
      .option('input', { type: 'string', demandOption: true, describe: 'A generated.parquet (from `generate` or a run folder)' })
      .option('judge', { type: 'string', demandOption: true, describe: 'Judge: pairrm:<folder>[?prompt=templated|plain], reward-model:<folder>, command:<cmd>, precomputed:<file>, or builtin:<demo|length|cyclic>' })
      .option('output', { type: 'string', demandOption: true, describe: 'Output folder' })
      .option('judge-timeout', { type: 'number', default: 600, describe: 'Command judges: seconds a request may wait with no output before the judge is stopped' })
      .option('judge-startup-timeout', { type: 'number', default: 600, describe: 'Command judges: seconds allowed for the handshake (loading its model)' })
      .option('device', { type: 'string', choices: [...DEVICES], default: 'cpu' as const, describe: 'Where model judges (pairrm:, reward-model:) run: cpu, or cuda (needs a CUDA build, a visible GPU and cuBLASLt)' })
      .option('precision', { type: 'string', choices: ['fp32', 'bf16'] as const, default: 'fp32' as const, describe: 'Numeric mode of model judges: fp32, or bf16 (bf16 weights and activations; the GPU\'s fast mode, emulated on the CPU). A pairrm spec may set its own: ?precision=fp16 (as llm-blender runs PairRM)' })
      .option('pairing', { type: 'string', default: 'best-worst', choices: ['best-worst', 'all'], describe: 'Training pairs: best-worst (reference) or all (Algorithm 1)' })
      .option('chat-template-model', {
        type: 'string',
        describe: "The policy's model folder: PairRM judges rank each prompt under its chat template, as the reference does (else use pairrm:<folder>?prompt=plain)",
      }),
  handler: async (args) => {
    for (const f of ['judge-timeout', 'judge-startup-timeout'] as const) {
      if (!(Number.isFinite(args[f]) && args[f] > 0)) throw new Error(`--${f} must be a positive number of seconds (got ${String(args[f])})`);
    }
    const out = await judgeGenerated({
      input: args.input,
      judge: args.judge,
      output: args.output,
      pairing: parsePairing(args.pairing),
      judgeTimeout: args['judge-timeout'],
      judgeStartupTimeout: args['judge-startup-timeout'],
      onEvent: printEvents(),
      chatTemplateModel: args['chat-template-model'],
      device: args.device,
      precision: args.precision,
    });
    console.log(out.judged);
    console.log(out.train);
  },
};
