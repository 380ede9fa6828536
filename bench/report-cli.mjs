// The command line of the ratio scripts (compare-model.mjs, compare-pairrm.mjs): report files in,
// one table out, and with --json FILE the rows as JSON. A missing file is named and skipped; no
// native report among the files is an error (exit 1).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

/** Runs `compare` over the JSON files in `argv` and prints `format` of its result. */
export function reportMain(argv, { usage, name, noNative, compare, format }) {
  const at = argv.indexOf('--json');
  const outJson = at >= 0 ? argv[at + 1] : undefined;
  const files = argv.filter((_, i) => at < 0 || (i !== at && i !== at + 1));
  if (files.length === 0) {
    console.error(`usage: ${usage}`);
    process.exit(1);
  }
  const reports = files.filter((f) => existsSync(f)).map((f) => JSON.parse(readFileSync(f, 'utf8')));
  for (const f of files.filter((f) => !existsSync(f))) console.log(`(missing: ${f})`);
  const cmp = compare(reports);
  if (cmp.natives.length === 0) {
    console.error(`${name}: no native report among the files (${noNative})`);
    process.exit(1);
  }
  console.log(format(cmp));
  if (outJson) {
    writeFileSync(outJson, `${JSON.stringify({ files, rows: cmp.rows }, null, 2)}\n`);
    console.log(`wrote ${outJson}`);
  }
}
