// The safetensors of a PairRM folder checked against its config.json before anything is allocated:
// every tensor the model needs must be there with the shape the config implies and a loadable
// dtype, and nothing else may be (a checkpoint of another model is refused, not half-loaded).
import { join } from 'node:path';
import type { NativePairRmConfig } from '../native/addon.js';
import { LOADABLE_DTYPES, openCheckpoint } from '../model/safetensors.js';
import type { WeightRange } from '../model/checkpoint.js';
import { relativeRows } from './config.js';

/** Buffers transformers writes into DeBERTa state dicts that hold no weights. */
const IGNORED = [/^pretrained_model\.embeddings\.position_ids$/];

/** Every parameter's Hugging Face name and shape (the order of native/model/pairrm_layout.h). */
export function expectedPairRmParameters(c: NativePairRmConfig): Map<string, number[]> {
  const H = c.hiddenSize, I = c.intermediateSize;
  const out = new Map<string, number[]>();
  const linear = (name: string, o: number, i: number): void => {
    out.set(`${name}.weight`, [o, i]);
    out.set(`${name}.bias`, [o]);
  };
  const norm = (name: string): void => {
    out.set(`${name}.weight`, [H]);
    out.set(`${name}.bias`, [H]);
  };
  const m = 'pretrained_model.';
  out.set(`${m}embeddings.word_embeddings.weight`, [c.vocabSize, H]);
  norm(`${m}embeddings.LayerNorm`);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `${m}encoder.layer.${l}.`;
    linear(`${p}attention.self.query_proj`, H, H);
    linear(`${p}attention.self.key_proj`, H, H);
    linear(`${p}attention.self.value_proj`, H, H);
    linear(`${p}attention.output.dense`, H, H);
    norm(`${p}attention.output.LayerNorm`);
    linear(`${p}intermediate.dense`, I, H);
    linear(`${p}output.dense`, H, I);
    norm(`${p}output.LayerNorm`);
  }
  out.set(`${m}encoder.rel_embeddings.weight`, [relativeRows(c), H]);
  if (c.normRelEmbeddings) norm(`${m}encoder.LayerNorm`);
  linear('head_layer.1', H, 2 * H);
  linear('head_layer.4', c.numTasks, H);
  return out;
}

const shapeText = (s: readonly number[]): string => `[${s.join(', ')}]`;

function listNames(names: string[]): string {
  const shown = names.slice(0, 8).map((n) => `'${n}'`).join(', ');
  return names.length > 8 ? `${shown} and ${names.length - 8} more` : shown;
}

/** The byte range of every parameter, after checking the whole checkpoint against the config. */
export function planPairRmWeights(folder: string, c: NativePairRmConfig): WeightRange[] {
  const ckpt = openCheckpoint(folder);
  const perLayer = 16;
  if (c.numLayers * perLayer > ckpt.tensors.size) {
    throw new Error(
      `${join(folder, 'config.json')}: field 'num_hidden_layers' (${c.numLayers}) needs ${c.numLayers * perLayer}+ tensors but the checkpoint holds ${ckpt.tensors.size}`,
    );
  }
  const want = expectedPairRmParameters(c);
  const missing: string[] = [];
  const ranges: WeightRange[] = [];
  for (const [name, shape] of want) {
    const t = ckpt.tensors.get(name);
    if (!t) {
      missing.push(name);
      continue;
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`${t.file}: tensor '${name}' has shape ${shapeText(t.shape)} but config.json implies ${shapeText(shape)}`);
    }
    if (!LOADABLE_DTYPES.includes(t.dtype)) {
      throw new Error(`${t.file}: tensor '${name}' has dtype ${t.dtype}; only F32, BF16 and F16 are read`);
    }
    ranges.push({ name, file: t.file, offset: t.offset, nbytes: t.nbytes, dtype: t.dtype });
  }
  if (missing.length > 0) throw new Error(`${folder}: the PairRM checkpoint is missing ${missing.length} tensor(s): ${listNames(missing)}`);
  const unexpected = [...ckpt.tensors.keys()].filter((n) => !want.has(n) && !IGNORED.some((re) => re.test(n)));
  if (unexpected.length > 0) {
    throw new Error(`${folder}: the checkpoint has ${unexpected.length} tensor(s) a DebertaV2PairRM with this config.json does not use: ${listNames(unexpected)}`);
  }
  return ranges;
}
