// An independent float64 Llama forward in plain loops, written from the transformers modeling
// code (LlamaRMSNorm, rotate_half RoPE with default/linear/llama3 frequencies, GQA attention,
// SiLU-gated MLP, lm_head or a sequence-classification `score` head). Slow, and only for tiny models.
import type { ModelConfig } from '../../src/model/config.js';

export type Weights = Map<string, ArrayLike<number>>;

function w(weights: Weights, name: string): ArrayLike<number> {
  const t = weights.get(name);
  if (!t) throw new Error(`reference: missing weight ${name}`);
  return t;
}

/** y[o] = sum_i W[o, i] x[i] for W [out, in] row-major. */
function matvec(W: ArrayLike<number>, x: Float64Array, out: number): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += W[o * n + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}

function rmsNorm(x: Float64Array, weight: ArrayLike<number>, eps: number): Float64Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i]! * x[i]!;
  const r = 1 / Math.sqrt(ss / x.length + eps);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = weight[i]! * x[i]! * r;
  return y;
}

/** transformers' rope init functions: default, linear, llama3. */
export function ropeInvFreq(c: ModelConfig): Float64Array {
  const d = c.headDim;
  const inv = new Float64Array(d / 2);
  for (let i = 0; i < d / 2; i++) inv[i] = 1 / c.rope.theta ** ((2 * i) / d);
  if (c.rope.type === 'linear') for (let i = 0; i < inv.length; i++) inv[i]! /= c.rope.factor;
  if (c.rope.type === 'llama3') {
    const { factor, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPosition: old } = c.rope;
    const lowWavelen = old / lo;
    const highWavelen = old / hi;
    for (let i = 0; i < inv.length; i++) {
      const f = inv[i]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highWavelen) continue;
      if (wavelen > lowWavelen) {
        inv[i] = f / factor;
        continue;
      }
      const smooth = (old / wavelen - lo) / (hi - lo);
      inv[i] = ((1 - smooth) * f) / factor + smooth * f;
    }
  }
  return inv;
}

function applyRope(x: Float64Array, offset: number, d: number, pos: number, inv: Float64Array): void {
  const half = d / 2;
  for (let i = 0; i < half; i++) {
    const a = pos * inv[i]!;
    const cos = Math.cos(a);
    const sin = Math.sin(a);
    const x1 = x[offset + i]!;
    const x2 = x[offset + half + i]!;
    x[offset + i] = x1 * cos - x2 * sin;
    x[offset + half + i] = x2 * cos + x1 * sin;
  }
}

/** Final-norm hidden states [T][H] of one unpadded sequence. */
export function referenceHidden(c: ModelConfig, weights: Weights, tokens: readonly number[]): Float64Array[] {
  const H = c.hiddenSize;
  const T = tokens.length;
  const nh = c.numHeads;
  const nkv = c.numKvHeads;
  const hd = c.headDim;
  const group = nh / nkv;
  const inv = ropeInvFreq(c);
  const emb = w(weights, 'model.embed_tokens.weight');
  let h: Float64Array[] = tokens.map((t) => Float64Array.from({ length: H }, (_, i) => emb[t * H + i]!));
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const qs: Float64Array[] = [];
    const ks: Float64Array[] = [];
    const vs: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      const x = rmsNorm(h[t]!, w(weights, `${p}input_layernorm.weight`), c.rmsNormEps);
      const q = matvec(w(weights, `${p}self_attn.q_proj.weight`), x, nh * hd);
      const k = matvec(w(weights, `${p}self_attn.k_proj.weight`), x, nkv * hd);
      for (let a = 0; a < nh; a++) applyRope(q, a * hd, hd, t, inv);
      for (let a = 0; a < nkv; a++) applyRope(k, a * hd, hd, t, inv);
      qs.push(q);
      ks.push(k);
      vs.push(matvec(w(weights, `${p}self_attn.v_proj.weight`), x, nkv * hd));
    }
    const next: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      const att = new Float64Array(nh * hd);
      for (let a = 0; a < nh; a++) {
        const kv = Math.floor(a / group);
        const s = new Float64Array(t + 1);
        let max = -Infinity;
        for (let u = 0; u <= t; u++) {
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += qs[t]![a * hd + i]! * ks[u]![kv * hd + i]!;
          s[u] = dot / Math.sqrt(hd);
          max = Math.max(max, s[u]!);
        }
        let z = 0;
        for (let u = 0; u <= t; u++) {
          s[u] = Math.exp(s[u]! - max);
          z += s[u]!;
        }
        for (let u = 0; u <= t; u++) {
          for (let i = 0; i < hd; i++) att[a * hd + i]! += (s[u]! / z) * vs[u]![kv * hd + i]!;
        }
      }
      const o = matvec(w(weights, `${p}self_attn.o_proj.weight`), att, H);
      const r = Float64Array.from(h[t]!, (v, i) => v + o[i]!);
      const x = rmsNorm(r, w(weights, `${p}post_attention_layernorm.weight`), c.rmsNormEps);
      const g = matvec(w(weights, `${p}mlp.gate_proj.weight`), x, c.intermediateSize);
      const up = matvec(w(weights, `${p}mlp.up_proj.weight`), x, c.intermediateSize);
      const act = g.map((v, i) => (v / (1 + Math.exp(-v))) * up[i]!);
      const down = matvec(w(weights, `${p}mlp.down_proj.weight`), act, H);
      next.push(Float64Array.from(r, (v, i) => v + down[i]!));
    }
    h = next;
  }
  return h.map((x) => rmsNorm(x, w(weights, 'model.norm.weight'), c.rmsNormEps));
}

/** Logits [T][V] of one unpadded sequence (causal LM). */
export function referenceLogits(c: ModelConfig, weights: Weights, tokens: readonly number[]): Float64Array[] {
  const head = c.tieWordEmbeddings ? w(weights, 'model.embed_tokens.weight') : w(weights, 'lm_head.weight');
  return referenceHidden(c, weights, tokens).map((x) => matvec(head, x, c.vocabSize));
}

/** Reward-model scores [num_labels] at the last token of one unpadded sequence. */
export function referenceScores(c: ModelConfig, weights: Weights, tokens: readonly number[]): Float64Array {
  const hidden = referenceHidden(c, weights, tokens);
  return matvec(w(weights, 'score.weight'), hidden[hidden.length - 1]!, c.numLabels);
}

export function logSoftmax(row: Float64Array): Float64Array {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let z = 0;
  for (const v of row) z += Math.exp(v - max);
  const lse = max + Math.log(z);
  return row.map((v) => v - lse);
}

/** Sum of log p(tokens[t] | tokens[<t]) over t >= promptLength. */
export function referenceSequenceLogprob(c: ModelConfig, weights: Weights, tokens: readonly number[], promptLength: number): number {
  const logits = referenceLogits(c, weights, tokens);
  let s = 0;
  for (let t = promptLength; t < tokens.length; t++) s += logSoftmax(logits[t - 1]!)[tokens[t]!]!;
  return s;
}

/** max |a - b| / max |b| over all elements (the max-norm relative error of the targets). */
export function maxNormRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / Math.max(den, 1e-30);
}
