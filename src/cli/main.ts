// The command line: a thin layer over the API. Each command lives in its own file.
import yargs from 'yargs';
import { infoCommand } from './info.js';
import { benchCommand } from './bench.js';
import { trainCommand } from './train.js';
import { generateCommand } from './generate.js';
import { judgeCommand } from './judge.js';
import { evalCommand } from './eval.js';

export async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('sppo-native')
    .usage('$0 <command> [options]\n\nSelf-Play Preference Optimization for language models.')
    .command(infoCommand)
    .command(benchCommand)
    .command(trainCommand)
    .command(generateCommand)
    .command(judgeCommand)
    .command(evalCommand)
    .demandCommand(1, 'Name a command (see --help).')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err, y) => {
      if (err) {
        console.error(`sppo-native: ${err.message}`);
      } else {
        console.error(y.help());
        console.error(`\n${msg}`);
      }
      process.exit(1);
    })
    .parseAsync();
}
