// The answer files the benchmarks' judges read:
//   alpaca-eval  model_outputs.json: a JSON list of {instruction, output, generator[, dataset]}
//   mt-bench     <model_id>.jsonl, FastChat's model_answer format: {question_id, answer_id,
//                model_id, choices: [{index: 0, turns: [answer per turn]}], tstamp}
//   arena-hard   <model_id>.jsonl, the same with turns [{content, token_len}] (token_len counted
//                with the model's own tokenizer; arena-hard-auto's length control reads it)
// answer_id is derived from (model_id, question_id), so a rerun writes the same ids.
import { createHash } from 'node:crypto';
import type { Benchmark, Question } from './questions.js';

export interface Answer {
  question: Question;
  turns: { text: string; tokens: number }[];
}

export function outputFileName(b: Benchmark, modelId: string): string {
  if (b === 'alpaca-eval') return 'model_outputs.json';
  if (/[/\\]/.test(modelId) || modelId.startsWith('.')) throw new Error(`model id '${modelId}' cannot name a file (no slashes, no leading dot); pass --model-id`);
  return `${modelId}.jsonl`;
}

function answerId(modelId: string, questionId: string | number): string {
  return createHash('sha256').update(`${modelId}\u0000${String(questionId)}`).digest('base64url').slice(0, 22);
}

export function renderOutputs(b: Benchmark, modelId: string, answers: Answer[], tstamp: number): string {
  if (b === 'alpaca-eval') {
    const rows = answers.map((a) => ({ instruction: a.question.turns[0]!, output: a.turns[0]!.text, generator: modelId, ...a.question.extra }));
    return `${JSON.stringify(rows, null, 2)}\n`;
  }
  return answers
    .map((a) =>
      JSON.stringify({
        question_id: a.question.id,
        answer_id: answerId(modelId, a.question.id),
        model_id: modelId,
        choices: [{ index: 0, turns: b === 'mt-bench' ? a.turns.map((t) => t.text) : a.turns.map((t) => ({ content: t.text, token_len: t.tokens })) }],
        tstamp,
      }),
    )
    .map((l) => `${l}\n`)
    .join('');
}
