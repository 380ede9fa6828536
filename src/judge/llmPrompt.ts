// The LLM-as-judge prompt (judge spec llm:<base-url>?model=<name>; docs/llm-judge.md) and how
// its answer becomes a probability. The template has three placeholders, {prompt}, {response_a}
// and {response_b}, substituted in one pass (a response that contains a placeholder stays as
// written); it is sent as one user message, and the answer is one token: A or B.

export const DEFAULT_JUDGE_TEMPLATE = `Please act as an impartial judge. Compare the two responses below to the user's request and decide which one answers it better: more helpful, correct, relevant and clear. The order of the responses, their length and their names must not influence your decision.

[User request]
{prompt}

[Response A]
{response_a}

[Response B]
{response_b}

Which response is better? Answer with a single letter: A or B.`;

export const PLACEHOLDERS = ['{prompt}', '{response_a}', '{response_b}'] as const;

export function checkTemplate(t: string, where: string): void {
  for (const p of PLACEHOLDERS) if (!t.includes(p)) throw new Error(`${where}: the judge template must contain ${p}`);
}

export function fillTemplate(t: string, prompt: string, a: string, b: string): string {
  const values: Record<string, string> = { '{prompt}': prompt, '{response_a}': a, '{response_b}': b };
  return t.replace(/\{prompt\}|\{response_a\}|\{response_b\}/g, (m) => values[m]!);
}

/** The answer letter a token stands for: the token without surrounding space and punctuation. */
export function answerLetter(token: string): 'A' | 'B' | null {
  const t = token.trim().replace(/^[([*"'\s]+|[)\].:*"'\s]+$/g, '');
  return t === 'A' ? 'A' : t === 'B' ? 'B' : null;
}

export interface AnswerEvidence {
  /** The first answer token's alternatives with their log-probabilities (empty when the server gives none). */
  top: { token: string; logprob: number }[];
  /** The answer text. */
  text: string;
}

/**
 * P(A is better): from the log-probabilities of the answer tokens that read A and B (their
 * probabilities summed, then normalised over the two) when either is among the alternatives;
 * else from the answer text (1 for A, 0 for B); null when neither says A or B.
 */
export function probabilityOfA(e: AnswerEvidence): { p: number; from: 'logprobs' | 'text' } | null {
  let pa = 0;
  let pb = 0;
  for (const t of e.top) {
    const l = answerLetter(t.token);
    if (l === 'A') pa += Math.exp(t.logprob);
    else if (l === 'B') pb += Math.exp(t.logprob);
  }
  if (pa + pb > 0) return { p: pa / (pa + pb), from: 'logprobs' };
  const first = e.text.trim().split(/\s+/)[0] ?? '';
  const l = answerLetter(first);
  return l === null ? null : { p: l === 'A' ? 1 : 0, from: 'text' };
}
