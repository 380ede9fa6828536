// Paths in a run folder's records (summary.json of an iteration and of the run) are relative to
// the folder, so that a copied or moved run resumes from its own files. A recorded path that would
// load from outside the folder (an absolute path of an older record, a `..`) is refused by name.
import { isAbsolute, join, relative, resolve, sep } from 'node:path';

/** `path` as a record in run folder `out` names it: relative when inside, else absolute. */
export function recordedPath(out: string, path: string): string {
  const rel = relative(resolve(out), resolve(path));
  return rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? resolve(path) : rel.split(sep).join('/');
}

/** Whether `path` is `out` or lies inside it. */
export function insideFolder(out: string, path: string): boolean {
  const rel = relative(resolve(out), resolve(path));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

export class RunPathError extends Error {}

/**
 * The file a record of run folder `out` names (`record` says which record and field, for the
 * error), which must lie inside the folder.
 */
export function pathInRun(out: string, recorded: string, record: string): string {
  const p = isAbsolute(recorded) ? recorded : join(out, recorded);
  if (!insideFolder(out, p)) {
    throw new RunPathError(
      `${record} names ${recorded}, which is outside the run folder ${resolve(out)}; a run only loads its own files ` +
        '(was the folder copied or moved from a version that recorded absolute paths?). Delete that iteration folder to redo it, or choose a new --output',
    );
  }
  return resolve(p);
}
