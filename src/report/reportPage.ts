// <output>/report.html: one self-contained page (inline CSS, script and data; no network: its
// Content-Security-Policy allows nothing from outside) with the win rate per iteration and its
// interval, the loss (raw or x beta^2), margin and accuracy curves, stage times, and a table of
// training pairs. Rewritten atomically as the run goes (src/report/runReports.ts).
import type { Recipe } from '../recipe/types.js';
import type { WinRate } from '../eval/stats.js';
import { writeFileAtomic } from '../run/atomic.js';
import { REPORT_SCRIPT } from './reportScript.js';
import {
  readIterationSummary, readSamples, readStageTimes, readStepLines, readWinRate, stepOffset, type SampleRow, type StageTimes,
} from './runRecords.js';

/** Training pairs shown per iteration (the first ones of train.parquet). */
export const REPORT_SAMPLES_PER_ITERATION = 200;
export const RELOAD_SECONDS = 15;

export type RunStatus = 'running' | 'finished' | 'stopped';

export interface ReportStep {
  step: number;      // global step
  loss: number;
  margin: number;
  accuracy: number;
}

export interface ReportIteration {
  iteration: number;
  finished: boolean;
  prompts: number | null;
  pairs: number | null;
  winRate: Pick<WinRate, 'winRate' | 'lower' | 'upper' | 'n' | 'wins' | 'ties' | 'losses'> | null;
  stageTimes: StageTimes;
  steps: ReportStep[];
}

export interface ReportData {
  title: string;
  status: RunStatus;
  updated: string;
  reloadSeconds: number;
  recipe: { model: string; judge: string; eta: number; loss: string; k: number; iterations: number; truncation: string };
  iterations: ReportIteration[];
  samples: (SampleRow & { iteration: number })[];
}

export async function collectReport(out: string, recipe: Recipe, status: RunStatus): Promise<ReportData> {
  const iterations: ReportIteration[] = [];
  const samples: ReportData['samples'] = [];
  for (let t = 1; t <= recipe.iterations; t++) {
    const summary = readIterationSummary(out, t);
    const offset = stepOffset(out, t);
    const w = readWinRate(out, t);
    iterations.push({
      iteration: t,
      finished: summary !== null,
      prompts: typeof summary?.prompts === 'number' ? summary.prompts : null,
      pairs: typeof summary?.pairs === 'number' ? summary.pairs : null,
      winRate: w ? { winRate: w.winRate, lower: w.lower, upper: w.upper, n: w.n, wins: w.wins, ties: w.ties, losses: w.losses } : null,
      stageTimes: readStageTimes(out, t),
      steps: readStepLines(out, t).map((l) => ({ step: offset + (l.step ?? 0), loss: l.loss ?? NaN, margin: l['rewards/margins'] ?? NaN, accuracy: l['rewards/accuracies'] ?? NaN })),
    });
    for (const s of await readSamples(out, t, REPORT_SAMPLES_PER_ITERATION)) samples.push({ iteration: t, ...s });
  }
  return {
    title: `sppo-native run ${out}`,
    status,
    updated: new Date().toISOString(),
    reloadSeconds: RELOAD_SECONDS,
    recipe: {
      model: recipe.model, judge: recipe.judge, eta: recipe.sppo.eta, loss: recipe.sppo.loss, k: recipe.rollout.k,
      iterations: recipe.iterations, truncation: recipe.lengths.truncation,
    },
    iterations,
    samples,
  };
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
// JSON inside <script>: "<" escaped, so no text in the data can close the element.
const scriptJson = (v: unknown): string => JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

const CSS = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; padding: 16px 24px; max-width: 1240px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 6px; }
.meta { color: #555; } .status { font-weight: 600; } .status.running { color: #b26b00; } .status.finished { color: #1b7f3b; } .status.stopped { color: #a11; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 12px 24px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; }
svg .grid { stroke: #eee; } svg .ref { stroke: #999; stroke-dasharray: 4 3; } svg .lbl { font-size: 11px; fill: #444; }
svg .axis { font-size: 12px; fill: #222; } svg .empty { font-size: 13px; fill: #999; } svg .err { stroke-width: 1.5; }
table { border-collapse: collapse; width: 100%; font-size: 13px; } th, td { border-bottom: 1px solid #eee; padding: 4px 6px; vertical-align: top; text-align: left; }
td { white-space: pre-wrap; word-break: break-word; max-width: 360px; } td.num { text-align: right; white-space: nowrap; }
th { background: #f6f6f6; position: sticky; top: 0; } .controls { margin: 6px 0; display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
table.iters td, table.iters th { text-align: right; } details summary { cursor: pointer; } .full { margin-top: 4px; }
`;

function iterationTable(d: ReportData): string {
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  const rows = d.iterations.map((it) => {
    const w = it.winRate;
    const secs = Object.values(it.stageTimes).reduce((a, b) => a + b, 0);
    return `<tr><td>${it.iteration}</td><td>${it.finished ? 'done' : it.steps.length || Object.keys(it.stageTimes).length ? 'in progress' : 'not started'}</td>` +
      `<td>${it.prompts ?? '-'}</td><td>${it.pairs ?? '-'}</td><td>${it.steps.length}</td>` +
      `<td>${w ? `${pct(w.winRate)} [${pct(w.lower)}, ${pct(w.upper)}]` : '-'}</td><td>${w ? `${w.wins} / ${w.ties} / ${w.losses}` : '-'}</td>` +
      `<td>${secs ? `${secs.toFixed(1)} s` : '-'}</td></tr>`;
  });
  return `<table class="iters"><thead><tr><th>iteration</th><th>state</th><th>prompts</th><th>pairs</th><th>steps</th><th>win rate vs &pi;<sub>0</sub> [95% CI]</th><th>wins / ties / losses</th><th>stage time</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

export function renderReport(d: ReportData): string {
  const r = d.recipe;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${escapeHtml(d.title)}</title>
<style>${CSS}</style></head>
<body>
<h1>${escapeHtml(d.title)}</h1>
<div class="meta"><span class="status ${d.status}">${d.status}</span> &middot; updated ${escapeHtml(d.updated)}${d.status === 'running' ? ` &middot; reloads every ${d.reloadSeconds} s` : ''}</div>
<div class="meta">model ${escapeHtml(r.model)} &middot; judge ${escapeHtml(r.judge)} &middot; loss ${escapeHtml(r.loss)}, &eta; = ${r.eta} (&beta; = ${1 / r.eta}) &middot; K = ${r.k} &middot; ${r.iterations} iterations &middot; truncation ${escapeHtml(r.truncation)}</div>
<h2>Iterations</h2>
${iterationTable(d)}
<div class="grid2">
<div class="card"><h2>Win rate against the starting policy</h2><div id="chart-winrate"></div></div>
<div class="card"><h2>Loss <label style="font-weight:normal;font-size:13px"><input type="checkbox" id="loss-scaled"> &times; &beta;<sup>2</sup></label></h2><div id="chart-loss"></div></div>
<div class="card"><h2>Reward margin (chosen &minus; rejected)</h2><div id="chart-margin"></div></div>
<div class="card"><h2>Reward accuracy</h2><div id="chart-accuracy"></div></div>
<div class="card"><h2>Stage times</h2><div id="chart-stages"></div></div>
</div>
<h2>Training pairs</h2>
<div class="meta">The first ${REPORT_SAMPLES_PER_ITERATION} pairs of each iteration's train.parquet. p<sub>w</sub>, p<sub>l</sub>: estimated win rates of chosen and rejected against &pi;<sub>t</sub>; P(w&succ;l): the judge's preference for chosen over rejected; scores: the judge's, when score-based.</div>
<div class="controls"><select id="sample-iteration"><option value="all">all iterations</option></select>
<input id="sample-search" type="search" placeholder="search prompt and responses" size="32">
<button id="sample-prev" type="button">&larr; previous</button><button id="sample-next" type="button">next &rarr;</button><span id="sample-info"></span></div>
<table class="samples"><thead><tr><th>iter</th><th>prompt</th><th>chosen</th><th>rejected</th><th>p<sub>w</sub></th><th>p<sub>l</sub></th><th>P(w&succ;l)</th><th>score w</th><th>score l</th></tr></thead><tbody id="samples-body"></tbody></table>
<script type="application/json" id="report-data">${scriptJson(d)}</script>
<script>${REPORT_SCRIPT}</script>
</body></html>
`;
}

export async function writeReport(out: string, file: string, recipe: Recipe, status: RunStatus): Promise<void> {
  writeFileAtomic(file, renderReport(await collectReport(out, recipe, status)));
}
