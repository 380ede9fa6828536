// Built-in judges: each does what its documentation says, and the cyclic one is intransitive.
import { describe, expect, it } from 'vitest';
import { createJudge } from '../src/judge/factory.js';
import { parseJudgeSpec } from '../src/judge/spec.js';
import { cyclicKind, demoScore, DEMO_WORDS } from '../src/judge/builtin.js';
import { sigmoid, validateMatrix } from '../src/judge/matrix.js';
import { winRates } from '../src/sppo/winRates.js';
import { selectPairs } from '../src/sppo/pairs.js';
import { seededRandom } from './sppo.seed.js';

const FILLER = ['the', 'a', 'sky', 'is', 'very', 'nice', 'today', 'and', 'we', 'go'];

function randomText(rand: () => number, vocab: readonly string[], n: number): string {
  return Array.from({ length: n }, () => vocab[Math.floor(rand() * vocab.length)]).join(' ');
}

describe('builtin:cyclic', () => {
  it('is intransitive: rock < paper < scissors < rock, with P = p / 1 - p', async () => {
    const judge = await createJudge('builtin:cyclic?p=0.8');
    const [j] = await judge.judge([{ prompt: 'play', responses: ['Rock!', 'I pick paper, not rock.', 'scissors', 'a draw?'] }]);
    expect(j!.scores).toBeNull();
    const P = j!.probability;
    validateMatrix(P, 'cyclic', 4);
    expect(P[1]![0]).toBe(0.8); // paper (first keyword) beats rock
    expect(P[2]![1]).toBe(0.8); // scissors beat paper
    expect(P[0]![2]).toBe(0.8); // rock beats scissors
    expect(P[0]![3]).toBe(0.8); // any kind beats no kind
    // No response beats all others: the cycle has no Condorcet winner.
    for (let i = 0; i < 3; i++) expect([0, 1, 2].some((k) => P[k]![i]! > 0.5)).toBe(true);
  });

  it('on random texts of random kinds gives a consistent matrix following the circle', async () => {
    const { rand } = seededRandom('cyclic');
    const kinds = ['ant', 'bee', 'cat', 'dog', 'eel'];
    const judge = await createJudge(`builtin:cyclic?kinds=${kinds.join(',')}&p=0.7`);
    for (let t = 0; t < 30; t++) {
      const chosen = Array.from({ length: 6 }, () => Math.floor(rand() * 6) - 1);
      const responses = chosen.map((k) => `${randomText(rand, FILLER, 3)} ${k >= 0 ? kinds[k]!.toUpperCase() : ''} ${randomText(rand, k >= 0 ? [...FILLER, ...kinds] : FILLER, 3)}`);
      const [j] = await judge.judge([{ prompt: 'x', responses }]);
      validateMatrix(j!.probability, 'cyclic', 6);
      responses.forEach((r, a) => {
        expect(cyclicKind(r, kinds)).toBe(chosen[a]);
        responses.forEach((_, b) => {
          const ka = chosen[a]!, kb = chosen[b]!;
          const d = (((ka - kb) % 5) + 5) % 5;
          const want = ka === kb ? 0.5 : kb < 0 ? 0.7 : ka < 0 ? 0.3 : d <= 2 ? 0.7 : 0.3;
          expect(j!.probability[a]![b]).toBeCloseTo(want, 15);
        });
      });
    }
  });
});

describe('builtin:demo', () => {
  it('prefers responses with a larger share of the target word class', async () => {
    const { rand } = seededRandom('demo judge');
    const judge = await createJudge('builtin:demo');
    for (let t = 0; t < 30; t++) {
      const responses = Array.from({ length: 5 }, () => {
        const n = 1 + Math.floor(rand() * 20);
        const share = rand();
        return Array.from({ length: n }, () => (rand() < share ? DEMO_WORDS[Math.floor(rand() * DEMO_WORDS.length)] : FILLER[Math.floor(rand() * FILLER.length)])).join(' ');
      });
      const [j] = await judge.judge([{ prompt: 'Describe the sky.', responses }]);
      const frac = responses.map((r) => {
        const w = r.split(' ');
        return w.filter((x) => DEMO_WORDS.includes(x)).length / w.length;
      });
      expect(j!.scores!.map((s) => s / 10)).toEqual(frac.map((f) => expect.closeTo(f, 12)));
      responses.forEach((_, a) => responses.forEach((_, b) => {
        expect(j!.probability[a]![b]).toBeCloseTo(sigmoid(10 * (frac[a]! - frac[b]!)), 12);
        if (frac[a]! > frac[b]!) expect(j!.probability[a]![b]).toBeGreaterThan(0.5);
      }));
      // The chosen response of the reference pairing is the most colourful one.
      const [pair] = selectPairs(j!.probability, j!.scores, 'best-worst');
      expect(frac[pair!.chosen]).toBe(Math.max(...frac));
    }
    expect(demoScore('RED, Blue; green!')).toBe(10);
    expect(demoScore('')).toBe(0);
  });

  it('takes its word class, scale and tau from the spec', async () => {
    const judge = await createJudge('builtin:demo?words=cat,dog&scale=4&tau=0.5');
    const [j] = await judge.judge([{ prompt: 'x', responses: ['cat cat dog bird', 'bird bird'] }]);
    expect(j!.scores).toEqual([3, 0]);
    expect(j!.probability[0]![1]).toBeCloseTo(sigmoid(6), 15);
  });
});

describe('builtin:length', () => {
  it('prefers longer responses (words or characters)', async () => {
    const words = await createJudge('builtin:length');
    const [j] = await words.judge([{ prompt: 'x', responses: ['one two three', '  ', 'uno'] }]);
    expect(j!.scores).toEqual([3, 0, 1]);
    expect(winRates(j!.probability)[0]).toBeGreaterThan(winRates(j!.probability)[2]!);
    const chars = await createJudge('builtin:length?unit=chars&tau=4');
    const [c] = await chars.judge([{ prompt: 'x', responses: ['abcd', 'ab'] }]);
    expect(c!.probability[0]![1]).toBeCloseTo(sigmoid(0.5), 15);
  });
});

describe('judge specs', () => {
  it('parse kinds, targets and options', () => {
    expect(parseJudgeSpec('reward-model:/m/rm?tau=0.5')).toEqual({ spec: 'reward-model:/m/rm?tau=0.5', kind: 'reward-model', target: '/m/rm', options: { tau: '0.5' } });
    expect(parseJudgeSpec('command:python j.py --x "a?b=c"').target).toBe('python j.py --x "a?b=c"');
    expect(parseJudgeSpec('precomputed:data/what?.jsonl')).toMatchObject({ target: 'data/what?.jsonl', options: {} });
  });
  it.each([
    ['pairrm', /judge spec 'pairrm' is not understood: expected one of pairrm:<folder>/],
    ['oracle:x', /judge spec 'oracle:x' is not understood/],
    ['builtin:', /judge spec 'builtin:': nothing after 'builtin:'/],
    ['builtin:nope', /unknown built-in judge 'nope' \(built-ins: demo, length, cyclic\)/],
    ['builtin:demo?tau=0', /option tau must be a positive number \(got '0'\)/],
    ['builtin:demo?tau=x', /option tau must be a positive number \(got 'x'\)/],
    ['builtin:length?colour=red', /unknown option 'colour' \(accepted: tau, unit\)/],
    ['builtin:length?unit=pages', /unit must be words or chars \(got 'pages'\)/],
    ['builtin:cyclic?kinds=a,b', /option kinds must list at least 3 distinct words/],
    ['builtin:cyclic?p=0.4', /option p must be in \(0\.5, 1\] \(got 0\.4\)/],
    ['reward-model:/nowhere', /judge 'reward-model:\/nowhere' needs a model engine: pass loadModel and rewardModelTokens/],
  ])('%s is refused clearly', async (spec, msg) => {
    await expect(createJudge(spec)).rejects.toThrow(msg);
  });
});
