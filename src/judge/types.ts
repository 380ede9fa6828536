// Judges (CONTRACT between the judges in src/judge/ and the pipeline): one interface that returns
// a K x K preference matrix per prompt. P[i][j] = P(y_i beats y_j | x); P[i][i] = 0.5 and
// P[i][j] + P[j][i] = 1.
export interface JudgeInput {
  prompt: string;          // the user turn (plain text, no chat template)
  responses: string[];     // K responses
  /** Row index of the prompt in this iteration's prompt set, when known (keys precomputed judges). */
  index?: number;
}

export interface Judgment {
  probability: number[][]; // K x K
  /** Scores when the judge is score-based (PairRM aggregate, reward model); null for pairwise. */
  scores: number[] | null;
}

export interface Judge {
  readonly name: string;   // the spec it was made from, e.g. "reward-model:/path"
  judge(batch: JudgeInput[]): Promise<Judgment[]>;
  close(): Promise<void>;
}
