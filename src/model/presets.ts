// Llama-shaped model sizes a user would try, shared by `sppo-native bench model` and
// `sppo-native init-model --preset`: config.json fields of a random model of each size.
import { expectedParameters, parseModelConfig } from './config.js';

export const MODEL_PRESETS = ['tiny', 'small', '100m', '1b'] as const;
export type ModelPreset = (typeof MODEL_PRESETS)[number];

const SHAPES: Record<ModelPreset, { describe: string; config: Record<string, unknown> }> = {
  tiny: {
    describe: '0.16M parameters (seconds on a CPU)',
    config: { vocab_size: 512, hidden_size: 64, intermediate_size: 172, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 4096, rope_theta: 500000, tie_word_embeddings: false },
  },
  small: {
    describe: '26M parameters',
    config: { vocab_size: 8192, hidden_size: 512, intermediate_size: 1376, num_hidden_layers: 6, num_attention_heads: 8, num_key_value_heads: 4, max_position_embeddings: 4096, rope_theta: 500000, tie_word_embeddings: false },
  },
  '100m': {
    // A 12-layer, 768-wide Llama with a 32k vocabulary and tied embeddings (GPT-2-small scale).
    describe: '100M parameters (Llama shape: 12 layers x 768, GQA 12/4 heads, 32k vocabulary, tied embeddings)',
    config: { vocab_size: 32000, hidden_size: 768, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 12, num_key_value_heads: 4, max_position_embeddings: 2048, rope_theta: 10000, tie_word_embeddings: true },
  },
  '1b': {
    // TinyLlama-1.1B's shape.
    describe: '1.1B parameters (TinyLlama-1.1B shape: 22 layers x 2048, GQA 32/4 heads, 32k vocabulary)',
    config: { vocab_size: 32000, hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, max_position_embeddings: 2048, rope_theta: 10000, tie_word_embeddings: false },
  },
};

export function isModelPreset(s: unknown): s is ModelPreset {
  return typeof s === 'string' && (MODEL_PRESETS as readonly string[]).includes(s);
}

export function presetDescription(p: ModelPreset): string {
  return SHAPES[p].describe;
}

/** The config.json of preset `p` (bos 1, eos 2, as the demo tokenizer). */
export function presetConfig(p: ModelPreset): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu', rms_norm_eps: 1e-5,
    bos_token_id: 1, eos_token_id: 2, ...SHAPES[p].config,
  };
}

/** Parameters of a config.json (as the engine would allocate them). */
export function parameterCount(config: Record<string, unknown>, where = 'config.json'): number {
  let n = 0;
  for (const shape of expectedParameters(parseModelConfig(config, where)).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}
