// CUDA against CPU on the same random inputs. Runs only where the build has the CUDA backend and
// a GPU is visible (the GPU machine); elsewhere the suite is skipped with the reason in its name.
import { describe, expect, it } from 'vitest';
import { cudaAvailable } from '../src/native/addon.js';
import { logprobBackward, logprobForward, maskedSequenceSum, sppoLoss, LOSS_TYPES, IGNORE_INDEX } from '../src/kernels/index.js';
import { fromBf16Array, toBf16Array } from '../src/kernels/bf16.js';
import { expectClose, makeRng } from './kernels.helpers.js';

const hasCuda = cudaAvailable();

describe.skipIf(!hasCuda)(`CUDA kernels agree with CPU${hasCuda ? '' : ' (skipped: no CUDA backend or no GPU visible)'}`, () => {
  const rng = makeRng('kernels.cuda');

  function randomCase(N: number, V: number, scale: number): { logits: Float32Array; labels: Int32Array } {
    const logits = Float32Array.from({ length: N * V }, () => scale * rng.normal());
    const labels = Int32Array.from({ length: N }, (_, n) => (n % 7 === 3 ? IGNORE_INDEX : n % 5 === 0 ? V - 1 : rng.int(0, V - 1)));
    return { logits, labels };
  }

  it.each([
    [1, 1],
    [7, 3],
    [33, 1001],
    [16, 32000],
    [4, 128256],
  ])('logprob fwd/bwd N=%i V=%i, f32 and bf16, in place', async (N, V) => {
    const { logits, labels } = randomCase(N, V, 4);
    for (const bf16 of [false, true]) {
      const x = bf16 ? toBf16Array(logits) : logits;
      const cpu = await logprobForward({ logits: x, rows: N, vocab: V, labels, device: 'cpu' });
      const gpu = await logprobForward({ logits: x, rows: N, vocab: V, labels, device: 'cuda' });
      expectClose('tokenLogp', gpu.tokenLogp, cpu.tokenLogp, 5e-5, 2e-6);
      expectClose('lse', gpu.lse, cpu.lse, 5e-5, 2e-6);
      const gradToken = Float32Array.from({ length: N }, () => rng.normal());
      const gc = await logprobBackward({ logits: x, rows: N, vocab: V, labels, gradToken, lse: cpu.lse, device: 'cpu' });
      const gg = await logprobBackward({ logits: x, rows: N, vocab: V, labels, gradToken, lse: gpu.lse, device: 'cuda' });
      const toF = (a: Float32Array | Uint16Array): Float32Array => (a instanceof Uint16Array ? fromBf16Array(a) : a);
      expectClose('grad', toF(gg), toF(gc), bf16 ? 1e-6 : 1e-6, bf16 ? 8e-3 : 1e-4);
      const work = x.slice();
      await logprobBackward({ logits: work, rows: N, vocab: V, labels, gradToken, device: 'cuda', inPlace: true });
      expectClose('grad in place', toF(work), toF(gc), 1e-6, bf16 ? 8e-3 : 1e-4);
    }
  });

  it('extreme logits and bad input on cuda', async () => {
    const N = 5;
    const V = 4099;
    const logits = Float32Array.from({ length: N * V }, () => rng.uniform(-1e4, 1e4));
    const labels = Int32Array.from({ length: N }, () => rng.int(0, V - 1));
    const cpu = await logprobForward({ logits, rows: N, vocab: V, labels });
    const gpu = await logprobForward({ logits, rows: N, vocab: V, labels, device: 'cuda' });
    expectClose('tokenLogp', gpu.tokenLogp, cpu.tokenLogp, 5e-3, 1e-6);
    logits[2 * V + 17] = NaN;
    await expect(logprobForward({ logits, rows: N, vocab: V, labels, device: 'cuda' })).rejects.toThrow(/logits\[2, 17\] is not finite/);
  });

  it('masked sequence sum', async () => {
    const B = 9;
    const T = 513;
    const tokenLogp = Float32Array.from({ length: B * T }, () => -rng.uniform(0, 10));
    const mask = Uint8Array.from({ length: B * T }, () => rng.int(0, 1));
    const a = await maskedSequenceSum({ tokenLogp, mask, batch: B, seqLen: T });
    const b = await maskedSequenceSum({ tokenLogp, mask, batch: B, seqLen: T, device: 'cuda' });
    expectClose('seq', b, a, 1e-3, 1e-6);
  });

  for (const t of LOSS_TYPES) {
    it(`sppoLoss ${t}`, async () => {
      const B = 37;
      const col = (f: () => number): Float32Array => Float32Array.from({ length: B }, f);
      const input = {
        policyChosen: col(() => -rng.uniform(5, 200)), policyRejected: col(() => -rng.uniform(5, 200)),
        refChosen: col(() => -rng.uniform(5, 200)), refRejected: col(() => -rng.uniform(5, 200)),
        chosenProbs: col(() => rng.uniform()), chosenProbsWin: col(() => rng.uniform()), chosenProbsLose: col(() => rng.uniform()),
        beta: 1e-3, lossType: t,
      };
      const a = await sppoLoss(input);
      const b = await sppoLoss({ ...input, device: 'cuda' });
      for (const k of ['losses', 'gradChosen', 'gradRejected', 'rewardsChosen', 'rewardsRejected'] as const) {
        expectClose(k, b[k], a[k], 1e-6, 1e-5);
      }
      for (const k of ['loss', 'rewardsChosen', 'rewardsRejected', 'margins', 'accuracy'] as const) {
        expectClose(k, [b.summary[k]], [a.summary[k]], 1e-6, 1e-5);
      }
      // A probability out of [0, 1] is refused where the loss reads it (and ignored where it does
      // not, as on the CPU): sppo reads the win/lose columns, sppo_single chosenProbs.
      const bad = col(() => 2);
      if (t === 'sppo') {
        await expect(sppoLoss({ ...input, device: 'cuda', chosenProbsWin: bad })).rejects.toThrow(/chosenProbsWin\[0\]/);
      } else if (t === 'sppo_single') {
        await expect(sppoLoss({ ...input, device: 'cuda', chosenProbs: bad })).rejects.toThrow(/chosenProbs\[0\]/);
      } else {
        const ignored = await sppoLoss({ ...input, device: 'cuda', chosenProbsWin: bad, chosenProbs: bad });
        expectClose('losses with unused probabilities', ignored.losses, a.losses, 1e-6, 1e-5);
      }
    });
  }
});

describe.skipIf(hasCuda)('cuda refused where unavailable', () => {
  it('asks for cuda and gets a clear error', async () => {
    await expect(
      logprobForward({ logits: new Float32Array(2), rows: 1, vocab: 2, labels: new Int32Array(1), device: 'cuda' }),
    ).rejects.toThrow(/device 'cuda' is not available/);
    await expect(sppoLoss({ policyChosen: [0], policyRejected: [0], refChosen: [0], refRejected: [0], lossType: 'ipo', device: 'cuda' })).rejects.toThrow(
      /device 'cuda' is not available/,
    );
  });
});
