// How the CLI shows pipeline events: stage lines and logs on stderr (progress bars live there
// too), results (win rates, summaries) on stdout.
import type { EventSink } from './events.js';

export function printEvents(out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): EventSink {
  return (e) => {
    switch (e.type) {
      case 'log':
        err.write(`${e.message}\n`);
        break;
      case 'stage':
        if (e.status !== 'done') err.write(`iteration ${e.iteration}: ${e.stage} ${e.status === 'start' ? '...' : `skipped (${e.detail ?? 'done'})`}\n`);
        break;
      case 'winrate':
        out.write(
          `iteration ${e.iteration}: win rate against the starting policy ${(100 * e.winRate).toFixed(1)}% ` +
            `[95% CI ${(100 * e.low).toFixed(1)}%, ${(100 * e.high).toFixed(1)}%] over ${e.comparisons} comparisons\n`,
        );
        break;
      case 'iteration': {
        const s = e.summary as { pairs?: number; steps?: number; meanLoss?: number; policy?: string };
        err.write(`iteration ${e.iteration}: done (${s.pairs} pairs, ${s.steps} steps, mean loss ${Number(s.meanLoss).toPrecision(4)}) -> ${s.policy}\n`);
        break;
      }
      default:
        break;
    }
  };
}
