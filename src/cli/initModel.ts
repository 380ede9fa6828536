// `sppo-native init-model`: a random model folder of a given config.json or preset size.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { MODEL_PRESETS, isModelPreset, presetConfig, presetDescription } from '../model/presets.js';
import { initModelFolder } from '../model/initFolder.js';
import type { LoadableDtype } from '../model/safetensors.js';
import { DEMO_DIR } from '../pipeline/demo.js';
import { tokenizerMaxId } from '../text/vocabFit.js';

interface InitArgs {
  config?: string;
  preset?: string;
  output: string;
  seed: number;
  dtype: string;
  'tokenizer-from'?: string;
}

const DTYPES: Record<string, LoadableDtype> = { float32: 'F32', bfloat16: 'BF16', float16: 'F16' };

function readConfig(file: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`--config ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not valid JSON (${(err as Error).message})`}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`--config ${file}: expected a JSON object (a config.json)`);
  return v as Record<string, unknown>;
}

export const initModelCommand: CommandModule<object, InitArgs> = {
  command: 'init-model',
  describe: 'Write a model folder with random weights for a config.json or a preset size (for trying sizes and benchmarks)',
  builder: (y: Argv<object>) =>
    y
      .option('config', { type: 'string', describe: 'A config.json (LlamaForCausalLM / MistralForCausalLM fields) to create the model of' })
      .option('preset', { type: 'string', choices: [...MODEL_PRESETS], describe: `A preset size instead: ${MODEL_PRESETS.map((p) => `${p} = ${presetDescription(p)}`).join('; ')}` })
      .option('output', { type: 'string', demandOption: true, describe: 'The model folder to write (must not exist, or be empty)' })
      .option('seed', { type: 'number', default: 0, describe: 'Seed of the random weights (the same seed gives the same bytes)' })
      .option('dtype', { type: 'string', choices: Object.keys(DTYPES), default: 'float32', describe: 'Weight dtype of the safetensors files' })
      .option('tokenizer-from', {
        type: 'string',
        describe: 'Folder whose tokenizer files are copied in, "demo" (the bundled word-level tokenizer and chat template), or "none" [default: demo, when it fits the vocabulary]',
      })
      .example('$0 init-model --preset 100m --output models/random-100m', 'a 100M-parameter Llama with the demo tokenizer, ready for `train --model models/random-100m`')
      .example('$0 init-model --config my/config.json --output models/mine --seed 7 --dtype bfloat16', 'the shape of my/config.json, bf16 weights')
      .check((a) => {
        if ((a.config === undefined) === (a.preset === undefined)) throw new Error('give exactly one of --config <config.json> and --preset <size>');
        if (!Number.isSafeInteger(a.seed) || a.seed < 0) throw new Error(`--seed must be a non-negative integer (got ${a.seed})`);
        return true;
      }) as unknown as Argv<InitArgs>,
  handler: async (a) => {
    const config = a.preset !== undefined && isModelPreset(a.preset) ? presetConfig(a.preset) : readConfig(resolve(a.config!));
    const source = a.preset !== undefined ? `preset ${a.preset}` : resolve(a.config!);
    const given = a['tokenizer-from'];
    let tokenizerFrom: string | null = given === 'none' ? null : given === undefined || given === 'demo' ? DEMO_DIR : resolve(given);
    if (given === undefined && typeof config.vocab_size === 'number' && tokenizerMaxId(join(DEMO_DIR, 'tokenizer.json')) >= config.vocab_size) {
      console.error(`note: the demo tokenizer does not fit vocab_size ${config.vocab_size}; no tokenizer files written (give one with --tokenizer-from)`);
      tokenizerFrom = null;
    }
    const r = await initModelFolder({
      output: resolve(a.output),
      config,
      configSource: source,
      seed: a.seed,
      dtype: DTYPES[a.dtype]!,
      tokenizerFrom,
      log: (l) => console.error(l),
    });
    if (r.tokenizer && tokenizerFrom === DEMO_DIR) console.error('tokenizer: the demo word-level tokenizer and chat template (for trying the pipeline; real text needs the tokenizer of a real model)');
    console.log(r.folder);
  },
};
