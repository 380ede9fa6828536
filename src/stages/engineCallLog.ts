// One line per engine generate call for the run log: how full the scheduler kept the batch and
// the KV pool, and whether it had to preempt (swap prompts out to host memory). A user tuning
// --rollout-cache-tokens / --rollout-swap-tokens reads it to see what the budgets did.
import type { GenerateStats } from '../model/types.js';

export function describeEngineCall(st: GenerateStats, prompts: number, k: number): string {
  const pool = `KV pool ${st.kvBlocks} blocks of ${st.blockSize} (peak ${st.peakBlocksInUse})`;
  let swap: string;
  if (st.swapBlocks === 0) swap = 'each prompt\'s worst case reserved (no swap space)';
  else if (st.preemptions === 0) swap = 'no preemption';
  else {
    swap = `${st.preemptions} preemption${st.preemptions === 1 ? '' : 's'}, ${st.swappedOutBlocks} blocks swapped to host memory ` +
      `(at most ${st.peakSwappedBlocks} of ${st.swapBlocks} at once)`;
  }
  return `rollout: engine call over ${prompts} prompt${prompts === 1 ? '' : 's'} x ${k}: ${st.steps} steps, ` +
    `up to ${st.peakRunning} of ${st.maxRunningSequences} samples at once; ${pool}; ${swap}`;
}
