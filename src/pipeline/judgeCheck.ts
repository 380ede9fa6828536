// Checks a judge spec's target before any work that the judge would come after (a rollout can take
// hours): the precomputed file exists, the reward model folder holds a sequence-classification
// model with one label, a PairRM folder's config, tokenizer and safetensors headers agree, a builtin judge's name and options are known. Command judges are only
// started when needed (they may load a large model), so only their syntax is checked here.
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseJudgeSpec } from '../judge/spec.js';
import { createBuiltinJudge } from '../judge/builtin.js';
import { readModelConfig } from '../model/config.js';
import { LlmJudge } from '../judge/llm.js';
import { parsePairRmOptions } from '../judge/pairrm.js';
import { readPairRmConfig } from '../pairrm/config.js';
import { planPairRmWeights } from '../pairrm/checkpoint.js';
import { PairRmTokenizer } from '../pairrm/tokenizer.js';

export function checkJudgeTarget(spec: string, cwd: string = process.cwd()): void {
  const s = parseJudgeSpec(spec);
  const target = resolve(cwd, s.target);
  switch (s.kind) {
    case 'precomputed':
      if (!existsSync(target)) throw new Error(`judge '${spec}': precomputed judge file ${target} does not exist`);
      if (!statSync(target).isFile()) throw new Error(`judge '${spec}': ${target} is not a file`);
      return;
    case 'reward-model': {
      if (!existsSync(join(target, 'config.json'))) {
        throw new Error(`judge '${spec}': reward model folder ${target} has no config.json (expected a LlamaForSequenceClassification checkpoint)`);
      }
      let cfg;
      try {
        cfg = readModelConfig(target).config;
      } catch (err) {
        throw new Error(`judge '${spec}': ${(err as Error).message}`);
      }
      if (!cfg.sequenceClassification) {
        throw new Error(`judge '${spec}': ${target} is a ${cfg.architecture}, not a reward model (expected a LlamaForSequenceClassification checkpoint with one label)`);
      }
      if (cfg.numLabels !== 1) {
        throw new Error(`judge '${spec}': ${target} has num_labels = ${cfg.numLabels}; a reward model gives one score per sequence (num_labels = 1)`);
      }
      return;
    }
    case 'pairrm': {
      parsePairRmOptions(s);
      if (!existsSync(join(target, 'config.json'))) {
        throw new Error(`judge '${spec}': PairRM folder ${target} has no config.json (expected llm-blender/PairRM-hf)`);
      }
      try {
        const cfg = readPairRmConfig(target);
        PairRmTokenizer.load(target, cfg.ids);
        planPairRmWeights(target, cfg.native);
      } catch (err) {
        throw new Error(`judge '${spec}': ${(err as Error).message}`);
      }
      return;
    }
    case 'builtin':
      void createBuiltinJudge(s).close();
      return;
    case 'llm':
      void new LlmJudge(s, { cwd }); // options, template file and URL checked; the server is asked only when judging
      return;
    case 'command':
      return;
  }
}
