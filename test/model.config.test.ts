// config.json parsing: the families as released on the Hub, and every refusal naming its field.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectedParameters, parseModelConfig, readModelConfig, toNativeConfig } from '../src/model/config.js';
import { TINY_KINDS, tinyConfig } from './helpers/tinyModels.js';

// Shapes of real releases (sizes only; no weights).
const LLAMA2_7B = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu',
  hidden_size: 4096, initializer_range: 0.02, intermediate_size: 11008, max_position_embeddings: 4096,
  num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 32, pretraining_tp: 1, rms_norm_eps: 1e-5,
  rope_scaling: null, tie_word_embeddings: false, torch_dtype: 'float16', vocab_size: 32000,
};
const LLAMA3_8B_INSTRUCT = {
  architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009], hidden_act: 'silu', hidden_size: 4096, intermediate_size: 14336,
  max_position_embeddings: 131072, mlp_bias: false, model_type: 'llama', num_attention_heads: 32,
  num_hidden_layers: 32, num_key_value_heads: 8, rms_norm_eps: 1e-5,
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0, tie_word_embeddings: false, torch_dtype: 'bfloat16', vocab_size: 128256,
};
const MISTRAL_7B_V01 = {
  architectures: ['MistralForCausalLM'], bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu', hidden_size: 4096,
  intermediate_size: 14336, max_position_embeddings: 32768, model_type: 'mistral', num_attention_heads: 32,
  num_hidden_layers: 32, num_key_value_heads: 8, rms_norm_eps: 1e-5, rope_theta: 10000.0, sliding_window: 4096,
  tie_word_embeddings: false, torch_dtype: 'bfloat16', vocab_size: 32000,
};
const MISTRAL_7B_V02 = { ...MISTRAL_7B_V01, rope_theta: 1000000.0, sliding_window: null };

const SRC = 'config.json';
const parse = (over: Record<string, unknown>, base: Record<string, unknown> = LLAMA2_7B) => parseModelConfig({ ...base, ...over }, SRC);

describe('config.json as released', () => {
  it('reads Llama-2-7B', () => {
    const c = parse({});
    expect(c.architecture).toBe('LlamaForCausalLM');
    expect([c.numHeads, c.numKvHeads, c.headDim, c.numLayers]).toEqual([32, 32, 128, 32]);
    expect(c.rope).toMatchObject({ type: 'default', theta: 10000 });
    expect(c.eosTokenIds).toEqual([2]);
    expect(c.dtype).toBe('float16');
    expect(c.maxSequenceLength).toBeNull();
  });

  it('reads Llama-3-8B-Instruct: GQA, llama3 rope scaling, eos list', () => {
    const c = parseModelConfig(LLAMA3_8B_INSTRUCT, SRC);
    expect(c.numKvHeads).toBe(8);
    expect(c.rope).toEqual({ type: 'llama3', theta: 500000, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 8192 });
    expect(c.eosTokenIds).toEqual([128001, 128008, 128009]);
    const n = toNativeConfig(c);
    expect(n).toMatchObject({ ropeType: 'llama3', ropeFactor: 8, ropeOriginalMaxPosition: 8192, numKvHeads: 8, headDim: 128 });
  });

  it('reads Mistral v0.1 (sliding window limits sequence length) and v0.2 (no window)', () => {
    const v1 = parseModelConfig(MISTRAL_7B_V01, SRC);
    expect(v1.architecture).toBe('MistralForCausalLM');
    expect(v1.slidingWindow).toBe(4096);
    expect(v1.maxSequenceLength).toBe(4096);
    const v2 = parseModelConfig(MISTRAL_7B_V02, SRC);
    expect(v2.maxSequenceLength).toBeNull();
    expect(v2.rope.theta).toBe(1e6);
    // A window no smaller than the context never applies.
    expect(parseModelConfig({ ...MISTRAL_7B_V01, sliding_window: 32768 }, SRC).maxSequenceLength).toBeNull();
  });

  it('reads the newer rope_parameters key (theta inside it)', () => {
    const { rope_scaling: _s, rope_theta: _t, ...rest } = LLAMA3_8B_INSTRUCT;
    const theta = 1000 + Math.floor(Math.random() * 1e6);
    const c = parseModelConfig(
      { ...rest, rope_parameters: { rope_type: 'llama3', rope_theta: theta, factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } },
      SRC,
    );
    expect(c.rope).toMatchObject({ type: 'llama3', theta, factor: 32 });
    const d = parse({ rope_parameters: { rope_type: 'default', rope_theta: theta } });
    expect(d.rope).toMatchObject({ type: 'default', theta });
  });

  it('reads linear rope scaling (old `type` key and new `rope_type`)', () => {
    const factor = 1 + Math.random() * 7;
    expect(parse({ rope_scaling: { type: 'linear', factor } }).rope).toMatchObject({ type: 'linear', factor });
    expect(parse({ rope_scaling: { rope_type: 'linear', factor } }).rope).toMatchObject({ type: 'linear', factor });
  });

  it('reads explicit head_dim and defaults num_key_value_heads to the head count', () => {
    const { num_key_value_heads: _k, ...noKv } = LLAMA2_7B;
    expect(parseModelConfig(noKv, SRC).numKvHeads).toBe(32);
    const c = parse({ head_dim: 64, hidden_size: 4096 });
    expect(c.headDim).toBe(64);
    expect(expectedParameters(c).get('model.layers.0.self_attn.q_proj.weight')).toEqual([32 * 64, 4096]);
    expect(parse({ head_dim: null }).headDim).toBe(128);
  });

  it('reads sequence classification (reward models): num_labels from id2label, default 2', () => {
    const rm = parse({ architectures: ['LlamaForSequenceClassification'], id2label: { 0: 'LABEL_0' }, pad_token_id: 0 });
    expect(rm.sequenceClassification).toBe(true);
    expect(rm.numLabels).toBe(1);
    expect(expectedParameters(rm).get('score.weight')).toEqual([1, 4096]);
    expect(expectedParameters(rm).has('lm_head.weight')).toBe(false);
    expect(parse({ architectures: ['LlamaForSequenceClassification'] }).numLabels).toBe(2);
    expect(parse({ architectures: ['LlamaForSequenceClassification'], num_labels: 3 }).numLabels).toBe(3);
  });

  it('ties embeddings: no lm_head parameter', () => {
    const c = parse({ tie_word_embeddings: true });
    expect(expectedParameters(c).has('lm_head.weight')).toBe(false);
    expect(expectedParameters(parse({})).get('lm_head.weight')).toEqual([32000, 4096]);
  });

  it('parses every tiny kind', () => {
    for (const k of TINY_KINDS) expect(() => parseModelConfig(tinyConfig(k), k)).not.toThrow();
  });
});

describe('config.json refusals name the field', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['another architecture', { architectures: ['GPT2LMHeadModel'] }, /'architectures'.*GPT2LMHeadModel/],
    ['another model_type', { model_type: 'qwen2' }, /'model_type'.*qwen2/],
    ['attention bias', { attention_bias: true }, /'attention_bias'/],
    ['mlp bias', { mlp_bias: true }, /'mlp_bias'/],
    ['another activation', { hidden_act: 'gelu' }, /'hidden_act'.*gelu/],
    ['unknown rope type', { rope_scaling: { rope_type: 'yarn', factor: 4 } }, /'rope_scaling.rope_type'.*yarn/],
    ['dynamic rope (old key)', { rope_scaling: { type: 'dynamic', factor: 2 } }, /'rope_scaling.type'.*dynamic/],
    ['unknown rope_parameters type', { rope_parameters: { rope_type: 'longrope', rope_theta: 1e4 } }, /'rope_parameters.rope_type'.*longrope/],
    ['llama3 rope without its fields', { rope_scaling: { rope_type: 'llama3', factor: 8 } }, /'rope_scaling.low_freq_factor' is required/],
    ['linear rope without factor', { rope_scaling: { type: 'linear' } }, /'rope_scaling.factor' is required/],
    ['kv heads not dividing heads', { num_key_value_heads: 5 }, /'num_key_value_heads'.*must divide/],
    ['hidden not divisible by heads', { hidden_size: 4100 }, /'hidden_size'.*not divisible/],
    ['missing vocab_size', { vocab_size: undefined }, /'vocab_size' is required/],
    ['non-integer size', { intermediate_size: 11008.5 }, /'intermediate_size' must be an integer/],
    ['zero layers', { num_hidden_layers: 0 }, /'num_hidden_layers' must be >= 1/],
    ['string eps', { rms_norm_eps: '1e-5' }, /'rms_norm_eps' must be a finite number/],
    ['eos outside the vocabulary', { eos_token_id: [2, 32000] }, /'eos_token_id'.*outside the vocabulary/],
    ['bad eos type', { eos_token_id: 'two' }, /'eos_token_id' must be a token id/],
    ['unknown dtype', { torch_dtype: 'float8_e4m3' }, /'torch_dtype'.*float8_e4m3/],
    ['num_labels vs id2label', { architectures: ['LlamaForSequenceClassification'], num_labels: 2, id2label: { 0: 'a' } }, /'num_labels'.*id2label/],
    ['two architectures', { architectures: ['LlamaForCausalLM', 'MistralForCausalLM'] }, /'architectures' must list exactly one/],
  ];
  for (const [what, over, re] of cases) {
    it(`refuses ${what}`, () => {
      expect(() => parse(over)).toThrow(re);
      expect(() => parse(over)).toThrow(/^config\.json: /);
    });
  }
  it('refuses a non-object', () => {
    expect(() => parseModelConfig([1, 2], SRC)).toThrow(/config must be a JSON object/);
  });
});

describe('readModelConfig', () => {
  it('merges generation_config.json eos ids and reports broken JSON with the file name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sppo-config-'));
    const eos = 5 + Math.floor(Math.random() * 50);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...LLAMA2_7B, eos_token_id: 2 }));
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [2, eos], bos_token_id: 1 }));
    const { config, generation } = readModelConfig(dir);
    expect(config.eosTokenIds).toEqual([2, eos]);
    expect(generation?.eosTokenIds).toEqual([2, eos]);
    writeFileSync(join(dir, 'generation_config.json'), '{ "eos_token_id": [2, ');
    expect(() => readModelConfig(dir)).toThrow(/generation_config\.json: not valid JSON/);
    expect(() => readModelConfig(join(dir, 'nope'))).toThrow(/no config\.json/);
  });
});
