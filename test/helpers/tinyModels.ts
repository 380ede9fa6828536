// The tiny model kinds of the test suites: small configs shaped like the real families, and
// random checkpoints of them (src/model/randomFolder.ts writes the folder).
import { writeRandomModelFolder, type RandomFolderOptions, type RandomModelFolder } from '../../src/model/randomFolder.js';

export type TinyKind = 'llama2' | 'llama3' | 'mistral' | 'reward';
export const TINY_KINDS: readonly TinyKind[] = ['llama2', 'llama3', 'mistral', 'reward'];

/** config.json of each tiny kind: small, but shaped like the real families. */
export function tinyConfig(kind: TinyKind): Record<string, unknown> {
  const base = {
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    initializer_range: 0.02,
    use_cache: true,
    torch_dtype: 'float32',
  };
  switch (kind) {
    case 'llama2':
      return {
        ...base, architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 64, hidden_size: 32,
        intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 4,
        max_position_embeddings: 128, rms_norm_eps: 1e-5, rope_theta: 10000, rope_scaling: null,
        tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
      };
    case 'llama3':
      return {
        ...base, architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 80, hidden_size: 32,
        intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
        max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 500000,
        // original_max_position_embeddings small so that the llama3 scaling changes frequencies here.
        rope_scaling: { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 32 },
        tie_word_embeddings: true, bos_token_id: 1, eos_token_id: [2, 3],
      };
    case 'mistral':
      return {
        ...base, architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: 72, hidden_size: 32,
        intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8,
        max_position_embeddings: 128, rms_norm_eps: 1e-5, rope_theta: 1000000, sliding_window: 48,
        tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
      };
    case 'reward':
      return {
        ...base, architectures: ['LlamaForSequenceClassification'], model_type: 'llama', vocab_size: 64,
        hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
        max_position_embeddings: 128, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
        bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, id2label: { '0': 'LABEL_0' }, label2id: { LABEL_0: 0 },
      };
  }
}

/** A random checkpoint of `kind` in `folder`. */
export function writeTinyCheckpoint(folder: string, kind: TinyKind, seed: number, opts: RandomFolderOptions = {}): RandomModelFolder {
  return writeRandomModelFolder(folder, tinyConfig(kind), seed, opts);
}
