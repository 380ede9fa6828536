// The report page: written by a run on the fake model (and rewritten as it goes: a run stopped by
// a NaN loss leaves a page that says so, with the steps so far), then loaded in a real browser
// (Debian's chromium, headless, driven by playwright-core): no console errors, the charts hold
// the run's points, the sample table pages and filters, and a screenshot is written to
// test/out/report-page.png. Skipped only when /usr/bin/chromium is missing (.ci/run installs it).
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { train } from '../src/pipeline/pipeline.js';
import { DEMO_DIR } from '../src/pipeline/demo.js';
import { readParquet } from '../src/data/parquet.js';
import type { ReportData } from '../src/report/reportPage.js';
import { fakeRunRecipe } from './helpers/fakeRun.js';
import { fakeProvider } from './helpers/fakeModel.js';
import { seededRandom } from './sppo.seed.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
const root = mkdtempSync(join(tmpdir(), 'sppo-page-'));
const { seed: testSeed } = seededRandom('report.page');
const shotDir = join(import.meta.dirname, 'out');

const recipe = (name: string) =>
  fakeRunRecipe({ root, promptFile: join(DEMO_DIR, 'prompts.jsonl'), maxPrompts: 30, seed: testSeed }, name, (r) => {
    r.eval.prompts = 6;
    r.eval.samples = 2;
  });

/** The data embedded in a report page. */
function pageData(file: string): ReportData {
  const html = readFileSync(file, 'utf8');
  const m = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html);
  expect(m, 'the page embeds its data').not.toBeNull();
  return JSON.parse(m![1]!) as ReportData;
}

describe('report.html from the run records', () => {
  it('is written by the run: finished status, every step, win rates, stage times and samples', async () => {
    const r = recipe('full');
    const res = await train(r, { provider: fakeProvider() });
    const d = pageData(join(r.output, 'report.html'));
    expect(d.status).toBe('finished');
    expect(d.iterations.map((i) => i.finished)).toEqual([true, true]);
    expect(d.iterations.map((i) => i.steps.length)).toEqual(res.iterations.map((s) => s.steps));
    expect(d.iterations[1]!.steps[0]!.step).toBe(res.iterations[0]!.steps + 1); // global steps
    expect(d.iterations.map((i) => i.winRate!.winRate)).toEqual(res.iterations.map((s) => s.winRate!.winRate));
    expect(Object.keys(d.iterations[0]!.stageTimes).sort()).toEqual(['eval', 'judge', 'pairs', 'reference', 'rollout', 'train']);
    const pairs = (await readParquet(join(r.output, 'iter-1', 'train.parquet'))).rows;
    const first = d.samples.find((s) => s.iteration === 1)!;
    expect(first.prompt).toBe((pairs[0]!.chosen as { role: string; content: string }[])[0]!.content);
    expect(first.pWin).toBe(pairs[0]!.chosen_probs_win);
    expect(first.scoreChosen).not.toBeNull(); // builtin:demo is score-based
    expect(d.samples).toHaveLength(res.iterations.reduce((a, s) => a + s.pairs, 0));
  });

  it('a run stopped by an error leaves a page that says so, with the finished iteration and the steps so far', async () => {
    const r = recipe('stopped');
    // 30 prompts: 8 steps of 4 pairs per epoch (the last of 2), micro-batches of 2: 15 calls an epoch.
    await expect(train(r, { provider: fakeProvider({ nanAtAccumulate: 30 + 5 }) })).rejects.toThrow(/loss is NaN/);
    const d = pageData(join(r.output, 'report.html'));
    expect(d.status).toBe('stopped');
    expect(d.iterations[0]!.finished).toBe(true);
    expect(d.iterations[1]!.finished).toBe(false);
    expect(d.iterations[1]!.steps.length).toBeGreaterThan(0);
    expect(d.iterations[1]!.stageTimes.rollout).toBeGreaterThanOrEqual(0);
  });

  it('is rewritten as events arrive: an iteration at once, steps at most every few seconds', async () => {
    const r = recipe('live');
    r.iterations = 1;
    await train(r, { provider: fakeProvider() });
    const file = join(r.output, 'report.html');
    rmSync(file);
    const { openRunReports } = await import('../src/report/runReports.js');
    const reports = openRunReports(r.output, r, () => {});
    await reports.settled();
    expect(pageData(file).status).toBe('running'); // written when the reports open
    rmSync(file);
    reports.onEvent({ type: 'step', iteration: 1, totalSteps: 1, beta: 1e-3, metrics: { iteration: 1, step: 1, loss: 1 } });
    await reports.settled();
    expect(existsSync(file)).toBe(false); // a step right after a write does not rewrite it
    reports.onEvent({ type: 'iteration', iteration: 1, summary: {} });
    await reports.settled();
    expect(pageData(file).iterations[0]!.finished).toBe(true);
    await reports.close('finished');
    expect(pageData(file).status).toBe('finished');
  });

  it('puts no text of the run into the markup: a response with </script> and HTML stays data', async () => {
    const { renderReport } = await import('../src/report/reportPage.js');
    const evil = '</script><script>alert(1)</script><img src=x onerror=alert(2)>';
    const html = renderReport({
      title: 'x', status: 'finished', updated: 'now', reloadSeconds: 15,
      recipe: { model: evil, judge: 'j', eta: 1, loss: 'sppo', k: 2, iterations: 1, truncation: 'reference' },
      iterations: [], samples: [{ iteration: 1, prompt: evil, chosen: evil, rejected: 'r', pWin: 0.5, pLose: 0.5, pChosen: 0.5, scoreChosen: null, scoreRejected: null }],
    });
    expect(html.split('</script>').length - 1).toBe(2); // the data block and the script, nothing else
    expect(html).not.toContain('<img');
  });
});

describe.skipIf(!haveChromium)(`report.html in headless chromium${haveChromium ? '' : ` (skipped: ${CHROMIUM} is not installed; .ci/run installs Debian's chromium)`}`, () => {
  let ctx: BrowserContext | undefined;
  afterAll(async () => {
    await ctx?.close();
  });

  it('loads with no console errors; the charts hold the run’s points; the table pages and filters; a screenshot is written', async () => {
    const r = recipe('browser');
    const res = await train(r, { provider: fakeProvider() });
    const file = join(r.output, 'report.html');
    const d = pageData(file);
    const profile = join(root, 'profile');
    rmSync(profile, { recursive: true, force: true });
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 1400 },
    });
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    const requests: string[] = [];
    page.on('request', (q) => {
      if (!q.url().startsWith('file:') && !q.url().startsWith('data:')) requests.push(q.url());
    });
    await page.goto(pathToFileURL(file).href);
    await page.waitForSelector('#chart-loss svg');

    const steps = res.iterations.reduce((a, s) => a + s.steps, 0);
    expect(await page.locator('#chart-loss svg').getAttribute('data-points')).toBe(String(steps));
    expect(await page.locator('#chart-loss circle.pt').count()).toBe(steps);
    expect(await page.locator('#chart-margin circle.pt').count()).toBe(steps);
    expect(await page.locator('#chart-winrate circle.pt').count()).toBe(2);
    expect(await page.locator('#chart-winrate line.err').count()).toBe(2 * 3); // bar and two caps each
    expect(Number(await page.locator('#chart-stages svg').getAttribute('data-bars'))).toBe(2 * 6);
    // The first loss point's tooltip carries the first step's value.
    const firstLoss = d.iterations[0]!.steps[0]!.loss;
    expect(await page.locator('#chart-loss circle.pt title').first().textContent()).toContain(`@ 1: `);
    expect(firstLoss).toBeGreaterThan(0);
    // loss x beta^2: same points, axis relabelled.
    await page.locator('#loss-scaled').check();
    expect(await page.locator('#chart-loss text.axis').allTextContents()).toContain('loss x beta^2');
    expect(await page.locator('#chart-loss circle.pt').count()).toBe(steps);

    const pairs = d.samples.length;
    expect(await page.locator('#samples-body tr').count()).toBe(Math.min(20, pairs));
    expect(await page.locator('#sample-info').textContent()).toContain(`${pairs} of ${pairs} pairs`);
    await page.selectOption('#sample-iteration', '2');
    const inIt2 = d.samples.filter((s) => s.iteration === 2).length;
    expect(await page.locator('#sample-info').textContent()).toContain(`${inIt2} of ${pairs} pairs`);
    const word = d.samples.find((s) => s.iteration === 2)!.prompt.split(/\s+/).find((w) => w.length > 3)!;
    await page.fill('#sample-search', word);
    const matching = d.samples.filter((s) => s.iteration === 2 && `${s.prompt}\n${s.chosen}\n${s.rejected}`.toLowerCase().includes(word.toLowerCase())).length;
    expect(await page.locator('#samples-body tr').count()).toBe(Math.min(20, matching));
    await page.fill('#sample-search', '');
    await page.selectOption('#sample-iteration', 'all');

    mkdirSync(shotDir, { recursive: true });
    const shot = join(shotDir, 'report-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(readFileSync(shot).subarray(1, 4).toString()).toBe('PNG');
    console.log(`[report.page] screenshot: ${shot}`);
    expect(requests, 'the page fetches nothing').toEqual([]);
    expect(problems, 'console errors and warnings').toEqual([]);
  });
});
