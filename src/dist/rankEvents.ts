// What a data-parallel rank other than 0 prints: rank 0 shows the run's progress; the others say
// only what needs a reader (warnings), prefixed with their rank. Their full event stream goes to
// their own log file in the run folder (log.rank-R.txt).
import type { EventSink } from '../util/events.js';

export function rankEvents(rank: number, err: NodeJS.WritableStream = process.stderr): EventSink {
  return (e) => {
    if (e.type === 'warning') err.write(`[rank ${rank}] warning: ${e.message}\n`);
  };
}
