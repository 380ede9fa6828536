// Chat-message cells of the pipeline's tables, in the reference format (UCLA-AGI/SPPO): a
// `generate_i`, `chosen` or `rejected` cell is [{content: prompt, role: 'user'},
// {content: response, role: 'assistant'}].
import type { Message } from './parquet.js';

export type ChatMessage = Message & { role: 'user' | 'assistant' };

/** One user turn, one assistant turn. */
export function conversation(prompt: string, response: string): ChatMessage[] {
  return [
    { content: prompt, role: 'user' },
    { content: response, role: 'assistant' },
  ];
}
