/**
 * A weighted, multi-file, multi-task training stream that is deterministic given a seed and can
 * be resumed exactly.
 *
 * **Weights** are per-epoch multipliers (open-instruct's dataset mixer, mlx-lm style): a file of
 * `n` records with weight `w` contributes `max(1, round(w * n))` examples to every epoch — `w = 2`
 * repeats each record twice, `w = 0.5` takes a fresh random half each epoch. The share of a file
 * in the stream is therefore `w_i n_i / sum_j w_j n_j`.
 *
 * **Epochs**: the epoch's examples (all sources together) are shuffled with an {@link Rng} seeded
 * from `(seed, epoch)`, so any epoch's order can be recomputed from its number alone. The stream
 * position is `{epoch, index}` into that order; {@link BatchStream} adds the state of its length
 * bucketing window. Both are plain JSON for checkpoints, with a fingerprint of the data and
 * options that {@link BatchStream.restore} checks.
 *
 * All files are read and validated when the mixture is loaded (a bad line fails before training
 * starts); records are tokenized lazily on first use and cached.
 */
import { UserError } from '../errors.ts';
import { Rng } from '../util/rng.ts';
import { bucketByLength, collate, truncateExample, padIdOf, type Batch, type TruncationMode } from './batch.ts';
import { parseDataRecord, taskNameOf, type DataRecord } from './formats.ts';
import { readJsonl } from './jsonl.ts';
import { renderRecord, type RenderedExample, type RenderOptions, type TokenizerLike } from './render.ts';

/** One input file of a mixture. */
export interface DataSource {
  /** JSONL file path. */
  path: string;
  /** Per-epoch multiplier (see the module comment). Default 1. */
  weight?: number;
  /** Task name for records without a `task` field. Default: the file's base name. */
  task?: string;
}

export interface MixtureOptions extends RenderOptions {
  /** Seed of the epoch shuffles. */
  seed: number;
  /** Maximum tokens per example. */
  maxLength: number;
  /** `truncate` (default) keeps the first `maxLength` tokens; `drop` skips longer examples. */
  truncation?: TruncationMode;
  /** Shuffle each epoch (default true); without it the epoch is the files in order. */
  shuffle?: boolean;
}

/** Position of a {@link DataMixture} stream: the next example is `order(epoch)[index]`. */
export interface StreamPosition {
  epoch: number;
  index: number;
}

/** Counters of a mixture, for logs. */
export interface MixtureStats {
  /** Examples yielded so far (since load or restore). */
  yielded: number;
  /** Distinct records dropped (too long, or nothing left to learn after truncation). */
  dropped: number;
}

/** Records of one mixture source, already parsed (see {@link DataMixture.fromRecords}). */
export interface RecordSource {
  /** Names the source (a file name or URL). */
  path: string;
  records: readonly DataRecord[];
  /** Per-epoch multiplier (see the module comment). Default 1. */
  weight?: number;
}

/** `weight` (default 1) if it is a positive number; a UserError naming `path` otherwise. */
function checkWeight(path: string, weight = 1): number {
  if (!Number.isFinite(weight) || weight <= 0) throw new UserError(`${path}: weight must be a positive number, got ${weight}`);
  return weight;
}

interface LoadedSource {
  path: string;
  weight: number;
  records: DataRecord[];
  rendered: (RenderedExample | null | undefined)[];
}

/** The weighted multi-task example stream (infinite; epochs follow one another). */
export class DataMixture {
  private readonly srcs: LoadedSource[];
  private readonly tok: TokenizerLike;
  private readonly opts: Required<Pick<MixtureOptions, 'seed' | 'maxLength' | 'truncation' | 'shuffle'>> & RenderOptions;
  private epoch = 0;
  private index = 0;
  private order: [number, number][] | undefined;
  private orderEpoch = -1;
  private droppedSet = new Set<string>();
  private yielded = 0;

  private constructor(srcs: LoadedSource[], tok: TokenizerLike, opts: MixtureOptions) {
    this.srcs = srcs;
    this.tok = tok;
    this.opts = { truncation: 'truncate', shuffle: true, ...opts };
  }

  /**
   * Read and validate every source, then build the stream.
   * @throws UserError for a missing/unreadable file, a bad line (`file:line: reason`), an empty
   *   file, or a bad weight / maxLength.
   */
  static async load(sources: DataSource[], tokenizer: TokenizerLike, opts: MixtureOptions): Promise<DataMixture> {
    if (sources.length === 0) throw new UserError('no training data files given');
    if (!Number.isInteger(opts.maxLength) || opts.maxLength < 2) {
      throw new UserError(`maxLength must be an integer >= 2, got ${opts.maxLength}`);
    }
    const loaded: RecordSource[] = [];
    for (const s of sources) {
      checkWeight(s.path, s.weight);
      loaded.push({ path: s.path, weight: s.weight, records: await readDataRecords(s.path, s.task) });
    }
    return DataMixture.fromRecords(loaded, tokenizer, opts);
  }

  /**
   * The stream over records already parsed (e.g. fetched and checked with `parseDataRecord` in
   * a browser); `path` names each source in logs and in the resume fingerprint.
   * @throws UserError for an empty source, a bad weight or maxLength.
   */
  static fromRecords(sources: RecordSource[], tokenizer: TokenizerLike, opts: MixtureOptions): DataMixture {
    if (sources.length === 0) throw new UserError('no training data given');
    if (!Number.isInteger(opts.maxLength) || opts.maxLength < 2) {
      throw new UserError(`maxLength must be an integer >= 2, got ${opts.maxLength}`);
    }
    const loaded = sources.map((s): LoadedSource => {
      const weight = checkWeight(s.path, s.weight);
      if (s.records.length === 0) throw new UserError(`${s.path}: empty dataset (no records)`);
      return { path: s.path, weight, records: [...s.records], rendered: new Array(s.records.length) };
    });
    return new DataMixture(loaded, tokenizer, opts);
  }

  /** Files, weights and record counts. */
  get sources(): { path: string; weight: number; records: number; examplesPerEpoch: number }[] {
    return this.srcs.map((s) => ({ path: s.path, weight: s.weight, records: s.records.length, examplesPerEpoch: perEpoch(s) }));
  }

  /** Number of examples in one epoch (before dropping over-long ones). */
  get epochSize(): number {
    return this.srcs.reduce((a, s) => a + perEpoch(s), 0);
  }

  /** Distinct task names, sorted. */
  get tasks(): string[] {
    return [...new Set(this.srcs.flatMap((s) => s.records.map((r) => r.task)))].sort();
  }

  /** A fingerprint of data and options, stored in positions to catch resuming on other data. */
  get fingerprint(): string {
    const desc = JSON.stringify([
      this.srcs.map((s) => [s.path, s.weight, s.records.length]),
      this.opts.seed,
      this.opts.maxLength,
      this.opts.truncation,
      this.opts.shuffle,
    ]);
    return fnv1a(desc).toString(16).padStart(8, '0');
  }

  get stats(): MixtureStats {
    return { yielded: this.yielded, dropped: this.droppedSet.size };
  }

  /** Current position (plain JSON). */
  position(): StreamPosition {
    return { epoch: this.epoch, index: this.index };
  }

  /** Continue from a position returned by {@link position}. */
  seek(pos: StreamPosition): void {
    if (!Number.isInteger(pos.epoch) || pos.epoch < 0 || !Number.isInteger(pos.index) || pos.index < 0 || pos.index > this.epochSize) {
      throw new UserError(`invalid data stream position ${JSON.stringify(pos)}`);
    }
    this.epoch = pos.epoch;
    this.index = pos.index;
  }

  /** The record at `(source, recordIndex)` of epoch `epoch`'s order (for inspection and tests). */
  epochOrder(epoch: number): { source: number; record: number }[] {
    return this.orderOf(epoch).map(([source, record]) => ({ source, record }));
  }

  /**
   * The next example (with its epoch); over-long ones are skipped per `truncation`.
   * @throws UserError when no example of an epoch is usable (all too long for `maxLength`).
   */
  next(): RenderedExample & { epoch: number } {
    let skipped = 0;
    for (;;) {
      const order = this.orderOf(this.epoch);
      if (this.index >= order.length) {
        this.epoch++;
        this.index = 0;
        continue;
      }
      const [s, r] = order[this.index];
      const epoch = this.epoch;
      this.index++;
      const ex = this.rendered(s, r);
      if (ex) {
        this.yielded++;
        return { ...ex, epoch };
      }
      if (++skipped === order.length && !order.some(([s2, r2]) => this.rendered(s2, r2) !== null)) {
        throw new UserError(
          `no training example fits maxLength ${this.opts.maxLength} (truncation "${this.opts.truncation}"): all ${order.length} were dropped`,
        );
      }
    }
  }

  private rendered(s: number, r: number): RenderedExample | null {
    const src = this.srcs[s];
    let ex = src.rendered[r];
    if (ex === undefined) {
      ex = truncateExample(renderRecord(src.records[r], this.tok, this.opts), this.opts.maxLength, this.opts.truncation);
      src.rendered[r] = ex;
      if (ex === null) this.droppedSet.add(`${s}:${r}`);
    }
    return ex;
  }

  private orderOf(epoch: number): [number, number][] {
    if (this.order && this.orderEpoch === epoch) return this.order;
    const rng = new Rng(fnv1a(`${this.opts.seed >>> 0}:${epoch}`));
    const order: [number, number][] = [];
    this.srcs.forEach((src, s) => {
      const n = src.records.length;
      const count = perEpoch(src);
      for (let k = 0; k < Math.floor(count / n); k++) for (let r = 0; r < n; r++) order.push([s, r]);
      const rest = count % n;
      if (rest > 0) {
        const idx = Array.from({ length: n }, (_, r) => r);
        const chosen = this.opts.shuffle ? rng.shuffle(idx).slice(0, rest).sort((a, b) => a - b) : idx.slice(0, rest);
        for (const r of chosen) order.push([s, r]);
      }
    });
    if (this.opts.shuffle) rng.shuffle(order);
    this.order = order;
    this.orderEpoch = epoch;
    return order;
  }

  /** Tokenizer used for rendering (for padding). */
  get tokenizer(): TokenizerLike {
    return this.tok;
  }

  /** Seed of the mixture. */
  get seed(): number {
    return this.opts.seed;
  }
}

function perEpoch(s: { weight: number; records: unknown[] }): number {
  return Math.max(1, Math.round(s.weight * s.records.length));
}

/**
 * Read and validate every record of a training JSONL file.
 * @throws UserError for a bad line (`file:line: reason`) or an empty file.
 */
export async function readDataRecords(file: string, task?: string): Promise<DataRecord[]> {
  const records: DataRecord[] = [];
  const defaultTask = task ?? taskNameOf(file);
  for await (const l of readJsonl(file)) records.push(parseDataRecord(l.value, l.file, l.line, defaultTask));
  if (records.length === 0) throw new UserError(`${file}: empty dataset (no records)`);
  return records;
}

/**
 * All examples of some files once, in file order, rendered and truncated (dropped ones left
 * out): for validation loss. {@link loadExamplesPerTask} without a limit.
 */
export async function loadExamples(
  files: (string | DataSource)[],
  tokenizer: TokenizerLike,
  opts: RenderOptions & { maxLength: number; truncation?: TruncationMode },
): Promise<RenderedExample[]> {
  return loadExamplesPerTask(files, tokenizer, opts);
}

/**
 * The first `perTask` examples of each task (all of them without `perTask`), optionally of one
 * `task` only, in file order, truncated (`truncation`, default `truncate`; dropped examples are
 * left out and not counted). Records are selected before rendering, so asking for a few
 * examples of each task from a large file renders only those (routing statistics after
 * training read 64 of each task from the whole training mix).
 * @throws UserError when `task` matches no example (naming the tasks present).
 */
export async function loadExamplesPerTask(
  files: (string | DataSource)[],
  tokenizer: TokenizerLike,
  opts: RenderOptions & { maxLength: number; perTask?: number; task?: string; truncation?: TruncationMode },
): Promise<RenderedExample[]> {
  if (files.length === 0) throw new UserError('no data files given');
  const count = new Map<string, number>();
  const present = new Set<string>();
  const out: RenderedExample[] = [];
  for (const f of files) {
    const src = typeof f === 'string' ? { path: f } : f;
    for (const rec of await readDataRecords(src.path, src.task)) {
      present.add(rec.task);
      if (opts.task !== undefined && rec.task !== opts.task) continue;
      const n = count.get(rec.task) ?? 0;
      if (opts.perTask !== undefined && n >= opts.perTask) continue;
      const ex = truncateExample(renderRecord(rec, tokenizer, opts), opts.maxLength, opts.truncation ?? 'truncate');
      if (!ex) continue;
      count.set(rec.task, n + 1);
      out.push(ex);
    }
  }
  if (out.length === 0) {
    const names = files.map((f) => (typeof f === 'string' ? f : f.path)).join(', ');
    if (opts.task !== undefined) {
      throw new UserError(`task "${opts.task}" has no example in ${names} (tasks there: ${[...present].join(', ')})`);
    }
    throw new UserError(`no example of ${names} fits maxLength ${opts.maxLength}`);
  }
  return out;
}

export interface BatchStreamOptions {
  /** Rows per batch. */
  batchSize: number;
  /**
   * Length bucketing window in batches: `window * batchSize` consecutive examples are sorted by
   * length and cut into batches, whose order is then shuffled. 1 disables bucketing. Default 8.
   */
  bucketWindow?: number;
  /** Pad id. Default: the tokenizer's pad, else EOS, else 0. */
  padId?: number;
  /** Round padded lengths up to a multiple of this. Default 1. */
  padToMultipleOf?: number;
}

/** Serialisable state of a {@link BatchStream}: where its current window started, and how far into it. */
export interface BatchStreamState {
  version: 1;
  fingerprint: string;
  /** Mixture position at the start of the current bucketing window. */
  windowStart: StreamPosition;
  /** Batches of that window already returned. */
  batchesTaken: number;
  /** Batches returned in total. */
  step: number;
}

/** Infinite padded, length-bucketed batches over a {@link DataMixture}, resumable exactly. */
export class BatchStream {
  private readonly mix: DataMixture;
  private readonly batchSize: number;
  private readonly window: number;
  private readonly padId: number;
  private readonly padToMultipleOf: number;
  private windowStart: StreamPosition;
  private batches: Batch[] = [];
  private taken = 0;
  private step = 0;

  constructor(mixture: DataMixture, opts: BatchStreamOptions) {
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new UserError(`batch size must be a positive integer, got ${opts.batchSize}`);
    const w = opts.bucketWindow ?? 8;
    if (!Number.isInteger(w) || w < 1) throw new UserError(`bucketWindow must be a positive integer, got ${w}`);
    this.mix = mixture;
    this.batchSize = opts.batchSize;
    this.window = w;
    this.padId = opts.padId ?? padIdOf(mixture.tokenizer);
    this.padToMultipleOf = opts.padToMultipleOf ?? 1;
    this.windowStart = mixture.position();
  }

  /** The next batch (always `batchSize` rows). */
  next(): Batch {
    if (this.taken >= this.batches.length) this.fillWindow();
    this.step++;
    return this.batches[this.taken++];
  }

  /** Current state for a checkpoint (plain JSON). */
  state(): BatchStreamState {
    return { version: 1, fingerprint: this.fingerprint, windowStart: { ...this.windowStart }, batchesTaken: this.taken, step: this.step };
  }

  /**
   * Continue exactly where {@link state} was taken: the following batches equal those the
   * original stream would have produced.
   * @throws UserError when the state belongs to other data or options.
   */
  restore(state: BatchStreamState): void {
    if (state?.version !== 1) throw new UserError('unsupported data stream state (version)');
    if (state.fingerprint !== this.fingerprint) {
      throw new UserError('the checkpoint was made with other training data or data options (data fingerprint differs)');
    }
    this.mix.seek(state.windowStart);
    this.fillWindow();
    if (state.batchesTaken > this.batches.length) throw new UserError('invalid data stream state (batchesTaken)');
    this.taken = state.batchesTaken;
    this.step = state.step;
  }

  private get fingerprint(): string {
    return `${this.mix.fingerprint}-b${this.batchSize}w${this.window}p${this.padId}m${this.padToMultipleOf}`;
  }

  private fillWindow(): void {
    this.windowStart = this.mix.position();
    const n = this.batchSize * this.window;
    const examples: RenderedExample[] = [];
    for (let i = 0; i < n; i++) examples.push(this.mix.next());
    const rng = new Rng(fnv1a(`batches:${this.mix.seed >>> 0}:${this.windowStart.epoch}:${this.windowStart.index}`));
    const groups =
      this.window === 1 ? [examples.map((_, i) => i)] : bucketByLength(examples.map((e) => e.inputIds.length), this.batchSize, rng);
    this.batches = groups.map((g) => collate(g.map((i) => examples[i]), { padId: this.padId, padToMultipleOf: this.padToMultipleOf }));
    this.taken = 0;
  }
}

/** 32-bit FNV-1a hash of a string (seeds and fingerprints). */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}
