import type { CommandModule } from 'yargs';
import { withRecipeFlags, recipeOverrides } from '../recipe/flags.js';
import { planTrainFromSources, trainCommandRun } from '../api.js';
import { availableMemory, formatMemoryPlan, memoryRefusal, type PlanOptions } from '../pipeline/memoryPlan.js';
import { formatBytes, parseBytes } from '../util/bytes.js';
import { printEvents } from '../util/printEvents.js';
import { formatWinRate } from '../eval/stats.js';
import type { RunResult } from '../pipeline/pipeline.js';
import { DEFAULT_MASTER_PORT, readLaunchEnv } from '../dist/launchEnv.js';
import { DEFAULT_DIST_OPTIONS, JUDGE_PLACEMENTS, type DistOptions, type JudgePlacement } from '../dist/session.js';
import { launchRanks, withoutLauncherFlags } from '../dist/launcher.js';

interface TrainArgs {
  recipe?: string;
  [key: string]: unknown;
}

const num = (v: unknown): number | undefined => (v === undefined ? undefined : Number(v));

const DIST = 'Data parallel (one run over several processes; see the README):';

/** torchrun reads its flags' defaults from PET_* variables (Kubernetes PyTorchJob sets them); so do we. */
function pet(name: string): number | undefined {
  const v = process.env[`PET_${name}`];
  return v === undefined || v === '' ? undefined : Number(v);
}

/** Prints the plan and its verdict; returns the exit code (0 fits, 1 does not or cannot tell). */
function dryRun(src: { recipeFile?: string; overrides: Record<string, unknown> }, opts: PlanOptions, deviceMemory: string | undefined): number {
  const { plan: first } = planTrainFromSources(src, opts);
  let available: number;
  let where: string = first.device;
  if (deviceMemory !== undefined) {
    available = parseBytes(deviceMemory, '--device-memory');
    where = `${first.device} (--device-memory ${deviceMemory})`;
  } else {
    try {
      available = availableMemory(first.device);
    } catch (err) {
      console.log(formatMemoryPlan(first));
      console.error(`\nsppo-native: the free memory of ${first.device} cannot be read here (${(err as Error).message}); give the device's memory with --device-memory (e.g. 141GB for an H200)`);
      return 1;
    }
    where = first.device === 'cpu' ? 'cpu (host available memory)' : first.device;
  }
  // Planned again knowing the memory: the rollout's automatic KV pool is sized from it, as the engine does.
  const { plan } = planTrainFromSources(src, { ...opts, available });
  console.log(formatMemoryPlan(plan));
  console.log(`\nagainst ${formatBytes(available)} available on ${where}:`);
  for (const st of plan.stages) {
    const big = st.items.reduce((x, i) => (i.bytes > x.bytes ? i : x));
    const verdict = st.total <= available ? 'fits' : `does NOT fit: short by ${formatBytes(st.total - available)} (largest item: ${big.name} ${formatBytes(big.bytes)})`;
    console.log(`  ${st.stage.padEnd(10)} ${formatBytes(st.total).padStart(11)}  ${verdict}`);
  }
  const refusal = memoryRefusal(plan, available, where);
  if (refusal) {
    console.error(`sppo-native: the plan does not fit: ${refusal}`);
    return 1;
  }
  return 0;
}

export const trainCommand: CommandModule<object, TrainArgs> = {
  command: 'train',
  describe: 'Run SPPO iterations (rollout, judge, train) from a recipe; with no arguments, the built-in CPU demo',
  builder: (y) =>
    withRecipeFlags(
      y
        .option('recipe', { type: 'string', describe: 'Recipe YAML file (flags override it) [default: the reference recipe; the demo recipe when neither --recipe nor --model is given]' })
        .option('nproc-per-node', { type: 'number', group: DIST, describe: 'Start this many ranks on this machine (one per GPU with --device cuda; CPU processes otherwise) [default: PET_NPROC_PER_NODE, else one process]' })
        .option('nnodes', { type: 'number', group: DIST, describe: 'Machines in the run, each starting --nproc-per-node ranks [default: PET_NNODES, else 1]' })
        .option('node-rank', { type: 'number', group: DIST, describe: 'This machine\'s index, 0..nnodes-1 [default: PET_NODE_RANK, else 0]' })
        .option('master-addr', { type: 'string', group: DIST, describe: 'Address of node 0, where the rendezvous runs [default: PET_MASTER_ADDR, else 127.0.0.1]' })
        .option('master-port', { type: 'number', group: DIST, describe: `Rendezvous port on node 0 [default: PET_MASTER_PORT; ${DEFAULT_MASTER_PORT} with several nodes, any free port on one]` })
        .option('dist-timeout', { type: 'number', group: DIST, default: DEFAULT_DIST_OPTIONS.timeoutS, describe: 'Seconds a rank waits for a collective, a silent peer or the rendezvous before the run is stopped with a message naming the rank' })
        .option('zero1', { type: 'boolean', group: DIST, default: false, describe: 'Shard the optimizer state over the ranks (ZeRO-1): the same weights, less memory per rank' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'Print the memory plan of every stage (rollout: policy + KV cache; judge; reference log-probs; training: policy + gradients + optimizer + activations) from the recipe and the models\' config.json (no weights are read, no model is allocated, nothing is written) and whether it fits the device\'s available memory (on cpu: the host\'s); exits 0 when it fits, 1 when not' })
        .option('device-memory', { type: 'string', describe: 'With --dry-run: plan against this much device memory instead of what the device reports, e.g. 141GB (an H200) or 80GiB; a bare number is GiB' })
        .option('judge-on', { choices: JUDGE_PLACEMENTS, group: DIST, default: 'auto' as JudgePlacement, describe: 'Which ranks judge: all, one per node (node), or rank 0; auto = node for command: judges, rank0 for llm:, all otherwise' })
        .example('$0 train', 'the demo: a tiny model, bundled prompts, builtin:demo judge, 3 iterations, runs/demo')
        .example('$0 train --model ./Mistral-7B-Instruct-v0.2 --prompts prompts.parquet --judge command:"python pairrm.py" --output runs/m7b', 'the reference recipe on your model')
        .example('$0 train --model ./Mistral-7B-Instruct-v0.2 --device cuda --gradient-checkpointing on --micro-batch 8 --max-length 1024 --dry-run --device-memory 141GB', 'the memory each stage needs on one H200, from config.json alone')
        .example('$0 train --nproc-per-node 2', 'the demo over two CPU processes (the same result as one)')
        .example('$0 train --recipe r.yaml --device cuda --nproc-per-node 8 --nnodes 2 --node-rank 0 --master-addr 10.0.0.1 --master-port 29500', 'node 0 of a two-node run (run the same with --node-rank 1 on the other)')
        .epilogue('Rerunning the same command resumes an interrupted run at the first unfinished stage, shard or step. Under torchrun-style launchers, srun and Kubernetes operators, the ranks are read from RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT or SLURM_PROCID and friends (see the README).'),
    ),
  handler: async (args) => {
    const dist: DistOptions = { timeoutS: Number(args['dist-timeout']), zero1: Boolean(args.zero1), judgeOn: args['judge-on'] as JudgePlacement };
    if (!(dist.timeoutS > 0)) throw new Error(`--dist-timeout must be > 0 seconds (got ${dist.timeoutS})`);
    const nproc = num(args['nproc-per-node']) ?? pet('NPROC_PER_NODE');
    if (args['dry-run']) {
      const world = nproc !== undefined ? nproc * (num(args.nnodes) ?? pet('NNODES') ?? 1) : readLaunchEnv().worldSize;
      process.exitCode = dryRun({ recipeFile: args.recipe, overrides: recipeOverrides(args) }, { world, zero1: dist.zero1 }, args['device-memory'] as string | undefined);
      return;
    }
    if (args['device-memory'] !== undefined) throw new Error('--device-memory goes with --dry-run (a real run uses what the device has)');
    if (nproc !== undefined) {
      if (process.env.RANK !== undefined) throw new Error('--nproc-per-node starts the ranks itself; this process was already started as a rank (RANK is set): drop --nproc-per-node, or run it outside that launcher');
      const nnodes = num(args.nnodes) ?? pet('NNODES') ?? 1;
      const code = await launchRanks({
        nprocPerNode: nproc,
        nnodes,
        nodeRank: num(args['node-rank']) ?? pet('NODE_RANK') ?? 0,
        masterAddr: (args['master-addr'] as string | undefined) ?? process.env.PET_MASTER_ADDR ?? '127.0.0.1',
        masterPort: num(args['master-port']) ?? pet('MASTER_PORT') ?? (nnodes > 1 ? DEFAULT_MASTER_PORT : 0),
        timeoutS: dist.timeoutS,
        command: [process.execPath, process.argv[1]!, ...withoutLauncherFlags(process.argv.slice(2))],
      });
      process.exit(code);
    }
    for (const f of ['nnodes', 'node-rank', 'master-addr', 'master-port']) {
      if (args[f] !== undefined) throw new Error(`--${f} goes with --nproc-per-node (the number of ranks to start on this machine)`);
    }
    const env = readLaunchEnv();
    let result: RunResult;
    const src = { recipeFile: args.recipe, overrides: recipeOverrides(args) };
    if (env.worldSize > 1) {
      const { trainAsRank } = await import('../dist/rankTrain.js');
      const { rankEvents } = await import('../dist/rankEvents.js');
      result = await trainAsRank({ src, env, options: dist, onEvent: env.rank === 0 ? printEvents() : rankEvents(env.rank) });
      if (env.rank !== 0) return;
    } else {
      if (dist.zero1) console.error('sppo-native: --zero1 has nothing to shard in a single process (start ranks with --nproc-per-node)');
      result = await trainCommandRun(src, printEvents());
    }
    const rated = result.iterations.filter((s) => s.winRate);
    if (rated.length) {
      console.log(`\nwin rate against the starting policy (${rated[0]!.winRate!.n} comparisons each):`);
      for (const s of rated) console.log(`  iteration ${s.iteration}: ${formatWinRate(s.winRate!)}`);
    }
    console.log(`final policy: ${result.finalModel}`);
  },
};
