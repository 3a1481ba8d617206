/**
 * Pretraining data: documents tokenized, joined into one token stream (`<s> doc </s>` each),
 * and cut into fixed-length sequences, like nanoGPT / HF `group_texts`. Every position is a
 * target (labels = input ids; the model shifts inside), no padding, attention crosses
 * document boundaries (the EOS tells the model a new document starts).
 */
import { UserError } from '../errors.ts';
import type { Batch } from '../data/batch.ts';
import type { ResumableIterator } from '../train/trainer.ts';
import { Rng } from '../util/rng.ts';

/** What packing needs from a tokenizer. */
export interface PackingTokenizer {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  bosTokenId?: number;
  eosTokenIds: number[];
}

/**
 * Documents of a corpus file: separated by one or more blank lines (the corpus builder's
 * format), trimmed, empty ones dropped.
 */
export function splitDocuments(text: string): string[] {
  return text
    .replace(/\r\n/g, '\n')
    .split(/\n[ \t]*\n/)
    .map((d) => d.trim())
    .filter((d) => d.length > 0);
}

/**
 * Tokenize `docs` (without the tokenizer's own special tokens) and concatenate them as
 * `[bos] ids [eos]` each (`bos` only when the tokenizer has one). Returns the stream.
 */
export function tokenizeDocuments(tokenizer: PackingTokenizer, docs: readonly string[]): Int32Array {
  const eos = tokenizer.eosTokenIds[0];
  if (eos === undefined) throw new UserError('pretraining needs a tokenizer with an EOS token (document separator)');
  const bos = tokenizer.bosTokenId;
  const parts: number[][] = [];
  let n = 0;
  for (const d of docs) {
    const ids = tokenizer.encode(d, { addSpecialTokens: false });
    parts.push(ids);
    n += ids.length + 1 + (bos === undefined ? 0 : 1);
  }
  const out = new Int32Array(n);
  let o = 0;
  for (const ids of parts) {
    if (bos !== undefined) out[o++] = bos;
    out.set(ids, o);
    o += ids.length;
    out[o++] = eos;
  }
  return out;
}

/** Sequence `i` (0-based) of a stream cut into non-overlapping `seqLen` pieces. */
export function sequenceAt(stream: Int32Array, seqLen: number, i: number): Int32Array {
  return stream.subarray(i * seqLen, (i + 1) * seqLen);
}

/** Number of whole `seqLen` sequences in `stream` (the tail that does not fill one is dropped). */
export function numSequences(stream: Int32Array, seqLen: number): number {
  return Math.floor(stream.length / seqLen);
}

/** Position of a {@link PackedBatches} iterator, JSON-serialisable. */
export interface PackedBatchesState {
  /** Completed passes over the sequences. */
  epoch: number;
  /** Sequences of this epoch already handed out. */
  index: number;
}

/** Options of {@link PackedBatches}. */
export interface PackedBatchesOptions {
  /** Tokens per sequence. */
  seqLen: number;
  /** Sequences per batch. */
  batchSize: number;
  /** Order seed: epoch `e` visits the sequences in a permutation drawn from `(seed, e)`. */
  seed: number;
  /** Visit the sequences in stream order instead (evaluation). Default true (shuffled). */
  shuffle?: boolean;
}

/**
 * An endless, resumable stream of packed {@link Batch}es over the sequences of a token
 * stream. Each epoch visits every sequence once, in an order that depends only on the seed
 * and the epoch number, so `setState(getState())` on a fresh iterator continues exactly.
 * A batch may straddle two epochs.
 */
export class PackedBatches implements ResumableIterator<Batch> {
  readonly numSequences: number;
  private readonly stream: Int32Array;
  private readonly opts: Required<PackedBatchesOptions>;
  private epoch = 0;
  private index = 0;
  private order: Uint32Array;

  constructor(stream: Int32Array, opts: PackedBatchesOptions) {
    if (!Number.isInteger(opts.seqLen) || opts.seqLen < 2) throw new UserError(`seqLen must be an integer >= 2 (got ${opts.seqLen})`);
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
      throw new UserError(`batchSize must be a positive integer (got ${opts.batchSize})`);
    }
    this.stream = stream;
    this.opts = { shuffle: true, ...opts };
    this.numSequences = numSequences(stream, opts.seqLen);
    if (this.numSequences === 0) {
      throw new UserError(`the corpus has ${stream.length} tokens: fewer than one sequence of ${opts.seqLen}`);
    }
    this.order = this.orderOf(0);
  }

  /** Sequence order of epoch `e`: identity, or a Fisher-Yates permutation from `(seed, e)`. */
  private orderOf(e: number): Uint32Array {
    const n = this.numSequences;
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    if (!this.opts.shuffle) return order;
    const rng = new Rng((this.opts.seed * 1000003 + e * 7919) >>> 0);
    for (let i = n - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    return order;
  }

  next(): Batch {
    const { seqLen: t, batchSize: b } = this.opts;
    const inputIds = new Int32Array(b * t);
    for (let r = 0; r < b; r++) {
      if (this.index >= this.numSequences) {
        this.epoch++;
        this.index = 0;
        this.order = this.orderOf(this.epoch);
      }
      inputIds.set(sequenceAt(this.stream, t, this.order[this.index++]), r * t);
    }
    return {
      inputIds,
      labels: inputIds.slice(),
      attentionMask: new Int32Array(b * t).fill(1),
      batchSize: b,
      seqLen: t,
      tasks: new Array<string>(b).fill('pretrain'),
    };
  }

  getState(): PackedBatchesState {
    return { epoch: this.epoch, index: this.index };
  }

  setState(state: unknown): void {
    const s = state as Partial<PackedBatchesState> | null;
    if (!s || !Number.isInteger(s.epoch) || !Number.isInteger(s.index) || s.epoch! < 0 || s.index! < 0 || s.index! > this.numSequences) {
      throw new UserError(`invalid pretraining data position ${JSON.stringify(state)} (expected {epoch, index} within ${this.numSequences} sequences)`);
    }
    this.epoch = s.epoch!;
    this.index = s.index!;
    this.order = this.orderOf(this.epoch);
  }

  /** Tokens handed out so far (epochs included), counting whole batches. */
  tokensSeen(): number {
    return (this.epoch * this.numSequences + this.index) * this.opts.seqLen;
  }
}
