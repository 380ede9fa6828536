import type { CommandModule } from 'yargs';
import { withRecipeFlags, recipeOverrides } from '../recipe/flags.js';
import { trainCommandRun } from '../api.js';
import { printEvents } from '../util/printEvents.js';
import { formatWinRate } from '../eval/stats.js';

interface TrainArgs {
  recipe?: string;
  [key: string]: unknown;
}

export const trainCommand: CommandModule<object, TrainArgs> = {
  command: 'train',
  describe: 'Run SPPO iterations (rollout, judge, train) from a recipe; with no arguments, the built-in CPU demo',
  builder: (y) =>
    withRecipeFlags(
      y
        .option('recipe', { type: 'string', describe: 'Recipe YAML file (flags override it) [default: the reference recipe; the demo recipe when neither --recipe nor --model is given]' })
        .example('$0 train', 'the demo: a tiny model, bundled prompts, builtin:demo judge, 3 iterations, runs/demo')
        .example('$0 train --model ./Mistral-7B-Instruct-v0.2 --prompts prompts.parquet --judge command:"python pairrm.py" --output runs/m7b', 'the reference recipe on your model')
        .epilogue('Rerunning the same command resumes an interrupted run at the first unfinished stage, shard or step.'),
    ),
  handler: async (args) => {
    const result = await trainCommandRun({ recipeFile: args.recipe, overrides: recipeOverrides(args) }, printEvents());
    const rated = result.iterations.filter((s) => s.winRate);
    if (rated.length) {
      console.log(`\nwin rate against the starting policy (${rated[0]!.winRate!.n} comparisons each):`);
      for (const s of rated) console.log(`  iteration ${s.iteration}: ${formatWinRate(s.winRate!)}`);
    }
    console.log(`final policy: ${result.finalModel}`);
  },
};
