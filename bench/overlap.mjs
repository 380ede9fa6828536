#!/usr/bin/env node
// How much of the gradient all-reduce hides under backward (issue 10), in two parts:
// 1. MEASURED on this machine (CPU): one training step of a CPU model with the 7B's layer count
//    and proportions at a small width; the trainer records when backward finished each bucket
//    (EngineTrainer.buckets(), seconds since the last micro-batch's forward began). From them: each
//    bucket's ready time as a fraction of forward + backward, compared with the fraction a FLOPs
//    count predicts (forward = half of backward): the model used in part 2.
// 2. MODELLED for the 7B shape (Mistral-7B: 32 layers, hidden 4096, MLP 14336, 32/8 heads, vocab
//    32000) on 8 GPUs: bucket plan of the trainer (25 MiB of bf16 gradients, last layers first),
//    ready times from FLOPs at a stated throughput, all-reduce times from the 475 GB/s NCCL bus
//    bandwidth anchor (8xH200, nccl-tests) plus a per-collective latency, and the communication
//    stream run as a queue: bucket b starts when it is ready and the one before it is done.
// Usage: node bench/overlap.mjs [--json]   (needs `npm run build:ts`; about a minute on 2 cores)
import { createRandomModel } from '../dist/model/engine.js';

const json = process.argv.includes('--json');

// ---- the FLOPs model of a Llama backward --------------------------------------------------------
// Backward = 2x forward; forward = 2 * params * tokens for the matmuls, plus attention's
// 4 * T^2 * (heads * head_dim) per layer and sequence. Parameters are laid out head first, then
// the final norm, layers L-1..0, the embedding (model/param_layout.h); a prefix of the gradient
// arena is final after the head and norm, after each layer, and at the end.
function layout(c) {
  const H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, hd = H / c.num_attention_heads;
  const kv = c.num_key_value_heads * hd;
  const layer = 2 * H * H + 2 * H * kv + 3 * H * I + 2 * H;
  const head = c.tie_word_embeddings ? 0 : V * H;
  return { H, I, V, L: c.num_hidden_layers, layer, head, norm: H, embed: V * H, total: head + H + c.num_hidden_layers * layer + V * H };
}

/** [elementEnd, backwardFlopsDoneThere] at each point where a prefix becomes final. */
function readyPoints(c, tokens, seqLen) {
  const l = layout(c);
  const headFlops = 4 * 2 * l.V * l.H * tokens; // logits backward (dW and dX); tied or not, the matmul runs
  const attn = 2 * 4 * tokens * seqLen * l.H;    // backward of QK^T and PV
  const layerFlops = 4 * l.layer * tokens + attn;
  const pts = [];
  let elems = l.head + l.norm;
  let flops = headFlops;
  pts.push([elems, flops]);
  for (let i = 0; i < l.L; i++) {
    elems += l.layer;
    flops += layerFlops;
    pts.push([elems, flops]);
  }
  pts.push([l.total, flops + 2 * l.V * l.H * 0]); // the embedding's scatter-add: no matmul FLOPs
  return { pts, total: flops, layout: l };
}

/** The trainer's bucket plan over a layout (train/grad_buckets.cpp), cut at parameter ends. */
function planBuckets(paramEnds, total, bucketElems) {
  const out = [];
  let begin = 0;
  for (const end of paramEnds) {
    if (end - begin >= bucketElems || end === total) {
      out.push({ begin, end });
      begin = end;
    }
  }
  return out;
}

function readyFraction(points, totalFlops, end, before = 0) {
  for (const [e, f] of points) if (e >= end) return (before + f) / (before + totalFlops);
  return 1;
}

// ---- 1. measured on the CPU ------------------------------------------------------------------------
const cpuConfig = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 1000, hidden_size: 128, intermediate_size: 448,
  num_hidden_layers: 32, num_attention_heads: 8, num_key_value_heads: 2, max_position_embeddings: 512, rms_norm_eps: 1e-5,
  rope_theta: 10000, tie_word_embeddings: false, hidden_act: 'silu', torch_dtype: 'float32', bos_token_id: 1, eos_token_id: 2,
};
const B = 4, T = 128;
const model = await createRandomModel(cpuConfig, 7);
const trainer = await model.createTrainer({ optimizer: { kind: 'rmsprop' }, bucketBytes: 64 * 1024 });
const seq = (k) => ({ tokens: Array.from({ length: T }, (_, i) => 3 + ((i * 7 + k * 13) % 990)), promptLength: T / 4 });
const pairs = Array.from({ length: B }, (_, k) => ({
  chosen: seq(k), rejected: seq(k + 50), refChosen: -300, refRejected: -300, chosenProbs: 0.6, chosenProbsWin: 0.7, chosenProbsLose: 0.3,
}));
let events;
const runs = [];
for (let r = 0; r < 4; r++) {
  trainer.zeroGrad();
  await trainer.accumulate(pairs, 'sppo', 0.1, 1, true);
  events = trainer.buckets();
  runs.push(events.events.map((e) => e.seconds));
  await trainer.step(0, 1);
}
// Median over the runs after the first (warm-up), per bucket.
const med = events.events.map((_, i) => {
  const xs = runs.slice(1).map((r) => r[i]).sort((a, b) => a - b);
  return xs[Math.floor(xs.length / 2)];
});
const backward = med[med.length - 1];
const cpuPts = readyPoints(cpuConfig, 2 * B * T, T);
let err = 0;
const cpuRows = events.buckets.map((b, i) => {
  const measured = med[i] / backward;
  // The trainer's clock starts with the micro-batch's forward (half the backward's FLOPs).
  const modelled = readyFraction(cpuPts.pts, cpuPts.total, b.end, cpuPts.total / 2);
  err = Math.max(err, Math.abs(measured - modelled));
  return { bucket: i, end: b.end, measured, modelled };
});
trainer.free();
model.free();

// ---- 2. the 7B shape on 8 GPUs -----------------------------------------------------------------
const m7 = { vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, tie_word_embeddings: false };
const world = 8;
const pairsPerMicro = 4, seqLen = 1024;             // the reference recipe: micro-batch 4, max length 1024
const tokens = pairsPerMicro * 2 * seqLen;           // chosen and rejected sides
const throughput = 400e12;                           // FLOP/s: 40% of an H200's 989 TFLOP/s dense bf16
const busBW = 475e9;                                 // bytes/s, nccl-tests all-reduce bus bandwidth on 8xH200
const latency = 30e-6;                               // s per collective (NCCL ring, 8 GPUs, one node)
const gradBytes = 2;                                 // bf16 gradients
const bucketBytes = 25 * 2 ** 20;
const l7 = layout(m7);
const ends = [l7.head, l7.head + l7.norm];
for (let i = 0; i < l7.L; i++) {
  const start = l7.head + l7.norm + i * l7.layer;
  // a layer's parameters, in the arena's order within a layer (sizes only matter for the cuts)
  for (const n of [4096 * 14336, 4096 * 14336, 4096 * 14336, 4096, 4096 * 4096, 4096 * 1024, 4096 * 1024, 4096 * 4096, 4096]) ends.push(ends[ends.length - 1] + n);
  ends[ends.length - 1] = start + l7.layer;
}
ends.push(l7.total);
const buckets7 = planBuckets(ends, l7.total, bucketBytes / gradBytes);
const p7 = readyPoints(m7, tokens, seqLen);
const tBackward = p7.total / throughput;
let commEnd = 0;
let commTotal = 0;
for (const b of buckets7) {
  const ready = readyFraction(p7.pts, p7.total, b.end) * tBackward;
  const t = latency + ((b.end - b.begin) * gradBytes * 2 * (world - 1)) / world / busBW;
  commTotal += t;
  commEnd = Math.max(commEnd, ready) + t;
}
const exposed = Math.max(0, commEnd - tBackward);
const hidden = 1 - exposed / commTotal;
const result = {
  measured: { model: 'CPU Llama: 32 layers, hidden 128, MLP 448, vocab 1000, 8/2 heads', batch: `${B} pairs x ${T} tokens`, buckets: cpuRows.length, backwardSeconds: backward, maxFractionError: err },
  modelled: {
    shape: 'Mistral-7B (32 layers, hidden 4096, MLP 14336, 32/8 heads, vocab 32000)', params: l7.total, world,
    microBatchTokens: tokens, throughputTflops: throughput / 1e12, busBandwidthGBs: busBW / 1e9, latencyUs: latency * 1e6,
    buckets: buckets7.length, backwardSeconds: tBackward, allReduceSeconds: commTotal, exposedSeconds: exposed, hiddenShare: hidden,
  },
};
if (json) {
  console.log(JSON.stringify({ ...result, cpuRows }, null, 2));
} else {
  console.log('1. measured (CPU): bucket ready time / backward time, against the FLOPs model');
  for (const r of cpuRows.filter((_, i) => i % Math.ceil(cpuRows.length / 12) === 0 || i === cpuRows.length - 1)) {
    console.log(`   bucket ${String(r.bucket).padStart(3)}  measured ${r.measured.toFixed(3)}  modelled ${r.modelled.toFixed(3)}`);
  }
  console.log(`   ${cpuRows.length} buckets, backward ${(backward * 1000).toFixed(1)} ms, largest |measured - modelled| = ${err.toFixed(3)}`);
  const m = result.modelled;
  console.log(`2. modelled (7B, ${world} GPUs): ${m.buckets} buckets of 25 MiB, backward ${(m.backwardSeconds * 1000).toFixed(0)} ms at ${m.throughputTflops} TFLOP/s,`);
  console.log(`   all-reduce ${(m.allReduceSeconds * 1000).toFixed(1)} ms at ${m.busBandwidthGBs} GB/s bus bandwidth + ${m.latencyUs} us each, exposed after backward ${(m.exposedSeconds * 1000).toFixed(2)} ms`);
  console.log(`   hidden under backward: ${(100 * m.hiddenShare).toFixed(1)}%`);
}
