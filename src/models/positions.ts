/**
 * The warning about sequences longer than the model's `max_position_embeddings`. Nothing fails
 * past it (RoPE computes any position), which is why it must be said: the model never saw those
 * positions in pre-training (beyond what its rope scaling extends), and its outputs degrade
 * without a word. Every place that feeds sequences (training and eval-loss batches, scored
 * multiple-choice sequences, generation steps) checks the length it is about to feed; one
 * instance per run tells once, at the first sequence past the limit, naming its length.
 */

/** Tells once per run that a sequence went past the model's position limit. */
export class PositionLimit {
  private told = false;

  /**
   * @param limit the model's `max_position_embeddings`
   * @param warn receives the one warning line (`warning: ...`)
   */
  constructor(
    readonly limit: number,
    private readonly warn: (line: string) => void,
  ) {}

  /** Whether the warning was given. */
  get warned(): boolean {
    return this.told;
  }

  /**
   * A sequence of `length` tokens (positions 0..length-1) is about to be fed. `what` names it
   * ("a training sequence"), `fix` says how to stay within the limit ("lower maxLength to 128").
   */
  check(length: number, what: string, fix: string): void {
    if (this.told || length <= this.limit) return;
    this.told = true;
    this.warn(
      `warning: ${what} reaches ${length} positions, past the model's max_position_embeddings (${this.limit}): ` +
        `positions beyond it were never trained, so results may degrade (${fix})`,
    );
  }
}

/** Longest row of a right- or left-padded batch: the most 1s in a row of `attentionMask` ([B * T]). */
export function longestRow(b: { attentionMask: ArrayLike<number>; batchSize: number; seqLen: number }): number {
  let longest = 0;
  for (let r = 0; r < b.batchSize; r++) {
    let n = 0;
    for (let t = r * b.seqLen; t < (r + 1) * b.seqLen; t++) n += b.attentionMask[t] ? 1 : 0;
    if (n > longest) longest = n;
  }
  return longest;
}
