// The command judge's start and end: a first line that is not the handshake is reported as the
// protocol describes it (issue 12, item 9), and closing a judge leaves nothing of its process
// group running, its watchdog included (item 6; the kill -9 case is in test/cli.userFacing.test.ts).
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandJudge } from '../src/judge/command.js';

const dir = mkdtempSync(join(tmpdir(), 'sppo-judge-life-'));
const HANDSHAKE = `console.log(JSON.stringify({ protocol: 'sppo-judge', version: 1 }));`;

function script(name: string, src: string): string {
  const f = join(dir, name);
  writeFileSync(f, src);
  return `node ${f}`;
}

/** Live (not zombie) pids of process group `pgid`, read from /proc (no `ps` needed). */
function group(pgid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its closing parenthesis.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] !== 'Z' && Number(rest[2]) === pgid) out.push(Number(name));
  }
  return out;
}

describe('command judge lifecycle', () => {
  it('a banner before the handshake is reported as a missing handshake, as docs/judge-protocol.md says', async () => {
    const cmd = script('banner.mjs', `console.log('Loading PairRM...');\n${HANDSHAKE}\nsetInterval(() => {}, 1000);`);
    const err = await CommandJudge.start(cmd).then(() => null, (e: Error) => e);
    expect(err?.message).toMatch(/line 1 of its output should be the handshake \{"protocol":"sppo-judge","version":1\} \(docs\/judge-protocol.md; judges print only protocol lines on stdout, logs go to stderr\), got: Loading PairRM\.\.\./);
    expect(err?.message).not.toMatch(/not valid JSON/);
  });

  it.skipIf(!existsSync('/proc/self/stat'))('close() ends the judge and its watchdog: nothing of its process group is left (skipped without /proc)', async () => {
    const cmd = script('ok.mjs', `import { createInterface } from 'node:readline';\n${HANDSHAKE}
createInterface({ input: process.stdin }).on('line', (l) => { const r = JSON.parse(l); console.log(JSON.stringify({ id: r.id, scores: r.responses.map((x) => x.length) })); });`);
    const j = await CommandJudge.start(cmd);
    const pgid = j.pid!;
    expect(group(pgid).length).toBeGreaterThanOrEqual(2); // the judge's shell/process and the watchdog
    const [a] = await j.judge([{ prompt: 'p', responses: ['a', 'bbb'] }]);
    expect(a!.scores).toEqual([1, 3]);
    await j.close();
    for (let i = 0; i < 40 && group(pgid).length; i++) await new Promise((r) => setTimeout(r, 50));
    expect(group(pgid)).toEqual([]);
  });
});
