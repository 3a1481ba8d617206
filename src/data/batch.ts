/**
 * Batches: truncation to a maximum length, right padding, and length bucketing.
 *
 * A {@link Batch} is row-major `[B, T]` host arrays ready to become int32 tensors. Padding is on
 * the right (real tokens start at position 0, so positions need no offset); pads have attention
 * mask 0 and label -100. Labels are not shifted (the model's loss shifts, like HF).
 */
import { UserError } from '../errors.ts';
import type { Rng } from '../util/rng.ts';
import { IGNORE_INDEX, type RenderedExample, type TokenizerLike } from './render.ts';
import { maxOf } from '../util/array.ts';

/** A padded batch of token ids, labels and attention mask, all `[batchSize, seqLen]` row-major. */
export interface Batch {
  inputIds: Int32Array;
  /** `-100` where no loss (prompt tokens, pads). */
  labels: Int32Array;
  /** 1 on real tokens, 0 on pads. */
  attentionMask: Int32Array;
  batchSize: number;
  seqLen: number;
  /** Task of each row. */
  tasks: string[];
}

/** What to do with an example longer than the maximum length. */
export type TruncationMode = 'truncate' | 'drop';

/**
 * Apply the length limit. `truncate` keeps the first `maxLength` tokens; `drop` rejects the
 * example. Returns `null` when the example is dropped, or when after truncation no token is
 * left to learn (a label at position 0 is never a target, since labels are shifted by one).
 */
export function truncateExample(ex: RenderedExample, maxLength: number, mode: TruncationMode): RenderedExample | null {
  let out = ex;
  if (ex.inputIds.length > maxLength) {
    if (mode === 'drop') return null;
    out = { inputIds: ex.inputIds.slice(0, maxLength), labels: ex.labels.slice(0, maxLength), task: ex.task };
  }
  return countTargets(out.labels) > 0 ? out : null;
}

/** Number of tokens that contribute to the loss (labels at positions >= 1 that are not -100). */
export function countTargets(labels: ArrayLike<number>): number {
  let n = 0;
  for (let t = 1; t < labels.length; t++) if (labels[t] !== IGNORE_INDEX) n++;
  return n;
}

/** The pad id: the tokenizer's pad token, else its first EOS (the HF habit), else 0. */
export function padIdOf(tok: Pick<TokenizerLike, 'padTokenId' | 'eosTokenIds'>): number {
  return tok.padTokenId ?? tok.eosTokenIds[0] ?? 0;
}

export interface CollateOptions {
  /** Id written at padded positions (masked out anyway). */
  padId: number;
  /** Round the padded length up to a multiple of this (e.g. 8). Default 1. */
  padToMultipleOf?: number;
}

/** Right-pad examples into a {@link Batch} of length `max(len)` (rounded up to `padToMultipleOf`). */
export function collate(examples: RenderedExample[], opts: CollateOptions): Batch {
  if (examples.length === 0) throw new Error('collate: no examples');
  const mult = Math.max(1, opts.padToMultipleOf ?? 1);
  const longest = maxOf(examples.map((e) => e.inputIds.length));
  const seqLen = Math.ceil(longest / mult) * mult;
  const batchSize = examples.length;
  const inputIds = new Int32Array(batchSize * seqLen).fill(opts.padId);
  const labels = new Int32Array(batchSize * seqLen).fill(IGNORE_INDEX);
  const attentionMask = new Int32Array(batchSize * seqLen);
  examples.forEach((e, b) => {
    inputIds.set(e.inputIds, b * seqLen);
    labels.set(e.labels, b * seqLen);
    attentionMask.fill(1, b * seqLen, b * seqLen + e.inputIds.length);
  });
  return { inputIds, labels, attentionMask, batchSize, seqLen, tasks: examples.map((e) => e.task) };
}

/**
 * Length bucketing: sort the indices of a window of examples by length (stable), cut them into
 * batches of `batchSize` consecutive lengths, and shuffle the order of the batches with `rng`
 * (when given) so training does not see lengths in increasing order.
 * @returns lists of indices into `lengths`, one list per batch (the last may be smaller).
 */
export function bucketByLength(lengths: number[], batchSize: number, rng?: Rng): number[][] {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new UserError(`batch size must be a positive integer, got ${batchSize}`);
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const batches: number[][] = [];
  for (let i = 0; i < order.length; i += batchSize) batches.push(order.slice(i, i + batchSize));
  return rng ? rng.shuffle(batches) : batches;
}

/** Plain batches of a fixed list (e.g. a validation set), in order, optionally bucketed by length (unshuffled). */
export function batchesOf(examples: RenderedExample[], batchSize: number, opts: CollateOptions & { bucket?: boolean }): Batch[] {
  const groups = opts.bucket
    ? bucketByLength(examples.map((e) => e.inputIds.length), batchSize)
    : Array.from({ length: Math.ceil(examples.length / batchSize) }, (_, i) =>
        examples.slice(i * batchSize, (i + 1) * batchSize).map((_, j) => i * batchSize + j),
      );
  return groups.map((g) => collate(g.map((i) => examples[i]), opts));
}
