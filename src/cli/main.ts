// The command line: a thin layer over the API. Each command lives in its own file.
import yargs from 'yargs';
import { infoCommand } from './info.js';
import { benchCommand } from './bench.js';
import { trainCommand } from './train.js';
import { generateCommand } from './generate.js';
import { judgeCommand } from './judge.js';
import { evalCommand } from './eval.js';
import { initModelCommand } from './initModel.js';
import { serveCommand } from './serve.js';
import { exportCommand } from './export.js';
import { closeAllCommandJudges } from '../judge/command.js';
import { stopAllPolicyServers } from '../openai/servedPolicy.js';
import { cancelAllNativeWork } from '../model/engine.js';
import { noteInOpenLogs } from '../run/runLog.js';
import { repeatedFlag } from './repeatedFlags.js';
import { isFsError } from '../util/fsErrors.js';
import { cancelAllPairRmWork } from '../pairrm/model.js';

let stopping = false;

/** " [rank r]" in a data-parallel rank's messages (several ranks share a terminal). */
function rankTag(): string {
  return process.env.RANK !== undefined && Number(process.env.WORLD_SIZE) > 1 ? ` [rank ${process.env.RANK}]` : '';
}

/**
 * Ctrl-C / SIGTERM: cancel the native call in flight (generation, log-probs, a training
 * micro-batch: each returns within about a decode step or a layer; the process cannot exit while
 * one runs), end the command judges and rollout servers (they run in their own process groups, so
 * the signal does not reach them) and exit 130 / 143. Finished work is on disk; a rerun resumes. A
 * second signal exits at once.
 */
function onSignal(signal: NodeJS.Signals, code: number): void {
  if (stopping) process.exit(code);
  stopping = true;
  console.error(`\nsppo-native: ${signal}: stopping (finished work is kept; rerun the same command to resume)`);
  noteInOpenLogs(`stopped by ${signal} (exit ${code})`);
  cancelAllNativeWork();
  cancelAllPairRmWork();
  Promise.all([closeAllCommandJudges(), stopAllPolicyServers()]).finally(() => process.exit(code));
}

export async function main(argv: string[]): Promise<void> {
  // A command whose work waits on nothing that can still happen would let Node exit with 0: say so.
  let finished = false;
  process.on('beforeExit', () => {
    if (finished || stopping) return;
    console.error(`sppo-native${rankTag()}: internal error: the command stopped with work unfinished and nothing left to wait for`);
    process.exit(1);
  });
  process.on('SIGINT', () => onSignal('SIGINT', 130));
  process.on('SIGTERM', () => onSignal('SIGTERM', 143));
  const cli = yargs(argv);
  await cli
    .scriptName('sppo-native')
    .usage('$0 <command> [options]\n\nSelf-Play Preference Optimization for language models.')
    .command(infoCommand)
    .command(benchCommand)
    .command(trainCommand)
    .command(generateCommand)
    .command(judgeCommand)
    .command(evalCommand)
    .command(initModelCommand)
    .command(serveCommand)
    .command(exportCommand)
    .middleware((args) => {
      const lists = new Set<string>((cli as unknown as { getOptions(): { array: string[] } }).getOptions().array);
      const repeated = repeatedFlag(args as Record<string, unknown>, lists);
      if (repeated) {
        console.error(`sppo-native: ${repeated}`);
        process.exit(1);
      }
    }, true)
    .demandCommand(1, 'Name a command (see --help).')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err, y) => {
      // Stopping on a signal: the work that failed was cut off on purpose; onSignal exits.
      if (stopping) return;
      if (err) {
        // A system error that reached here unexplained still says what it means (no stack).
        console.error(`sppo-native${rankTag()}: ${err.message}${isFsError(err) && !/cannot /.test(err.message) ? ' (a file-system error)' : ''}`);
      } else {
        console.error(y.help());
        console.error(`\n${msg}`);
      }
      process.exit(1);
    })
    .parseAsync();
  finished = true;
}
