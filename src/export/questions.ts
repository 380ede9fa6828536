// The question files of the benchmarks, read into one shape: an id, the turns (user messages, in
// order), a category, and fields to carry into the answers.
//   alpaca-eval  a JSON list (or JSONL) of {instruction, dataset?, ...}: AlpacaEval's eval set
//   mt-bench     FastChat's question.jsonl: {question_id, category, turns: [str, str]}
//   arena-hard   question.jsonl: v0.1 {question_id, category, cluster, turns: [{content}]},
//                or v2 {uid, category, subcategory, prompt}
import { readFileSync } from 'node:fs';

export const BENCHMARKS = ['alpaca-eval', 'mt-bench', 'arena-hard'] as const;
export type Benchmark = (typeof BENCHMARKS)[number];

export interface Question {
  id: string | number;
  category: string | null;
  turns: string[];
  /** AlpacaEval: the fields carried into model_outputs.json (dataset). */
  extra: Record<string, unknown>;
}

export class QuestionFileError extends Error {}

function rows(file: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new QuestionFileError(`cannot read ${file}: ${(err as Error).message}`);
  }
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[')) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (err) {
      throw new QuestionFileError(`${file} is not valid JSON: ${(err as Error).message}`);
    }
    if (!Array.isArray(v)) throw new QuestionFileError(`${file}: expected a JSON list of objects`);
    return v.map((r, i) => {
      if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new QuestionFileError(`${file}, item ${i}: expected an object`);
      return r as Record<string, unknown>;
    });
  }
  const out: Record<string, unknown>[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      throw new QuestionFileError(`${file}, line ${i + 1}: not valid JSON (${(err as Error).message})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new QuestionFileError(`${file}, line ${i + 1}: expected a JSON object`);
    out.push(v as Record<string, unknown>);
  });
  return out;
}

function text(v: unknown, where: string): string {
  if (typeof v === 'string' && v.trim() !== '') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  throw new QuestionFileError(`${where} must be a non-empty string (or {content: string})`);
}

export function readQuestions(benchmark: Benchmark, file: string, column = 'instruction'): Question[] {
  const rs = rows(file);
  if (rs.length === 0) throw new QuestionFileError(`${file} holds no questions`);
  const seen = new Set<string>();
  return rs.map((r, i) => {
    const where = `${file}, question ${i + 1}`;
    let q: Question;
    if (benchmark === 'alpaca-eval') {
      if (!(column in r)) throw new QuestionFileError(`${where}: no '${column}' field (fields: ${Object.keys(r).join(', ')}); AlpacaEval's eval set has 'instruction'`);
      const extra: Record<string, unknown> = {};
      if (r.dataset !== undefined) extra.dataset = r.dataset;
      q = { id: i, category: typeof r.dataset === 'string' ? r.dataset : null, turns: [text(r[column], `${where}: '${column}'`)], extra };
    } else {
      const id = r.question_id ?? r.uid;
      if (typeof id !== 'string' && typeof id !== 'number') throw new QuestionFileError(`${where}: no question_id (or uid)`);
      let turns: string[];
      if (Array.isArray(r.turns)) turns = r.turns.map((t, j) => text(t, `${where}: turns[${j}]`));
      else if (r.prompt !== undefined) turns = [text(r.prompt, `${where}: prompt`)];
      else throw new QuestionFileError(`${where}: no turns (or prompt)`);
      if (turns.length === 0) throw new QuestionFileError(`${where}: turns is empty`);
      q = { id, category: typeof r.category === 'string' ? r.category : null, turns, extra: {} };
      const key = String(id);
      if (seen.has(key)) throw new QuestionFileError(`${where}: question_id ${JSON.stringify(id)} appears twice`);
      seen.add(key);
    }
    return q;
  });
}
