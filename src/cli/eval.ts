import type { CommandModule } from 'yargs';
import { withRecipeFlags, recipeOverrides } from '../recipe/flags.js';
import { defaultRecipe } from '../recipe/fields.js';
import { applyOverrides } from '../recipe/load.js';
import { evaluate } from '../api.js';
import { formatWinRate } from '../eval/stats.js';
import { printEvents } from '../util/printEvents.js';
import { EVAL_TEXTS, onePromptFile } from './commandFlags.js';

const EVAL_FIELDS = [
  'prompts', 'promptColumn', 'promptSplitName', 'promptInvalidUtf8', 'maxPrompts', 'judge', 'judgeTimeout', 'judgeStartupTimeout', 'device', 'precision', 'chatTemplate', 'seed', 'eval.samples',
  'rollout.temperature', 'rollout.topP', 'rollout.maxNewTokens', 'rollout.batchSize', 'lengths.maxPromptTokens',
] as const;

export const evalCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'eval',
  describe: 'Win rate of model A against model B under a judge, with a 95% confidence interval',
  builder: (y) =>
    withRecipeFlags(
      y
        .option('model-a', { type: 'string', demandOption: true, describe: 'Model A (e.g. the trained checkpoint)' })
        .option('model-b', { type: 'string', demandOption: true, describe: 'Model B (e.g. the base model)' })
        .option('json', { type: 'boolean', default: false, describe: 'Print the result as JSON' }),
      EVAL_FIELDS,
      EVAL_TEXTS,
    ).demandOption(['prompts', 'judge']),
  handler: async (args) => {
    const r = applyOverrides(defaultRecipe(), recipeOverrides(args, EVAL_FIELDS));
    const w = await evaluate({
      modelA: String(args['model-a']),
      modelB: String(args['model-b']),
      prompts: onePromptFile(r.prompts, 'eval'),
      promptColumn: r.promptColumn,
      promptSplitName: r.promptSplitName,
      promptInvalidUtf8: r.promptInvalidUtf8,
      judgeTimeout: r.judgeTimeout,
      judgeStartupTimeout: r.judgeStartupTimeout,
      onEvent: printEvents(),
      maxPrompts: r.maxPrompts,
      judge: r.judge,
      samples: r.eval.samples,
      temperature: r.rollout.temperature,
      topP: r.rollout.topP,
      maxNewTokens: r.rollout.maxNewTokens,
      batchSize: r.rollout.batchSize,
      maxPromptTokens: r.lengths.maxPromptTokens,
      seed: r.seed,
      chatTemplate: r.chatTemplate,
      device: r.device,
      precision: r.precision,
    });
    console.log(args.json ? JSON.stringify(w, null, 2) : `win rate of A against B: ${formatWinRate(w)}`);
  },
};
