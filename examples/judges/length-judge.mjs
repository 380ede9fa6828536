#!/usr/bin/env node
// A complete command judge (docs/judge-protocol.md): prefers longer responses. Score = number of
// words / 10, so P_ij = sigma((words_i - words_j) / 10). Usage:
//   sppo-native train --judge 'command:node examples/judges/length-judge.mjs'
import { createInterface } from 'node:readline';

const out = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

out({ protocol: 'sppo-judge', version: 1, name: 'length-judge' });

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  if (line.trim() === '') return;
  let req;
  try {
    req = JSON.parse(line);
  } catch {
    console.error(`length-judge: ignoring a line that is not JSON: ${line.slice(0, 80)}`);
    return;
  }
  if (!Array.isArray(req.responses) || req.responses.some((r) => typeof r !== 'string')) {
    out({ id: req.id, error: 'responses must be an array of strings' });
    return;
  }
  const scores = req.responses.map((r) => {
    const t = r.trim();
    return (t === '' ? 0 : t.split(/\s+/).length) / 10;
  });
  out({ id: req.id, scores });
});
// stdin closed: sppo-native is done with us.
lines.on('close', () => process.exit(0));
