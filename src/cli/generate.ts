import type { CommandModule } from 'yargs';
import { withRecipeFlags, recipeOverrides } from '../recipe/flags.js';
import { defaultRecipe } from '../recipe/fields.js';
import { applyOverrides } from '../recipe/load.js';
import { generate } from '../api.js';
import { printEvents } from '../util/printEvents.js';
import { GENERATE_TEXTS, onePromptFile } from './commandFlags.js';

export const GENERATE_FIELDS = [
  'model', 'prompts', 'promptColumn', 'promptSplitName', 'promptInvalidUtf8', 'maxPrompts', 'output', 'device', 'precision', 'chatTemplate', 'seed',
  'rollout.k', 'rollout.temperature', 'rollout.topP', 'rollout.maxNewTokens', 'rollout.batchSize', 'rollout.shardSize', 'lengths.maxPromptTokens',
  'rollout.maxBatchTokens', 'rollout.maxRunningSequences', 'rollout.maxCacheTokens', 'rollout.maxSwapTokens',
] as const;

export const generateCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'generate',
  describe: 'Sample K responses per prompt from a model into <output>/generated.parquet (reference columns; resumable)',
  builder: (y) => withRecipeFlags(y, GENERATE_FIELDS, GENERATE_TEXTS).demandOption(['model', 'prompts', 'output']),
  handler: async (args) => {
    const r = applyOverrides(defaultRecipe(), recipeOverrides(args, GENERATE_FIELDS));
    const file = await generate({
      model: r.model,
      prompts: onePromptFile(r.prompts, 'generate'),
      promptColumn: r.promptColumn,
      promptSplitName: r.promptSplitName,
      promptInvalidUtf8: r.promptInvalidUtf8,
      maxPrompts: r.maxPrompts,
      output: r.output,
      device: r.device,
      precision: r.precision,
      chatTemplate: r.chatTemplate,
      seed: r.seed,
      k: r.rollout.k,
      temperature: r.rollout.temperature,
      topP: r.rollout.topP,
      maxNewTokens: r.rollout.maxNewTokens,
      batchSize: r.rollout.batchSize,
      shardSize: r.rollout.shardSize,
      maxBatchTokens: r.rollout.maxBatchTokens,
      maxRunningSequences: r.rollout.maxRunningSequences,
      maxCacheTokens: r.rollout.maxCacheTokens,
      maxSwapTokens: r.rollout.maxSwapTokens,
      maxPromptTokens: r.lengths.maxPromptTokens,
      onEvent: printEvents(),
    });
    console.log(file);
  },
};
