// The options an output folder was made with (e.g. generate.json): recorded when work starts, and
// a rerun that would mix results of different options is refused with the differing keys named.
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from './atomic.js';

/**
 * `started`: whether results made with the recorded options exist; before that the options are
 * simply (re)recorded. Keys in `mayChange` do not affect the results (batch size, device).
 */
export function recordOptions(file: string, options: Record<string, unknown>, started: boolean, mayChange: readonly string[] = []): void {
  // Results without a record (an older folder): the caller checks them as it reads them, and
  // records the options once they are known to match.
  if (started && !existsSync(file)) return;
  if (started) {
    let old: Record<string, unknown>;
    try {
      old = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`${file} is not valid JSON (${(err as Error).message}); delete the folder's results to start over`);
    }
    const keys = [...new Set([...Object.keys(old), ...Object.keys(options)])].filter((k) => !mayChange.includes(k));
    const differ = keys.filter((k) => JSON.stringify(old[k] ?? null) !== JSON.stringify(options[k] ?? null));
    if (differ.length) {
      const detail = differ.map((k) => `${k} (was ${JSON.stringify(old[k] ?? null)}, now ${JSON.stringify(options[k] ?? null)})`).join('; ');
      throw new Error(`the results in ${dirname(file)} were made with other options: ${detail}. Rerun with the same options to resume, or choose a new --output`);
    }
  }
  writeFileAtomic(file, `${JSON.stringify(options, null, 2)}\n`);
}
