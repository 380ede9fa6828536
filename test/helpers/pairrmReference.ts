// An independent float64 PairRM forward in plain loops for tiny models, written from the
// definitions (issue 11; transformers' DebertaV2 with relative attention; llm-blender's head):
// LayerNorm(word embeddings), relative rows LayerNorm(rel_embeddings) with DeBERTa's log buckets,
// attention scores (q.k + q.pos_k[d] + k.pos_q[d]) / sqrt(3 hd), post-LayerNorm blocks with exact
// GELU, then W2 tanh(W1 [e_s; e_c] + b1) + b2 at the slot tokens.
import type { NativePairRmConfig } from '../../src/native/addon.js';

export type Weights = Map<string, ArrayLike<number>>;

function get(w: Weights, name: string): ArrayLike<number> {
  const t = w.get(name);
  if (!t) throw new Error(`reference: missing weight ${name}`);
  return t;
}

function linear(x: Float64Array, n: number, din: number, W: ArrayLike<number>, b: ArrayLike<number>, dout: number): Float64Array {
  const y = new Float64Array(n * dout);
  for (let r = 0; r < n; r++)
    for (let o = 0; o < dout; o++) {
      let s = b[o]!;
      for (let i = 0; i < din; i++) s += x[r * din + i]! * W[o * din + i]!;
      y[r * dout + o] = s;
    }
  return y;
}

function layerNorm(x: Float64Array, n: number, H: number, w: ArrayLike<number>, b: ArrayLike<number>, eps: number): void {
  for (let r = 0; r < n; r++) {
    let mean = 0;
    for (let j = 0; j < H; j++) mean += x[r * H + j]! / H;
    let v = 0;
    for (let j = 0; j < H; j++) v += (x[r * H + j]! - mean) ** 2 / H;
    for (let j = 0; j < H; j++) x[r * H + j] = ((x[r * H + j]! - mean) / Math.sqrt(v + eps)) * w[j]! + b[j]!;
  }
}

// erf to double precision (Abramowitz-Stegun 7.1.26 is too coarse here): a series for small |x|,
// the continued fraction of erfc for large.
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a < 2.5) {
    let term = a, sum = a;
    for (let n = 1; n < 80; n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (a + f);
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + f);
  return Math.sign(x) * (1 - erfc);
}

export function bucket(r: number, buckets: number, maxPosition: number): number {
  const mid = Math.floor(buckets / 2), a = Math.abs(r);
  if (buckets <= 0 || a <= mid) return r;
  const p = mid + Math.ceil((Math.log(a / mid) / Math.log((maxPosition - 1) / mid)) * (mid - 1));
  return r < 0 ? -p : p;
}

export function referenceForward(c: NativePairRmConfig, W: Weights, ids: readonly number[], slots: readonly [number, number, number]): { hidden: Float64Array; logit: number } {
  const L = ids.length, H = c.hiddenSize, I = c.intermediateSize, nh = c.numHeads, hd = c.headDim;
  const span = c.positionBuckets > 0 ? c.positionBuckets : c.maxRelativePositions;
  const m = 'pretrained_model.';
  let x: Float64Array = new Float64Array(L * H);
  const E = get(W, `${m}embeddings.word_embeddings.weight`);
  for (let t = 0; t < L; t++) for (let j = 0; j < H; j++) x[t * H + j] = E[ids[t]! * H + j]!;
  layerNorm(x, L, H, get(W, `${m}embeddings.LayerNorm.weight`), get(W, `${m}embeddings.LayerNorm.bias`), c.layerNormEps);
  const rel = Float64Array.from(get(W, `${m}encoder.rel_embeddings.weight`));
  if (c.normRelEmbeddings) layerNorm(rel, 2 * span, H, get(W, `${m}encoder.LayerNorm.weight`), get(W, `${m}encoder.LayerNorm.bias`), c.layerNormEps);
  const row = (r: number): number => Math.min(Math.max(bucket(r, c.positionBuckets, c.maxRelativePositions) + span, 0), 2 * span - 1);
  const scale = 1 / Math.sqrt(hd * (1 + Number(c.c2p) + Number(c.p2c)));
  for (let l = 0; l < c.numLayers; l++) {
    const p = `${m}encoder.layer.${l}.`;
    const lin = (v: Float64Array, n: number, din: number, name: string, dout: number): Float64Array =>
      linear(v, n, din, get(W, `${p}${name}.weight`), get(W, `${p}${name}.bias`), dout);
    const q = lin(x, L, H, 'attention.self.query_proj', H), k = lin(x, L, H, 'attention.self.key_proj', H), v = lin(x, L, H, 'attention.self.value_proj', H);
    const pq = lin(rel, 2 * span, H, 'attention.self.query_proj', H), pk = lin(rel, 2 * span, H, 'attention.self.key_proj', H);
    const ctx = new Float64Array(L * H);
    for (let h = 0; h < nh; h++)
      for (let i = 0; i < L; i++) {
        const dot = (a: Float64Array, ra: number, b: Float64Array, rb: number): number => {
          let s = 0;
          for (let e = 0; e < hd; e++) s += a[ra * H + h * hd + e]! * b[rb * H + h * hd + e]!;
          return s;
        };
        const s = new Float64Array(L);
        let mx = -Infinity;
        for (let j = 0; j < L; j++) {
          const d = row(i - j);
          let v0 = dot(q, i, k, j);
          if (c.c2p) v0 += dot(q, i, pk, d);
          if (c.p2c) v0 += dot(k, j, pq, d);
          s[j] = v0 * scale;
          mx = Math.max(mx, s[j]!);
        }
        let z = 0;
        for (let j = 0; j < L; j++) z += s[j] = Math.exp(s[j]! - mx);
        for (let j = 0; j < L; j++) for (let e = 0; e < hd; e++) ctx[i * H + h * hd + e]! += (s[j]! / z) * v[j * H + h * hd + e]!;
      }
    const x1 = lin(ctx, L, H, 'attention.output.dense', H);
    for (let i = 0; i < L * H; i++) x1[i]! += x[i]!;
    layerNorm(x1, L, H, get(W, `${p}attention.output.LayerNorm.weight`), get(W, `${p}attention.output.LayerNorm.bias`), c.layerNormEps);
    const f = lin(x1, L, H, 'intermediate.dense', I);
    for (let i = 0; i < f.length; i++) f[i] = 0.5 * f[i]! * (1 + erf(f[i]! / Math.SQRT2));
    const out = lin(f, L, I, 'output.dense', H);
    for (let i = 0; i < L * H; i++) out[i]! += x1[i]!;
    layerNorm(out, L, H, get(W, `${p}output.LayerNorm.weight`), get(W, `${p}output.LayerNorm.bias`), c.layerNormEps);
    x = out;
  }
  const head = (a: number, b: number): Float64Array => {
    const z = new Float64Array(2 * H);
    for (let j = 0; j < H; j++) {
      z[j] = x[a * H + j]!;
      z[H + j] = x[b * H + j]!;
    }
    const h1 = linear(z, 1, 2 * H, get(W, 'head_layer.1.weight'), get(W, 'head_layer.1.bias'), H).map(Math.tanh);
    return linear(h1, 1, H, get(W, 'head_layer.4.weight'), get(W, 'head_layer.4.bias'), c.numTasks);
  };
  const left = head(slots[0], slots[1]), right = head(slots[0], slots[2]);
  let logit = 0;
  for (let t = 0; t < c.numTasks; t++) logit += (left[t]! - right[t]!) / c.numTasks;
  return { hidden: x, logit };
}
